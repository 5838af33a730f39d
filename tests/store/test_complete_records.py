"""Complete records (native, OTLP) written through ``Store.merge_write`` with their traces, on both stores.

The observations are not read before the write (the merge replaces them whole) and the traces are read under
their locks; the store then knows which rows are new (DuckDB writes those with plain INSERTs) and which replace
stored ones (upserts). These tests mix both in one write and check the rows, the merged trace attributes and
that a replaced observation's old hour is marked dirty (the rollup answers what raw rows answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

from tests.store.test_rollups import both

from costline.core.events import Observation, Trace
from costline.core.resolve import PriceBook
from costline.ingest.otlp import decode_otlp
from costline.ingest.pipeline import Pipeline
from costline.store.base import Store

H1 = datetime(2026, 3, 28, 12, 10, tzinfo=UTC)
HOURLY = {"from": "2026-03-28T00:00:00Z", "to": "2026-03-29T00:00:00Z", "granularity": "hour",
          "metrics": ["sum:cost", "count"]}
BY_USER = {"from": "2026-03-28T00:00:00Z", "to": "2026-03-29T00:00:00Z", "dimensions": ["user"],
           "metrics": ["sum:cost", "count"]}


def call(obs_id: str, trace_id: str, start: datetime, cost: str) -> Observation:
    return Observation(project_id="p1", id=obs_id, trace_id=trace_id, start_time=start, type="generation",
                       model="gpt-4o", provider="openai", total_cost=D(cost), cost={"total": D(cost)},
                       pricing_status="priced")


def write_complete(store: Store, observations: list[Observation], traces: list[Trace]) -> dict[str, Trace]:
    """What the pipeline does for complete records: observations replaced unread, traces merged with the stored
    ones (a sent value wins, an absent one keeps the stored value); returns the stored traces ``merge`` saw."""
    seen: dict[str, Trace] = {}

    def merge(stored: Mapping[str, Observation],
              stored_traces: Mapping[str, Trace]) -> tuple[list[Observation], list[Trace]]:
        assert not stored
        seen.update(stored_traces)
        merged = []
        for trace in traces:
            old = stored_traces.get(trace.id)
            merged.append(trace if old is None else replace(
                old, **{k: v for k in ("user_id", "session_id", "name") if (v := getattr(trace, k)) is not None},
                metadata={**old.metadata, **trace.metadata}))
        return observations, merged

    store.merge_write("p1", [], [t.id for t in traces], merge)
    return seen


def assert_rollup_equals_raw(store: Store) -> list[dict[str, Any]]:
    for raw in (HOURLY, BY_USER):
        rolled, plain = both(store, raw)
        assert rolled.rows == plain.rows, raw
    return both(store, HOURLY)[1].rows


def test_a_write_of_new_and_stored_rows_replaces_merges_and_inserts(store: Store) -> None:
    write_complete(store, [call("o1", "t1", H1, "1.5"), call("o2", "t2", H1, "2")],
                   [Trace(project_id="p1", id="t1", timestamp=H1, user_id="u1", name="root", metadata={"a": 1})])
    assert assert_rollup_equals_raw(store) == [
        {"time": "2026-03-28T12:00:00+00:00", "sum_cost": D("3.5"), "count": 2}]  # hour 12 now rolled up

    # o1 moves three hours later (its old hour must be marked), o3 is new; t1 is stored (a session and a
    # metadata key are added, its user and name stay), t3 is new
    seen = write_complete(
        store, [call("o1", "t1", H1 + timedelta(hours=3), "1.25"), call("o3", "t3", H1 + timedelta(hours=1), "4")],
        [Trace(project_id="p1", id="t1", timestamp=H1, session_id="s1", metadata={"b": 2}),
         Trace(project_id="p1", id="t3", timestamp=H1, user_id="u3")])
    assert set(seen) == {"t1"}
    traces = store.get_traces("p1", ["t1", "t3"])
    assert (traces["t1"].user_id, traces["t1"].session_id, traces["t1"].name) == ("u1", "s1", "root")
    assert dict(traces["t1"].metadata) == {"a": 1, "b": 2}
    assert traces["t3"].user_id == "u3"
    stored = store.get_observations("p1", ["o1", "o2", "o3"])
    assert stored["o1"].total_cost == D("1.25") and stored["o1"].start_time == H1 + timedelta(hours=3)
    assert {o.total_cost for o in stored.values()} == {D("1.25"), D("2"), D("4")}
    assert store.count_observations("p1") == 3
    assert assert_rollup_equals_raw(store) == [
        {"time": "2026-03-28T12:00:00+00:00", "sum_cost": D("2"), "count": 1},
        {"time": "2026-03-28T13:00:00+00:00", "sum_cost": D("4"), "count": 1},
        {"time": "2026-03-28T15:00:00+00:00", "sum_cost": D("1.25"), "count": 1}]


def test_writes_of_stored_rows_only_and_repeating_keys(store: Store) -> None:
    write_complete(store, [call("o1", "t1", H1, "1")], [Trace(project_id="p1", id="t1", timestamp=H1)])
    assert_rollup_equals_raw(store)
    # every row stored already; o1 twice in the batch (the last one wins; neither in o1's stored hour), t1 twice
    write_complete(store, [call("o1", "t1", H1 + timedelta(hours=5), "9"),
                           call("o1", "t1", H1 - timedelta(hours=2), "2")],
                   [Trace(project_id="p1", id="t1", timestamp=H1, user_id="u1"),
                    Trace(project_id="p1", id="t1", timestamp=H1, user_id="u2")])
    assert store.get_traces("p1", ["t1"])["t1"].user_id == "u2"
    assert store.get_observations("p1", ["o1"])["o1"].total_cost == D("2")
    assert assert_rollup_equals_raw(store) == [
        {"time": "2026-03-28T10:00:00+00:00", "sum_cost": D("2"), "count": 1}]
    # a new observation and a new trace twice in one write: one row each, the last one given
    write_complete(store, [call("o9", "t9", H1, "3"), call("o9", "t9", H1, "5")],
                   [Trace(project_id="p1", id="t9", timestamp=H1, user_id="u1"),
                    Trace(project_id="p1", id="t9", timestamp=H1, user_id="u9")])
    assert store.get_traces("p1", ["t9"])["t9"].user_id == "u9"
    assert store.get_observations("p1", ["o9"])["o9"].total_cost == D("5")
    assert store.count_observations("p1") == 2
    assert_rollup_equals_raw(store)


def otlp_span(trace: int, span: int, parent: int | None, start_s: int, attributes: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": f"{trace:032x}", "spanId": f"{span:016x}", "name": f"span {span}",
        "startTimeUnixNano": str(start_s * 10**9), "endTimeUnixNano": str((start_s + 1) * 10**9),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]
        + [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}}],
    }
    if parent is not None:
        out["parentSpanId"] = f"{parent:016x}"
    return out


def otlp_body(spans: list[dict[str, Any]]) -> bytes:
    import json

    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "app"},
                                                                          "spans": spans}]}]}).encode()


def test_otlp_batches_resending_spans_and_continuing_traces(store: Store, bundled_book: PriceBook) -> None:
    """A second OTLP batch re-sends a span at another hour (replaced, old hour marked), continues a stored trace
    with a child span carrying a session (merged; the root's user and name stay) and starts a new trace."""
    pipeline = Pipeline(store, bundled_book, lambda: H1)
    t0 = int(H1.timestamp())
    model = {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.provider.name": "openai"}
    first = [otlp_span(1, 1, None, t0, {**model, "user.id": "u1"}), otlp_span(2, 2, None, t0, model)]
    for body in (otlp_body(first),):
        decoded = decode_otlp(body, "application/json")
        assert not decoded.errors
        pipeline.ingest("p1", decoded, "otlp")
    assert assert_rollup_equals_raw(store)[0]["count"] == 2
    second = [otlp_span(1, 3, 1, t0 + 3600, {**model, "session.id": "s1"}),  # child of trace 1
              otlp_span(2, 2, None, t0 + 7200, model),  # span 2 re-sent two hours later
              otlp_span(4, 4, None, t0 + 3600, {**model, "user.id": "u4"})]
    decoded = decode_otlp(otlp_body(second), "application/json")
    assert not decoded.errors
    result = pipeline.ingest("p1", decoded, "otlp")
    assert len(result.observations) == 3
    traces = store.get_traces("p1", [f"{i:032x}" for i in (1, 2, 4)])
    one = traces[f"{1:032x}"]
    assert (one.user_id, one.session_id, one.name) == ("u1", "s1", "span 1")
    assert traces[f"{4:032x}"].user_id == "u4"
    assert store.count_observations("p1") == 4
    rows = assert_rollup_equals_raw(store)
    assert [(r["time"], r["count"]) for r in rows] == [("2026-03-28T12:00:00+00:00", 1),
                                                      ("2026-03-28T13:00:00+00:00", 2),
                                                      ("2026-03-28T14:00:00+00:00", 1)]


def test_a_merge_writing_rows_it_did_not_name_upserts_them_and_marks_their_old_hours(store: Store) -> None:
    """``merge`` may return rows it was not given: a stored trace it did not name, an observation of another
    project. Neither is known to be new, so neither may go in as a plain INSERT (DuckDB refused the batch),
    and the hours and users they leave are stale in the rollups unless marked."""
    other = replace(call("x", "tx", H1, "2"), project_id="p2")
    store.write([call("y", "t1", H1, "1.5"), other], [Trace(project_id="p1", id="t1", timestamp=H1, user_id="u1")])
    assert both(store, BY_USER)[0].rows == [{"user": "u1", "sum_cost": D("1.5"), "count": 1}]  # rolled up
    assert both(store, HOURLY, "p2")[0].rows == [{"time": "2026-03-28T12:00:00+00:00", "sum_cost": D("2"),
                                                  "count": 1}]

    def merge(stored: Mapping[str, Observation],
              stored_traces: Mapping[str, Trace]) -> tuple[list[Observation], list[Trace]]:
        assert not stored and not stored_traces
        # x three hours later at a new cost; t1 sent again without its user
        return ([replace(other, start_time=H1 + timedelta(hours=3), total_cost=D("5"), cost={"total": D("5")})],
                [Trace(project_id="p1", id="t1", timestamp=H1)])

    store.merge_write("p1", [], [], merge)
    assert store.get_traces("p1", ["t1"])["t1"].user_id is None
    assert store.get_observations("p2", ["x"])["x"].total_cost == D("5")
    for raw, project, expected in (
            (BY_USER, "p1", [{"user": None, "sum_cost": D("1.5"), "count": 1}]),
            (HOURLY, "p2", [{"time": "2026-03-28T15:00:00+00:00", "sum_cost": D("5"), "count": 1}])):
        rolled, plain = both(store, raw, project)
        assert plain.rows == expected
        assert rolled.rows == expected, (raw, project)


def test_plain_writes_mark_their_hours_whatever_the_project_id(store: Store) -> None:
    """``Store.write`` of new rows marks their hours dirty: DuckDB puts the project ids into the statement's
    text through its quoting helper (here a plain one, and one with a quote and a space); the rollup answers what
    raw rows answer after each write, in an hour already rolled up."""
    for project in ("p1", "o'brien x"):
        def query(project: str = project) -> tuple[Any, Any]:
            return both(store, HOURLY, project)

        store.write([replace(call("a", "t1", H1, "1.5"), project_id=project)])
        assert query()[0].rows == query()[1].rows  # hour 12 now rolled up
        store.write([replace(call("b", "t1", H1 + timedelta(minutes=5), "2"), project_id=project),
                     replace(call("c", "t2", H1 + timedelta(hours=3), "0.25"), project_id=project)])
        rolled, plain = query()
        assert rolled.rows == plain.rows == [
            {"time": "2026-03-28T12:00:00+00:00", "sum_cost": D("3.5"), "count": 2},
            {"time": "2026-03-28T15:00:00+00:00", "sum_cost": D("0.25"), "count": 1}]
        # a key already stored: the INSERT is refused, the write upserts (marking the stored row's hour too)
        store.write([replace(call("c", "t2", H1, "1"), project_id=project)])
        rolled, plain = query()
        assert rolled.rows == plain.rows == [
            {"time": "2026-03-28T12:00:00+00:00", "sum_cost": D("4.5"), "count": 3}]


def test_hour_marks_quote_project_ids_into_the_text() -> None:
    from costline.store.duckdb import _hour_marks

    obs = [call("a", "t", H1, "1"), call("b", "t", H1 + timedelta(minutes=49), "1"),
           replace(call("c", "t", H1 - timedelta(hours=1), "1"), project_id="p-2")]
    assert _hour_marks(obs) == ("INSERT INTO rollup_dirty VALUES ('p-2', to_timestamp(1774695600)), "
                                "('p1', to_timestamp(1774699200)); ")
    assert _hour_marks([]) == ""
    assert _hour_marks([replace(obs[0], project_id="p'); DROP TABLE observations; --")]) == (
        "INSERT INTO rollup_dirty VALUES ('p''); DROP TABLE observations; --', to_timestamp(1774699200)); ")


def test_write_linked_reads_the_linked_traces_once_written(store: Store) -> None:
    """``write_linked`` returns the traces among those named that hold an observation with a parent, counting
    the rows it just wrote and those stored before, whether the rows went in as new (DuckDB reads in the
    COMMIT's call) or replaced stored ones (upserted, then read apart)."""
    store.write([replace(call("child-old", "t1", H1, "1"), parent_id="x")])
    flat, child = call("flat", "t2", H1, "1"), replace(call("child", "t3", H1, "1"), parent_id="flat")
    assert sorted(store.write_linked([flat, child], [], "p1", ["t1", "t2", "t3", "none"])) == ["t1", "t3"]
    assert store.write_linked([call("flat2", "t2", H1, "1")], [], "p1", []) == []
    # a stored key: upserted, the answer the same
    assert sorted(store.write_linked([flat, replace(child, total_cost=D("2"))], [], "p1", ["t2", "t3"])) == ["t3"]
    assert {o.id: o.total_cost for o in store.traces_observations("p1", ["t3"])} == {"child": D("2")}
    # a project id with a quote (DuckDB quotes it into the dirty hours' statement)
    other = replace(child, project_id="o'brien", id="c2")
    assert store.write_linked([other], [], "o'brien", ["t3", "t1"]) == ["t3"]
    assert assert_rollup_equals_raw(store)
