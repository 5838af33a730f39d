"""Delivery to a real ``costline serve`` (DuckDB) and to an embedded store: batches, refusals, kill -9 and
restart, the spill file. Costs are checked by hand from gpt-4o's published prices ($2.50/M input, $1.25/M
cached input, $10/M output)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from tests.server.harness import Server, make_server

from costline.core.resolve import PriceBook
from costline.sdk import Tracker
from costline.store import open_store

FAST: dict[str, Any] = {"flush_interval": 0.05, "min_backoff": 0.02, "max_backoff": 0.3}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv, _ = make_server("duckdb", tmp_path_factory.mktemp("sdk-serve"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    srv, _ = make_server("duckdb", tmp_path / "srv")
    srv.start()
    yield srv
    srv.stop()


def tracker_for(server: Server, book: PriceBook, **kwargs: Any) -> Tracker:
    return Tracker(host=server.url, public_key=server.public_key, secret_key=server.secret_key, book=book,
                   **{**FAST, **kwargs})


def count_stored(server: Server) -> int:
    server.stop()
    store = open_store(server.store_url)
    try:
        return store.count_observations(server.project_id)
    finally:
        store.close()


def test_events_arrive_priced_with_trace_attributes(server: Server, bundled_book: PriceBook) -> None:
    tracker = tracker_for(server, bundled_book)
    with tracker.trace(name="chat", user_id="u1", session_id="s1", tags=["a"]) as t:
        with tracker.span(name="retrieve"):
            pass
        with tracker.generation(name="answer", model="gpt-4o", provider="openai") as g:
            local = g.update(usage={"input_tokens": 1000, "cache_read_tokens": 200, "output_tokens": 50})
    assert tracker.flush(timeout=30)
    assert tracker.stats["sent"] == 3 and tracker.stats["queued"] == 0 and tracker.stats["dropped"] == 0
    tracker.shutdown()
    with server.client() as c:
        trace = c.get(f"/api/public/traces/{t.id}").json()
    # 800 × 2.5 + 200 × 1.25 + 50 × 10 = 2750 per million → $0.00275, locally and on the server
    assert local is not None and local.total == D("0.00275")
    assert D(str(trace["totalCost"])) == D("0.00275")
    assert trace["userId"] == "u1" and trace["sessionId"] == "s1" and trace["tags"] == ["a"]
    obs = {o["name"]: o for o in trace["observations"]}
    assert obs["answer"]["id"] == g.id and D(str(obs["answer"]["calculatedTotalCost"])) == D("0.00275")
    assert obs["retrieve"]["type"].lower() == "span"


def test_record_generation_is_stored_as_recorded(server: Server, bundled_book: PriceBook) -> None:
    tracker = tracker_for(server, bundled_book)
    with tracker.trace(name="wire") as t:
        local = tracker.record_generation(model="gpt-4o", usage={"input_tokens": 1000, "cache_read_tokens": 200,
                                                                 "output_tokens": 50}, name="priced")
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": 10}, cost={"total": "0.000400"},
                                  name="provided")
    assert tracker.flush(timeout=30)
    assert tracker.stats["sent"] == 3 and tracker.stats["rejected"] == 0
    tracker.shutdown()
    with server.client() as c:
        trace = c.get(f"/api/public/traces/{t.id}").json()
    obs = {o["name"]: o for o in trace["observations"]}
    # 800 × 2.5 + 200 × 1.25 + 50 × 10 = 2750 per million → $0.00275; the provided total wins: $0.0004
    assert local.total == D("0.00275") and D(str(obs["priced"]["calculatedTotalCost"])) == D("0.00275")
    assert obs["priced"]["usageDetails"] == {"input": 800, "input_cached_tokens": 200, "output": 50, "total": 1050}
    assert D(str(obs["provided"]["calculatedTotalCost"])) == D("0.0004")
    assert D(str(trace["totalCost"])) == D("0.00315")


def test_rejected_items_are_counted_not_retried(server: Server, bundled_book: PriceBook) -> None:
    tracker = tracker_for(server, bundled_book)
    tracker.record_generation(model="gpt-4o", usage={"input_tokens": 10})
    b = tracker.record_generation(model="m" * 600, usage={"input_tokens": 10})  # over the server's model limit
    assert b.status.value == "unpriced"
    assert tracker.flush(timeout=30)
    stats = tracker.stats
    tracker.shutdown()
    assert (stats["sent"], stats["rejected"], stats["retries"], stats["dropped"]) == (1, 1, 0, 0)


def test_a_refused_batch_is_dropped_and_counted(server: Server, bundled_book: PriceBook) -> None:
    tracker = Tracker(host=server.url, public_key=server.public_key, secret_key="wrong", book=bundled_book, **FAST)
    for i in range(3):
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": i + 1})
    assert tracker.flush(timeout=30)
    stats = tracker.stats
    tracker.shutdown()
    assert (stats["failed_batches"], stats["dropped"], stats["sent"], stats["retries"]) == (1, 3, 0, 0)


def test_kill_9_and_restart_every_event_stored_once(own_server: Server, bundled_book: PriceBook) -> None:
    server = own_server
    # the outage lasts as long as a restart takes here: retry within caps that outlast it
    tracker = tracker_for(server, bundled_book, batch_size=50, max_retries=10_000, max_retry_time=120)
    for i in range(300):
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": 100 + i, "output_tokens": 10})
    assert tracker.flush(timeout=60)
    server.kill9()
    for i in range(300):  # the app keeps recording while the server is away
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": 100 + i, "output_tokens": 10})
    assert not tracker.flush(timeout=0.5)
    assert tracker.stats["retries"] >= 1 and tracker.stats["queued"] > 0
    server.start()
    assert tracker.flush(timeout=60)
    stats = tracker.stats
    tracker.shutdown()
    assert stats["sent"] == 600 and stats["dropped"] == 0 and stats["queued"] == 0
    assert count_stored(server) == 600


def test_spill_file_survives_a_restart(own_server: Server, bundled_book: PriceBook, tmp_path: Path) -> None:
    server = own_server
    spill = tmp_path / "spill" / "costline.jsonl"
    server.stop()
    first = tracker_for(server, bundled_book, spill_path=spill)
    for i in range(20):
        first.record_generation(model="gpt-4o", usage={"input_tokens": i + 1})
    first.shutdown(timeout=0.3)
    assert first.stats["spilled"] == 20 and first.stats["dropped"] == 0
    assert len(spill.read_text().splitlines()) == 20

    server.start()
    second = tracker_for(server, bundled_book, spill_path=spill)
    assert second.stats["restored"] == 20 and not spill.exists()
    second.record_generation(model="gpt-4o", usage={"input_tokens": 1})
    assert second.flush(timeout=30)
    assert second.stats["sent"] == 21
    second.shutdown()
    assert count_stored(server) == 21


def test_buffer_is_bounded_while_the_server_is_away(bundled_book: PriceBook) -> None:
    from tests.server.harness import free_port

    tracker = Tracker(host=f"http://127.0.0.1:{free_port()}", public_key="pk", secret_key="sk", max_buffer=10,
                      batch_size=5, book=bundled_book, **FAST)
    for i in range(50):
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": i + 1})
    assert tracker.stats["queued"] <= 15  # the buffer plus one batch in flight
    assert tracker.stats["dropped"] >= 35
    tracker.shutdown(timeout=0.1)
    assert tracker.stats["dropped"] == 50 and tracker.stats["sent"] == 0


def test_embedded_store(tmp_path: Path, bundled_book: PriceBook) -> None:
    url = f"duckdb:///{tmp_path / 'app.duckdb'}"
    tracker = Tracker(store_url=url, book=bundled_book, flush_interval=0.05)
    assert tracker.mode == "embedded"
    with tracker.trace(name="chat", user_id="u1"):
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": 1000, "output_tokens": 100})
    assert tracker.flush(timeout=30)
    tracker.shutdown()
    assert tracker.stats["sent"] == 2
    store = open_store(url)
    try:
        [project] = store.list_projects()
        [obs] = store.list_observations(project.id)
        # 1000 × 2.5 + 100 × 10 = 3500 per million → $0.0035
        assert obs.total_cost == D("0.0035") and obs.user_id == "u1"
    finally:
        store.close()
