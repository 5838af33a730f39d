"""Langfuse read routes: trace, observation and session lists (``langfuse.api.trace.list``, ``fetchTraces``,
``api.observations.get_many``, ``api.sessions.list``) and single observations and sessions.

Each list is a page of ids chosen by one core query, counted by another (``server/langfuse_reads.py``), then
its rows loaded by id (``Store.get_traces`` / ``traces_observations`` / ``get_observations``) and rendered as
Langfuse renders them. Costs are JSON numbers carrying the exact Decimal's digits (``ExactJSONResponse``); the
same figures as decimal strings are at costline's own routes (``/v1/traces/{id}``, docs/api.md).
"""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from costline.core.events import Observation
from costline.core.query import QueryError
from costline.ingest.langfuse_shapes import observation_to_langfuse, trace_to_langfuse
from costline.server import langfuse_reads as reads
from costline.server.app import key_of, state_of
from costline.server.langfuse_query import langfuse_time
from costline.server.routes.langfuse import ExactJSONResponse

router = APIRouter(prefix="/api/public")


def _traces(request: Request, project_id: str, trace_ids: list[str]) -> list[dict[str, Any]]:
    """The ``TraceWithFullDetails`` of each id, in the given order (ids with neither row nor observations
    skipped: deleted between the two reads)."""
    store = state_of(request).store
    rows = store.get_traces(project_id, trace_ids)
    by_trace: dict[str, list[Observation]] = defaultdict(list)
    for o in store.traces_observations(project_id, trace_ids):
        by_trace[o.trace_id].append(o)
    return [trace_to_langfuse(rows.get(t), t, by_trace[t], project_id=project_id)
            for t in trace_ids if t in rows or by_trace[t]]


def _run(request: Request, page: reads.Page) -> tuple[list[dict[str, Any]], int]:
    """The page's result rows and the count of all matching rows (two queries)."""
    store = state_of(request).store
    return store.query(page.rows).rows, int(store.query(page.count).rows[0][page.count_label])


def _reply(items: list[dict[str, Any]], total: int, page: reads.Page) -> ExactJSONResponse:
    return ExactJSONResponse({"data": items, "meta": page.meta(total)})


@router.get("/traces", summary="List traces (Langfuse `trace.list` / `fetchTraces`)")
async def list_traces(request: Request) -> JSONResponse:
    state = state_of(request)
    project_id = key_of(request).project_id
    params = reads.Params(request.query_params.multi_items())
    page = reads.traces_page(params, now=state.clock(), project_id=project_id)
    groups = reads.field_groups(params)

    def load() -> tuple[list[dict[str, Any]], int]:
        rows, total = _run(request, page)
        traces = _traces(request, project_id, [str(r["id"]) for r in rows])
        return [reads.trace_item(t, groups, project_id) for t in traces], total

    return _reply(*await run_in_threadpool(load), page)


@router.get("/observations", summary="List observations, newest first (Langfuse `observations.get_many`)")
async def list_observations(request: Request) -> JSONResponse:
    state = state_of(request)
    project_id = key_of(request).project_id
    page = reads.observations_page(reads.Params(request.query_params.multi_items()), now=state.clock(),
                                   project_id=project_id)

    def load() -> tuple[list[dict[str, Any]], int]:
        rows, total = _run(request, page)
        ids = [str(r["id"]) for r in rows]
        found = state.store.get_observations(project_id, ids)
        return [observation_to_langfuse(found[i]) for i in ids if i in found], total

    return _reply(*await run_in_threadpool(load), page)


#: field groups of ``GET /api/public/v2/observations`` → the members of each (Langfuse's ``ObservationV2``)
V2_GROUPS: dict[str, tuple[str, ...]] = {
    "core": ("id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"),
    "basic": ("name", "level", "statusMessage", "version", "environment", "userId", "sessionId"),
    "time": ("completionStartTime", "createdAt", "updatedAt"),
    "io": ("input", "output"),
    "metadata": ("metadata",),
    "model": ("model", "internalModelId", "modelParameters"),
    "usage": ("usageDetails", "costDetails", "totalCost", "usagePricingTierName"),
    "prompt": ("promptId", "promptName", "promptVersion"),
    "metrics": ("latency", "timeToFirstToken"),
    "trace_context": ("tags", "release", "traceName"),
}
#: the v2 parameters read here, not by the v1 list's filters
_V2_ONLY = frozenset({"cursor", "fields", "expandMetadata", "parseIoAsJson", "sessionId", "isRootObservation"})


def _v2_cursor(text: str | None) -> int:
    """The page a v2 cursor points at (an opaque base64 of ``{"page": n}``)."""
    if text is None or not text.strip():
        return 1
    try:
        page = int(orjson.loads(base64.urlsafe_b64decode(text.encode()))["page"])
    except (ValueError, KeyError, TypeError):
        raise QueryError("cursor: not a cursor this server gave") from None
    if not 1 <= page <= 1_000_000:
        raise QueryError("cursor: not a cursor this server gave")
    return page


