"""Compile a core ``Query`` to one SQL statement, for DuckDB and PostgreSQL alike.

The statement is written once; a ``Dialect`` supplies the few expressions the two databases spell
differently (JSON access, epoch microseconds, percentiles, list operations). Everything that decides a
number is done the same way on both: sums of DECIMAL(38,12)/NUMERIC are exact, percentiles are
``percentile_disc`` (an actual value, same definition on both), averages are finished in Python from the
exact sum and count, text is ordered bytewise, NULLs last. DuckDB buckets time with integer arithmetic from
the zone's offset table (``core.timebuckets``) instead of its slow per-row time-zone conversion; PostgreSQL
converts natively (``AT TIME ZONE``), with the same wall-clock semantics.

No text from outside is pasted into the statement: every user value is a bound parameter; a metadata key,
cost component or unit reaches the text only as a literal the dialect writes (``Dialect.literal``,
``store/sqltext.py``), and the column aliases are the compiler's own (``g0``, ``m1``, ``x2`` ...), so even a key
that ``core.query`` would refuse could not change the statement.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from costline.core import timebuckets
from costline.core.query import (
    PERCENTILES,
    Dimension,
    Filter,
    Metric,
    Query,
    QueryResult,
    metadata_path,
)
from costline.core.query_values import finish_value
from costline.core.timebuckets import Offset
from costline.core.units import ROOT_OF
from costline.store.dialects import Dialect

#: components of the input and output cost (the token units under input_tokens / output_tokens)
INPUT_COMPONENTS = ("input_tokens", *sorted(u for u, root in ROOT_OF.items() if root == "input_tokens"))
OUTPUT_COMPONENTS = ("output_tokens", *sorted(u for u, root in ROOT_OF.items() if root == "output_tokens"))

#: a numeric filter's bound rounded to the expression's scale so that the comparison stays exact
#: (``x > 0.5`` over whole microseconds is ``x > 0``, ``x >= 0.5`` is ``x >= 1``)
BOUND_ROUNDING = {">": ROUND_FLOOR, "<=": ROUND_FLOOR, ">=": ROUND_CEILING, "<": ROUND_CEILING}
BOUND_CONTEXT = Context(prec=60)

#: observation-view fields read from the trace (the query joins traces only when one is used)
TRACE_FIELDS = frozenset({"user", "session", "release", "trace_name", "tag", "metadata"})
#: traces view: a lower bound on the trace's timestamp (``start_time >= x``) reads observations that started from
#: x minus this (Langfuse's TRACE_TO_OBSERVATIONS_INTERVAL), so a list of this month's traces does not scan the
#: project's history
TRACE_TIME_SLACK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    params: list[Any]
    #: (result label, SQL alias, metric or None, alias of the count an average divides by)
    outputs: tuple[tuple[str, str, Metric | None, str | None], ...]


class _Builder:
    """Builds one query; ``params`` are appended in the order their ``?`` appear in the text."""

    def __init__(self, query: Query, dialect: Dialect, offsets: Sequence[Offset]):
        self.q = query
        self.d = dialect
        self.offsets = offsets

    # per-row expressions (observations o, traces t) ---------------------------------------------------------
    def obs_dimension(self, dim: Dimension) -> str:
        d = self.d
        match dim.name:
            case "user":
                return "COALESCE(t.user_id, o.user_id)"
            case "session":
                return "COALESCE(t.session_id, o.session_id)"
            case "release":
                return "COALESCE(t.release, o.release)"
            case "trace_name":
                return "t.name"
            case "project":
                return "o.project_id"
            case "source":  # imported billing lines (docs/cloud.md) or application calls
                return "CASE WHEN o.type = 'cloud' THEN 'cloud' ELSE 'llm' END"
            case "tag":
                return d.tags_union("o.tags", "t.tags")
            case "metadata":
                assert dim.key is not None
                keys = metadata_path(dim.key)
                return f"COALESCE({d.json_scalar('o.metadata', keys)}, {d.json_scalar('t.metadata', keys)})"
            case name:
                return f"o.{name}"

    def obs_measure(self, measure: str, key: str | None) -> str:
        d = self.d
        match measure:
            case "cost" if key is not None:
                return d.json_number("o.cost", key)
            case "cost":
                return "o.total_cost"
            case "usage":
                assert key is not None
                return d.json_number("o.usage", key)
            case "input_cost" | "output_cost":
                keys = INPUT_COMPONENTS if measure == "input_cost" else OUTPUT_COMPONENTS
                return f"CASE WHEN o.total_cost IS NULL THEN NULL ELSE COALESCE({d.keys_sum('o.cost', keys)}, 0) END"
            case "input_tokens" | "output_tokens":
                return d.json_number("o.usage", measure)
            case "total_tokens":
                return (f"(COALESCE({d.json_number('o.usage', 'input_tokens')}, 0) + "
                        f"COALESCE({d.json_number('o.usage', 'output_tokens')}, 0))")
            case "latency":
                return f"({d.epoch_us('o.end_time')} - {d.epoch_us('o.start_time')})"
            case "start_time":
                return "o.start_time"
            case "unpriced":
                return "CASE WHEN o.pricing_status = 'unpriced' THEN 1 ELSE 0 END"
            case "calls":
                # a model call reported twice (core/duplicates.py) is one request
                return ("CASE WHEN o.model IS NOT NULL AND COALESCE(o.pricing_status, '') <> 'duplicate' "
                        "THEN 1 ELSE 0 END")
            case "traces":  # a trace is (project, id): an unscoped query counts the pairs
                if self.q.project_id is not None:
                    return "o.trace_id"
                return "concat(length(o.project_id), ':', o.project_id, o.trace_id)"
            case "count":
                return "o.id"
            case "users":
                return self.obs_dimension(Dimension("user"))
            case "sessions":
                return self.obs_dimension(Dimension("session"))
        raise AssertionError(measure)

    def bucket(self, column: str) -> str:
        """The bucket of the timestamp ``column``: a native local timestamp where the database converts time
        zones fast (PostgreSQL), else local wall-clock epoch microseconds from the offset table."""
        d = self.d
        assert self.q.granularity is not None
        native = d.native_bucket(self.q.granularity, column, self.q.timezone)
        if native is not None:
            return native
        epoch = d.epoch_us(column)
        offsets = self.offsets
        if len(offsets) == 1:
            local = f"({epoch} + {offsets[0].offset_us})"
        else:
            cases = " ".join(f"WHEN {epoch} < {o.since_us} THEN {prev.offset_us}"
                             for prev, o in itertools.pairwise(offsets))
            local = f"({epoch} + CASE {cases} ELSE {offsets[-1].offset_us} END)"
        match self.q.granularity:
            case "minute":
                return f"{d.idiv(local, '60000000')} * 60000000"
            case "hour":
                return f"{d.idiv(local, '3600000000')} * 3600000000"
            case "day":
                return f"{d.idiv(local, '86400000000')} * 86400000000"
            case "week":
                day = d.idiv(local, "86400000000")
                return f"({day} - mod({day} + 3, 7)) * 86400000000"
            case _:
                return d.month_start_us(local)

    def tag_lateral(self, tags: str) -> str:
        """One row per distinct tag (a row with NULL when there is none), joined beside each row."""
        return f" LEFT JOIN LATERAL (SELECT DISTINCT u.tag FROM unnest({tags}) AS u(tag)) tg ON true"

    # filters ------------------------------------------------------------------------------------------------
    def condition(self, f: Filter, expr: str, params: list[Any]) -> str:
        d = self.d
        op = f.operator
        if f.kind == "tags":
            params.append(list(f.value))
            if op == "any of":
                return d.has_any(expr)
            if op == "all of":
                return d.has_all(expr)
            return f"NOT {d.has_any(expr)}"
        if op == "is null":
            return f"{expr} IS NULL"
        if op == "is not null":
            return f"{expr} IS NOT NULL"
        if op in ("in", "not in"):
            params.append(list(f.value))
            test = d.one_of(expr)
            return f"COALESCE({test}, false)" if op == "in" else f"NOT COALESCE({test}, false)"
        if f.kind == "time":
            params.append(f.value)
            return f"{expr} {op} ?"
        if f.kind == "number":
            latency = f.field == "latency"  # compared in whole microseconds, everything else to 12 places
            bound = (f.value * 1_000_000 if latency else f.value).quantize(
                Decimal(1) if latency else Decimal("1e-12"), rounding=BOUND_ROUNDING.get(op, ROUND_HALF_EVEN),
                context=BOUND_CONTEXT)
            if op in ("=", "!=") and bound != f.value * (1_000_000 if latency else 1):
                return "false" if op == "=" else "true"  # no value at the expression's scale equals it
            params.append(int(bound) if latency else bound)
            sql_op = {"=": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[op]
            cast = "?" if latency else "CAST(? AS DECIMAL(38, 12))"
            return f"{expr} {sql_op} {cast}" if op != "!=" else f"{expr} IS DISTINCT FROM {cast}"
        params.append(f.value)
        match op:
            case "=":
                return f"{expr} = ?"
            case "!=":
                return f"{expr} IS DISTINCT FROM ?"
            case "contains":
                return f"COALESCE(strpos({expr}, ?) > 0, false)"
            case "not contains":
                return f"NOT COALESCE(strpos({expr}, ?) > 0, false)"
            case "starts with":
                return f"COALESCE(starts_with({expr}, ?), false)"
        raise AssertionError(op)

    def range_conditions(self, params: list[Any]) -> list[str]:
        where: list[str] = []
        if self.q.project_id is not None:
            where.append("o.project_id = ?")
            params.append(self.q.project_id)
        if self.q.start is not None:
            where.append("o.start_time >= ?")
            params.append(self.q.start)
        if self.q.end is not None:
            where.append("o.start_time < ?")
            params.append(self.q.end)
        return where

    # aggregation --------------------------------------------------------------------------------------------
    def aggregate(self, metric: Metric, expr: str) -> str:
        if metric.measure in ("traces", "users", "sessions"):
            return f"count(DISTINCT {expr})"
        if metric.measure == "count":
            return "count(*)"
        if metric.measure in ("unpriced", "calls"):
            return f"COALESCE(sum({expr}), 0)"
        match metric.aggregation:
            case "sum" | "avg":
                return f"sum({expr})"
            case "min" | "max":
                return f"{metric.aggregation}({expr})"
            case "count":
                return f"count({expr})"
            case agg:
                return self.d.percentile(PERCENTILES[agg], expr)

    def compile(self) -> Compiled:
        if self.q.view == "traces":
            return self._compile_traces()
        return self._compile_observations()

    def _finish(self, select: list[str], outputs: list[tuple[str, str, Metric | None, str | None]],
                order_exprs: dict[str, str], source: str, where: list[str], params: list[Any],
                group_count: int, lateral: str) -> Compiled:
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(group_count))}" if group_count else ""
        orders = []
        for order in self.q.order_by:
            direction = "DESC" if order.descending else "ASC"
            orders.append(f"{order_exprs[order.field]} {direction} NULLS LAST")
        order_sql = f" ORDER BY {', '.join(orders)}" if orders else ""
        # ordered outside the grouping so that the order can use the output names in expressions
        sql = (f"SELECT * FROM (SELECT {', '.join(select)} FROM {source}{lateral}{clause}{group}) r"
               f"{order_sql} LIMIT {self.q.limit + 1}")
        if self.q.offset:
            sql += " OFFSET ?"
            params = [*params, self.q.offset]
        return Compiled(sql, params, tuple(outputs))

    def _outputs(self, exprs_for: Any, group_exprs: list[tuple[str, str, bool]]
                 ) -> tuple[list[str], list[tuple[str, str, Metric | None, str | None]], dict[str, str]]:
        """SELECT items for the group keys (label, expression, is_text) and the metrics."""
        select: list[str] = []
        outputs: list[tuple[str, str, Metric | None, str | None]] = []
        order_exprs: dict[str, str] = {}
        for i, (label, expr, is_text) in enumerate(group_exprs):
            alias = f"g{i}"
            select.append(f"{expr} AS {alias}")
            outputs.append((label, alias, None, None))
            order_exprs[label] = self.d.text_order(alias) if is_text else alias
        for i, metric in enumerate(self.q.metrics):
            alias = f"m{i}"
            expr = exprs_for(metric)
            select.append(f"{self.aggregate(metric, expr)} AS {alias}")
            count_alias = None
            if metric.aggregation == "avg":
                count_alias = f"n{i}"
                select.append(f"count({expr}) AS {count_alias}")
                order_exprs[metric.label] = f"{self.d.double(alias)} / NULLIF({count_alias}, 0)"
            else:
                order_exprs[metric.label] = alias
            outputs.append((metric.label, alias, metric, count_alias))
        return select, outputs, order_exprs

    def _compile_observations(self) -> Compiled:
        q = self.q
        params: list[Any] = []
        uses_trace = any(d.name in TRACE_FIELDS for d in q.dimensions) or any(
            f.field in TRACE_FIELDS for f in q.filters
        ) or any(m.measure in ("users", "sessions") for m in q.metrics)
        source = "observations o"
        if uses_trace:
            source += " LEFT JOIN traces t ON t.project_id = o.project_id AND t.id = o.trace_id"
        lateral = ""
        groups: list[tuple[str, str, bool]] = []
        if q.granularity:
            groups.append(("time", self.bucket("o.start_time"), False))
        for dim in q.dimensions:
            if dim.name == "tag":
                lateral = self.tag_lateral(self.obs_dimension(dim))
                groups.append((dim.label, "tg.tag", True))
            else:
                groups.append((dim.label, self.obs_dimension(dim), True))
        select, outputs, order_exprs = self._outputs(lambda m: self.obs_measure(m.measure, m.key), groups)
        where = self.range_conditions(params)
        for f in q.filters:
            if f.kind in ("number", "time"):
                expr = self.obs_measure(f.field, f.key)
            else:
                expr = self.obs_dimension(Dimension(f.field, f.key))
            where.append(self.condition(f, expr, params))
            where.extend(self.narrowing(f, params))
        return self._finish(select, outputs, order_exprs, source, where, params, len(groups), lateral)

    def narrowing(self, f: Filter, params: list[Any]) -> list[str]:
        """For ``user = v`` / ``session = v`` in one project: a condition the attributed filter implies (the
        observation's own value is v, or its trace's is) that indexes on (project, user) can serve, so a
        budget check reads one user's rows instead of the project's window (PostgreSQL; DuckDB scans)."""
        column = {"user": "user_id", "session": "session_id"}.get(f.field)
        if column is None or f.operator != "=" or self.q.project_id is None or not self.d.narrow_by_index:
            return []
        params.extend([f.value, self.q.project_id, f.value])
        # ``= ANY(ARRAY(...))`` lets PostgreSQL OR two bitmap index scans; ``IN (SELECT ...)`` makes it scan
        return [f"(o.{column} = ? OR o.trace_id = ANY(ARRAY(SELECT id FROM traces WHERE project_id = ? "
                f"AND {column} = ?)))"]

    def _compile_traces(self) -> Compiled:
        """Traces view: observations in range grouped per trace (only the columns the query uses; traces are
        joined only for trace attributes), then the query's grouping over those per-trace rows."""
        q = self.q
        d = self.d
        start = d.epoch_us("o.start_time")
        # per-trace column → (expression, needs the traces table)
        known: dict[str, tuple[str, bool]] = {
            "id": ("o.trace_id", False),
            "project": ("min(o.project_id)" if q.project_id is not None else "o.project_id", False),
            "name": ("max(t.name)", True),
            "user_id": ("COALESCE(max(t.user_id), max(o.user_id))", True),
            "session_id": ("COALESCE(max(t.session_id), max(o.session_id))", True),
            "environment": ("COALESCE(max(t.environment), max(o.environment))", True),
            "release": ("COALESCE(max(t.release), max(o.release))", True),
            "version": ("COALESCE(max(t.version), max(o.version))", True),
            "start_time": ("min(o.start_time)", False),
            # the trace's timestamp: the trace row's, else its first observation's start
            "timestamp": ('COALESCE(max(t."timestamp"), min(o.start_time))', True),
            "cost": ("sum(o.total_cost)", False),
            "observations": ("count(*)", False),
            "unpriced": ("COALESCE(sum(CASE WHEN o.pricing_status = 'unpriced' THEN 1 ELSE 0 END), 0)", False),
            "latency": (f"max({d.epoch_us('COALESCE(o.end_time, o.start_time)')}) - min({start})", False),
            "tags": (d.tags_agg(d.tags_union("o.tags", "t.tags")), True),
        }
        # within one project the trace id alone is the key (grouping by one string key: 0.41 s instead of
        # 0.50 s over 10M rows); across projects it is (project, trace id)
        used: dict[str, str] = {"id": "o.trace_id"} if q.project_id is not None else {
            "id": "o.trace_id", "project": "o.project_id"}
        joins = False

        def column(name: str, expr: str | None = None, needs_trace: bool = False) -> str:
            nonlocal joins
            if name not in used:
                if expr is None:
                    expr, needs_trace = known[name]
                used[name] = expr
                joins = joins or needs_trace
            return f"tr.{name}"

        measures: dict[tuple[str, str | None], str] = {}

        def per_trace(measure: str, key: str | None) -> str:
            if measure == "start_time":
                return column("timestamp")
            if measure in known and key is None:
                return column(measure)
            name = measures.setdefault((measure, key), f"x{len(measures)}")
            return column(name, f"sum({self.obs_measure(measure, key)})")

        def dimension(dim: Dimension) -> str:
            match dim.name:
                case "tag":
                    return column("tags")
                case "metadata":
                    assert dim.key is not None
                    keys = metadata_path(dim.key)
                    return column(f"meta_{len(used)}", f"COALESCE(max({d.json_scalar('t.metadata', keys)}), "
                                  f"max({d.json_scalar('o.metadata', keys)}))", True)
                case "user" | "session":
                    return column(f"{dim.name}_id")
                case name:
                    return column(name)

        def metric_expr(metric: Metric) -> str:
            match metric.measure:
                case "count":
                    return "tr.id"
                case "users":
                    return column("user_id")
                case "sessions":
                    return column("session_id")
                case measure:
                    return per_trace(measure, metric.key)

        groups: list[tuple[str, str, bool]] = []
        lateral = ""
        if q.granularity:
            groups.append(("time", self.bucket(column("start_time")), False))
        for dim in q.dimensions:
            if dim.name == "tag":
                lateral = self.tag_lateral(dimension(dim))
                groups.append((dim.label, "tg.tag", True))
            else:
                groups.append((dim.label, dimension(dim), True))
        select, outputs, order_exprs = self._outputs(metric_expr, groups)
        outer_params: list[Any] = []
        outer_where: list[str] = []
        for f in q.filters:
            if f.kind in ("number", "time"):
                expr = per_trace(f.field, f.key)
            elif f.kind == "tags":
                expr = dimension(Dimension("tag"))
            else:
                expr = dimension(Dimension(f.field, f.key))
            outer_where.append(self.condition(f, expr, outer_params))
        params: list[Any] = []
        inner_where = self.range_conditions(params)
        for f in q.filters:
            if f.kind == "time" and f.operator in (">", ">="):
                inner_where.append("o.start_time >= ?")
                params.append(f.value - TRACE_TIME_SLACK)
        join = " LEFT JOIN traces t ON t.project_id = o.project_id AND t.id = o.trace_id" if joins else ""
        inner = (f"(SELECT {', '.join(f'{expr} AS {name}' for name, expr in used.items())} FROM observations o"
                 f"{join}{' WHERE ' + ' AND '.join(inner_where) if inner_where else ''} "
                 f"GROUP BY {'o.trace_id' if q.project_id is not None else 'o.project_id, o.trace_id'}) tr")
        return self._finish(select, outputs, order_exprs, inner, outer_where, params + outer_params,
                            len(groups), lateral)


