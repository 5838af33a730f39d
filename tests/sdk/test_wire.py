"""Events are built JSON-ready on the app's thread (usage as a plain dict, costs and decimal quantities as exact
strings, datetimes for orjson), so the sender serialises a batch in one orjson call; what reaches the server
and what ``events()`` shows are unchanged (what the server stores: test_delivery.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D

import orjson
import pytest
from tests.sdk.test_spill import FAST, Ingest

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
