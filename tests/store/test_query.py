"""Conformance of ``Store.query`` on DuckDB and PostgreSQL.

A seeded synthetic data set (three projects, several hundred observations) is written with ``Store.write``
(observations first, trace attributes in a second write); each query's expected rows are computed in plain
Python by ``tests/store/query_reference.py`` from the same in-memory records, and the full result rows
(values, value types and order), the columns and ``truncated`` must match on both backends. Smaller tests
check hand-written expectations: bucket labels across DST changes, exact decimal sums, late trace attributes,
project isolation.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.store.conftest import with_search_path
from tests.store.query_reference import Expected, expect, percentile, typed

from costline.core.events import Observation, Trace
from costline.core.query import QueryError, QueryResult, parse_query
from costline.store.base import Store, open_store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SEED = 20261025
PROJECTS = ("alpha", "beta", "gamma")
MODELS = (("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4", "anthropic"),
          ("gemini-2.5-pro", "google"), ("mistral-large", None), (None, None))
USERS = ("u1", "u2", "u3", "u4", "u5")
SESSIONS = ("s1", "s2", "s3", "s4")
TAGS = ("prod", "dev", "chat", "batch", "eval")
TEAMS = ("core", "growth", "infra", "search")
FEATURES = ("summarize", "search", "chat")
TRACE_NAMES = ("checkout", "support-bot", "nightly-batch", "search")
FIRST = datetime(2026, 10, 18, tzinfo=UTC)
#: instants on both sides of the DST ends in Berlin (2026-10-25 01:00Z) and New York (2026-11-01 06:00Z)
EDGES = ("2026-10-24T22:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T00:59:59.999999Z", "2026-10-25T01:00:00Z",
         "2026-10-25T01:30:00Z", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T05:59:59.999999Z",
         "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z", "2026-10-19T22:00:00Z", "2026-11-05T23:00:00Z")


@dataclass
class Dataset:
    observations: list[Observation] = field(default_factory=list)
    traces: list[Trace] = field(default_factory=list)


def _amount(rng: random.Random) -> D:
    return D(rng.randrange(1, 3 * 10**9)).scaleb(-12)


def _observation(rng: random.Random, project: str, trace_id: str, n: int, start: datetime,
                 user: str | None, session: str | None) -> Observation:
    model, provider = rng.choice(MODELS)
    usage: dict[str, int] = {}
    if rng.random() < 0.85:
        usage = {"input_tokens": rng.randrange(10, 20_000), "output_tokens": rng.randrange(1, 4_000)}
        if rng.random() < 0.5:
            usage["cache_read_tokens"] = rng.randrange(0, usage["input_tokens"] + 1)
    cost: dict[str, D] = {}
    total: D | None = None
    status: str | None = None
    if model is not None:
        status = rng.choices(("priced", "unpriced", "provided", "partially_priced"), (65, 17, 10, 8))[0]
        if status == "priced":
            cost = {"input_tokens": _amount(rng), "output_tokens": _amount(rng)}
            if "cache_read_tokens" in usage:
                cost["cache_read_tokens"] = _amount(rng)
            if rng.random() < 0.3:
                cost["output_reasoning_tokens"] = _amount(rng)
        elif status == "partially_priced":
            cost = {"input_tokens": _amount(rng)}
        elif status == "provided":
            cost = {"total": _amount(rng)}
        total = sum(cost.values(), D(0)) if cost else None
    metadata: dict[str, Any] = {}
    if rng.random() < 0.6:
        metadata["team"] = rng.choice(TEAMS)
    if rng.random() < 0.4:
        metadata["app:feature"] = rng.choice(FEATURES)
    end = start + timedelta(microseconds=rng.randrange(50_000, 30_000_000)) if rng.random() < 0.9 else None
    return Observation(
        project_id=project, id=f"{trace_id}-o{n}", trace_id=trace_id, start_time=start, end_time=end,
        type="generation" if model else "span", name=rng.choice(("llm-call", "embed", "tool")),
        model=model, provider=provider, usage=usage, cost=cost, total_cost=total, pricing_status=status,
        user_id=user, session_id=session, tags=tuple(rng.sample(TAGS, rng.randint(0, 2))), metadata=metadata,
        release=rng.choice(("1.0", "1.1", None)),
    )


def make_dataset() -> Dataset:
    rng = random.Random(SEED)
    data = Dataset()
    for project in PROJECTS:
        for t in range(40):
            trace_id = f"{project}-t{t:02d}"
            base = FIRST + timedelta(seconds=rng.randrange(19 * 86_400))
            user, session = rng.choice((*USERS, None)), rng.choice((*SESSIONS, None))
            for n in range(rng.randint(1, 8)):
                start = base + timedelta(minutes=rng.randrange(0, 240), microseconds=rng.randrange(10**6))
                data.observations.append(_observation(rng, project, trace_id, n, start, user, session))
            if rng.random() < 0.7:
                metadata: dict[str, Any] = {}
                if rng.random() < 0.5:
                    metadata["team"] = rng.choice(TEAMS)
                if rng.random() < 0.6:
                    metadata["plan"] = rng.choice(("free", "pro"))
                data.traces.append(Trace(
                    project_id=project, id=trace_id, timestamp=base,
                    name=rng.choice((*TRACE_NAMES, None)), user_id=rng.choice((*USERS, None, None)),
                    session_id=rng.choice((*SESSIONS, None)), tags=tuple(rng.sample(TAGS, rng.randint(0, 2))),
                    metadata=metadata, release=rng.choice(("2.0", None)),
                ))
    for n, edge in enumerate(EDGES):
        start = datetime.fromisoformat(edge)
        data.observations.append(_observation(rng, "alpha", "alpha-edges", n, start, "u1", None))
    return data


DATASET = make_dataset()


class Loaded:
    """The data set written to each backend once per module (PostgreSQL in its own schema)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.stores: dict[str, Store] = {}
        self.schemas: list[tuple[str, str]] = []

    def get(self, backend: str, server: str | None = None) -> Store:
        if backend not in self.stores:
            if backend == "duckdb":
                url = f"duckdb://{self.tmp / 'query.duckdb'}"
            else:
                assert server is not None
                schema = f"costline_test_{uuid.uuid4().hex[:12]}"
                with psycopg.connect(server, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schema}")
                self.schemas.append((server, schema))
                url = with_search_path(server, schema)
            store = open_store(url)
            store.write(DATASET.observations)
            store.write(traces=DATASET.traces)  # trace attributes arrive after their observations
            self.stores[backend] = store
        return self.stores[backend]

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        for server, schema in self.schemas:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module")
def loaded_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    loaded = Loaded(tmp_path_factory.mktemp("query"))
    try:
        yield loaded
    finally:
        loaded.close()


