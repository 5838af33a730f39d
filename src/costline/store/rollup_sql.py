"""Exact hourly rollups: which queries they answer and how dirty hours are kept (``rollup_compile`` compiles).

``rollup_user_hours`` (migration 0007) holds, per (project, UTC hour, model, provider, environment,
attributed user, type), the exact DECIMAL sum of ``total_cost``, the row count and the unpriced count;
``rollup_hours`` the same without the user (summed from the first), for questions that do not read users. A
query is answered from one only when everything it uses is there (``plan``): the observations view, sums of
cost, counts and unpriced counts (no other measure, no average, no percentile), dimensions and text filters on
those columns, and time buckets that are unions of whole UTC hours in the query's zone (every offset of the
zone over the range, and every change of it, on a whole hour: Europe/Berlin yes, Asia/Kolkata +5:30 no).
Anything else is compiled from raw rows as before (``query_sql``), except two questions with rollups of their
own (migration 0008): cost per trace (traces view of one project, no grouping or filter, measures ``cost``,
``observations``, ``count``, ``unpriced`` with any aggregation) from ``rollup_trace_hours``, per (project, hour,
trace), where a ``single`` row (the trace had rows in no other hour) with no raw row of the trace in the range's
raw part is the trace's total and every other trace is summed over its rows; and sums grouped or filtered by one
metadata key from ``rollup_meta_hours``, per (project, hour, key, value), for the keys registered by the first
query asking for them (``register_key``, at most ``MAX_METADATA_KEYS`` per project).

Exactness: a rollup row is recomputed from raw rows (``refresh``), never adjusted. Every write marks the hours
it touches dirty in the same transaction (``dirty_marks``): the new hour of each observation, the old hour of
one it replaces, the hours of billing lines it deletes; a trace whose user changes is recorded in
``rollup_dirty_traces``, as is one whose metadata changes (its observations' hours are found when a query
reads users or metadata: ``resolve_traces``). A
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
from costline.core.query import Filter, Metric, Query, metadata_path
from costline.core.timebuckets import Offset
from costline.store.dialects import Dialect, PostgresDialect

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

#: metadata keys rolled up per project (the first this many keys queries group or filter by)
MAX_METADATA_KEYS = 10

#: (execute(sql with ? placeholders, params) -> rows)
Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole UTC hours [first, stop) the rollup may answer (None: unbounded on that side)."""

    first: datetime | None
    stop: datetime | None
    #: the answer depends on trace attributes (the attributed user, a metadata value falling back to the
    #: trace's): traces whose attributes changed are resolved into dirty hours first, raw rows answer until then
    uses_user: bool
    #: "hours" (rollup_hours / rollup_user_hours), "traces" (rollup_trace_hours), "metadata" (rollup_meta_hours)
    kind: str = "hours"
    #: the metadata key of a "metadata" plan
    key: str | None = None


def _metric_ok(m: Metric) -> bool:
    return (m.measure == "cost" and m.key is None and m.aggregation == "sum") or m.measure in ("count", "unpriced")


def _filter_ok(f: Filter) -> bool:
    return f.kind == "text" and f.field in DIMENSIONS and f.key is None


def floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    floor = floor_hour(t)
    return floor if floor == t else floor + HOUR


def _trace_metric_ok(m: Metric) -> bool:
    return (m.measure in ("cost", "observations") and m.key is None) or m.measure in ("count", "unpriced")


def _meta_key(query: Query) -> str | None:
    """The one metadata key a query groups and filters by, when it uses nothing else (else None)."""
    keys = {d.key for d in query.dimensions if d.name == "metadata"} | {
        f.key for f in query.filters if f.field == "metadata" and f.kind == "text"}
    if len(keys) != 1 or any(d.name != "metadata" for d in query.dimensions):
        return None
    if any(f.field != "metadata" or f.kind != "text" for f in query.filters):
        return None
    return next(iter(keys))


