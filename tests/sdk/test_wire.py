"""Events are built JSON-ready on the app's thread (usage as a plain dict, costs and decimal quantities as exact
strings, datetimes for orjson), so the sender serialises a batch in one orjson call; what reaches the server
and what ``events()`` shows are unchanged (what the server stores: test_delivery.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import orjson
import pytest
from tests.sdk.test_spill import FAST, Ingest
from tests.server.harness import make_server

from costline.core.resolve import PriceBook
from costline.core.usage import Usage
from costline.sdk import Tracker
from costline.sdk.spill import dumps

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    server = Ingest()
    yield server
    server.close()


def record_three(tracker: Tracker) -> None:
    tracker.record_generation(model="gpt-4o", usage={"input_tokens": 1000, "cache_read_tokens": 200,
                                                     "output_tokens": 50}, start_time=AT)
    tracker.record_generation(model="gpt-4o", usage={"input_tokens": 10, "audio_seconds": "2.5"},
                              cost={"total": "0.000400"}, name="with cost", start_time=AT)
    with tracker.trace(name="t", user_id="u1"), tracker.generation(name="handle", model="gpt-4o") as g:
        g.update(usage={"input_tokens": 7}, cost={"input_tokens": D("0.0000175")})


def test_queued_events_need_no_conversion(bundled_book: PriceBook) -> None:
    tracker = Tracker(book=bundled_book)  # local mode: the events stay queued
    record_three(tracker)
    queued = list(tracker._shipper.queue)
    assert [e["type"] for e in queued] == ["generation", "generation", "generation", "trace"]
    for event in queued:
        orjson.dumps(event)  # no ``default``: raises TypeError on a Usage, a Decimal or a set
    first, second, handle, _ = queued
    assert first["usage"] == {"input_tokens": 1000, "cache_read_tokens": 200, "output_tokens": 50}
    assert second["usage"] == {"input_tokens": 10, "audio_seconds": "2.5"} and second["cost"] == {"total": "0.000400"}
    assert handle["usage"] == {"input_tokens": 7} and handle["cost"] == {"input_tokens": "0.0000175"}
    assert handle["user_id"] == "u1"
    # events() shows them as recorded: Usage and exact Decimals
    shown = tracker.events()
    assert shown[1]["usage"] == Usage({"input_tokens": 10, "audio_seconds": D("2.5")})
    assert shown[1]["cost"] == {"total": D("0.000400")} and str(shown[1]["cost"]["total"]) == "0.000400"
    assert shown[2]["cost"] == {"input_tokens": D("0.0000175")}
    tracker.shutdown()


def test_the_wire_carries_exact_strings(ingest: Ingest, bundled_book: PriceBook) -> None:
    tracker = Tracker(host=ingest.url, public_key="pk", secret_key="sk", book=bundled_book, **FAST)
    record_three(tracker)
    assert tracker.flush(timeout=30)
    tracker.shutdown()
    sent = [e for r in ingest.requests for e in r]
    by_name = {e["name"]: e for e in sent}
    assert by_name[None]["usage"] == {"input_tokens": 1000, "cache_read_tokens": 200, "output_tokens": 50}
    assert by_name[None]["start_time"] == "2026-11-20T12:00:00+00:00" == by_name[None]["end_time"]
    assert by_name["with cost"]["usage"] == {"input_tokens": 10, "audio_seconds": "2.5"}
    assert by_name["with cost"]["cost"] == {"total": "0.000400"}
    assert by_name["handle"]["cost"] == {"input_tokens": "0.0000175"}


def test_metadata_keeps_what_orjson_cannot_write_natively() -> None:
    body = dumps({"metadata": {1: "int key", "amount": D("1.10"), "tags": {"b", "a"}}})
    assert orjson.loads(body) == {"metadata": {"1": "int key", "amount": "1.10", "tags": ["a", "b"]}}


def test_a_value_orjson_cannot_write_does_not_stall_the_sender(tmp_path: Path) -> None:
    """A token count past 64 bits used to make every send of its batch fail before any request (orjson refuses
    the integer): the batch was retried forever and its valid neighbour never arrived. Now the batch goes out,
    the real server rejects that item, the SDK spills it with the server's reason and the neighbour is stored."""
    srv, _ = make_server("duckdb", tmp_path / "server")
    srv.start()
    spill = tmp_path / "spill.jsonl"
    try:
        tracker = Tracker(host=srv.url, public_key=srv.public_key, secret_key=srv.secret_key, spill_path=spill,
                          **FAST)
        try:
            tracker.record_generation(model="gpt-4o", usage={"input_tokens": 10, "output_tokens": 5}, name="ok")
            tracker.record_generation(model="gpt-4o", usage={"input_tokens": 2**64, "output_tokens": 5},
                                      name="huge")
            assert tracker.flush(timeout=30)
        finally:
            tracker.shutdown(timeout=30)
        lines = [orjson.loads(line) for line in spill.read_bytes().splitlines()]
        assert [(line["kind"], line["event"]["name"]) for line in lines] == [("rejected", "huge")]
        assert "input_tokens" in lines[0]["reason"]
        with srv.client() as client:
            names = [e["name"] for e in client.get("/v1/events").json()["data"]]
        assert names == ["ok"]
    finally:
        srv.stop()