@pytest.fixture(params=["duckdb", "postgres"])
def loaded(request: pytest.FixtureRequest, loaded_stores: Loaded) -> Store:
    server = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return loaded_stores.get(request.param, server)


RANGE = {"from": "2026-10-20", "to": "2026-11-06"}
BERLIN = {"timezone": "Europe/Berlin", **RANGE}

#: (case id, project scope, native query)
CASES: list[tuple[str, str | None, dict[str, Any]]] = [
    # dimensions
    ("model", "alpha", {"dimensions": ["model"], "metrics": ["sum:cost", "count", "unpriced"], **RANGE}),
    ("provider", "alpha", {"dimensions": ["provider"], "metrics": ["avg:cost", "min:cost", "max:cost"], **RANGE}),
    ("user-percentiles", "beta", {"dimensions": ["user"],
                                  "metrics": ["p50:cost", "p95:cost", "p99:cost", "count"], **RANGE}),
    ("session", "alpha", {"dimensions": ["session"], "metrics": ["sum:cost", "traces", "users"], **RANGE}),
    ("trace-name", "gamma", {"dimensions": ["trace_name"], "metrics": ["count", "input_tokens"], **RANGE}),
    ("tag", "alpha", {"dimensions": ["tag"], "metrics": ["count", "sum:cost"], **RANGE}),
    ("tags-alias-model", "beta", {"dimensions": ["tags", "model"], "metrics": ["sum:cost"], **RANGE}),
    ("metadata-team", "alpha", {"dimensions": ["metadata.team"], "metrics": ["sum:cost", "count"], **RANGE}),
    ("metadata-colon-key", "gamma", {"dimensions": ["metadata.app:feature", "metadata.plan"],
                                     "metrics": ["count", "avg:cost"], **RANGE}),
    ("pricing-status", "alpha", {"dimensions": ["pricing_status"], "metrics": ["count", "sum:cost", "unpriced"],
                                 **RANGE}),
    ("release", "beta", {"dimensions": ["release"], "metrics": ["count"], **RANGE}),
    ("project-unscoped", None, {"dimensions": ["project"], "metrics": ["sum:cost", "count", "users", "unpriced"],
                                **RANGE}),
    # measures
    ("usage-and-latency", "alpha", {"metrics": [
        "sum:usage.cache_read_tokens", "sum:usage.output_tokens", "input_tokens", "avg:input_tokens",
        "p95:input_tokens", "sum:input_cost", "sum:output_cost", "sum:latency", "avg:latency", "min:latency",
        "max:latency", "p50:latency", "p95:latency", "p99:latency"], **RANGE}),
    ("cost-components", "beta", {"dimensions": ["model"], "metrics": [
        "sum:cost.input_tokens", "sum:cost.cache_read_tokens", "sum:cost.total", "max:cost.output_tokens",
        "sum:total_tokens", "avg:output_cost"], **RANGE}),
    ("empty-range", "alpha", {"metrics": ["sum:cost", "count", "p95:latency"], "from": "2020-01-01",
                              "to": "2020-01-02"}),
    # filters
    ("f-eq", "alpha", {"dimensions": ["user"], "filters": [{"field": "model", "operator": "=", "value": "gpt-4o"}],
                       **RANGE}),
    ("f-ne", "alpha", {"dimensions": ["model"], "metrics": ["count"],
                       "filters": [{"field": "model", "operator": "!=", "value": "gpt-4o"}], **RANGE}),
    ("f-in", "beta", {"dimensions": ["provider"], "metrics": ["count", "sum:cost"],
                      "filters": [{"field": "provider", "operator": "in", "value": ["openai", "google"]}],
                      **RANGE}),
    ("f-not-in", "beta", {"dimensions": ["provider"], "metrics": ["count"],
                          "filters": [{"field": "provider", "operator": "not in", "value": ["openai"]}], **RANGE}),
    ("f-contains", "gamma", {"dimensions": ["model"], "metrics": ["count"],
                             "filters": [{"field": "model", "operator": "contains", "value": "gpt"}], **RANGE}),
    ("f-not-contains", "gamma", {"dimensions": ["model"], "metrics": ["count"],
                                 "filters": [{"field": "model", "operator": "not contains", "value": "gpt"}],
                                 **RANGE}),
    ("f-starts-with", "alpha", {"dimensions": ["trace_name"], "metrics": ["count"],
                                "filters": [{"field": "trace_name", "operator": "starts with", "value": "s"}],
                                **RANGE}),
    ("f-is-null", "alpha", {"dimensions": ["user"], "metrics": ["count"],
                            "filters": [{"field": "session", "operator": "is null"}], **RANGE}),
    ("f-is-not-null-user", "beta", {"dimensions": ["session"], "metrics": ["count", "users"],
                                    "filters": [{"field": "user", "operator": "is not null"}], **RANGE}),
    ("f-tags-any", "alpha", {"dimensions": ["tag"], "metrics": ["count"],
                             "filters": [{"field": "tags", "operator": "any of", "value": ["prod", "eval"]}],
                             **RANGE}),
    ("f-tags-all", "beta", {"dimensions": ["model"], "metrics": ["count"],
                            "filters": [{"field": "tags", "operator": "all of", "value": ["prod", "chat"]}],
                            **RANGE}),
    ("f-tags-none", "gamma", {"dimensions": ["tag"], "metrics": ["count"],
                              "filters": [{"field": "tags", "operator": "none of", "value": ["dev", "batch"]}],
                              **RANGE}),
    ("f-tag-contains", "alpha", {"metrics": ["count", "sum:cost"],
                                 "filters": [{"field": "tag", "operator": "contains", "value": "batch"}], **RANGE}),
    ("f-metadata", "alpha", {"dimensions": ["model"], "metrics": ["count"],
                             "filters": [{"field": "metadata.team", "operator": "=", "value": "core"}], **RANGE}),
    ("f-metadata-key", "beta", {"dimensions": ["metadata.team"], "metrics": ["count"],
                                "filters": [{"field": "metadata", "key": "team", "operator": "not in",
                                             "value": ["core", "infra"]}], **RANGE}),
    ("f-cost-gt", "alpha", {"dimensions": ["model"], "metrics": ["count", "sum:cost"],
                            "filters": [{"field": "cost", "operator": ">", "value": "0.003"}], **RANGE}),
    ("f-cost-lt", "beta", {"dimensions": ["model"], "metrics": ["count", "sum:cost"],
                           "filters": [{"field": "cost", "operator": "<", "value": 0.002}], **RANGE}),
    ("f-cost-ne-and-latency", "gamma", {
        "dimensions": ["pricing_status"], "metrics": ["count"],
        "filters": [{"field": "cost", "operator": "!=", "value": "0.001"},
                    {"field": "latency", "operator": ">=", "value": "5.5"}], **RANGE}),
    ("f-tokens", "alpha", {"dimensions": ["model"], "metrics": ["count", "sum:usage.input_tokens"],
                           "filters": [{"field": "input_tokens", "operator": ">", "value": 10000},
                                       {"field": "user", "operator": "in", "value": ["u1", "u2", "u3"]}],
                           **RANGE}),
    ("f-project", None, {"dimensions": ["project", "model"], "metrics": ["count"],
                         "filters": [{"field": "project", "operator": "!=", "value": "beta"}], **RANGE}),
    # order and limit
    ("order-limit-truncated", "alpha", {"dimensions": ["model", "user"], "metrics": ["sum:cost", "count"],
                                        "order_by": ["count desc"], "limit": 5, **RANGE}),
    ("order-two-keys", "beta", {"dimensions": ["model", "session"], "metrics": ["sum:cost", "avg:cost"],
                                "order_by": ["model asc", "avg_cost asc"], "limit": 3, **RANGE}),
    ("order-dimension-desc", "gamma", {"dimensions": ["user"], "metrics": ["count"],
                                       "order_by": [{"field": "user", "direction": "desc"}], "limit": 10000,
                                       **RANGE}),
    ("limit-1", None, {"dimensions": ["project"], "metrics": ["count"], "limit": 1, **RANGE}),
    # time buckets
    ("day-berlin", "alpha", {"dimensions": ["model"], "metrics": ["sum:cost", "count"], "granularity": "day",
                             **BERLIN}),
    ("hour-berlin", "alpha", {"metrics": ["count", "sum:cost"], "granularity": "hour",
                              "timezone": "Europe/Berlin", "from": "2026-10-24", "to": "2026-10-27"}),
    ("week-new-york", None, {"dimensions": ["project"], "metrics": ["count"], "granularity": "week",
                             "timezone": "America/New_York", **RANGE}),
    ("month-new-york", "beta", {"metrics": ["sum:cost", "p95:cost"], "granularity": "month",
                                "timezone": "America/New_York", **RANGE}),
    ("hour-new-york", "alpha", {"metrics": ["count"], "granularity": "hour", "timezone": "America/New_York",
                                "from": "2026-10-31", "to": "2026-11-03"}),
    ("hour-kolkata", "gamma", {"metrics": ["count"], "granularity": "hour", "timezone": "Asia/Kolkata",
                               "from": "2026-10-20T00:00:00+05:30", "to": "2026-10-27T00:00:00+05:30"}),
    ("day-time-ordered-by-metric", "alpha", {"metrics": ["count"], "granularity": "day", "order_by": ["count asc"],
                                             **BERLIN}),
    ("all-time-day-berlin", "alpha", {"metrics": ["count", "sum:cost"], "granularity": "day",
                                      "timezone": "Europe/Berlin", "all_time": True, "limit": 10000}),
    ("all-time-week-unscoped", None, {"dimensions": ["project"], "metrics": ["count"], "granularity": "week",
                                      "timezone": "America/New_York", "all_time": True}),
    # traces view
    ("traces-name", "alpha", {"view": "traces", "dimensions": ["name"],
                              "metrics": ["count", "sum:cost", "avg:cost", "p50:cost", "max:cost"], **RANGE}),
    ("traces-user", "beta", {"view": "traces", "dimensions": ["user"],
                             "metrics": ["count", "sum:observations", "unpriced", "p95:latency", "avg:latency"],
                             **RANGE}),
    ("traces-tag", "gamma", {"view": "traces", "dimensions": ["tag"], "metrics": ["count", "sum:cost"], **RANGE}),
    ("traces-metadata", "alpha", {"view": "traces", "dimensions": ["metadata.team"],
                                  "metrics": ["count", "sum:input_tokens"], **RANGE}),
    ("traces-session", None, {"view": "traces", "dimensions": ["project", "session"],
                              "metrics": ["count", "users", "sessions"], **RANGE}),
    ("traces-filters", "alpha", {"view": "traces", "dimensions": ["name"], "metrics": ["count", "sum:cost"],
                                 "filters": [{"field": "cost", "operator": ">", "value": "0.005"},
                                             {"field": "tags", "operator": "none of", "value": ["dev"]}],
                                 **RANGE}),
    ("traces-text-filters", "beta", {"view": "traces", "dimensions": ["user"], "metrics": ["count"],
                                     "filters": [{"field": "name", "operator": "in",
                                                  "value": ["checkout", "search"]},
                                                 {"field": "session", "operator": "is not null"}], **RANGE}),
    ("traces-day-berlin", "alpha", {"view": "traces", "metrics": ["count", "sum:cost"], "granularity": "day",
                                    **BERLIN}),
    ("traces-limit", "gamma", {"view": "traces", "dimensions": ["id"], "metrics": ["sum:cost"], "limit": 7,
                               **RANGE}),
]


