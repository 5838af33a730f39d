"""Langfuse-compatible metrics (wire-formats.md §D.3): ``GET /api/public/metrics`` (v1),
``GET /api/public/v2/metrics`` and ``GET /api/public/metrics/daily``, answered by the core query model.

Numbers are JSON numbers written with their exact decimal digits; an unpriced cost stays ``null``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from costline.core.query import MAX_LIMIT, QueryError, QueryResult, parse_time
from costline.server.app import key_of, state_of
from costline.server.langfuse_query import rows_out, translate
from costline.server.routes.langfuse import ExactJSONResponse
from costline.server.routes.queries import check_params, int_param, json_param, run_queries

router = APIRouter(prefix="/api/public")

DAILY_PARAMS: Final = ("page", "limit", "traceName", "userId", "tags", "environment", "fromTimestamp",
                       "toTimestamp")
#: with only ``toTimestamp``, daily metrics look this far back (day buckets are capped at 20,000)
DAILY_LOOKBACK: Final = timedelta(days=18_262)
DAY: Final = timedelta(days=1)


async def _metrics(request: Request, version: str) -> ExactJSONResponse:
    check_params(request, ("query",))
    raw = json_param(request)
    state = state_of(request)
    key = key_of(request)
    translated = translate(raw, version=version, now=state.clock(), project_id=key.project_id)
    result = await run_in_threadpool(state.store.query, translated.query)
    return ExactJSONResponse({"data": rows_out(translated, result)})


@router.get("/metrics", summary="Langfuse metrics query, v1 (observations and traces views)")
async def metrics_v1(request: Request) -> ExactJSONResponse:
    return await _metrics(request, "v1")


@router.get("/v2/metrics", summary="Langfuse metrics query, v2 (observations view)")
async def metrics_v2(request: Request) -> ExactJSONResponse:
    return await _metrics(request, "v2")


# daily ---------------------------------------------------------------------------------------------------------

def _daily_filters(request: Request) -> list[dict[str, Any]]:
    params = request.query_params
    filters: list[dict[str, Any]] = []
    if params.get("traceName"):
        filters.append({"field": "trace_name", "operator": "=", "value": params["traceName"]})
    if params.get("userId"):
        filters.append({"field": "user", "operator": "=", "value": params["userId"]})
    tags = [t for raw in params.getlist("tags") for t in raw.split(",") if t]
    if tags:
        filters.append({"field": "tag", "operator": "all of", "value": tags})
    environments = [e for raw in params.getlist("environment") for e in raw.split(",") if e]
    if environments:
        filters.append({"field": "environment", "operator": "in", "value": environments})
    return filters


def _daily_range(request: Request) -> dict[str, Any]:
    params = request.query_params
    start = parse_time(params["fromTimestamp"], "fromTimestamp", UTC) if params.get("fromTimestamp") else None
    end = parse_time(params["toTimestamp"], "toTimestamp", UTC) if params.get("toTimestamp") else None
    if start is None and end is None:
        return {"all_time": True}
    if start is None:
        assert end is not None
        start = end - DAILY_LOOKBACK
    if end is not None and start >= end:
        raise QueryError("fromTimestamp: must be before toTimestamp")
    if end is None and start >= state_of(request).clock():
        raise QueryError("fromTimestamp: is in the future; give toTimestamp too")
    return {"from": start.isoformat(), **({"to": end.isoformat()} if end is not None else {})}


def _total(value: Any, unpriced: int) -> Any:
    return value if value is not None or unpriced else 0


def _usage(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "model": row["model"], "inputUsage": row["sum_input_tokens"] or 0,
        "outputUsage": row["sum_output_tokens"] or 0, "totalUsage": row["sum_total_tokens"] or 0,
        "countObservations": row["count"], "countTraces": row["traces"],
        "totalCost": _total(row["sum_cost"], row["unpriced"]),
    }


@router.get("/metrics/daily", summary="Langfuse daily metrics: cost, counts and usage by model per UTC day")
async def daily(request: Request) -> ExactJSONResponse:
    check_params(request, DAILY_PARAMS)
    page = int_param(request, "page", 1, 1, 1_000_000)
    limit = int_param(request, "limit", 50, 1, 100)
    base: dict[str, Any] = {"view": "observations", "granularity": "day", "filters": _daily_filters(request),
                            "limit": MAX_LIMIT, "order_by": ["time desc"]}
    given = _daily_range(request)
    (days,) = await run_queries(request, [{**base, **given, "metrics": ["count", "traces", "sum:cost", "unpriced"]}])
    shown = days.rows[(page - 1) * limit: page * limit]
    by_day: dict[str, list[dict[str, Any]]] = {}
    if shown:
        models = await run_queries(request, [{
            **base, **_page_range(days, shown), "dimensions": ["model"],
            "metrics": ["count", "traces", "sum:cost", "unpriced", "sum:input_tokens", "sum:output_tokens",
                        "sum:total_tokens"],
        }])
        for row in models[0].rows:
            by_day.setdefault(row["time"], []).append(_usage(row))
    total_items = len(days.rows)
    return ExactJSONResponse({
        "data": [
            {"date": row["time"][:10], "countTraces": row["traces"], "countObservations": row["count"],
             "totalCost": _total(row["sum_cost"], row["unpriced"]), "usage": by_day.get(row["time"], [])}
            for row in shown
        ],
        "meta": {"page": page, "limit": limit, "totalItems": total_items, "totalPages": -(-total_items // limit)},
    })


def _page_range(days: QueryResult, shown: list[dict[str, Any]]) -> dict[str, Any]:
    """The days on the page, within the queried range (the by-model query reads only those)."""
    start = datetime.fromisoformat(shown[-1]["time"]).astimezone(UTC)
    end = datetime.fromisoformat(shown[0]["time"]).astimezone(UTC) + DAY
    if days.query.start is not None:
        start = max(start, days.query.start)
    if days.query.end is not None:
        end = min(end, days.query.end)
    return {"from": start.isoformat(), "to": end.isoformat()}
