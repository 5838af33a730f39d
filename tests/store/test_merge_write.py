"""``Store.merge_write`` on every backend: read-merge-write is one step per id, so partial updates of one id
merged from many threads (and, on PostgreSQL, through two stores as two servers would) all land.

Each merge sleeps between its read and its write, which is where an unserialised read-merge-write loses the
other thread's update; the tests never assert how long anything took.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from costline.core.events import Observation, Trace
from costline.core.resolve import PriceBook
from costline.ingest.langfuse import decode_ingestion
from costline.ingest.otlp import decode_otlp
from costline.ingest.pipeline import Pipeline
from costline.store.base import Store, open_store

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
WINDOW_S = 0.002  # between read and write


def bump(project: str, obs_ids: Sequence[str], trace_ids: Sequence[str], key: str) -> Any:
    """A merge adding 1 to ``metadata["n"]`` and setting ``metadata[key]`` on each named row (created if absent)."""

    def merge(stored: Mapping[str, Observation],
              stored_traces: Mapping[str, Trace]) -> tuple[list[Observation], list[Trace]]:
        time.sleep(WINDOW_S)
        observations = []
        for i in obs_ids:
            old = stored.get(i) or Observation(project_id=project, id=i, trace_id=f"t-{i}", start_time=AT)
            meta = {**old.metadata, "n": old.metadata.get("n", 0) + 1, key: True}
            observations.append(replace(old, metadata=meta))
        traces = []
        for i in trace_ids:
            trace = stored_traces.get(i) or Trace(project_id=project, id=i, timestamp=AT)
            traces.append(replace(trace, metadata={**trace.metadata, "n": trace.metadata.get("n", 0) + 1,
                                                   key: True}))
        return observations, traces

    return merge


def run_threads(stores: Sequence[Store], jobs: Sequence[tuple[list[str], list[str], str]], threads: int = 8) -> None:
    def work(k: int) -> None:
        obs_ids, trace_ids, key = jobs[k]
        stores[k % len(stores)].merge_write("p1", obs_ids, trace_ids, bump("p1", obs_ids, trace_ids, key))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(len(jobs))))


def assert_counts(store: Store, expected: Mapping[str, int], keys: Mapping[str, set[str]]) -> None:
    observations = store.get_observations("p1", list(expected))
    traces = store.get_traces("p1", list(expected))
    for i, n in expected.items():
        for row in (observations[i], traces[i]):
            assert row.metadata["n"] == n, f"{i}: {n - row.metadata['n']} of {n} merges lost"
            assert {k for k in row.metadata if k != "n"} == keys[i]


def test_threads_merging_one_id_lose_no_update(store: Store) -> None:
    ids = [f"id-{i}" for i in range(4)]
    jobs = [([i], [i], f"k{n}") for n in range(40) for i in ids]
    run_threads([store], jobs)
    assert_counts(store, dict.fromkeys(ids, 40), {i: {f"k{n}" for n in range(40)} for i in ids})


def test_overlapping_batches_large_and_small_lose_no_update(store: Store) -> None:
    """Batches of 100 ids (more than a transaction locks one by one on PostgreSQL) interleaved with
    single-id and two-id merges of the same ids, in both orders."""
    ids = [f"id-{i:03d}" for i in range(100)]
    jobs: list[tuple[list[str], list[str], str]] = []
    for n in range(6):
        jobs.append((ids, list(reversed(ids)), f"big{n}"))
        jobs.extend(([ids[j]], [ids[j]], f"small{n}") for j in range(n, 100, 10))
        jobs.append(([ids[99 - n], ids[n]], [ids[n], ids[99 - n]], f"pair{n}"))
    run_threads([store], jobs)
    expected: dict[str, int] = {}
    keys: dict[str, set[str]] = {}
    for obs_ids, _, key in jobs:
        for i in obs_ids:
            expected[i] = expected.get(i, 0) + 1
            keys.setdefault(i, set()).add(key)
    assert_counts(store, expected, keys)


@pytest.fixture
def second_store(store_url: str, backend: str) -> Iterator[Store]:
    if backend == "duckdb":
        pytest.skip("duckdb: one process owns the file, so there is no second writer to serialise against")
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


def test_two_stores_on_one_database_lose_no_update(store: Store, second_store: Store) -> None:
    ids = [f"id-{i}" for i in range(3)]
    jobs = [([i], [i], f"k{n}") for n in range(30) for i in ids]
    run_threads([store, second_store], jobs)
    assert_counts(store, dict.fromkeys(ids, 30), {i: {f"k{n}" for n in range(30)} for i in ids})


def envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"{kind}-{body['id']}-{sorted(body)}", "type": kind, "timestamp": "2026-11-01T12:00:00Z",
            "body": body}


def test_pipeline_prices_the_merged_row_under_concurrency(store: Store, bundled_book: PriceBook) -> None:
    """generation-create (model) and generation-update (usage) of one id, and two trace-creates, from parallel
    threads through the real pipeline: the cost is worked out from the merged model and usage."""
    pipeline = Pipeline(store, bundled_book, lambda: AT)
    pairs = 60
    requests = []
    for i in range(pairs):
        requests += [
            [envelope("generation-create", {"id": f"g{i}", "traceId": f"t{i}", "model": "gpt-4o-mini",
                                            "startTime": "2026-11-01T12:00:00Z"})],
            [envelope("generation-update", {"id": f"g{i}", "usageDetails": {"input": 2000, "output": 500},
                                            "endTime": "2026-11-01T12:00:01Z"})],
            [envelope("trace-create", {"id": f"t{i}", "userId": f"u{i}"})],
            [envelope("trace-create", {"id": f"t{i}", "sessionId": f"s{i}"})],
        ]

    def send(batch: list[dict[str, Any]]) -> None:
        decoded = decode_ingestion({"batch": batch})
        assert not decoded.errors
        pipeline.ingest("p1", decoded, "langfuse")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, requests))
    observations = store.get_observations("p1", [f"g{i}" for i in range(pairs)])
    traces = store.get_traces("p1", [f"t{i}" for i in range(pairs)])
    # gpt-4o-mini: 2000 input tokens at $0.15/M + 500 output tokens at $0.60/M = 0.0003 + 0.0003
    for i in range(pairs):
        gen = observations[f"g{i}"]
        assert (gen.model, dict(gen.usage), gen.pricing_status) == (
            "gpt-4o-mini", {"input_tokens": 2000, "output_tokens": 500}, "priced"), f"g{i}"
        assert gen.total_cost == D("0.0006") and gen.end_time is not None
        assert (traces[f"t{i}"].user_id, traces[f"t{i}"].session_id) == (f"u{i}", f"s{i}")


def test_reprice_keeps_an_update_that_landed_after_the_scan(store: Store, bundled_book: PriceBook) -> None:
    """``costline reprice`` reads rows, prices them, writes them back: an update committed in between is kept."""
    pipeline = Pipeline(store, bundled_book, lambda: AT)
    create = envelope("generation-create", {"id": "g", "traceId": "t", "model": "gpt-4o-mini",
                                            "startTime": "2026-11-01T12:00:00Z", "usageDetails": {"input": 1000}})
    pipeline.ingest("p1", decode_ingestion({"batch": [create]}), "langfuse")
    scanned = list(store.iter_observations())
    update = envelope("generation-update", {"id": "g", "usageDetails": {"input": 1000, "output": 1000}})
    pipeline.ingest("p1", decode_ingestion({"batch": [update]}), "langfuse")
    pipeline.write_repriced(new for _, new in pipeline.reprice(scanned))
    gen = store.get_observations("p1", ["g"])["g"]
    # 1000 input tokens at $0.15/M + 1000 output tokens at $0.60/M
    assert dict(gen.usage) == {"input_tokens": 1000, "output_tokens": 1000}
    assert gen.total_cost == D("0.00075")


def otlp_request(trace_hex: str, span_hex: str, parent: str | None, attributes: dict[str, Any]) -> bytes:
    span: dict[str, Any] = {
        "traceId": trace_hex, "spanId": span_hex, "name": "step", "startTimeUnixNano": "1793534400000000000",
        "endTimeUnixNano": "1793534401000000000",
        "attributes": [{"key": k, "value": {"arrayValue": {"values": [{"stringValue": t} for t in v]}}
                        if isinstance(v, list) else {"stringValue": v}} for k, v in attributes.items()],
    }
    if parent is not None:
        span["parentSpanId"] = parent
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "app"},
                                                                          "spans": [span]}]}]}).encode()


def test_otlp_trace_attributes_from_parallel_exports_all_land(store: Store, bundled_book: PriceBook) -> None:
    """Spans of one trace exported in separate, parallel requests each bring some trace attributes (the root
    the user, a child the session, another the tags): the trace row ends with all of them."""
    pipeline = Pipeline(store, bundled_book, lambda: AT)
    traces = 60
    bodies = []
    for i in range(traces):
        trace_hex, root = f"{i + 1:032x}", f"{i + 1:08x}00000001"
        bodies += [otlp_request(trace_hex, root, None, {"user.id": f"u{i}"}),
                   otlp_request(trace_hex, f"{i + 1:08x}00000002", root, {"session.id": f"s{i}"}),
                   otlp_request(trace_hex, f"{i + 1:08x}00000003", root, {"langfuse.trace.tags": ["x", f"t{i}"]})]

    def send(body: bytes) -> None:
        decoded = decode_otlp(body, "application/json")
        assert not decoded.errors
        pipeline.ingest("p1", decoded, "otlp")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, bodies))
    stored = store.get_traces("p1", [f"{i + 1:032x}" for i in range(traces)])
    for i in range(traces):
        trace = stored[f"{i + 1:032x}"]
        assert (trace.user_id, trace.session_id, trace.tags) == (f"u{i}", f"s{i}", ("x", f"t{i}")), i
    assert store.count_observations("p1") == 3 * traces