def run(store: Store, query: dict[str, Any], project: str | None) -> QueryResult:
    return store.query(parse_query(query, now=NOW, project_id=project))


def assert_matches(result: QueryResult, expected: Expected) -> None:
    assert result.columns == expected.columns
    assert typed(result.rows) == typed(expected.rows)
    assert result.truncated == expected.truncated


@pytest.mark.parametrize(("project", "query"), [(p, q) for _, p, q in CASES], ids=[c[0] for c in CASES])
def test_query_matches_reference(loaded: Store, project: str | None, query: dict[str, Any]) -> None:
    expected = expect(query, DATASET.observations, DATASET.traces, project)
    assert_matches(run(loaded, query, project), expected)


def test_cases_are_not_vacuous() -> None:
    """Every case except the deliberately empty one has rows, and the data has what the cases look for."""
    for name, project, query in CASES:
        rows = expect(query, DATASET.observations, DATASET.traces, project).rows
        assert rows and (name == "empty-range" or any(v not in (None, 0) for r in rows for v in r.values())), name
    statuses = {o.pricing_status for o in DATASET.observations}
    assert statuses == {"priced", "unpriced", "provided", "partially_priced", None}
    assert len(DATASET.observations) >= 300
    truncated = [n for n, p, q in CASES if expect(q, DATASET.observations, DATASET.traces, p).truncated]
    assert {"order-limit-truncated", "limit-1", "traces-limit"} <= set(truncated)


