"""Key admin routes (docs/api.md, "Keys"): list, create, revoke and rotate API keys of any project.

Only the server's admin token (``server.json``, server/local_admin.py) reaches ``/v1/admin/``; a project key
gets 403. The routes call ``server.keys`` in the thread pool and drop this server's key cache after a change
(other servers sharing the store see it within their ``COSTLINE_KEY_CACHE_TTL``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from costline.server import keys
from costline.server.app import state_of
from costline.server.body import parse_json, read_body

router = APIRouter()
MAX_ADMIN_BODY = 64 * 1024
T = TypeVar("T")


async def _call(action: Callable[[], T]) -> T | JSONResponse:
    try:
        result = await run_in_threadpool(action)
    except keys.KeyNotFoundError as exc:
        return JSONResponse({"message": str(exc)}, status_code=404)
    return result


async def _body(request: Request) -> Mapping[str, Any]:
    raw = await read_body(request, MAX_ADMIN_BODY)
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, Mapping):
        raise keys.KeyStateError("body: expected a JSON object")
    return body


@router.get("/v1/admin/keys", summary="List API keys (all projects, or ?project=ID) with creation and last use")
async def list_all_keys(request: Request) -> JSONResponse:
    state = state_of(request)
    project = request.query_params.get("project") or None
    found = await _call(lambda: keys.list_keys(state.store, project))
    if isinstance(found, JSONResponse):
        return found
    now = state.clock()
    return JSONResponse({"data": [keys.key_json(k, now) for k in found]})


@router.get("/v1/admin/projects/{project_id}/keys", summary="List a project's API keys")
async def list_project_keys(request: Request, project_id: str) -> JSONResponse:
    state = state_of(request)
    found = await _call(lambda: keys.list_keys(state.store, project_id))
    if isinstance(found, JSONResponse):
        return found
    now = state.clock()
    return JSONResponse({"data": [keys.key_json(k, now) for k in found]})


@router.post("/v1/admin/projects/{project_id}/keys", summary="Create an API key pair (the secret is shown once)")
async def create_key(request: Request, project_id: str) -> JSONResponse:
    state = state_of(request)
    await _body(request)
    now = state.clock()
    issued = await _call(lambda: keys.create_key(state.store, project_id, now))
    if isinstance(issued, JSONResponse):
        return issued
    return JSONResponse(keys.issued_json(issued, now), status_code=201)


@router.post("/v1/admin/keys/{public_key}/revoke", summary="Revoke an API key now")
async def revoke_key(request: Request, public_key: str) -> JSONResponse:
    state = state_of(request)
    await _body(request)
    now = state.clock()
    revoked = await _call(lambda: keys.revoke_key(state.store, public_key, now))
    if isinstance(revoked, JSONResponse):
        return revoked
    state.auth.forget()
    return JSONResponse(keys.key_json(revoked, now))


@router.post("/v1/admin/keys/{public_key}/rotate",
             summary="Issue a new pair for the key's project; the old key stops now or after grace_seconds")
async def rotate_key(request: Request, public_key: str) -> JSONResponse:
    state = state_of(request)
    body = await _body(request)
    grace = keys.parse_grace(body.get("grace_seconds", 0), "grace_seconds")
    now = state.clock()
    rotated = await _call(lambda: keys.rotate_key(state.store, public_key, now, grace))
    if isinstance(rotated, JSONResponse):
        return rotated
    old, issued = rotated
    state.auth.forget()
    return JSONResponse({"old": keys.key_json(old, now), "new": keys.issued_json(issued, now)}, status_code=201)
