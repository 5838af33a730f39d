"""Langfuse read routes: trace, observation and session lists (``langfuse.api.trace.list``, ``fetchTraces``,
``api.observations.get_many``, ``api.sessions.list``) and single observations and sessions.

Each list is a page of ids chosen by one core query, counted by another (``server/langfuse_reads.py``), then
its rows loaded by id (``Store.get_traces`` / ``traces_observations`` / ``get_observations``) and rendered as
Langfuse renders them. Costs are JSON numbers carrying the exact Decimal's digits (``ExactJSONResponse``); the
same figures as decimal strings are at costline's own routes (``/v1/traces/{id}``, docs/api.md).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from costline.core.events import Observation
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
