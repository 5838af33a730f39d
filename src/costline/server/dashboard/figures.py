"""The figures of the spend pages (overview, breakdown, users, sessions, traces): native queries run through
``routes.queries.run_queries`` (core ``parse_query`` + ``Store.query``, the path of ``/v1/metrics``), the
month forecast of ``control.forecasts`` and ``BudgetService.standing``. Nothing here writes SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from costline.control.forecasts import month_forecast
from costline.core.budgets import Budget, spend_query
from costline.core.periods import PERIODS, days_back, period
from costline.core.query import MAX_LIMIT, Filter, Order, QueryError, QueryResult, parse_dimension
from costline.core.timebuckets import zone
from costline.server.app import key_of, state_of
from costline.server.dashboard import params as p
from costline.server.routes.queries import run_queries
from costline.store.base import Store

SERIES: Final = 8
#: subjects of a per-attribute budget shown on the budgets page and the overview (the top spenders)
PER_SUBJECTS: Final = 5
OVERVIEW_DAYS: Final = 30
PERIOD_LABELS: Final = {"day": ("Today", "yesterday"), "week": ("This week", "last week"),
                        "month": ("This month", "last month")}
#: what the traces list shows (token sums read every row's usage JSON: they are on a trace's own page)
TRACE_METRICS: Final = ["sum:cost", "sum:observations", "unpriced", "min:start_time"]
TRACES: Final = 50


def chart(result: QueryResult, series_by: Sequence[str], value: str = "sum_cost") -> dict[str, Any]:
    """A time-series result as chart data: x (epoch seconds), the top series by total and an "other" one
    (series that sum to zero, such as spans or unpriced models, are left out). Amounts become floats here for
    drawing only; tables show the exact values."""
    times: list[str] = sorted({row["time"] for row in result.rows})
    index = {t: i for i, t in enumerate(times)}
    totals: dict[str, Decimal] = {}
    values: dict[str, list[Decimal]] = {}
    for row in result.rows:
        label = " / ".join("(none)" if row[d] is None else str(row[d]) for d in series_by) or "cost"
        amount = Decimal(row[value] or 0)
        totals[label] = totals.get(label, Decimal(0)) + amount
        values.setdefault(label, [Decimal(0)] * len(times))[index[row["time"]]] += amount
    ranked = sorted((k for k in totals if totals[k] or len(totals) == 1), key=lambda k: (-totals[k], k))
    top, rest = ranked[:SERIES], ranked[SERIES:]
    series = [{"label": k, "values": [float(v) for v in values[k]]} for k in top]
    if rest:
        other = [sum((values[k][i] for k in rest), Decimal(0)) for i in range(len(times))]
        series.append({"label": f"other ({len(rest)})", "values": [float(v) for v in other]})
    return {"x": [int(datetime.fromisoformat(t).timestamp()) for t in times], "series": series}


async def overview(request: Request) -> dict[str, Any]:
    state = state_of(request)
    project = key_of(request).project_id
    q = request.query_params
    tz_name = p.timezone_of(q)
    tz = zone(tz_name)
    stack = p.text(q, "stack", "model") or "model"
    if stack not in p.STACKS:
        raise QueryError(f"stack: unknown value {stack!r}; use one of {', '.join(p.STACKS)}")
    now = state.clock()
    periods = [period(kind, now, tz) for kind in PERIODS]
    sums = ["sum:cost", "count", "unpriced"]
    raws: list[dict[str, Any]] = []
    for per in periods:
        raws.append({"from": per.start.isoformat(), "to": per.end.isoformat(), "metrics": sums})
        raws.append({"from": per.previous_start.isoformat(), "to": per.start.isoformat(), "metrics": sums})
    start, end = days_back(now, tz, OVERVIEW_DAYS)
    window = {"from": start.isoformat(), "to": end.isoformat(), "timezone": tz_name}
    month = periods[2]
    raws.append({**window, "granularity": "day", "dimensions": [stack], "metrics": ["sum:cost"], "limit": MAX_LIMIT})
    raws.append({"from": month.start.isoformat(), "to": month.end.isoformat(), "dimensions": ["model", "provider"],
                 "filters": [{"field": "pricing_status", "operator": "=", "value": "unpriced"}],
                 "metrics": ["count"], "order_by": ["count desc"], "limit": 20})
    results = await run_queries(request, raws)
    cards = []
    for i, per in enumerate(periods):
        now_row, before_row = results[2 * i].rows[0], results[2 * i + 1].rows[0]
        label, previous = PERIOD_LABELS[per.kind]
        cards.append({"kind": per.kind, "label": label, "previous_label": previous,
                      "cost": now_row["sum_cost"], "count": now_row["count"], "unpriced": now_row["unpriced"],
                      "previous": before_row["sum_cost"], "change": _change(now_row["sum_cost"],
                                                                            before_row["sum_cost"]),
                      "from": per.start, "to": per.end})
    forecast = await run_in_threadpool(month_forecast, state.store, project, {}, None, "", tz_name, now, None)
    budgets = sorted(await budget_rows(request), key=lambda b: -(b["percent"] or 0))[:5]
    deliveries = await run_in_threadpool(lambda: state.store.list_deliveries(project, limit=10))
    return {"timezone": tz_name, "stack": stack, "stacks": p.STACKS, "cards": cards, "forecast": forecast,
            "chart": chart(results[6], [stack]), "days": OVERVIEW_DAYS, "window": window,
            "unpriced": results[7].rows, "month_from": month.start.date().isoformat(), "budgets": budgets,
            "deliveries": [dict(d.entry) for d in deliveries]}


def _change(current: Decimal | None, before: Decimal | None) -> Decimal | None:
    if current is None or before is None or before == 0:
        return None
    return ((current - before) * 100 / before).quantize(Decimal("0.1"))


def top_subjects(store: Store, project_id: str, budget: Budget, now: datetime, limit: int = PER_SUBJECTS) -> list[str]:
    """The subjects of a per-attribute budget that spent most in its current window (the budget's own spend
    query, grouped by its ``per`` attribute; on a tier, only users on that tier)."""
    assert budget.per is not None
    query = spend_query(replace(budget, per=None), "", project_id, now)
    filters = list(query.filters)
    if budget.tier is not None and budget.per == "user":
        users = tuple(store.list_user_tiers(project_id, budget.tier))
        if not users:
            return []
        filters.append(Filter("user", "in", users))
    grouped = replace(query, dimensions=(parse_dimension("observations", budget.per, "per"),), filters=tuple(filters),
                      order_by=(Order("sum_cost", True),), limit=limit)
    label = grouped.dimensions[0].label
    return [str(row[label]) for row in store.query(grouped).rows if row[label] is not None]


async def budget_rows(request: Request, subject_for: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every budget with where it stands (``BudgetService.standing``): project-wide ones; per-attribute ones for
    the subject in ``subject_for`` (``{"user": "u-1"}``) or, without it, for their top spenders this window."""
    state = state_of(request)
    project = key_of(request).project_id

    def load() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        now = state.clock()
        for budget in state.budgets.budgets(project):
            if budget.per is None:
                subjects = [""]
            elif subject_for is not None:
                subjects = [subject_for[budget.per]] if budget.per in subject_for else []
            else:
                subjects = top_subjects(state.store, project, budget, now)
                if not subjects:
                    rows.append({"budget": budget, "status": None, "percent": None, "subject": ""})
            for subject in subjects:
                status = state.budgets.standing(project, budget, subject)
                rows.append({"budget": budget, "status": status, "percent": status.percent, "subject": subject})
        return rows

    return await run_in_threadpool(load)


