"""Langfuse-compatible REST: ingestion, scores, projects, health, models, traces (wire-formats.md §D)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from costline.core.events import Observation, Trace
from costline.ingest.batch import IngestError
from costline.ingest.langfuse import decode_ingestion, decode_scores
from costline.ingest.langfuse_shapes import dumps_json, entry_to_model, model_body_to_entry, trace_to_langfuse
from costline.server.app import costline_version, key_of, state_of
from costline.server.body import parse_json, read_body
from costline.server.langfuse_reads import Params, field_groups, with_groups
from costline.store.base import StoredPrice

router = APIRouter(prefix="/api/public")


async def load_trace(request: Request, trace_id: str) -> tuple[Trace | None, list[Observation]]:
    """The request's project's trace row (None when only observations arrived) and its observations."""
    state = state_of(request)
    project_id = key_of(request).project_id

    def load() -> tuple[Trace | None, list[Observation]]:
        traces = state.store.get_traces(project_id, [trace_id])
        return traces.get(trace_id), state.store.trace_observations(project_id, trace_id)

    return await run_in_threadpool(load)


class ExactJSONResponse(JSONResponse):
    """JSON whose Decimal amounts are written with their exact digits as JSON numbers."""

    def render(self, content: Any) -> bytes:
        return dumps_json(content)


@router.get("/health", summary="Health (no key needed on loopback)")
async def health() -> dict[str, str]:
    return {"status": "OK", "version": costline_version()}


@router.get("/projects", summary="The key's project (what the Langfuse SDK's auth_check() reads)")
async def projects(request: Request) -> dict[str, Any]:
    state = state_of(request)
    key = key_of(request)
    project = await run_in_threadpool(state.store.get_project, key.project_id)
    if project is None:  # pragma: no cover - a key always belongs to a project
        return {"data": []}
    item: dict[str, Any] = {"id": project.id, "name": project.name, "metadata": {},
                            "organization": {"id": "costline", "name": "costline"}}
    if project.retention_days:
        item["retentionDays"] = project.retention_days
    return {"data": [item]}


@router.post("/ingestion", summary="Langfuse batch ingestion (207 with successes and errors)")
async def ingestion(request: Request) -> JSONResponse:
    state = state_of(request)
    key = key_of(request)
    body = await read_body(request, state.settings.max_body_bytes)
    decoded = decode_ingestion(parse_json(body))
    await run_in_threadpool(state.pipeline.ingest, key.project_id, decoded, "langfuse")
    return JSONResponse(
        {
            "successes": [{"id": i, "status": 201} for i in decoded.accepted],
            "errors": [{"id": e.id, "status": e.status, "message": e.message, "error": e.message}
                       for e in decoded.errors],
        },
        status_code=207,
    )


@router.post("/scores", summary="Create scores (an object or an array)")
async def scores(request: Request) -> JSONResponse:
    state = state_of(request)
    key = key_of(request)
    body = await read_body(request, state.settings.max_body_bytes)
    data = parse_json(body)
    decoded = decode_scores(data)
    await run_in_threadpool(state.pipeline.ingest, key.project_id, decoded, "langfuse")
    if isinstance(data, dict):  # the v4 client and the Langfuse server: one score → {"id"}
        if decoded.errors:
            return JSONResponse({"message": decoded.errors[0].message}, status_code=400)
        return JSONResponse({"id": decoded.accepted[0]}, status_code=200)
    if decoded.errors:
        return JSONResponse(
            {"accepted": len(decoded.accepted), "rejected": len(decoded.errors),
             "errors": [{"message": f"{e.id}: {e.message}"} for e in decoded.errors]},
            status_code=207,
        )
    return JSONResponse({"message": "Accepted"}, status_code=202)


@router.get("/traces/{trace_id}", summary="A trace with its observations and costs")
async def get_trace(request: Request, trace_id: str) -> JSONResponse:
    groups = field_groups(Params(request.query_params.multi_items()))
    trace, observations = await load_trace(request, trace_id)
    if trace is None and not observations:
        return JSONResponse({"message": f"trace {trace_id!r} not found"}, status_code=404)
    return ExactJSONResponse(with_groups(trace_to_langfuse(trace, trace_id, observations), groups))


# -- models API, mapped onto the project's prices ----------------------------------------------------


@router.get("/models", summary="List the project's model prices")
async def list_models(request: Request, page: int = 1, limit: int = 50) -> ExactJSONResponse:
    state = state_of(request)
    key = key_of(request)
    if page < 1 or not 1 <= limit <= 100:
        raise IngestError("page must be >= 1 and limit between 1 and 100")
    prices = await run_in_threadpool(state.store.list_prices, key.project_id)
    items = [entry_to_model(p) for p in prices]
    start = (page - 1) * limit
    total = len(items)
    return ExactJSONResponse({"data": items[start:start + limit],
                              "meta": {"page": page, "limit": limit, "totalItems": total,
                                       "totalPages": -(-total // limit)}})


@router.post("/models", summary="Create a model price")
async def create_model(request: Request) -> JSONResponse:
    return await _put_model(request, uuid.uuid4().hex, create=True)


@router.put("/models/{model_id}", summary="Create or replace a model price")
async def put_model(request: Request, model_id: str) -> JSONResponse:
    return await _put_model(request, model_id, create=False)


async def _put_model(request: Request, model_id: str, *, create: bool) -> JSONResponse:
    state = state_of(request)
    key = key_of(request)
    body = parse_json(await read_body(request, state.settings.max_body_bytes))
    entry = model_body_to_entry(body, model_id=model_id)
    now = state.clock()

    def save() -> StoredPrice:
        existing = state.store.get_price(key.project_id, model_id)
        price = StoredPrice(key.project_id, model_id, entry, existing.created_at if existing else now, now)
        state.store.put_price(price)
        state.pipeline.prices_changed(key.project_id)
        return price

    price = await run_in_threadpool(save)
    return ExactJSONResponse(entry_to_model(price), status_code=200)


@router.get("/models/{model_id}", summary="One model price")
async def get_model(request: Request, model_id: str) -> JSONResponse:
    state = state_of(request)
    key = key_of(request)
    price = await run_in_threadpool(state.store.get_price, key.project_id, model_id)
    if price is None:
        return JSONResponse({"message": f"model {model_id!r} not found"}, status_code=404)
    return ExactJSONResponse(entry_to_model(price))


@router.delete("/models/{model_id}", summary="Delete a model price")
async def delete_model(request: Request, model_id: str) -> JSONResponse:
    state = state_of(request)
    key = key_of(request)

    def delete() -> bool:
        deleted = state.store.delete_price(key.project_id, model_id)
        state.pipeline.prices_changed(key.project_id)
        return deleted

    if not await run_in_threadpool(delete):
        return JSONResponse({"message": f"model {model_id!r} not found"}, status_code=404)
    return JSONResponse({"message": "Model successfully deleted"})