def test_backends_agree(loaded_stores: Loaded, postgres_url: str) -> None:
    duck, pg = loaded_stores.get("duckdb"), loaded_stores.get("postgres", postgres_url)
    for name, project, query in CASES:
        a, b = run(duck, query, project), run(pg, query, project)
        assert (typed(a.rows), a.truncated) == (typed(b.rows), b.truncated), name


# hand-written expectations ------------------------------------------------------------------------------------

def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _priced(project: str, id: str, start: str, cost: str, **changes: Any) -> Observation:
    values: dict[str, Any] = {"project_id": project, "id": id, "trace_id": f"trace-{id}", "start_time": _at(start),
                              "type": "generation", "model": "m", "cost": {"input_tokens": D(cost)},
                              "total_cost": D(cost), "pricing_status": "priced"}
    values.update(changes)
    return Observation(**values)


#: Berlin leaves summer time at 2026-10-25 01:00Z (03:00 CEST → 02:00 CET); costs are powers of two so each
#: bucket's sum names its members
BERLIN_ROWS = [("a", "2026-10-24T21:59:59Z", "1"), ("b", "2026-10-24T22:00:00Z", "2"),
               ("c", "2026-10-25T00:30:00Z", "4"), ("d", "2026-10-25T01:30:00Z", "8"),
               ("e", "2026-10-25T02:00:00Z", "16"), ("f", "2026-10-25T22:59:59Z", "32"),
               ("g", "2026-10-25T23:00:00Z", "64"), ("h", "2026-10-31T22:59:59Z", "128"),
               ("i", "2026-10-31T23:00:00Z", "256")]
#: New York leaves daylight time at 2026-11-01 06:00Z (02:00 EDT → 01:00 EST)
NEW_YORK_ROWS = [("j", "2026-11-01T03:59:59Z", "1"), ("k", "2026-11-01T04:00:00Z", "2"),
                 ("l", "2026-11-01T05:30:00Z", "4"), ("m", "2026-11-01T06:30:00Z", "8"),
                 ("n", "2026-11-01T07:00:00Z", "16"), ("o", "2026-11-02T04:59:59Z", "32"),
                 ("p", "2026-11-02T05:00:00Z", "64")]

