"""Exact hourly rollups: which queries they answer, how those compile, and how dirty hours are kept.

``rollup_user_hours`` (migration 0007) holds, per (project, UTC hour, model, provider, environment,
attributed user, type), the exact DECIMAL sum of ``total_cost``, the row count and the unpriced count;
``rollup_hours`` the same without the user (summed from the first), for questions that do not read users. A
query is answered from one only when everything it uses is there (``plan``): the observations view, sums of
cost, counts and unpriced counts (no other measure, no average, no percentile), dimensions and text filters on
those columns, and time buckets that are unions of whole UTC hours in the query's zone (every offset of the
zone over the range, and every change of it, on a whole hour: Europe/Berlin yes, Asia/Kolkata +5:30 no).
Anything else is compiled from raw rows as before (``query_sql``).

Exactness: a rollup row is recomputed from raw rows (``refresh``), never adjusted. Every write marks the hours
it touches dirty in the same transaction (``dirty_marks``): the new hour of each observation, the old hour of
one it replaces, the hours of billing lines it deletes; a trace whose user changes is recorded in
``rollup_dirty_traces`` (its observations' hours are found when a query reads users: ``resolve_traces``). A
query reads the dirty hours in its range in the same snapshot as the rest and answers those, and the partial
hours at the edges of its range, from raw rows; only clean whole hours come from the rollup. So a rollup
answer equals the raw one whether or not a refresh has run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from costline.core.events import Observation, Trace
from costline.core.query import Dimension, Filter, Metric, Query
from costline.core.timebuckets import Offset
from costline.store.dialects import Dialect, PostgresDialect
from costline.store.query_sql import Compiled, _Builder

HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000
#: dimensions (and text filter fields) the rollup has a column for
DIMENSIONS = frozenset({"model", "provider", "environment", "user", "type", "project", "source"})
#: a refresh of this many hours or more updates the planner's statistics (PostgreSQL would otherwise plan
#: the first queries on a just-filled table as if it were empty)
ANALYZE_AFTER = 24
#: granularities whose buckets are unions of hours (when the zone's offsets are whole hours)
GRANULARITIES = frozenset({"hour", "day", "week", "month"})

#: (execute(sql with ? placeholders, params) -> rows)
Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole UTC hours [first, stop) the rollup may answer (None: unbounded on that side)."""

    first: datetime | None
    stop: datetime | None
    uses_user: bool


def _metric_ok(m: Metric) -> bool:
    return (m.measure == "cost" and m.key is None and m.aggregation == "sum") or m.measure in ("count", "unpriced")


def _filter_ok(f: Filter) -> bool:
    return f.kind == "text" and f.field in DIMENSIONS and f.key is None


def floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    floor = floor_hour(t)
    return floor if floor == t else floor + HOUR


def plan(query: Query, offsets: Sequence[Offset] | None) -> Plan | None:
    """The rollup's part of ``query``, or None when the query needs raw rows."""
    if query.view != "observations" or not query.metrics or not all(_metric_ok(m) for m in query.metrics):
        return None
    if any(d.name not in DIMENSIONS or d.key is not None for d in query.dimensions):
        return None
    if not all(_filter_ok(f) for f in query.filters):
        return None
    if query.granularity is not None:
        if query.granularity not in GRANULARITIES or offsets is None:
            return None
        for o in offsets:
            if o.offset_us % HOUR_US or (o.since_us is not None and o.since_us % HOUR_US):
                return None
    first = ceil_hour(query.start) if query.start is not None else None
    stop = floor_hour(query.end) if query.end is not None else None
    if first is not None and stop is not None and first >= stop:
        return None
    uses_user = any(d.name == "user" for d in query.dimensions) or any(f.field == "user" for f in query.filters)
    return Plan(first, stop, uses_user)


def hour_expr(dialect: Dialect, column: str) -> str:
    """The UTC hour (TIMESTAMPTZ) holding the timestamp ``column``."""
    if isinstance(dialect, PostgresDialect):
        return f"(date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
    return f"to_timestamp(({dialect.epoch_us(column)} // {HOUR_US}) * 3600)"


# dirty marks ----------------------------------------------------------------------------------------------------
def dirty_marks(run: Run, dialect: Dialect, observations: Sequence[Observation], traces: Sequence[Trace],
                stored_observations: Mapping[str, Observation] | None = None,
                stored_traces: Mapping[str, Trace] | None = None) -> None:
    """Mark what a write of these rows makes stale, before the rows are written (in its transaction). With the
    stored versions (a merge read them) the old hours and user changes come from them; without, the old hours
    are read and every written trace is taken as changing its user."""
    hours = {(o.project_id, floor_hour(o.start_time)) for o in observations}
    if stored_observations is not None:
        hours |= {(o.project_id, floor_hour(o.start_time)) for o in stored_observations.values()}
    else:
        by_project: dict[str, list[str]] = {}
        for o in observations:
            by_project.setdefault(o.project_id, []).append(o.id)
        for project_id, ids in by_project.items():
            run(f"INSERT INTO rollup_dirty SELECT DISTINCT project_id, {hour_expr(dialect, 'start_time')} "
                f"FROM observations WHERE project_id = ? AND {dialect.one_of('id')}", [project_id, ids])
    if hours:
        projects, seconds = zip(*((p, int(h.timestamp())) for p, h in sorted(hours)), strict=True)
        run(f"INSERT INTO rollup_dirty SELECT p, to_timestamp(s) FROM ({_unnest2(dialect)}) x(p, s)",
            [list(projects), list(seconds)])
    changed = [t for t in traces if stored_traces is None or
               (stored_traces[t.id].user_id if t.id in stored_traces else None) != t.user_id]
    if changed:
        run(f"INSERT INTO rollup_dirty_traces SELECT p, i FROM ({_unnest2(dialect, 'VARCHAR')}) x(p, i)",
            [[t.project_id for t in changed], [t.id for t in changed]])