def breakdown_query(request: Request) -> dict[str, Any]:
    """The breakdown page's question as a native query (also what its CSV and the API comparison use)."""
    q = request.query_params
    now = state_of(request).clock()
    tz_name = p.timezone_of(q)
    first = p.dimension(q, "by", "model") or "model"
    second = p.dimension(q, "by2")
    dims = [first, *([second] if second and second != first else [])]
    gran = p.granularity(q)
    tokens = ["sum:input_tokens", "sum:output_tokens"] if p.text(q, "tokens") else []
    raw: dict[str, Any] = {**p.range_fields(q, now, tz_name, 7), "dimensions": dims,
                           "metrics": ["sum:cost", "count", "unpriced", *tokens],
                           "filters": p.filters(q), "limit": MAX_LIMIT}
    if gran:
        raw["granularity"] = gran
        raw["order_by"] = ["time asc", "sum_cost desc"]
    else:
        raw["order_by"] = ["sum_cost desc"]
    return raw


async def breakdown(request: Request) -> dict[str, Any]:
    raw = breakdown_query(request)
    (result,) = await run_queries(request, [raw])
    dims = [d.label for d in result.query.dimensions]
    total = sum((r["sum_cost"] or Decimal(0) for r in result.rows), Decimal(0))
    top = max((r["sum_cost"] or Decimal(0) for r in result.rows), default=Decimal(0))
    return {"raw": raw, "result": result, "dims": dims, "rows": result.rows, "total": total, "top": top,
            "tokens": len(raw["metrics"]) > 3,
            "granularity": raw.get("granularity", ""), "chart": chart(result, dims) if raw.get("granularity") else None,
            "dimensions": p.BREAKDOWN_DIMENSIONS, "filters": {n: p.text(request.query_params, n)
                                                              for n in p.FILTER_FIELDS}}


