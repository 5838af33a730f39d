"""Hourly rollups answer exactly what raw rows answer, on both stores.

Each question runs twice on the same store: with the rollup (``use_rollups``, the default) and from raw rows
only; the full result rows must be equal. The data cross both 2026 DST changes of Europe/Berlin (March 29 and
October 25, 01:00 UTC), has user attribution on traces and on observations, unpriced calls, imported cloud
lines, and hours that are rolled up before late updates arrive (a start time moved to another hour, a cost
changed, a trace's user changed, an observation added to an old hour, a purge, a billing period replaced).
The budget spend that ``reserve`` reads is compared the same way. A few hand-worked sums pin the rollup
answers to figures that do not come from the code. The per-trace rollup (percentiles of cost per trace) and
the metadata key rollup are compared the same way: traces crossing hours and range edges, calls in the
unrolled current hour, metadata on observations, on traces and nested, a trace's metadata changed after its
calls were rolled up, the key limit, concurrent writers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from costline.core.budgets import counter_key, parse_budget, spend_query
from costline.core.events import Observation, Trace
from costline.core.query import QueryResult, parse_query
from costline.store import rollup_sql
from costline.store.base import Store

NOW = datetime(2026, 11, 20, tzinfo=UTC)
MODELS = (("gpt-4o", "openai"), ("claude-sonnet-4", "anthropic"), (None, None))
USERS = ("u1", "u2", "u3", None)
#: observation metadata: a feature, none (the trace's applies), an object (no scalar value), a nested key
OBS_METADATA: tuple[dict[str, Any], ...] = (
    {}, {}, {"feature": "chat"}, {"feature": "search"}, {"feature": {"x": 1}}, {"nested": {"k": "o"}},
    {"feature": 7})
TRACE_METADATA: tuple[dict[str, Any], ...] = ({}, {"feature": "t-chat"}, {"nested": {"k": "t"}, "feature": "t-s"})
#: the data's spans: both Berlin DST changes, hours before and after
SPANS = ((datetime(2026, 3, 28, 12, tzinfo=UTC), 36), (datetime(2026, 10, 24, 12, tzinfo=UTC), 36))


def _obs(rng: random.Random, project: str, trace: str, n: int, start: datetime, user: str | None) -> Observation:
    model, provider = rng.choice(MODELS)
    unpriced = model is not None and rng.random() < 0.15
    total = None if model is None or unpriced else D(rng.randrange(1, 5 * 10**9)).scaleb(-12)
    return Observation(
        project_id=project, id=f"{trace}-o{n}", trace_id=trace, start_time=start,
        type=rng.choice(("generation", "generation", "cloud")) if model else "span", model=model, provider=provider,
        total_cost=total, cost={"total": total} if total is not None else {},
        pricing_status=None if model is None else ("unpriced" if unpriced else "priced"), user_id=user,
        environment=rng.choice(("production", "staging")), metadata=rng.choice(OBS_METADATA),
    )


def seed(store: Store) -> tuple[list[Observation], list[Trace]]:
    rng = random.Random(20260329)
    observations: list[Observation] = []
    traces: list[Trace] = []
    for project in ("p1", "p2"):
        for first, hours in SPANS:
            for t in range(30):
                trace = f"{project}-{first:%m}-t{t}"
                base = first + timedelta(seconds=rng.randrange(hours * 3600))
                for n in range(rng.randint(1, 5)):
                    start = base + timedelta(minutes=rng.randrange(0, 150), microseconds=rng.randrange(10**6))
                    observations.append(_obs(rng, project, trace, n, start, rng.choice(USERS)))
                if rng.random() < 0.6:
                    traces.append(Trace(project_id=project, id=trace, timestamp=base, user_id=rng.choice(USERS),
                                        metadata=rng.choice(TRACE_METADATA)))
    store.write(observations=observations)
    store.write(traces=traces)
    return observations, traces


QUESTIONS: list[dict[str, Any]] = [
    {"from": "2026-03-28T00:00:00Z", "to": "2026-04-01T00:00:00Z", "granularity": "day",
     "timezone": "Europe/Berlin", "dimensions": ["model"], "metrics": ["sum:cost", "count"]},
    {"from": "2026-10-24T00:00:00Z", "to": "2026-10-27T00:00:00Z", "granularity": "day",
     "timezone": "Europe/Berlin", "dimensions": ["model"], "metrics": ["sum:cost", "count", "unpriced"]},
    {"from": "2026-10-24T00:00:00Z", "to": "2026-10-27T00:00:00Z", "granularity": "hour",
     "timezone": "Europe/Berlin", "metrics": ["sum:cost", "count"]},
    {"from": "2026-03-28T00:00:00Z", "to": "2026-04-01T00:00:00Z", "granularity": "day",
     "timezone": "Asia/Kolkata", "dimensions": ["model"], "metrics": ["sum:cost", "count"]},
    {"from": "2026-10-24T03:17:00Z", "to": "2026-10-26T05:45:30Z", "granularity": "day",
     "timezone": "America/New_York", "dimensions": ["provider", "environment"], "metrics": ["sum:cost"]},
    {"from": "2026-03-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "granularity": "month",
     "timezone": "Europe/Berlin", "dimensions": ["source"], "metrics": ["sum:cost", "count"]},
    {"from": "2026-03-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "granularity": "week",
     "timezone": "UTC", "metrics": ["count", "unpriced"]},
    {"from": "2026-03-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "dimensions": ["user"],
     "metrics": ["sum:cost", "count"], "order_by": [{"field": "sum_cost", "direction": "desc"}], "limit": 3},
    {"from": "2026-03-28T10:30:00Z", "to": "2026-10-25T01:30:00Z", "dimensions": ["user", "type"],
     "metrics": ["sum:cost", "count", "unpriced"]},
    {"from": "2026-03-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "metrics": ["sum:cost", "count"],
     "filters": [{"field": "user", "operator": "=", "value": "u2"}, {"field": "model", "operator": "is not null"}]},
    {"from": "2026-03-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "metrics": ["sum:cost"],
     "filters": [{"field": "model", "operator": "in", "value": ["gpt-4o"]}], "dimensions": ["environment"]},
]


#: cost per trace (traces view) and cost by a metadata key: edge hours, DST, +5:30 buckets (raw), nested keys
TRACE_AND_METADATA_QUESTIONS: list[dict[str, Any]] = [
    {"from": "2026-03-28T00:00:00Z", "to": "2026-11-01T00:00:00Z", "view": "traces",
     "metrics": ["p95:cost", "p50:cost", "sum:cost", "avg:cost", "min:cost", "max:cost", "count", "unpriced",
                 "sum:observations", "p90:observations"]},
    {"from": "2026-10-24T13:20:00Z", "to": "2026-10-25T15:10:00Z", "view": "traces",
     "metrics": ["p95:cost", "count", "avg:cost", "unpriced"]},
    {"from": "2026-03-28T14:00:00Z", "to": "2026-03-29T09:00:00Z", "view": "traces", "metrics": ["p99:cost", "count"]},
    {"from": "2026-03-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "dimensions": ["metadata.feature"],
     "metrics": ["sum:cost", "count", "unpriced"]},
    {"from": "2026-10-24T00:00:00Z", "to": "2026-10-27T00:00:00Z", "granularity": "day",
     "timezone": "Europe/Berlin", "dimensions": ["metadata.feature"], "metrics": ["sum:cost", "count"]},
    {"from": "2026-03-28T00:00:00Z", "to": "2026-04-01T00:00:00Z", "granularity": "day",
     "timezone": "Asia/Kolkata", "dimensions": ["metadata.feature"], "metrics": ["sum:cost", "count"]},
    {"from": "2026-10-24T03:17:00Z", "to": "2026-10-26T05:45:30Z", "dimensions": ["metadata.nested.k"],
     "metrics": ["sum:cost", "count"]},
    {"from": "2026-03-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "metrics": ["sum:cost", "count"],
     "filters": [{"field": "metadata.feature", "operator": "in", "value": ["chat", "t-chat"]}]},
    {"from": "2026-03-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "dimensions": ["metadata.feature"],
     "metrics": ["sum:cost"], "filters": [{"field": "metadata.feature", "operator": "is not null"}],
     "order_by": [{"field": "sum_cost", "direction": "desc"}], "limit": 2},
]


def both(store: Store, raw: dict[str, Any], project: str | None = "p1") -> tuple[QueryResult, QueryResult]:
    query = parse_query(raw, now=NOW, project_id=project)
    store.use_rollups = True  # type: ignore[attr-defined]
    rolled = store.query(query)
    store.use_rollups = False  # type: ignore[attr-defined]
    try:
        plain = store.query(query)
    finally:
        store.use_rollups = True  # type: ignore[attr-defined]
    return rolled, plain


def assert_all_equal(store: Store) -> None:
    for raw in QUESTIONS + TRACE_AND_METADATA_QUESTIONS:
        for project in ("p1", "p2", None):
            rolled, plain = both(store, raw, project)
            assert rolled.rows == plain.rows, (raw, project)
            assert rolled.truncated == plain.truncated


def rollup_rows(store: Store) -> int:
    found = store._fetch("SELECT (SELECT count(*) FROM rollup_hours), "  # type: ignore[attr-defined]
                         "(SELECT count(*) FROM rollup_user_hours)")
    return min(int(found[0][0]), int(found[0][1]))


def new_rows(store: Store) -> bool:
    """The trace and metadata rollups hold rows, some traces single-hour and some not."""
    found = store._fetch("SELECT (SELECT count(*) FROM rollup_trace_hours WHERE single), "  # type: ignore[attr-defined]
                         "(SELECT count(*) FROM rollup_trace_hours WHERE NOT single), "
                         "(SELECT count(*) FROM rollup_meta_hours WHERE key = 'feature'), "
                         "(SELECT count(*) FROM rollup_meta_hours WHERE key = 'nested.k')")
    return all(int(v) > 0 for v in found[0])


def test_which_queries_the_rollup_answers() -> None:
    def planned(raw: dict[str, Any]) -> rollup_sql.Plan | None:
        query = parse_query(raw, now=NOW, project_id="p1")
        from costline.core import timebuckets

        offsets = timebuckets.offsets(query.tz, query.start, query.end) if query.granularity else None
        return rollup_sql.plan(query, offsets)

    base = {"from": "2026-10-24T00:00:00Z", "to": "2026-10-27T00:00:00Z"}
    assert planned({**base, "granularity": "day", "timezone": "Europe/Berlin", "dimensions": ["model"]})
    assert planned({**base, "dimensions": ["user"], "metrics": ["sum:cost", "count", "unpriced"]})
    # a +5:30 zone: day buckets are not unions of UTC hours
    assert planned({**base, "granularity": "day", "timezone": "Asia/Kolkata"}) is None
    assert planned({**base, "granularity": "minute"}) is None
    assert planned({**base, "metrics": ["p95:cost"]}) is None
    assert planned({**base, "metrics": ["avg:cost"]}) is None
    p = planned({**base, "dimensions": ["metadata.team"]})
    assert p is not None and (p.kind, p.key, p.uses_user) == ("metadata", "team", True)
    p = planned({**base, "view": "traces", "metrics": ["p95:cost"]})
    assert p is not None and p.kind == "traces"
    # two keys, a key with another dimension or filter, a numeric filter: raw
    assert planned({**base, "dimensions": ["metadata.team", "metadata.feature"]}) is None
    assert planned({**base, "dimensions": ["metadata.team", "model"]}) is None
    assert planned({**base, "dimensions": ["metadata.team"],
                    "filters": [{"field": "model", "operator": "=", "value": "m"}]}) is None
    assert planned({**base, "dimensions": ["metadata.team"], "metrics": ["p95:cost"]}) is None
    # the traces view with a grouping, a filter, a time bucket or a token measure: raw
    assert planned({**base, "view": "traces", "dimensions": ["user"]}) is None
    assert planned({**base, "view": "traces", "filters": [{"field": "cost", "operator": ">", "value": 1}]}) is None
    assert planned({**base, "view": "traces", "granularity": "day"}) is None
    assert planned({**base, "view": "traces", "metrics": ["p95:input_tokens"]}) is None
    # less than one whole hour in range
    assert planned({"from": "2026-10-24T00:10:00Z", "to": "2026-10-24T00:50:00Z"}) is None
    p = planned({"from": "2026-10-24T00:10:00Z", "to": "2026-10-24T05:50:00Z"})
    assert p is not None and (p.first, p.stop) == (datetime(2026, 10, 24, 1, tzinfo=UTC),
                                                   datetime(2026, 10, 24, 5, tzinfo=UTC))


def test_rollup_answers_equal_raw_answers_across_dst_and_late_updates(store: Store) -> None:
    observations, traces = seed(store)
    assert_all_equal(store)
    assert rollup_rows(store) > 0  # the comparisons above read the rollup

    by_id = {o.id: o for o in observations}
    moved = next(o for o in observations if o.project_id == "p1" and o.total_cost is not None)
    # a late update moves a call three hours later and changes its cost (blind write: old hour read back)
    store.write(observations=[_replace(moved, start_time=moved.start_time + timedelta(hours=3),
                                       total_cost=D("1.000000000007"))])
    assert_all_equal(store)
    # the same through merge_write (the Langfuse path), into an hour days away
    other = next(o for o in observations if o.project_id == "p1" and o.id != moved.id and o.model)

    def merge(stored: Mapping[str, Observation], _: Mapping[str, Trace]) -> tuple[list[Observation], list[Trace]]:
        return [_replace(stored[other.id], start_time=other.start_time - timedelta(days=2), model="late-model")], []

    store.merge_write("p1", [other.id], [], merge)
    assert_all_equal(store)
    # a trace's user changes (and a trace appears for observations written without one)
    with_trace = traces[0]
    orphan = next(o for o in observations if o.project_id == "p1" and o.trace_id not in {t.id for t in traces})
    store.write(traces=[_replace(with_trace, user_id="u9"),
                        Trace(project_id="p1", id=orphan.trace_id, timestamp=orphan.start_time, user_id="u8")])
    assert_all_equal(store)
    # a trace's metadata changes after its observations were rolled up (its user stays), and a trace with
    # metadata appears for observations written without one
    orphans = sorted({o.trace_id for o in observations if o.project_id == "p1"} - {t.id for t in traces})
    assert new_rows(store)
    store.write(traces=[_replace(traces[1], metadata={"feature": "renamed", "nested": {"k": "late"}}),
                        Trace(project_id="p1", id=orphans[1], timestamp=NOW, metadata={"feature": "t-late"})])
    assert_all_equal(store)
    # a call added to an hour rolled up long ago
    store.write(observations=[_replace(by_id[observations[3].id], id="late-1", total_cost=D("0.25"),
                                       start_time=datetime(2026, 3, 28, 13, 5, tzinfo=UTC))])
    assert_all_equal(store)
    # imported billing lines replaced, and a purge of the March data of p2
    cloud = [o for o in observations if o.project_id == "p1" and o.type == "cloud"]
    store.replace_groups("p1", sorted({o.trace_id for o in cloud})[:3],
                         [_replace(cloud[0], id="cloud-new", total_cost=D("2.5"))])
    store.purge(datetime(2026, 6, 1, tzinfo=UTC), "p2")
    assert_all_equal(store)


def test_hand_worked_sums_through_the_rollup(store: Store) -> None:
    """Three calls in Berlin's 2026-10-25 (25 hours long: 2026-10-24T22:00Z to 2026-10-25T23:00Z), one the
    hour before it; the second hour is rolled up before a fourth call arrives in it."""
    def call(id: str, start: str, cost: str | None, user: str = "u1") -> Observation:
        return Observation(project_id="p1", id=id, trace_id=f"t-{id}", start_time=datetime.fromisoformat(start),
                           type="generation", model="gpt-4o", total_cost=None if cost is None else D(cost),
                           pricing_status="unpriced" if cost is None else "priced", user_id=user)

    store.write(observations=[call("a", "2026-10-24T21:59:59Z", "0.5"), call("b", "2026-10-24T22:00:00Z", "0.1"),
                              call("c", "2026-10-25T01:30:00Z", "0.000000000001"),
                              call("d", "2026-10-25T22:59:59Z", None, "u2")])
    question = {"from": "2026-10-20T00:00:00Z", "to": "2026-10-30T00:00:00Z", "granularity": "day",
                "timezone": "Europe/Berlin", "metrics": ["sum:cost", "count", "unpriced"]}
    rolled, plain = both(store, question)
    assert rolled.rows == plain.rows == [
        {"time": "2026-10-24T00:00:00+02:00", "sum_cost": D("0.5"), "count": 1, "unpriced": 0},
        {"time": "2026-10-25T00:00:00+02:00", "sum_cost": D("0.100000000001"), "count": 3, "unpriced": 1},
    ]
    assert rollup_rows(store) > 0
    store.write(observations=[call("e", "2026-10-24T22:30:00Z", "0.2")])
    store.write(observations=[call("f", "2026-10-26T09:00:00Z", "0.7")])  # newest dirty hour: others refreshed
    rolled, plain = both(store, question)
    assert rolled.rows == plain.rows
    assert rolled.rows[1]["sum_cost"] == D("0.300000000001") and rolled.rows[1]["count"] == 4


def test_budget_spend_is_the_same_with_and_without_the_rollup(store: Store) -> None:
    """Budget checks do not read the rollup by default (``ROLLUP_BUDGETS``); when a store does, the spend
    is the raw spend."""
    store.ROLLUP_BUDGETS = True  # type: ignore[attr-defined]
    seed(store)
    budget = parse_budget({"id": "b", "name": "b", "per": "user", "window": "day", "timezone": "Europe/Berlin",
                           "limit": "10", "action": "block"})
    rolling = parse_budget({"id": "r", "name": "r", "window": "30h", "limit": "10", "action": "block"})
    for now in (datetime(2026, 3, 29, 20, 17, tzinfo=UTC), datetime(2026, 10, 25, 14, 45, tzinfo=UTC),
                datetime(2026, 10, 26, 1, tzinfo=UTC)):
        for b, subject in ((budget, "u1"), (budget, "u2"), (rolling, "")):
            counters = [(counter_key(b, subject), spend_query(b, subject, "p1", now))]
            store.use_rollups = True  # type: ignore[attr-defined]
            rolled = store.reserve("p1", counters, lambda u: (dict(u), None), now)
            store.use_rollups = False  # type: ignore[attr-defined]
            plain = store.reserve("p1", counters, lambda u: (dict(u), None), now)
            store.use_rollups = True  # type: ignore[attr-defined]
            assert rolled == plain, (b.id, subject, now)
    # (budget counters count model calls with the ``calls`` measure, which the rollup does not hold: these
    # spend queries read raw rows whatever the setting, and the equality above is what must hold)


def _replace(record: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(record, **changes)


@pytest.fixture(autouse=True)
def _projects(store: Store) -> None:
    from costline.store.base import ApiKey, Project

    for p in ("p1", "p2"):
        store.create_project(Project(p, p, NOW), ApiKey(p, f"pk-{p}", f"hash-{p}", NOW))


def test_concurrent_writes_and_refreshing_queries_lose_no_hour(store: Store, store_url: str) -> None:
    """Writers move calls between hours while queries roll those hours up (on PostgreSQL through a second
    store object, as a second server would): afterwards the rollup answer is still the raw one."""
    import threading

    from costline.store.base import open_store

    others = [open_store(store_url)] if store_url.startswith("postgres") else []
    readers = [*others, store]
    question = {"from": "2026-10-24T00:00:00Z", "to": "2026-10-25T00:00:00Z", "dimensions": ["user", "model"],
                "metrics": ["sum:cost", "count", "unpriced"]}
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        rng = random.Random(w)
        try:
            for n in range(25):
                batch = [Observation(project_id="p1", id=f"w{w}-{rng.randrange(12)}", trace_id=f"wt{w}",
                                     start_time=datetime(2026, 10, 24, rng.randrange(6, 14), rng.randrange(60),
                                                         tzinfo=UTC),
                                     type="generation", model=rng.choice(("gpt-4o", "claude-sonnet-4")),
                                     total_cost=D(rng.randrange(1, 10**6)).scaleb(-9), pricing_status="priced",
                                     user_id=rng.choice(("u1", "u2"))) for _ in range(3)]
                store.write(observations=list({o.id: o for o in batch}.values()))
                if n % 5 == 0:
                    store.write(traces=[Trace(project_id="p1", id=f"wt{w}", timestamp=batch[0].start_time,
                                              user_id=rng.choice(("u3", None)),
                                              metadata={"feature": rng.choice(("a", "b"))})])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    others_questions = [{**question, "dimensions": ["metadata.feature"]},
                        {**question, "view": "traces", "dimensions": [], "metrics": ["p95:cost", "count"]}]

    def reader(s: Store) -> None:
        queries = [parse_query(q, now=NOW, project_id="p1") for q in (question, *others_questions)]
        try:
            n = 0
            while not stop.is_set():
                s.query(queries[n % len(queries)])
                n += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=reader, args=(s,)) for s in readers]
        workers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        for t in [*threads, *workers]:
            t.start()
        for t in workers:
            t.join()
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors
        for q in (question, *others_questions):
            rolled, plain = both(store, q)
            assert rolled.rows == plain.rows and rolled.rows, q
        assert rollup_rows(store) > 0
    finally:
        for s in others:
            s.close()


def _call(id: str, trace: str, start: str, cost: str | None, metadata: dict[str, Any] | None = None) -> Observation:
    return Observation(project_id="p1", id=id, trace_id=trace, start_time=datetime.fromisoformat(start),
                       type="generation", model="gpt-4o", total_cost=None if cost is None else D(cost),
                       pricing_status="unpriced" if cost is None else "priced", metadata=metadata or {})


def test_hand_worked_cost_per_trace_through_the_rollup(store: Store) -> None:
    """Traces A (two calls in 10:00-11:00: 3), B (10:30 and 11:20: 0.75), C (unpriced), D (09:40 and 10:05:
    1 of it from 10:00). From 10:00 to 13:00 the priced totals are 0.75, 1, 3: the median is the second, p95
    the third; then a call of A arrives at 12:30, making A a trace of two hours."""
    store.write(observations=[
        _call("a1", "A", "2026-10-24T10:10:00Z", "1"), _call("a2", "A", "2026-10-24T10:50:00Z", "2"),
        _call("b1", "B", "2026-10-24T10:30:00Z", "0.5"), _call("b2", "B", "2026-10-24T11:20:00Z", "0.25"),
        _call("c1", "C", "2026-10-24T12:05:00Z", None),
        _call("d1", "D", "2026-10-24T09:40:00Z", "4"), _call("d2", "D", "2026-10-24T10:05:00Z", "1")])
    question = {"from": "2026-10-24T10:00:00Z", "to": "2026-10-24T13:00:00Z", "view": "traces",
                "metrics": ["p50:cost", "p95:cost", "sum:cost", "count", "unpriced"]}
    rolled, plain = both(store, question)
    assert rolled.rows == plain.rows == [
        {"p50_cost": D("1"), "p95_cost": D("3"), "sum_cost": D("4.75"), "count": 4, "unpriced": 1}]
    # D's 09:40 call lies in an hour not rolled up yet (outside the range): D's 10:00 row is its total in range
    assert new_trace_rows(store) == {("A", True), ("B", False), ("C", True), ("D", True)}
    # from 09:30 D's earlier call counts (a partial edge hour read raw: D is summed over both parts)
    rolled, plain = both(store, {**question, "from": "2026-10-24T09:30:00Z"})
    assert rolled.rows == plain.rows and rolled.rows[0]["sum_cost"] == D("8.75")
    assert rolled.rows[0]["p95_cost"] == D("5")
    rolled, plain = both(store, {**question, "from": "2026-10-24T09:00:00Z"})  # hour 9 rolled up: D is two hours
    assert rolled.rows == plain.rows and rolled.rows[0]["sum_cost"] == D("8.75")
    assert ("D", False) in new_trace_rows(store)
    store.write(observations=[_call("a3", "A", "2026-10-24T12:30:00Z", "10")])
    rolled, plain = both(store, question)
    assert rolled.rows == plain.rows and rolled.rows[0]["p95_cost"] == D("13")
    assert ("A", False) in new_trace_rows(store)  # hour 12 refreshed: A is no single-hour trace any more
    rolled, plain = both(store, {**question, "to": "2026-10-24T12:00:00Z"})
    assert rolled.rows == plain.rows and rolled.rows[0]["p95_cost"] == D("3")  # A's hour 10 only


def test_hand_worked_metadata_key_through_the_rollup(store: Store) -> None:
    """feature: the call's own value, else its trace's (an object value counts as none); the trace's value
    changes after the calls were rolled up, and a trace row appears for calls written without one."""
    store.write(traces=[Trace(project_id="p1", id="T1", timestamp=datetime(2026, 10, 24, 10, tzinfo=UTC),
                              metadata={"feature": "x"})])
    store.write(observations=[
        _call("o1", "T1", "2026-10-24T10:10:00Z", "1", {"feature": "a"}),
        _call("o2", "T1", "2026-10-24T11:10:00Z", "2"),
        _call("o3", "T2", "2026-10-24T11:30:00Z", "4"),
        _call("o4", "T1", "2026-10-24T12:10:00Z", "8", {"feature": {"y": 1}})])
    question = {"from": "2026-10-24T00:00:00Z", "to": "2026-10-25T00:00:00Z", "dimensions": ["metadata.feature"],
                "metrics": ["sum:cost", "count"]}

    def answer() -> dict[Any, tuple[D, int]]:
        rolled, plain = both(store, question)
        assert rolled.rows == plain.rows
        return {r["metadata.feature"]: (r["sum_cost"], r["count"]) for r in rolled.rows}

    assert answer() == {"a": (D("1"), 1), "x": (D("10"), 2), None: (D("4"), 1)}
    assert new_rows_for(store, "feature") > 0
    store.write(traces=[Trace(project_id="p1", id="T1", timestamp=datetime(2026, 10, 24, 10, tzinfo=UTC),
                              metadata={"feature": "z"}),
                        Trace(project_id="p1", id="T2", timestamp=datetime(2026, 10, 24, 11, tzinfo=UTC),
                              metadata={"feature": "w"})])
    assert answer() == {"a": (D("1"), 1), "z": (D("10"), 2), "w": (D("4"), 1)}
    # a filter on the key alone is answered by the rollup too
    rolled, plain = both(store, {**question, "dimensions": [],
                                 "filters": [{"field": "metadata.feature", "operator": "!=", "value": "z"}]})
    assert rolled.rows == plain.rows == [{"sum_cost": D("5"), "count": 2}]


def test_metadata_keys_beyond_the_limit_read_raw_rows(store: Store) -> None:
    store.write(observations=[_call(f"o{i}", "T", "2026-10-24T10:10:00Z", "1", {f"k{i}": "v"}) for i in range(12)])
    for i in range(12):
        rolled, plain = both(store, {"from": "2026-10-24T00:00:00Z", "to": "2026-10-25T00:00:00Z",
                                     "dimensions": [f"metadata.k{i}"], "metrics": ["sum:cost"]})
        assert rolled.rows == plain.rows
        assert sorted(rolled.rows, key=lambda r: str(r[f"metadata.k{i}"])) == [
            {f"metadata.k{i}": None, "sum_cost": D("11")}, {f"metadata.k{i}": "v", "sum_cost": D("1")}]
    keys = store._fetch("SELECT key FROM rollup_meta_keys ORDER BY key")  # type: ignore[attr-defined]
    assert len(keys) == rollup_sql.MAX_METADATA_KEYS and ("k10",) not in keys and ("k11",) not in keys


def new_trace_rows(store: Store) -> set[tuple[str, bool]]:
    found = store._fetch("SELECT trace_id, single FROM rollup_trace_hours")  # type: ignore[attr-defined]
    return {(t, bool(s)) for t, s in found}


def new_rows_for(store: Store, key: str) -> int:
    found = store._fetch("SELECT key, count(*) FROM rollup_meta_hours GROUP BY key")  # type: ignore[attr-defined]
    return sum(int(n) for k, n in found if k == key)


def test_a_single_hour_row_with_calls_in_a_dirty_hour_is_summed(store: Store) -> None:
    """The current hour is never rolled up (raw rows answer for it): a trace rolled up as single-hour in the
    previous hour that gets a call in the current hour is summed over both (1 + 2), the other stays whole."""
    current = rollup_sql.floor_hour(datetime.now(UTC))
    previous = current - timedelta(hours=1)
    store.write(observations=[_call("x1", "X", (previous + timedelta(minutes=5)).isoformat(), "1"),
                              _call("y1", "Y", (previous + timedelta(minutes=6)).isoformat(), "0.5")])
    question = {"from": previous.isoformat(), "to": (current + timedelta(hours=1)).isoformat(), "view": "traces",
                "metrics": ["max:cost", "sum:cost", "count"]}
    first, plain = both(store, question)
    assert first.rows == plain.rows == [{"max_cost": D("1"), "sum_cost": D("1.5"), "count": 2}]
    store.write(observations=[_call("x2", "X", current.isoformat(), "2")])
    rolled, plain = both(store, question)
    if rollup_sql.floor_hour(datetime.now(UTC)) == current:  # (unless the clock passed the hour meanwhile)
        assert ("X", True) in new_trace_rows(store)  # its current-hour call is not rolled up
    assert rolled.rows == plain.rows == [{"max_cost": D("3"), "sum_cost": D("3.5"), "count": 2}]