def _unnest2(dialect: Dialect, second: str = "BIGINT") -> str:
    if isinstance(dialect, PostgresDialect):
        return f"SELECT * FROM unnest(?::text[], ?::{'text' if second == 'VARCHAR' else 'bigint'}[])"
    return f"SELECT unnest(?::VARCHAR[]), unnest(?::{second}[])"


def mark_rows(run: Run, dialect: Dialect, where: str, params: Sequence[Any]) -> None:
    """Mark the hours of the stored observations ``where`` selects (rows about to be deleted)."""
    run(f"INSERT INTO rollup_dirty SELECT DISTINCT project_id, {hour_expr(dialect, 'start_time')} "
        f"FROM observations WHERE {where}", params)


# refresh ----------------------------------------------------------------------------------------------------------
def _scope(project_id: str | None, column: str, params: list[Any]) -> str:
    if project_id is None:
        return "true"
    params.append(project_id)
    return f"{column} = ?"


def resolve_traces(run: Run, dialect: Dialect, project_id: str | None) -> None:
    """Turn the traces whose user changed into dirty hours (the hours of their observations)."""
    params: list[Any] = []
    scope = _scope(project_id, "project_id", params)
    found = run(f"DELETE FROM rollup_dirty_traces WHERE {scope} RETURNING project_id, trace_id", params)
    if not found:
        return
    by_project: dict[str, list[str]] = {}
    for p, t in found:
        by_project.setdefault(p, []).append(t)
    for p, ids in by_project.items():
        mark_rows(run, dialect, f"project_id = ? AND {dialect.one_of('trace_id')}", [p, sorted(set(ids))])


def dirty_hours(run: Run, dialect: Dialect, project_id: str | None, p: Plan) -> list[datetime]:
    params: list[Any] = []
    where = [_scope(project_id, "project_id", params)]
    if p.first is not None:
        where.append("hour >= ?")
        params.append(p.first)
    if p.stop is not None:
        where.append("hour < ?")
        params.append(p.stop)
    # epoch microseconds: DuckDB hands TIMESTAMPTZ values to Python slowly
    found = run(f"SELECT DISTINCT {dialect.epoch_us('hour')} FROM rollup_dirty WHERE {' AND '.join(where)}", params)
    return sorted(EPOCH + timedelta(microseconds=int(us)) for (us,) in found)


def refresh(run: Run, dialect: Dialect, project_id: str | None, hours: Iterable[datetime]) -> None:
    """Recompute these hours of the project (every project when None) from raw rows, then clear their marks.
    The marks are deleted first: a mark a concurrent writer commits after that statement survives."""
    hours = sorted(set(hours))
    if not hours:
        return
    marks = ", ".join("?" for _ in hours)
    params: list[Any] = []
    scope = _scope(project_id, "project_id", params)
    run(f"DELETE FROM rollup_dirty WHERE {scope} AND hour IN ({marks})", [*params, *hours])
    for table in ("rollup_user_hours", "rollup_hours"):
        run(f"DELETE FROM {table} WHERE {scope} AND hour IN ({marks})", [*params, *hours])
    params = []
    scope = _scope(project_id, "o.project_id", params)
    ranges, range_params = _ranges([(h, h + HOUR) for h in hours])
    hour = hour_expr(dialect, "o.start_time")
    run(f"INSERT INTO rollup_user_hours SELECT o.project_id, {hour}, o.model, o.provider, o.environment, "
        "COALESCE(t.user_id, o.user_id), o.type, sum(o.total_cost), count(*), "
        "sum(CASE WHEN o.pricing_status = 'unpriced' THEN 1 ELSE 0 END) FROM observations o "
        "LEFT JOIN traces t ON t.project_id = o.project_id AND t.id = o.trace_id "
        f"WHERE {scope} AND ({ranges}) GROUP BY 1, 2, 3, 4, 5, 6, 7", [*params, *range_params])
    params = []
    scope = _scope(project_id, "project_id", params)
    run("INSERT INTO rollup_hours SELECT project_id, hour, model, provider, environment, type, sum(cost), "
        f"CAST(sum(n) AS BIGINT), CAST(sum(unpriced) AS BIGINT) FROM rollup_user_hours WHERE {scope} "
        f"AND hour IN ({marks}) GROUP BY 1, 2, 3, 4, 5, 6", [*params, *hours])


