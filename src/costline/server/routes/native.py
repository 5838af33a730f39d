"""``POST /v1/ingest``: costline's own batch format (docs/api.md)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from costline.ingest.native import decode_native
from costline.ingest.pipeline import IngestResult
from costline.server.app import key_of, state_of
from costline.server.body import parse_json, read_body
from costline.server.ingest_workers import MIN_BODY, cost_entry
from costline.server.routes.workers import worker_prices

router = APIRouter()


@router.post("/v1/ingest", summary="Ingest events in costline's native format")
async def ingest(request: Request) -> Response:
    state = state_of(request)
    key = key_of(request)
    body = await read_body(request, state.settings.max_body_bytes)
    workers = state.ingest_workers
    if workers is not None and len(body) >= MIN_BODY:
        prices = await run_in_threadpool(worker_prices, state, key.project_id)  # both may read the store
        prepared = await workers.prepare(state.pipeline, key.project_id, body, prices) if prices else None
        if prepared is not None:
            written = await run_in_threadpool(state.pipeline.ingest_rows, key.project_id, prepared)
            if written is not None:
                costs = list(prepared.costs) if written.summary is not None else _costs(written)
                return _reply(len(prepared.accepted), [], costs)
    decoded = decode_native(parse_json(body))
    result = await run_in_threadpool(state.pipeline.ingest, key.project_id, decoded, "native")
    errors = [{"id": e.id, "message": e.message} for e in decoded.errors]
    return _reply(len(decoded.accepted), errors, _costs(result))


def _costs(result: IngestResult) -> list[dict[str, str | None]]:
    return [cost_entry(o) for o in result.observations]


def _reply(accepted: int, errors: list[dict[str, str]], costs: list[dict[str, str | None]]) -> Response:
    status = 200 if not errors else (207 if accepted else 400)
    # orjson: a reply of 1,000 costs renders in ~0.1 ms instead of ~1.4 ms with the standard library's json
    return Response(
        orjson.dumps({"accepted": accepted, "rejected": len(errors), "errors": errors, "costs": costs}),
        status_code=status, media_type="application/json",
    )