DST_EXPECTED: dict[tuple[str, str], list[tuple[str, int, str]]] = {
    ("berlin", "day"): [("2026-10-24T00:00:00+02:00", 1, "1"), ("2026-10-25T00:00:00+02:00", 5, "62"),
                        ("2026-10-26T00:00:00+01:00", 1, "64"), ("2026-10-31T00:00:00+01:00", 1, "128"),
                        ("2026-11-01T00:00:00+01:00", 1, "256")],
    ("berlin", "hour"): [("2026-10-24T23:00:00+02:00", 1, "1"), ("2026-10-25T00:00:00+02:00", 1, "2"),
                         ("2026-10-25T02:00:00+02:00", 2, "12"),  # the repeated hour is one bucket
                         ("2026-10-25T03:00:00+01:00", 1, "16"), ("2026-10-25T23:00:00+01:00", 1, "32"),
                         ("2026-10-26T00:00:00+01:00", 1, "64"), ("2026-10-31T23:00:00+01:00", 1, "128"),
                         ("2026-11-01T00:00:00+01:00", 1, "256")],
    ("berlin", "week"): [("2026-10-19T00:00:00+02:00", 6, "63"), ("2026-10-26T00:00:00+01:00", 3, "448")],
    ("berlin", "month"): [("2026-10-01T00:00:00+02:00", 8, "255"), ("2026-11-01T00:00:00+01:00", 1, "256")],
    ("new-york", "day"): [("2026-10-31T00:00:00-04:00", 1, "1"), ("2026-11-01T00:00:00-04:00", 5, "62"),
                          ("2026-11-02T00:00:00-05:00", 1, "64")],
    ("new-york", "hour"): [("2026-10-31T23:00:00-04:00", 1, "1"), ("2026-11-01T00:00:00-04:00", 1, "2"),
                           ("2026-11-01T01:00:00-04:00", 2, "12"), ("2026-11-01T02:00:00-05:00", 1, "16"),
                           ("2026-11-01T23:00:00-05:00", 1, "32"), ("2026-11-02T00:00:00-05:00", 1, "64")],
    ("new-york", "week"): [("2026-10-26T00:00:00-04:00", 6, "63"), ("2026-11-02T00:00:00-05:00", 1, "64")],
    ("new-york", "month"): [("2026-10-01T00:00:00-04:00", 1, "1"), ("2026-11-01T00:00:00-04:00", 6, "126")],
}
ZONES = {"berlin": ("Europe/Berlin", "2026-10-24", "2026-11-02"),
         "new-york": ("America/New_York", "2026-10-31", "2026-11-03")}


@pytest.fixture
def dst_store(store: Store) -> Store:
    store.write([_priced("berlin", n, t, c) for n, t, c in BERLIN_ROWS]
                + [_priced("new-york", n, t, c) for n, t, c in NEW_YORK_ROWS])
    return store


@pytest.mark.parametrize(("place", "granularity"), list(DST_EXPECTED), ids=[f"{p}-{g}" for p, g in DST_EXPECTED])
def test_bucket_labels_across_dst(dst_store: Store, place: str, granularity: str) -> None:
    zone, first, last = ZONES[place]
    expected = [{"time": t, "count": n, "sum_cost": D(c)} for t, n, c in DST_EXPECTED[(place, granularity)]]
    ranged = {"metrics": ["count", "sum:cost"], "granularity": granularity, "timezone": zone, "from": first,
              "to": last}
    assert typed(run(dst_store, ranged, place).rows) == typed(expected)
    # all_time: the store takes the zone's offsets from the range its data covers
    unbounded = {"metrics": ["count", "sum:cost"], "granularity": granularity, "timezone": zone, "all_time": True}
    result = run(dst_store, unbounded, place)
    assert typed(result.rows) == typed(expected)
    assert result.query.describe()["from"] is None


def test_sums_and_averages_are_exact(store: Store) -> None:
    tiny = D("0.000000000001")
    rows = [_priced("p1", f"tiny-{i}", "2026-11-01T10:00:00Z", str(tiny), model="tiny") for i in range(2000)]
    rows += [_priced("p1", "big", "2026-11-01T10:00:00Z", "12345678901234.000000000001", model="big"),
             _priced("p1", "point-one", "2026-11-01T10:00:00Z", "0.1", model="float-trap"),
             _priced("p1", "point-two", "2026-11-01T10:00:00Z", "0.2", model="float-trap"),
             _priced("p1", "one", "2026-11-01T10:00:00Z", "0.000000000001", model="half-even"),
             _priced("p1", "four", "2026-11-01T10:00:00Z", "0.000000000004", model="half-even")]
    store.write(rows)
    query = {"dimensions": ["model"], "metrics": ["sum:cost", "avg:cost", "sum:input_cost", "count"],
             "from": "2026-11-01", "to": "2026-11-02", "order_by": ["model asc"]}
    assert typed(run(store, query, "p1").rows) == typed([
        {"model": "big", "sum_cost": D("12345678901234.000000000001"), "avg_cost": D("12345678901234.000000000001"),
         "sum_input_cost": D("12345678901234.000000000001"), "count": 1},
        {"model": "float-trap", "sum_cost": D("0.3"), "avg_cost": D("0.15"), "sum_input_cost": D("0.3"), "count": 2},
        # (1 + 4) / 2 = 2.5e-12 rounds half-even to 2e-12 (half-up would give 3e-12)
        {"model": "half-even", "sum_cost": D("0.000000000005"), "avg_cost": D("0.000000000002"),
         "sum_input_cost": D("0.000000000005"), "count": 2},
        {"model": "tiny", "sum_cost": D("0.000000002"), "avg_cost": D("0.000000000001"),
         "sum_input_cost": D("0.000000002"), "count": 2000},
    ])
    total = run(store, {"metrics": ["sum:cost", "p50:cost"], "from": "2026-11-01", "to": "2026-11-02"}, "p1")
    # 12345678901234.000000000001 + 0.1 + 0.2 + 0.000000000005 + 2000 x 0.000000000001
    assert total.rows == [{"sum_cost": D("12345678901234.300000002006"), "p50_cost": tiny}]
    assert float(total.rows[0]["sum_cost"]) == float(D("12345678901234.3"))  # a float sum could not tell them apart
    amounts = [r.total_cost for r in rows if r.total_cost is not None]
    assert percentile(amounts, "0.5") == tiny