def _ranges(spans: Sequence[tuple[datetime | None, datetime | None]]) -> tuple[str, list[Any]]:
    """``o.start_time`` in any of the spans (adjacent spans merged); ``false`` for none."""
    merged: list[list[datetime | None]] = []
    for a, b in sorted(spans, key=lambda s: (s[0] is not None, s[0] or datetime.min.replace(tzinfo=UTC))):
        if merged and merged[-1][1] is not None and a is not None and merged[-1][1] >= a:
            end = merged[-1][1]
            merged[-1][1] = None if b is None else max(end, b)
        else:
            merged.append([a, b])
    parts: list[str] = []
    params: list[Any] = []
    for a, b in merged:
        conds = []
        if a is not None:
            conds.append("o.start_time >= ?")
            params.append(a)
        if b is not None:
            conds.append("o.start_time < ?")
            params.append(b)
        parts.append(f"({' AND '.join(conds) or 'true'})")
    return (" OR ".join(parts) or "false"), params


# compiling ------------------------------------------------------------------------------------------------------
class _RollupBuilder(_Builder):
    """The observations compiler over a source ``o`` that is the rollup's clean hours UNION ALL raw rows."""

    def obs_dimension(self, dim: Dimension) -> str:
        match dim.name:
            case "user":
                return "o.user_id"
            case "project":
                return "o.project_id"
            case "source":
                return "CASE WHEN o.type = 'cloud' THEN 'cloud' ELSE 'llm' END"
            case name:
                return f"o.{name}"

    def aggregate(self, metric: Metric, expr: str) -> str:
        match metric.measure:
            case "count":
                return "CAST(COALESCE(sum(o.n), 0) AS BIGINT)"
            case "unpriced":
                return "CAST(COALESCE(sum(o.unpriced), 0) AS BIGINT)"
        return "sum(o.cost)"

    def compile_rollup(self, p: Plan, dirty: Sequence[datetime]) -> Compiled:
        q = self.q
        params: list[Any] = []
        where = [_scope(q.project_id, "r.project_id", params)]
        if p.first is not None:
            where.append("r.hour >= ?")
            params.append(p.first)
        if p.stop is not None:
            where.append("r.hour < ?")
            params.append(p.stop)
        if dirty:
            where.append(f"r.hour NOT IN ({', '.join('?' for _ in dirty)})")
            params.extend(dirty)
        # the rollup without users has far fewer rows: read it unless the question reads users
        table, user_column = ("rollup_user_hours", "r.user_id") if p.uses_user else ("rollup_hours", "NULL")
        rolled = (f"SELECT r.project_id, r.hour AS start_time, r.model, r.provider, r.environment, {user_column} AS "
                  f"user_id, r.type, r.cost, r.n, r.unpriced FROM {table} r WHERE {' AND '.join(where)}")
        spans: list[tuple[datetime | None, datetime | None]] = [(h, h + HOUR) for h in dirty]
        if q.start is not None and p.first is not None and q.start < p.first:
            spans.append((q.start, p.first))
        if p.stop is not None and (q.end is None or p.stop < q.end):
            spans.append((p.stop, q.end))
        source = rolled
        if spans:
            raw_params: list[Any] = []
            raw_where = _scope(q.project_id, "o.project_id", raw_params)
            ranges, range_params = _ranges(spans)
            user = "COALESCE(t.user_id, o.user_id)" if p.uses_user else "o.user_id"
            join = " LEFT JOIN traces t ON t.project_id = o.project_id AND t.id = o.trace_id" if p.uses_user else ""
            source += (" UNION ALL SELECT o.project_id, o.start_time, o.model, o.provider, o.environment, "
                       f"{user}, o.type, o.total_cost, 1, CASE WHEN o.pricing_status = 'unpriced' THEN 1 ELSE 0 END "
                       f"FROM observations o{join} WHERE {raw_where} AND ({ranges})")
            params += raw_params + range_params
        groups: list[tuple[str, str, bool]] = []
        if q.granularity:
            groups.append(("time", self.bucket("o.start_time"), False))
        groups.extend((dim.label, self.obs_dimension(dim), True) for dim in q.dimensions)
        select, outputs, order_exprs = self._outputs(lambda m: "o.cost", groups)
        outer: list[str] = []
        outer_params: list[Any] = []
        for f in q.filters:
            outer.append(self.condition(f, self.obs_dimension(Dimension(f.field)), outer_params))
        src = (f"(SELECT project_id, start_time, model, provider, environment, user_id, type, cost, n, unpriced "
               f"FROM ({source}) u) o")
        return self._finish(select, outputs, order_exprs, src, outer, params + outer_params, len(groups), "")


def compile_rollup(query: Query, dialect: Dialect, offsets: Sequence[Offset] | None, p: Plan,
                   dirty: Sequence[datetime]) -> Compiled:
    """The statement answering ``query`` from the rollup's clean hours in ``p`` and raw rows for the rest."""
    return _RollupBuilder(query, dialect, offsets or [Offset(None, 0)]).compile_rollup(p, dirty)