def _v2_item(obs: Observation, groups: frozenset[str], project_id: str) -> dict[str, Any]:
    full = observation_to_langfuse(obs)
    full.update(projectId=project_id, userId=obs.user_id, sessionId=obs.session_id,
                totalCost=full.get("calculatedTotalCost"), internalModelId=full.get("modelId"),
                usagePricingTierName=None, tags=list(obs.tags), release=obs.release, traceName=None,
                createdAt=full.get("startTime"), updatedAt=full.get("endTime") or full.get("startTime"))
    return {name: full.get(name) for group in groups for name in V2_GROUPS[group]}


@router.get("/v2/observations", summary="List observations with a cursor and field groups (Langfuse SDK 5 "
                                        "`observations.get_many`)")
async def list_observations_v2(request: Request) -> JSONResponse:
    state = state_of(request)
    project_id = key_of(request).project_id
    items = request.query_params.multi_items()
    params = reads.Params(items)
    if params.one("parseIoAsJson") in ("true", "True", "1"):
        raise QueryError("parseIoAsJson: deprecated in Langfuse's v2 API; remove it")
    text = params.one("fields")
    groups = {g.strip() for g in (text or "core,basic").split(",") if g.strip()}
    unknown = sorted(groups - set(V2_GROUPS))
    if unknown:
        raise QueryError(f"fields: unknown field group {unknown[0]!r}; use a comma list of {', '.join(V2_GROUPS)}")
    chosen = frozenset({"core", *groups})
    page_number = _v2_cursor(params.one("cursor"))
    v1 = [(k, v) for k, v in items if k not in _V2_ONLY and k != "page"] + [("page", str(page_number))]
    page = reads.observations_page(reads.Params(v1), now=state.clock(), project_id=project_id)

    def load() -> tuple[list[dict[str, Any]], int]:
        rows, total = _run(request, page)
        ids = [str(r["id"]) for r in rows]
        found = state.store.get_observations(project_id, ids)
        return [_v2_item(found[i], chosen, project_id) for i in ids if i in found], total

    data, total = await run_in_threadpool(load)
    meta: dict[str, Any] = {}
    if page.page * page.limit < total:
        meta["cursor"] = base64.urlsafe_b64encode(orjson.dumps({"page": page.page + 1})).decode()
    return ExactJSONResponse({"data": data, "meta": meta})


@router.get("/observations/{observation_id}", summary="One observation with its usage and costs")
async def get_observation(request: Request, observation_id: str) -> JSONResponse:
    state = state_of(request)
    project_id = key_of(request).project_id
    found = await run_in_threadpool(state.store.get_observations, project_id, [observation_id])
    if observation_id not in found:
        return JSONResponse({"message": f"observation {observation_id!r} not found"}, status_code=404)
    return ExactJSONResponse(observation_to_langfuse(found[observation_id]))


@router.get("/sessions", summary="List sessions, newest first (Langfuse `sessions.list`)")
async def list_sessions(request: Request) -> JSONResponse:
    state = state_of(request)
    project_id = key_of(request).project_id
    params = reads.Params(request.query_params.multi_items())
    now = state.clock()
    page = reads.sessions_page(params, now=now, project_id=project_id)
    environments = params.many("environment")

    def load() -> tuple[list[dict[str, Any]], int]:
        rows, total = _run(request, page)
        if not rows:
            return [], total
        first_env: dict[str, str] = {}
        envs = reads.session_environments([str(r["session"]) for r in rows], environments, now=now,
                                          project_id=project_id, start=page.start, end=page.end)
        for row in state.store.query(envs).rows:
            first_env.setdefault(str(row["session"]), str(row["environment"] or "default"))
        return [{"id": r["session"], "createdAt": langfuse_time(r[reads.TIME_LABEL]), "projectId": project_id,
                 "environment": first_env.get(str(r["session"]), "default")} for r in rows], total

    return _reply(*await run_in_threadpool(load), page)


@router.get("/sessions/{session_id}", summary="A session with its traces")
async def get_session(request: Request, session_id: str) -> JSONResponse:
    state = state_of(request)
    project_id = key_of(request).project_id
    query = reads.session_traces(session_id, now=state.clock(), project_id=project_id)

    def load() -> tuple[list[dict[str, Any]], str | None]:
        rows = state.store.query(query).rows
        ids = [str(r["id"]) for r in rows]
        return _traces(request, project_id, ids), (langfuse_time(rows[0][reads.TIME_LABEL]) if rows else None)

    traces, created = await run_in_threadpool(load)
    if not traces or created is None:
        return JSONResponse({"message": f"session {session_id!r} not found"}, status_code=404)
    return ExactJSONResponse({"id": session_id, "createdAt": created, "projectId": project_id,
                              "environment": traces[0]["environment"] or "default",
                              "traces": [reads.trace_core(t) for t in traces]})