def test_unpriced_is_null_not_zero(store: Store) -> None:
    start = _at("2026-11-01T10:00:00Z")
    store.write([Observation(project_id="p1", id=f"u{i}", trace_id="t", start_time=start, type="generation",
                             model="secret-model", usage={"input_tokens": 10}, pricing_status="unpriced")
                 for i in range(3)])
    query = {"dimensions": ["model"], "metrics": ["sum:cost", "avg:cost", "p95:cost", "sum:input_cost", "unpriced",
                                                  "count", "input_tokens"], "from": "2026-11-01", "to": "2026-11-02"}
    assert typed(run(store, query, "p1").rows) == typed([
        {"model": "secret-model", "sum_cost": None, "avg_cost": None, "p95_cost": None, "sum_input_cost": None,
         "unpriced": 3, "count": 3, "sum_input_tokens": 30}])


def test_trace_attributes_written_later_apply_at_query_time(store: Store) -> None:
    start = _at("2026-11-01T10:00:00Z")
    store.write([
        _priced("p1", "o1", "2026-11-01T10:00:00Z", "1", trace_id="t1", user_id="obs-user", session_id="obs-session",
                release="obs-release", tags=("obs-tag", "shared"), metadata={"team": "obs-team"}),
        _priced("p1", "o2", "2026-11-01T10:00:01Z", "2", trace_id="t1", user_id="obs-user", tags=()),
    ])
    query = {"dimensions": ["user", "session", "release", "trace_name", "metadata.team", "metadata.plan"],
             "metrics": ["sum:cost", "count"], "from": "2026-11-01", "to": "2026-11-02"}
    before = {"trace_name": None, "metadata.plan": None}
    assert run(store, query, "p1").rows == [
        {"user": "obs-user", "session": None, "release": None, "metadata.team": None, "sum_cost": D(2), "count": 1,
         **before},
        {"user": "obs-user", "session": "obs-session", "release": "obs-release", "metadata.team": "obs-team",
         "sum_cost": D(1), "count": 1, **before},
    ]
    store.write(traces=[Trace(project_id="p1", id="t1", timestamp=start, name="checkout", user_id="trace-user",
                              release="trace-release", tags=("trace-tag", "shared"),
                              metadata={"team": "trace-team", "plan": "pro"})])
    after = {"user": "trace-user", "release": "trace-release", "trace_name": "checkout", "metadata.plan": "pro"}
    assert run(store, query, "p1").rows == [
        # the trace's user and release win; its session is unset, so the observation's stays; the observation's
        # metadata.team wins over the trace's, which fills in where the observation has none
        {"session": None, "metadata.team": "trace-team", "sum_cost": D(2), "count": 1, **after},
        {"session": "obs-session", "metadata.team": "obs-team", "sum_cost": D(1), "count": 1, **after},
    ]
    tags = {"dimensions": ["tag"], "metrics": ["count"], "from": "2026-11-01", "to": "2026-11-02",
            "order_by": ["tag asc"]}
    assert run(store, tags, "p1").rows == [  # the union, each tag once per observation
        {"tag": "obs-tag", "count": 1}, {"tag": "shared", "count": 2}, {"tag": "trace-tag", "count": 2}]
    traces = {"view": "traces", "dimensions": ["name", "user", "tag"], "metrics": ["count", "sum:cost"],
              "from": "2026-11-01", "to": "2026-11-02", "order_by": ["tag asc"]}
    assert run(store, traces, "p1").rows == [
        {"name": "checkout", "user": "trace-user", "tag": t, "count": 1, "sum_cost": D(3)}
        for t in ("obs-tag", "shared", "trace-tag")]


def test_projects_are_isolated(store: Store) -> None:
    start = _at("2026-11-01T10:00:00Z")
    store.write([_priced("p1", "o1", "2026-11-01T10:00:00Z", "1", trace_id="same"),
                 _priced("p1", "o2", "2026-11-01T11:00:00Z", "2", trace_id="same"),
                 _priced("p2", "o1", "2026-11-01T10:00:00Z", "10", trace_id="same")],
                [Trace(project_id="p1", id="same", timestamp=start, user_id="alice", tags=("p1-tag",)),
                 Trace(project_id="p2", id="same", timestamp=start, user_id="bob", tags=("p2-tag",))])
    query = {"dimensions": ["user", "tag"], "metrics": ["sum:cost", "count", "traces"], "from": "2026-11-01",
             "to": "2026-11-02"}
    assert run(store, query, "p1").rows == [
        {"user": "alice", "tag": "p1-tag", "sum_cost": D(3), "count": 2, "traces": 1}]
    assert run(store, query, "p2").rows == [
        {"user": "bob", "tag": "p2-tag", "sum_cost": D(10), "count": 1, "traces": 1}]
    assert run(store, query, "p3").rows == []
    per_trace = {"view": "traces", "dimensions": ["user"], "metrics": ["count", "sum:cost", "sum:observations"],
                 "from": "2026-11-01", "to": "2026-11-02"}
    assert run(store, per_trace, "p1").rows == [{"user": "alice", "count": 1, "sum_cost": D(3),
                                                 "sum_observations": 2}]
    everything = {"dimensions": ["project"], "metrics": ["sum:cost", "traces"], "from": "2026-11-01",
                  "to": "2026-11-02"}
    assert run(store, everything, None).rows == [{"project": "p2", "sum_cost": D(10), "traces": 1},
                                                 {"project": "p1", "sum_cost": D(3), "traces": 1}]
    # one trace id in two projects is two traces
    assert run(store, {"metrics": ["traces", "count"], "from": "2026-11-01", "to": "2026-11-02"}, None).rows == [
        {"traces": 2, "count": 3}]
    assert run(store, {"view": "traces", "metrics": ["count"], "from": "2026-11-01", "to": "2026-11-02"},
               None).rows == [{"count": 2}]


