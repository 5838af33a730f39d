"""Compiling a query the rollups can answer (``rollup_sql.plan``) into one statement: the rollup's clean whole
hours UNION ALL raw rows for dirty hours and the partial hours at the edges (see ``rollup_sql``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from costline.core.query import Dimension, Metric, Query
from costline.core.timebuckets import Offset
from costline.store.dialects import Dialect
from costline.store.query_sql import Compiled, _Builder
from costline.store.rollup_sql import HOUR, UNPRICED, Plan, meta_value, project_scope, time_ranges


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
        # the rollup without users has far fewer rows: read it unless the question reads users
        table, user_column = ("rollup_user_hours", "r.user_id") if p.uses_user else ("rollup_hours", "NULL")
        rolled = (f"SELECT r.project_id, r.hour AS start_time, r.model, r.provider, r.environment, {user_column} AS "
                  f"user_id, r.type, r.cost, r.n, r.unpriced FROM {table} r WHERE "
                  f"{self._clean(table, p, dirty, params)}")
        spans = self._raw_spans(p, dirty)
        source = rolled
        if spans:
            raw_params: list[Any] = []
            raw_where = project_scope(q.project_id, "o.project_id", raw_params)
            ranges, range_params = time_ranges(spans)
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


    def _clean(self, table: str, p: Plan, dirty: Sequence[datetime], params: list[Any]) -> str:
        """Conditions on rollup rows ``r`` of ``table``: the query's project, the plan's clean hours."""
        where = [project_scope(self.q.project_id, "r.project_id", params)]
        if p.first is not None:
            where.append("r.hour >= ?")
            params.append(p.first)
        if p.stop is not None:
            where.append("r.hour < ?")
            params.append(p.stop)
        if dirty:
            where.append(f"r.hour NOT IN ({', '.join('?' for _ in dirty)})")
            params.extend(dirty)
        return " AND ".join(where)

    def _raw_spans(self, p: Plan, dirty: Sequence[datetime]) -> list[tuple[datetime | None, datetime | None]]:
        """The parts of the range raw rows answer: dirty hours, the partial hours at the edges."""
        q = self.q
        spans: list[tuple[datetime | None, datetime | None]] = [(h, h + HOUR) for h in dirty]
        if q.start is not None and p.first is not None and q.start < p.first:
            spans.append((q.start, p.first))
        if p.stop is not None and (q.end is None or p.stop < q.end):
            spans.append((p.stop, q.end))
        return spans

    def compile_traces(self, p: Plan, dirty: Sequence[datetime]) -> Compiled:
        """Traces view: per-trace totals over the range. A trace whose rollup row is ``single`` (no rows in
        other hours) and that has no raw row in range is that row; every other trace is summed from its rollup
        rows in clean hours and its raw rows elsewhere in range, exactly as the raw query sums its rows."""
        params: list[Any] = []
        spans = self._raw_spans(p, dirty)
        raw = ""
        if spans:
            raw_params: list[Any] = []
            ranges, range_params = time_ranges(spans)
            raw = (f"(SELECT o.trace_id, o.total_cost AS cost, 1 AS n, {UNPRICED} AS unpriced FROM observations o "
                   f"WHERE {project_scope(self.q.project_id, 'o.project_id', raw_params)} AND ({ranges}))")
            raw_params += range_params
        clean = self._clean("rollup_trace_hours", p, dirty, params)
        direct = f"SELECT r.cost, r.n, r.unpriced FROM rollup_trace_hours r WHERE {clean} AND r.single"
        grouped_params: list[Any] = []
        grouped_where = self._clean("rollup_trace_hours", p, dirty, grouped_params)
        parts = "SELECT r.trace_id, r.cost, r.n, r.unpriced FROM rollup_trace_hours r WHERE " + grouped_where
        if raw:
            in_raw = f"EXISTS (SELECT 1 FROM {raw} x WHERE x.trace_id = r.trace_id)"
            direct += f" AND NOT {in_raw}"
            params += raw_params
            parts += f" AND (NOT r.single OR {in_raw}) UNION ALL SELECT * FROM {raw} y"
            grouped_params += raw_params + raw_params
        else:
            parts += " AND NOT r.single"
        source = (f"({direct} UNION ALL SELECT sum(c.cost), sum(c.n), sum(c.unpriced) FROM ({parts}) c "
                  "GROUP BY c.trace_id) tr")
        params += grouped_params

        def metric_expr(metric: Metric) -> str:
            return {"count": "1", "cost": "tr.cost", "observations": "tr.n", "unpriced": "tr.unpriced"}[metric.measure]

        plain = _Builder(self.q, self.d, self.offsets)  # the raw query's aggregates over per-trace rows
        select, outputs, order_exprs = plain._outputs(metric_expr, [])
        return plain._finish(select, outputs, order_exprs, source, [], params, 0, "")

    def compile_metadata(self, p: Plan, dirty: Sequence[datetime]) -> Compiled:
        """Observations grouped (and filtered) by one rolled-up metadata key."""
        q = self.q
        assert p.key is not None
        params: list[Any] = []
        clean = self._clean("rollup_meta_hours", p, dirty, params)
        source = (f"SELECT r.hour AS start_time, r.value, r.cost, r.n, r.unpriced FROM rollup_meta_hours r "
                  f"WHERE {clean} AND r.key = ?")
        params.append(p.key)
        spans = self._raw_spans(p, dirty)
        if spans:
            ranges, range_params = time_ranges(spans)
            source += (f" UNION ALL SELECT o.start_time, {meta_value(self.d, p.key)}, o.total_cost, 1, {UNPRICED} "
                       "FROM observations o LEFT JOIN traces t ON t.project_id = o.project_id AND t.id = o.trace_id "
                       f"WHERE {project_scope(q.project_id, 'o.project_id', params)} AND ({ranges})")
            params += range_params
        groups: list[tuple[str, str, bool]] = []
        if q.granularity:
            groups.append(("time", self.bucket("o.start_time"), False))
        groups.extend((dim.label, "o.value", True) for dim in q.dimensions)
        select, outputs, order_exprs = self._outputs(lambda m: "o.cost", groups)
        outer: list[str] = []
        outer_params: list[Any] = []
        for f in q.filters:
            outer.append(self.condition(f, "o.value", outer_params))
        src = f"(SELECT start_time, value, cost, n, unpriced FROM ({source}) u) o"
        return self._finish(select, outputs, order_exprs, src, outer, params + outer_params, len(groups), "")


def compile_rollup(query: Query, dialect: Dialect, offsets: Sequence[Offset] | None, p: Plan,
                   dirty: Sequence[datetime]) -> Compiled:
    """The statement answering ``query`` from the rollup's clean hours in ``p`` and raw rows for the rest."""
    builder = _RollupBuilder(query, dialect, offsets or [Offset(None, 0)])
    if p.kind == "traces":
        return builder.compile_traces(p, dirty)
    if p.kind == "metadata":
        return builder.compile_metadata(p, dirty)
    return builder.compile_rollup(p, dirty)