def plan(query: Query, offsets: Sequence[Offset] | None) -> Plan | None:
    """The rollup's part of ``query``, or None when the query needs raw rows."""
    kind, key = "hours", None
    if query.view == "traces":
        # cost per trace: the traces of one project, no grouping, filter or time bucket
        if (query.project_id is None or query.dimensions or query.filters or query.granularity is not None
                or not query.metrics or not all(_trace_metric_ok(m) for m in query.metrics)):
            return None
        kind = "traces"
    elif query.view != "observations" or not query.metrics or not all(_metric_ok(m) for m in query.metrics):
        return None
    elif any(d.name not in DIMENSIONS or d.key is not None for d in query.dimensions) or not all(
            _filter_ok(f) for f in query.filters):
        key = _meta_key(query) if query.project_id is not None else None
        if key is None:
            return None
        kind = "metadata"
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
    uses_user = kind == "metadata" or any(d.name == "user" for d in query.dimensions) or any(
        f.field == "user" for f in query.filters)
    return Plan(first, stop, uses_user, kind, key)


def hour_expr(dialect: Dialect, column: str) -> str:
    """The UTC hour (TIMESTAMPTZ) holding the timestamp ``column``."""
    if isinstance(dialect, PostgresDialect):
        return f"(date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
    return f"to_timestamp(({dialect.epoch_us(column)} // {HOUR_US}) * 3600)"