def test_range_is_half_open_and_limit_truncates(store: Store) -> None:
    store.write([_priced("p1", "at-start", "2026-11-01T00:00:00Z", "1", model="a"),
                 _priced("p1", "before-end", "2026-11-01T23:59:59.999999Z", "2", model="b"),
                 _priced("p1", "at-end", "2026-11-02T00:00:00Z", "4", model="c"),
                 _priced("p1", "before-start", "2026-10-31T23:59:59.999999Z", "8", model="d")])
    query: dict[str, Any] = {"dimensions": ["model"], "metrics": ["sum:cost"], "from": "2026-11-01T00:00:00Z",
                             "to": "2026-11-02T00:00:00Z"}
    assert run(store, query, "p1").rows == [{"model": "b", "sum_cost": D(2)}, {"model": "a", "sum_cost": D(1)}]
    result = run(store, {**query, "limit": 1}, "p1")
    assert (result.rows, result.truncated) == ([{"model": "b", "sum_cost": D(2)}], True)
    result = run(store, {**query, "limit": 2}, "p1")
    assert (len(result.rows), result.truncated) == (2, False)


def test_numeric_filter_bounds_finer_than_the_data_are_exact(store: Store) -> None:
    """Latency is kept in whole microseconds and amounts to 12 places; a bound between two stored values
    must split them where it lies."""
    start = _at("2026-11-01T10:00:00Z")
    store.write([_priced("p1", f"o{i}", "2026-11-01T10:00:00Z", f"{i}e-12", end_time=start + timedelta(microseconds=i))
                 for i in range(3)]
                + [_priced("p1", "no-end", "2026-11-01T10:00:00Z", "5", total_cost=None, pricing_status="unpriced")])
    # (matching observations, matching traces): each observation is its own trace, and a trace's latency runs
    # to its last end or start, so the trace whose observation has no end lasts 0 microseconds
    expected = {
        ("cost", ">=", "0.0000000000004"): (2, 2), ("cost", ">", "0.0000000000015"): (1, 1),
        ("cost", "<", "0.0000000000015"): (2, 2), ("cost", "<=", "0.0000000000015"): (2, 2),
        ("cost", "=", "0.0000000000015"): (0, 0), ("cost", "=", "0.000000000001"): (1, 1),
        ("cost", "!=", "0.0000000000015"): (4, 4), ("cost", "!=", "0.000000000001"): (3, 3),
        ("cost", "<", "9e24"): (3, 3), ("cost", ">", "-9e24"): (3, 3), ("cost", ">", "9e24"): (0, 0),
        ("latency", "<", "0.0000015"): (2, 3), ("latency", ">=", "0.0000005"): (2, 2),
        ("latency", ">", "0.0000005"): (2, 2), ("latency", "<=", "0.0000005"): (1, 2),
        ("latency", "=", "0.000001"): (1, 1), ("latency", "=", "0.0000005"): (0, 0),
        ("latency", "!=", "0.0000005"): (4, 4), ("latency", "<", "9e24"): (3, 4),
    }
    for (name, op, value), (observations, traces) in expected.items():
        where = [{"field": name, "operator": op, "value": value}]
        query = {"metrics": ["count"], "filters": where, "from": "2026-11-01", "to": "2026-11-02"}
        assert run(store, query, "p1").rows == [{"count": observations}], (name, op, value)
        assert run(store, {**query, "view": "traces"}, "p1").rows == [{"count": traces}], ("traces", name, op, value)


def test_metadata_values_group_and_filter_as_text(store: Store) -> None:
    sneaky = 'it\'s "quoted"; DROP TABLE observations; --'
    values: list[Any] = [3, D("0.25"), True, {"a": 1}, [1, 2], sneaky, ""]
    observations = [_priced("p1", f"o{i}", "2026-11-01T10:00:00Z", "1", metadata={"k": v})
                    for i, v in enumerate(values)]
    observations.append(_priced("p1", "no-key", "2026-11-01T10:00:00Z", "1", metadata={"other": "x"}))
    # an object or array is not a value to group by: the observation's object gives way to the trace's string
    store.write(observations, [Trace(project_id="p1", id="trace-o3", timestamp=_at("2026-11-01T10:00:00Z"),
                                     metadata={"k": "from-trace"})])
    query: dict[str, Any] = {"dimensions": ["metadata.k"], "metrics": ["count"], "order_by": ["metadata.k asc"],
                             "from": "2026-11-01", "to": "2026-11-02"}
    assert run(store, query, "p1").rows == [
        {"metadata.k": "", "count": 1}, {"metadata.k": "0.25", "count": 1}, {"metadata.k": "3", "count": 1},
        {"metadata.k": "from-trace", "count": 1}, {"metadata.k": sneaky, "count": 1},
        {"metadata.k": "true", "count": 1}, {"metadata.k": None, "count": 2},
    ]
    for operator, value, count in (("=", sneaky, 1), ("in", ["3", "true"], 2), ("contains", "DROP", 1),
                                   ("is null", None, 2), ("!=", "3", 7), ("starts with", "it's", 1)):
        where = [{"field": "metadata.k", "operator": operator, "value": value}]
        assert run(store, {"metrics": ["count"], "filters": where, "from": "2026-11-01", "to": "2026-11-02"},
                   "p1").rows == [{"count": count}], operator
    assert store.count_observations() == 8


