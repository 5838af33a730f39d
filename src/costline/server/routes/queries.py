"""Native read routes (docs/api.md): ``/v1/metrics``, ``GET /v1/traces``, ``/v1/traces/{id}``,
``/v1/users/{id}/costs``, ``/v1/stats`` and ``/v1/events``.

Every answer is scoped to the key's project. The aggregate routes are queries of the core query model
(``Store.query``), so their numbers are the ones ``/v1/metrics`` gives; money and other decimals are exact
decimal strings, counts are numbers, and an unpriced cost is ``null`` with the unpriced count beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from costline.core.limits import EARLIEST, LATEST
from costline.core.query import (
    MAX_LIMIT,
    Dimension,
    Filter,
    Metric,
    Query,
    QueryError,
    QueryResult,
    parse_query,
    parse_time,
)
from costline.server.app import key_of, state_of
from costline.server.body import nul_path
from costline.server.native_views import (
    decimal_text,
    decode_cursor,
    encode_cursor,
    iso,
    observation_json,
    plain,
    result_rows,
    trace_json,
)
from costline.server.routes.langfuse import ExactJSONResponse, load_trace
from costline.store.base import OBSERVATION_FILTERS, Store

router = APIRouter()

#: longest ``query`` parameter accepted (decoded characters); the HTTP layer caps the request head at 16 KiB
MAX_QUERY_CHARS: Final = 8192
TRACE_ORDERS: Final[Mapping[str, str]] = {
    "cost": "sum_cost", "latency": "sum_latency", "observations": "sum_observations", "tokens": "sum_total_tokens",
}
MAX_TRACES: Final = 1000
MAX_EVENTS: Final = 1000
DEFAULT_EVENTS: Final = 100
TIMEFRAMES: Final[Mapping[str, timedelta | None]] = {
    "minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1), "all": None,
}
#: the observation types ``/v1/stats`` counts as requests (model calls)
REQUEST_TYPES: Final = ["generation", "embedding"]


# parameters ----------------------------------------------------------------------------------------------------

def check_params(request: Request, allowed: Sequence[str]) -> None:
    """Refuse an unknown query parameter by name (a misspelt filter must not be ignored silently)."""
    for name in request.query_params:
        if name not in allowed:
            known = f"use {', '.join(allowed)}" if allowed else "this route takes none"
            raise QueryError(f"{name}: unknown query parameter; {known}")


def json_param(request: Request, name: str = "query") -> Any:
    text = request.query_params.get(name)
    if text is None or not text.strip():
        raise QueryError(f"{name}: required; pass the query as URL-encoded JSON ({name}=%7B...%7D)")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"{name}: {len(text)} characters is over the {MAX_QUERY_CHARS} character limit")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise QueryError(f"{name}: not valid JSON: {exc}") from None
    where = nul_path(data, name) if "\\u0000" in text else None
    if where is not None:
        raise QueryError(f"{where}: contains a NUL character (\\u0000), which text in costline cannot hold")
    return data


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.strip().isdigit() or not low <= int(text) <= high:
        raise QueryError(f"{name}: expected an integer from {low} to {high}, got {text!r}")
    return int(text)


def choice_param(request: Request, name: str, choices: Sequence[str], default: str) -> str:
    value = request.query_params.get(name, default)
    if value not in choices:
        raise QueryError(f"{name}: unknown value {value!r}; use one of {', '.join(choices)}")
    return value


def range_params(request: Request) -> dict[str, Any]:
    """``from``/``to``/``timezone`` as native query fields (only those given)."""
    return {k: request.query_params[k] for k in ("from", "to", "timezone") if k in request.query_params}


def total(value: Any, unpriced: int) -> Any:
    """A summed cost: null only when something is unpriced and nothing is priced, else the exact sum."""
    if value is None:
        return None if unpriced else "0"
    return plain(value)


def quantity(value: Any) -> Any:
    return 0 if value is None else plain(value)


async def run_queries(request: Request, raws: Sequence[Mapping[str, Any]]) -> list[QueryResult]:
    state = state_of(request)
    key = key_of(request)
    now = state.clock()
    queries = [parse_query(raw, now=now, project_id=key.project_id) for raw in raws]

    def answer() -> list[QueryResult]:
        return [state.store.query(q) for q in queries]

    return await run_in_threadpool(answer)


# /v1/metrics ---------------------------------------------------------------------------------------------------

@router.get("/v1/metrics", summary="Answer a query of the query model (views, dimensions, metrics, filters)")
async def metrics(request: Request) -> JSONResponse:
    check_params(request, ("query",))
    (result,) = await run_queries(request, [json_param(request)])
    return JSONResponse({"query": result.query.describe(), "columns": list(result.columns),
                         "data": result_rows(result.query, result.rows), "truncated": result.truncated})


# traces --------------------------------------------------------------------------------------------------------

def _first_starts(store: Store, traces: QueryResult) -> dict[str, datetime]:
    """The first start time of each listed trace's observations in the query's range: their ids from one
    query, their rows from one read (a trace with more observations than that query returns is read alone)."""
    query = traces.query
    expected = {row["id"]: row["sum_observations"] for row in traces.rows}
    if not expected:
        return {}
    project = query.project_id or ""
    ids_query = replace(query, view="observations", dimensions=(Dimension("trace_id"), Dimension("id")),
                        metrics=(Metric("count", "count"),), order_by=(),
                        filters=(Filter("trace_id", "in", tuple(expected)),), limit=MAX_LIMIT)
    found: dict[str, list[str]] = {}
    for row in store.query(ids_query).rows:
        found.setdefault(row["trace_id"], []).append(row["id"])
    complete = [t for t, n in expected.items() if len(found.get(t, ())) == n]
    rows = store.get_observations(project, [i for t in complete for i in found[t]])
    starts: dict[str, datetime] = {}
    for o in rows.values():
        if o.trace_id not in starts or o.start_time < starts[o.trace_id]:
            starts[o.trace_id] = o.start_time
    for trace_id in expected.keys() - set(complete):
        times = [o.start_time for o in store.trace_observations(project, trace_id)
                 if (query.start is None or o.start_time >= query.start)
                 and (query.end is None or o.start_time < query.end)]
        if times:
            starts[trace_id] = min(times)
    return starts


@router.get("/v1/traces", summary="The most expensive (or slowest, largest) traces in a range")
async def list_traces(request: Request) -> JSONResponse:
    check_params(request, ("order_by", "limit", "from", "to", "timezone"))
    order = choice_param(request, "order_by", tuple(TRACE_ORDERS), "cost")
    limit = int_param(request, "limit", 10, 1, MAX_TRACES)
    raw = {
        "view": "traces", "dimensions": ["id", "name", "user", "session"],
        "metrics": ["sum:cost", "sum:observations", "unpriced", "sum:input_tokens", "sum:output_tokens",
                    "sum:total_tokens", "sum:latency"],
        "order_by": [f"{TRACE_ORDERS[order]} desc", "id asc"], "limit": limit, **range_params(request),
    }
    (result,) = await run_queries(request, [raw])
    starts = await run_in_threadpool(_first_starts, state_of(request).store, result)
    data = [
        {
            "id": row["id"], "name": row["name"], "user_id": row["user"], "session_id": row["session"],
            "total_cost": total(row["sum_cost"], row["unpriced"]), "observations": row["sum_observations"],
            "unpriced": row["unpriced"], "input_tokens": quantity(row["sum_input_tokens"]),
            "output_tokens": quantity(row["sum_output_tokens"]), "total_tokens": quantity(row["sum_total_tokens"]),
            "latency": decimal_text(row["sum_latency"]), "start_time": iso(starts.get(row["id"])),
        }
        for row in result.rows
    ]
    return JSONResponse({"query": result.query.describe(), "order_by": order, "data": data,
                         "truncated": result.truncated})


@router.get("/v1/traces/{trace_id:path}", summary="A trace: exact total, usage, attributes and every observation")
async def get_trace(request: Request, trace_id: str) -> JSONResponse:
    check_params(request, ())
    trace, observations = await load_trace(request, trace_id)
    if trace is None and not observations:
        return JSONResponse({"message": f"trace {trace_id!r} not found"}, status_code=404)
    return ExactJSONResponse(trace_json(trace, trace_id, observations))


# users and stats -----------------------------------------------------------------------------------------------

def _day_range(request: Request) -> dict[str, Any]:
    given = range_params(request)
    day = request.query_params.get("date")
    if day is None:
        return given
    if "from" in given or "to" in given:
        raise QueryError("date: give either date or from/to, not both")
    try:
        start = date.fromisoformat(day)
        following = start + timedelta(days=1)
    except (ValueError, OverflowError):
        raise QueryError(f"date: {day!r} is not a date (YYYY-MM-DD)") from None
    if not EARLIEST.date() <= start < LATEST.date():
        raise QueryError(f"date: {day!r} is out of range; use a day from year {EARLIEST.year} to {LATEST.year}")
    return {**given, "from": start.isoformat(), "to": following.isoformat()}


@router.get("/v1/users/{user_id:path}/costs", summary="A user's costs: total, by model and by operation")
async def user_costs(request: Request, user_id: str) -> JSONResponse:
    check_params(request, ("date", "from", "to", "timezone"))
    base = {"view": "observations", "filters": [{"field": "user", "operator": "=", "value": user_id}],
            **_day_range(request)}
    totals, by_model, by_name = await run_queries(request, [
        {**base, "metrics": ["sum:cost", "count", "unpriced"], "limit": 1},
        {**base, "dimensions": ["model"], "limit": MAX_LIMIT,
         "metrics": ["sum:cost", "count", "unpriced", "sum:input_tokens", "sum:output_tokens", "sum:total_tokens"]},
        {**base, "dimensions": ["name"], "metrics": ["sum:cost", "count", "unpriced"], "limit": MAX_LIMIT},
    ])
    row = totals.rows[0]
    return JSONResponse({
        "user_id": user_id, "query": totals.query.describe(),
        "total_cost": total(row["sum_cost"], row["unpriced"]), "count": row["count"], "unpriced": row["unpriced"],
        "by_model": [
            {"model": r["model"], "total_cost": total(r["sum_cost"], r["unpriced"]), "count": r["count"],
             "unpriced": r["unpriced"], "input_tokens": quantity(r["sum_input_tokens"]),
             "output_tokens": quantity(r["sum_output_tokens"]), "total_tokens": quantity(r["sum_total_tokens"])}
            for r in by_model.rows
        ],
        "by_operation": [
            {"name": r["name"], "total_cost": total(r["sum_cost"], r["unpriced"]), "count": r["count"],
             "unpriced": r["unpriced"]}
            for r in by_name.rows
        ],
        "truncated": by_model.truncated or by_name.truncated,
    })


@router.get("/v1/stats", summary="Spend over the last minute, hour, day (default) or all time")
async def stats(request: Request) -> JSONResponse:
    check_params(request, ("timeframe", "to"))
    timeframe = choice_param(request, "timeframe", tuple(TIMEFRAMES), "day")
    span = TIMEFRAMES[timeframe]
    base: dict[str, Any] = {"view": "observations",
                            "filters": [{"field": "type", "operator": "in", "value": REQUEST_TYPES}]}
    if span is None:
        if "to" in request.query_params:
            raise QueryError("to: timeframe=all covers all time; give to with minute, hour or day")
        base["all_time"] = True
    else:
        end = state_of(request).clock()
        if "to" in request.query_params:
            end = parse_time(request.query_params["to"], "to", UTC)
        base.update({"from": (end - span).isoformat(), "to": end.isoformat()})
    totals, by_model = await run_queries(request, [
        {**base, "limit": 1, "metrics": ["sum:cost", "count", "unpriced", "avg:cost", "sum:input_tokens",
                                         "sum:output_tokens", "sum:total_tokens"]},
        {**base, "dimensions": ["model"], "metrics": ["sum:cost", "count", "unpriced"], "limit": MAX_LIMIT},
    ])
    row = totals.rows[0]
    window: Query = totals.query
    return JSONResponse({
        "timeframe": timeframe, "from": iso(window.start), "to": iso(window.end),
        "requests": row["count"], "total_cost": total(row["sum_cost"], row["unpriced"]),
        "average_cost": decimal_text(row["avg_cost"]), "unpriced": row["unpriced"],
        "input_tokens": quantity(row["sum_input_tokens"]), "output_tokens": quantity(row["sum_output_tokens"]),
        "total_tokens": quantity(row["sum_total_tokens"]),
        "by_model": [{"model": r["model"], "total_cost": total(r["sum_cost"], r["unpriced"]),
                      "requests": r["count"], "unpriced": r["unpriced"]} for r in by_model.rows],
        "truncated": by_model.truncated,
    })


# /v1/events ----------------------------------------------------------------------------------------------------

EVENT_PARAMS: Final = ("from", "to", "limit", "cursor", *OBSERVATION_FILTERS)


@router.get("/v1/events", summary="Raw observations, newest first, a page at a time")
async def events(request: Request) -> JSONResponse:
    check_params(request, EVENT_PARAMS)
    params = request.query_params
    start = parse_time(params["from"], "from", UTC) if "from" in params else None
    end = parse_time(params["to"], "to", UTC) if "to" in params else None
    if start is not None and end is not None and start >= end:
        raise QueryError(f"from: {start.isoformat()} is not before to ({end.isoformat()})")
    limit = int_param(request, "limit", DEFAULT_EVENTS, 1, MAX_EVENTS)
    before = decode_cursor(params["cursor"]) if "cursor" in params else None
    filters = {name: params[name] for name in OBSERVATION_FILTERS if name in params}
    state = state_of(request)
    key = key_of(request)
    found = await run_in_threadpool(
        lambda: state.store.list_observations(key.project_id, start=start, end=end, filters=filters,
                                              before=before, limit=limit + 1)
    )
    page = found[:limit]
    cursor = encode_cursor(page[-1]) if len(found) > limit else None
    return ExactJSONResponse({"data": [observation_json(o) for o in page], "next_cursor": cursor})