async def top_by(request: Request, dimension: str, default_days: int = 30) -> dict[str, Any]:
    """Top users or sessions by cost over the page's range."""
    q = request.query_params
    tz_name = p.timezone_of(q)
    window = p.range_fields(q, state_of(request).clock(), tz_name, default_days)
    raw = {**window, "dimensions": [dimension], "filters": p.filters(q),
           "metrics": ["sum:cost", "count", "unpriced"],
           "order_by": ["sum_cost desc", f"{dimension} asc"], "limit": 100}
    (result,) = await run_queries(request, [raw])
    return {"raw": raw, "rows": [r for r in result.rows if r[dimension] is not None], "window": window,
            "truncated": result.truncated, "dimension": dimension}


async def user_page(request: Request, user_id: str) -> dict[str, Any]:
    """What ``/v1/users/{id}/costs`` answers, plus the user's tier and budgets."""
    q = request.query_params
    tz_name = p.timezone_of(q)
    window = p.range_fields(q, state_of(request).clock(), tz_name, 30)
    base = {**window, "filters": [{"field": "user", "operator": "=", "value": user_id}]}
    totals, by_model, by_day = await run_queries(request, [
        {**base, "metrics": ["sum:cost", "count", "unpriced", "traces", "sessions"], "limit": 1},
        {**base, "dimensions": ["model"], "limit": MAX_LIMIT, "order_by": ["sum_cost desc"],
         "metrics": ["sum:cost", "count", "unpriced", "sum:input_tokens", "sum:output_tokens"]},
        {**base, "granularity": "day", "metrics": ["sum:cost"], "limit": MAX_LIMIT},
    ])
    state = state_of(request)
    tier = await run_in_threadpool(state.store.get_user_tier, key_of(request).project_id, user_id)
    return {"user": user_id, "window": window, "totals": totals.rows[0], "by_model": by_model.rows,
            "chart": chart(by_day, []), "tier": tier, "budgets": await budget_rows(request, {"user": user_id})}


async def traces(request: Request) -> dict[str, Any]:
    """The most expensive traces first (the question of ``GET /v1/traces``), with the page's filters.

    Two queries: the top trace ids by cost (cheap: no trace attributes), then those traces' attributes and
    figures (filtered by id). The answer is the one query's; at 1M events it takes a third of the time."""
    q = request.query_params
    tz_name = p.timezone_of(q)
    window = p.range_fields(q, state_of(request).clock(), tz_name, 7)
    trace_filters = [f for f in p.filters(q) if f["field"] in ("user", "session", "name", "environment", "tag")]
    order = ["sum_cost desc", "id asc"]
    top = {**window, "view": "traces", "dimensions": ["id"], "metrics": ["sum:cost"], "filters": trace_filters,
           "order_by": order, "limit": TRACES}
    (ids,) = await run_queries(request, [top])
    rows: list[dict[str, Any]] = []
    if ids.rows:
        raw = {**top, "dimensions": ["id", "name", "user", "session"], "metrics": TRACE_METRICS,
               "filters": [*trace_filters, {"field": "id", "operator": "in", "value": [r["id"] for r in ids.rows]}]}
        (result,) = await run_queries(request, [raw])
        rows = result.rows
    return {"raw": top, "rows": rows, "window": window,
            "filters": {n: p.text(q, n) for n in ("user", "session", "name", "environment", "tag")}}