def test_text_filters_take_wildcards_literally(store: Store) -> None:
    store.write([_priced("p1", n, "2026-11-01T10:00:00Z", "1", model=m)
                 for n, m in (("a", "a%b_c"), ("b", "axbyc"), ("c", "A%B"))])
    for operator, value, models in (("contains", "%", ["A%B", "a%b_c"]), ("contains", "_", ["a%b_c"]),
                                    ("starts with", "a%", ["a%b_c"]), ("starts with", "a_", []),
                                    ("contains", "b", ["a%b_c", "axbyc"]), ("not contains", "%", ["axbyc"])):
        where = [{"field": "model", "operator": operator, "value": value}]
        query = {"dimensions": ["model"], "metrics": ["count"], "filters": where, "order_by": ["model asc"],
                 "from": "2026-11-01", "to": "2026-11-02"}
        assert [r["model"] for r in run(store, query, "p1").rows] == models, (operator, value)


def test_offset_pages_and_the_trace_timestamp(store: Store) -> None:
    """``offset`` skips ordered rows; ``start_time`` is an observation's start, and in the traces view the trace's
    timestamp (its row's, else its first observation's start), filtered without cutting its observations."""
    store.write([
        _priced("p1", "e1", "2026-10-31T23:00:00Z", "1", trace_id="early"),
        _priced("p1", "e2", "2026-11-01T01:00:00Z", "2", trace_id="early"),
        _priced("p1", "m1", "2026-11-01T02:59:00Z", "8", trace_id="mid"),  # before its trace's timestamp
        _priced("p1", "l1", "2026-11-01T05:00:00Z", "4", trace_id="late"),  # no trace row
        _priced("p2", "x1", "2026-11-01T04:00:00Z", "16", trace_id="mid"),
    ], [Trace(project_id="p1", id="early", timestamp=_at("2026-10-31T23:00:00Z")),
        Trace(project_id="p1", id="mid", timestamp=_at("2026-11-01T03:00:00Z")),
        Trace(project_id="p2", id="mid", timestamp=_at("2026-11-01T04:00:00Z"))])
    since = {"field": "start_time", "operator": ">=", "value": "2026-11-01T00:00:00Z"}
    traces: dict[str, Any] = {"view": "traces", "dimensions": ["id"], "metrics": ["min:start_time", "sum:cost"],
                              "filters": [since], "all_time": True, "order_by": ["min_start_time asc"]}
    # early began before the bound (its 01:00 observation does not bring it in); mid keeps its 02:59 observation
    assert run(store, traces, "p1").rows == [
        {"id": "mid", "min_start_time": "2026-11-01T03:00:00+00:00", "sum_cost": D(8)},
        {"id": "late", "min_start_time": "2026-11-01T05:00:00+00:00", "sum_cost": D(4)}]
    # a range instead cuts observations: early counts with its 01:00 one, mid's time is its observation's
    cut = run(store, {**traces, "filters": [], "all_time": False, "from": "2026-11-01T00:00:00Z",
                      "to": "2026-11-02T00:00:00Z"}, "p1")
    assert [(r["id"], r["sum_cost"]) for r in cut.rows] == [("early", D(2)), ("mid", D(8)), ("late", D(4))]
    before = {"field": "start_time", "operator": "<", "value": "2026-11-01T05:00:00Z"}
    assert [r["id"] for r in run(store, {**traces, "filters": [since, before]}, "p1").rows] == ["mid"]
    assert run(store, {**traces, "metrics": ["count"], "order_by": [], "dimensions": []}, "p1").rows == [
        {"count": 2}]
    pages = [run(store, {**traces, "filters": [], "limit": 2, "offset": offset}, "p1") for offset in (0, 2, 4)]
    assert [[r["id"] for r in p.rows] for p in pages] == [["early", "mid"], ["late"], []]
    assert [p.truncated for p in pages] == [True, False, False]
    observations = {"dimensions": ["id"], "metrics": ["max:start_time"], "all_time": True,
                    "filters": [{"field": "start_time", "operator": ">", "value": "2026-11-01T01:00:00Z"}],
                    "order_by": ["max_start_time desc"], "limit": 1, "offset": 1}
    assert run(store, observations, "p1").rows == [{"id": "m1", "max_start_time": "2026-11-01T02:59:00+00:00"}]


@pytest.mark.parametrize(("query", "path"), [
    ({"metrics": ["sum:start_time"]}, "metrics[0]"),
    ({"metrics": ["p50:start_time"]}, "metrics[0]"),
    ({"filters": [{"field": "start_time", "operator": "=", "value": "2026-11-01"}]}, "filters[0].operator"),
    ({"filters": [{"field": "start_time", "operator": ">", "value": "soon"}]}, "filters[0].value"),
    ({"offset": -1}, "offset"),
    ({"offset": "10"}, "offset"),
    ({"offset": 10**10}, "offset"),
])
def test_offset_and_start_time_errors_name_the_part(query: dict[str, Any], path: str) -> None:
    with pytest.raises(QueryError, match=rf"^{re.escape(path)}: "):
        parse_query(query, now=NOW)