def compile_query(query: Query, dialect: Dialect, offsets: Sequence[Offset] | None = None) -> Compiled:
    """The SQL (``?`` placeholders) and parameters answering ``query``; ``offsets`` is the zone's offset
    table over the queried range (required when the query has a granularity)."""
    if query.granularity and offsets is None:
        if query.start is None or query.end is None:
            raise ValueError("a query with a granularity and no range needs the offsets of the data's range")
        offsets = timebuckets.offsets(query.tz, query.start, query.end)
    return _Builder(query, dialect, offsets or [Offset(None, 0)]).compile()


def finish(query: Query, compiled: Compiled, found: Sequence[Sequence[Any]]) -> QueryResult:
    """Raw rows (in the compiled SELECT order) as result rows: labels, exact values, aware bucket times."""
    index = {alias: i for i, alias in enumerate(_aliases(compiled))}
    truncated = len(found) > query.limit
    rows: list[dict[str, Any]] = []
    for raw in found[: query.limit]:
        row: dict[str, Any] = {}
        for label, alias, metric, count_alias in compiled.outputs:
            value = raw[index[alias]]
            if metric is None:
                if label == "time":  # a local timestamp (native buckets) or local epoch microseconds
                    wall = value.replace(tzinfo=query.tz) if isinstance(value, datetime) else \
                        timebuckets.bucket_label(int(value), query.tz)
                    value = wall.isoformat()
                row[label] = value
            else:
                count = raw[index[count_alias]] if count_alias else None
                row[label] = finish_value(metric, value, count)
        rows.append(row)
    return QueryResult(query, query.columns, rows, truncated)


def _aliases(compiled: Compiled) -> list[str]:
    aliases: list[str] = []
    for _, alias, _, count_alias in compiled.outputs:
        aliases.append(alias)
        if count_alias:
            aliases.append(count_alias)
    return aliases
