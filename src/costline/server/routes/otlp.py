"""OTLP/HTTP traces at ``/v1/traces`` and ``/api/public/otel/v1/traces`` (protobuf or JSON, gzip)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from google.rpc import code_pb2, status_pb2
from starlette.concurrency import run_in_threadpool

from costline.ingest.batch import IngestError
from costline.ingest.otlp import decode_otlp, encode_response
from costline.server.app import ServerState, key_of, state_of
from costline.server.body import parse_json, read_body
from costline.server.ingest_workers import MIN_BODY
from costline.server.routes.workers import worker_prices

router = APIRouter()

#: HTTP status of a failed export -> google.rpc.Code of its Status body
_RPC_CODES = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED, 413: code_pb2.RESOURCE_EXHAUSTED,
              415: code_pb2.INVALID_ARGUMENT, 429: code_pb2.RESOURCE_EXHAUSTED, 503: code_pb2.UNAVAILABLE}


def encode_status(http_status: int, message: str, content_type: str) -> bytes:
    """The ``google.rpc.Status`` body of a failed export (OTLP/HTTP: "the response body MUST be the appropriate
    serialized Status"), in the request's content type: protobuf, or proto3 JSON for JSON requests."""
    code = int(_RPC_CODES.get(http_status, code_pb2.UNKNOWN))
    if "application/json" in (content_type or "").lower():
        return orjson.dumps({"code": code, "message": message})
    return bytes(status_pb2.Status(code=code, message=message).SerializeToString())


async def _export(request: Request) -> Response:
    state = state_of(request)
    key = key_of(request)
    content_type = request.headers.get("content-type", "")
    reply_type = "application/json" if "json" in content_type else "application/x-protobuf"
    try:
        body = await read_body(request, state.settings.max_body_bytes)
        if await _through_workers(state, key.project_id, body, content_type):
            return Response(encode_response(0, "", reply_type), media_type=reply_type)
        if "json" in reply_type and b"\\u0000" in body:
            parse_json(body)  # refuses a NUL character naming its place (protobuf text reaches the store's check)
        decoded = decode_otlp(body, content_type)
    except IngestError as exc:
        return Response(encode_status(exc.status, str(exc), reply_type), status_code=exc.status,
                        media_type=reply_type)
    await run_in_threadpool(state.pipeline.ingest, key.project_id, decoded, "otlp")
    message = "; ".join(f"{e.id}: {e.message}" for e in decoded.errors[:20])
    return Response(encode_response(len(decoded.errors), message, reply_type), media_type=reply_type)


async def _through_workers(state: ServerState, project_id: str, body: bytes, content_type: str) -> bool:
    """A large export prepared by a worker process and written (server/ingest_workers.py); False when it must
    go through the server's process (nothing was written)."""
    workers = state.ingest_workers
    if workers is None or len(body) < MIN_BODY:
        return False
    prices = await run_in_threadpool(worker_prices, state, project_id)  # both may read the store
    prepared = await workers.prepare(state.pipeline, project_id, body, prices, content_type) if prices else None
    if prepared is None:
        return False
    return await run_in_threadpool(state.pipeline.ingest_rows, project_id, prepared, "otlp") is not None


@router.post("/v1/traces", summary="OTLP/HTTP trace export")
async def export_traces(request: Request) -> Response:
    return await _export(request)


@router.post("/api/public/otel/v1/traces", summary="OTLP/HTTP trace export (Langfuse SDK path)")
async def export_traces_langfuse(request: Request) -> Response:
    return await _export(request)