# dirty marks ----------------------------------------------------------------------------------------------------
def dirty_marks(run: Run, dialect: Dialect, observations: Sequence[Observation], traces: Sequence[Trace],
                stored_observations: Mapping[str, Observation] | None = None,
                stored_traces: Mapping[str, Trace] | None = None,
                old_hours: Iterable[tuple[str, int]] = ()) -> None:
    """Mark what a write of these rows makes stale, before the rows are written (in its transaction). With the
    stored versions (a merge read them) the old hours and user changes come from them, plus ``old_hours``
    ((project, start time in epoch microseconds) of other stored rows the write replaces); without, the old
    hours are read and every written trace is taken as changing its user."""
    hours = observation_hours(observations)
    if stored_observations is not None:
        hours |= observation_hours(stored_observations.values())
        hours |= {(p, (us - us % HOUR_US) // 1_000_000) for p, us in old_hours}
    else:
        by_project: dict[str, list[str]] = {}
        for o in observations:
            by_project.setdefault(o.project_id, []).append(o.id)
        for project_id, ids in by_project.items():
            run(f"INSERT INTO rollup_dirty SELECT DISTINCT project_id, {hour_expr(dialect, 'start_time')} "
                f"FROM observations WHERE project_id = ? AND {dialect.one_of('id')}", [project_id, ids])
    if hours:
        projects, seconds = zip(*sorted(hours), strict=True)
        run(f"INSERT INTO rollup_dirty SELECT p, to_timestamp(s) FROM ({_unnest2(dialect)}) x(p, s)",
            [list(projects), list(seconds)])
    changed = [t for t in traces if stored_traces is None or _attributes(stored_traces.get(t.id)) != _attributes(t)]
    if changed:
        run(f"INSERT INTO rollup_dirty_traces SELECT p, i FROM ({_unnest2(dialect, 'VARCHAR')}) x(p, i)",
            [[t.project_id for t in changed], [t.id for t in changed]])


def observation_hours(observations: Iterable[Observation]) -> set[tuple[str, int]]:
    """(project, the start of the hour of its start time in epoch seconds) of each observation. A UTC start
    (what the decoders and the store give) is floored by one timedelta division: 1,000 rows in ~0.3 ms where
    ``floor_hour`` per row took ~0.9 ms; any other is converted first (a naive one as local time, as before)."""
    return {
        (o.project_id, (o.start_time - EPOCH) // HOUR * 3600 if o.start_time.tzinfo is UTC
         else int(floor_hour(o.start_time).timestamp()))
        for o in observations
    }


def attributing_traces(new_traces: Iterable[Trace]) -> list[str]:
    """The ids of new traces (none stored before) that ``dirty_marks`` marks: those giving their observations a
    user or metadata."""
    nothing = _attributes(None)
    return [t.id for t in new_traces if _attributes(t) != nothing]


def _attributes(trace: Trace | None) -> tuple[Any, ...]:
    """What a rollup attributes from a trace to its observations: the user, the metadata."""
    return (None, {}) if trace is None else (trace.user_id, dict(trace.metadata or {}))


def _unnest2(dialect: Dialect, second: str = "BIGINT") -> str:
    if isinstance(dialect, PostgresDialect):
        return f"SELECT * FROM unnest(?::text[], ?::{'text' if second == 'VARCHAR' else 'bigint'}[])"
    return f"SELECT unnest(?::VARCHAR[]), unnest(?::{second}[])"


def mark_rows(run: Run, dialect: Dialect, where: str, params: Sequence[Any]) -> None:
    """Mark the hours of the stored observations ``where`` selects (rows about to be deleted)."""
    run(f"INSERT INTO rollup_dirty SELECT DISTINCT project_id, {hour_expr(dialect, 'start_time')} "
        f"FROM observations WHERE {where}", params)


# refresh ----------------------------------------------------------------------------------------------------------
def project_scope(project_id: str | None, column: str, params: list[Any]) -> str:
    if project_id is None:
        return "true"
    params.append(project_id)
    return f"{column} = ?"


def resolve_traces(run: Run, dialect: Dialect, project_id: str | None) -> None:
    """Turn the traces whose user changed into dirty hours (the hours of their observations)."""
    params: list[Any] = []
    scope = project_scope(project_id, "project_id", params)
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
    where = [project_scope(project_id, "project_id", params)]
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
    scope = project_scope(project_id, "project_id", params)
    run(f"DELETE FROM rollup_dirty WHERE {scope} AND hour IN ({marks})", [*params, *hours])
    for table in ("rollup_user_hours", "rollup_hours"):
        run(f"DELETE FROM {table} WHERE {scope} AND hour IN ({marks})", [*params, *hours])
    params = []
    scope = project_scope(project_id, "o.project_id", params)
    ranges, range_params = time_ranges([(h, h + HOUR) for h in hours])
    hour = hour_expr(dialect, "o.start_time")
    run(f"INSERT INTO rollup_user_hours SELECT o.project_id, {hour}, o.model, o.provider, o.environment, "
        "COALESCE(t.user_id, o.user_id), o.type, sum(o.total_cost), count(*), "
        "sum(CASE WHEN o.pricing_status = 'unpriced' THEN 1 ELSE 0 END) FROM observations o "
        "LEFT JOIN traces t ON t.project_id = o.project_id AND t.id = o.trace_id "
        f"WHERE {scope} AND ({ranges}) GROUP BY 1, 2, 3, 4, 5, 6, 7", [*params, *range_params])
    params = []
    scope = project_scope(project_id, "project_id", params)
    run("INSERT INTO rollup_hours SELECT project_id, hour, model, provider, environment, type, sum(cost), "
        f"CAST(sum(n) AS BIGINT), CAST(sum(unpriced) AS BIGINT) FROM rollup_user_hours WHERE {scope} "
        f"AND hour IN ({marks}) GROUP BY 1, 2, 3, 4, 5, 6", [*params, *hours])
    _refresh_traces(run, dialect, project_id, hours)
    _refresh_metadata(run, dialect, project_id, hours)


UNPRICED = "CASE WHEN o.pricing_status = 'unpriced' THEN 1 ELSE 0 END"


def _refresh_traces(run: Run, dialect: Dialect, project_id: str | None, hours: Sequence[datetime]) -> None:
    """Per (hour, trace) sums of these hours; then no row of a trace with rollup rows in more than one hour stays
    ``single``. A trace's rows in an hour still dirty are counted when that hour is rolled up (which clears the
    flag then); until then a query reads that hour raw, and a raw row of the trace sends it to the summed part."""
    marks = ", ".join("?" for _ in hours)
    params: list[Any] = []
    scope = project_scope(project_id, "project_id", params)
    run(f"DELETE FROM rollup_trace_hours WHERE {scope} AND hour IN ({marks})", [*params, *hours])
    params = []
    scope = project_scope(project_id, "o.project_id", params)
    ranges, range_params = time_ranges([(h, h + HOUR) for h in hours])
    hour = hour_expr(dialect, "o.start_time")
    run(f"INSERT INTO rollup_trace_hours SELECT o.project_id, {hour}, o.trace_id, sum(o.total_cost), count(*), "
        f"sum({UNPRICED}), true FROM observations o WHERE {scope} AND ({ranges}) GROUP BY 1, 2, 3",
        [*params, *range_params])
    params = []
    scope = project_scope(project_id, "project_id", params)
    # a trace with rollup rows in two hours is no single-hour trace: every hour with rows is rolled up or dirty,
    # and a dirty hour's refresh comes here too (the rollup's rows, not the 10M raw ones, are searched)
    run("UPDATE rollup_trace_hours SET single = false FROM (SELECT project_id, trace_id FROM rollup_trace_hours "
        f"WHERE {scope} AND trace_id IN (SELECT trace_id FROM rollup_trace_hours WHERE {scope} AND hour IN "
        f"({marks})) GROUP BY 1, 2 HAVING count(*) > 1) m WHERE rollup_trace_hours.single AND "
        "rollup_trace_hours.project_id = m.project_id AND rollup_trace_hours.trace_id = m.trace_id",
        [*params, *params, *hours])


def meta_value(dialect: Dialect, key: str) -> str:
    """The query's attribution of a metadata value: the observation's, else its trace's."""
    keys = metadata_path(key)
    return f"COALESCE({dialect.json_scalar('o.metadata', keys)}, {dialect.json_scalar('t.metadata', keys)})"


def _insert_metadata(run: Run, dialect: Dialect, project_id: str, keys: Sequence[str],
                     spans: Sequence[tuple[datetime, datetime]] | None) -> None:
    """The sums of these keys' values in the spans (every hour when None): one join of the rows with their
    traces (materialised once), one grouping per key."""
    ranges, range_params = time_ranges(spans) if spans is not None else ("true", [])
    joined = (f"SELECT o.project_id, {hour_expr(dialect, 'o.start_time')} AS hour, o.metadata AS om, "
              f"t.metadata AS tm, o.total_cost, {UNPRICED} AS unpriced FROM observations o LEFT JOIN traces t "
              f"ON t.project_id = o.project_id AND t.id = o.trace_id WHERE o.project_id = ? AND ({ranges})")
    selects = []
    for key in keys:
        path = metadata_path(key)
        value = f"COALESCE({dialect.json_scalar('j.om', path)}, {dialect.json_scalar('j.tm', path)})"
        selects.append(f"SELECT j.project_id, j.hour, {dialect.literal(key)}, {value}, sum(j.total_cost), "
                       "count(*), sum(j.unpriced) FROM j GROUP BY 1, 2, 3, 4")
    run(f"INSERT INTO rollup_meta_hours WITH j AS MATERIALIZED ({joined}) {' UNION ALL '.join(selects)}",
        [project_id, *range_params])


def _refresh_metadata(run: Run, dialect: Dialect, project_id: str | None, hours: Sequence[datetime]) -> None:
    marks = ", ".join("?" for _ in hours)
    params: list[Any] = []
    scope = project_scope(project_id, "project_id", params)
    run(f"DELETE FROM rollup_meta_hours WHERE {scope} AND hour IN ({marks})", [*params, *hours])
    by_project: dict[str, list[str]] = {}
    for p, key in run(f"SELECT project_id, key FROM rollup_meta_keys WHERE {scope} ORDER BY 1, 2", params):
        by_project.setdefault(p, []).append(key)
    for p, keys in by_project.items():
        _insert_metadata(run, dialect, p, keys, [(h, h + HOUR) for h in hours])


def register_key(run: Run, dialect: Dialect, project_id: str, key: str) -> bool:
    """Roll up ``key`` from now on (its sums for every hour of the project, computed now); False when the
    project has ``MAX_METADATA_KEYS`` keys already (the query reads raw rows). Hours dirty at this moment are
    recomputed by their refresh as usual, and not read from the rollup before."""
    known = [k for (k,) in run("SELECT key FROM rollup_meta_keys WHERE project_id = ?", [project_id])]
    if key in known:
        return True
    if len(known) >= MAX_METADATA_KEYS:
        return False
    run("INSERT INTO rollup_meta_keys VALUES (?, ?)", [project_id, key])
    _insert_metadata(run, dialect, project_id, [key], None)
    return True


def time_ranges(spans: Sequence[tuple[datetime | None, datetime | None]]) -> tuple[str, list[Any]]:
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
