"""Routes about the whole store (docs/api.md, "Projects and maintenance"): ``GET|POST /v1/projects``,
``GET /v1/export``, ``POST /v1/reprice`` and ``POST /v1/purge``.

They are what ``costline projects``, ``export``, ``reprice`` and ``purge`` call while ``costline serve`` owns the
store (a DuckDB file has one writer process). Projects, reprice and purge are admin operations: only the local
admin token of ``server.json`` reaches them (403 otherwise). An export takes a project's key (its own project)
or the admin token (every project, or the one named in ``X-Costline-Project``). The work is the library's
(``server.auth.create_project``, ``costline.export``, ``ingest.maintenance``), the same calls the commands make
on an open store.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from costline.core.query import parse_time
from costline.export import FORMATS, ExportSummary, export_observations
from costline.ingest.batch import IngestError
from costline.ingest.maintenance import purge_before, reprice_range
from costline.server.app import is_admin, state_of
from costline.server.auth import create_project, project_json
from costline.server.body import parse_json, read_body

router = APIRouter()

MAX_ADMIN_BODY: Final = 64 * 1024
#: the media type of each export format (FOCUS: of its container)
MEDIA_TYPES: Final[Mapping[str, str]] = {
    "csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet",
}
#: FOCUS exports name at most this many unpriced models and reasons in their summary header
MAX_SUMMARY_ITEMS: Final = 100
SUMMARY_HEADER: Final = "x-costline-export-summary"


def _forbidden() -> JSONResponse:
    return JSONResponse({"message": "this route needs the local admin token (server.json in the server's data "
                                    "directory); a project key cannot reach it"}, status_code=403)


async def _body(request: Request) -> Mapping[str, Any]:
    body = await read_body(request, MAX_ADMIN_BODY)
    raw = parse_json(body) if body.strip() else {}
    if not isinstance(raw, Mapping):
        raise IngestError("body: expected a JSON object")
    return raw


def _known(raw: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise IngestError(f"{unknown[0]}: unknown field; expected {', '.join(sorted(allowed))}")


# projects ------------------------------------------------------------------------------------------------------
@router.get("/v1/projects", summary="List projects (local admin token)")
async def list_projects(request: Request) -> JSONResponse:
    if not is_admin(request):
        return _forbidden()
    projects = await run_in_threadpool(state_of(request).store.list_projects)
    return JSONResponse({"data": [project_json(p) for p in projects]})


@router.post("/v1/projects", summary="Create a project and its keys (local admin token)", status_code=201)
async def create(request: Request) -> JSONResponse:
    if not is_admin(request):
        return _forbidden()
    raw = await _body(request)
    _known(raw, {"name"})
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise IngestError("name: expected a non-empty string")
    state = state_of(request)
    new = await run_in_threadpool(create_project, state.store, name, state.clock())
    return JSONResponse(new.to_json(), status_code=201)


# maintenance ---------------------------------------------------------------------------------------------------
@router.post("/v1/reprice", summary="Price stored observations again (local admin token)")
async def reprice(request: Request) -> JSONResponse:
    if not is_admin(request):
        return _forbidden()
    raw = await _body(request)
    _known(raw, {"from", "to", "model", "dry_run"})
    start, end = parse_time(raw.get("from"), "from", UTC), parse_time(raw.get("to"), "to", UTC)
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise IngestError("model: expected a glob such as gpt-4o*")
    dry_run = raw.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise IngestError("dry_run: expected true or false")
    if end <= start:
        raise IngestError("to: must be after from")
    state = state_of(request)
    summary = await run_in_threadpool(
        lambda: reprice_range(state.store, state.pipeline, start=start, end=end, model_glob=model, dry_run=dry_run,
                              now=state.clock()))
    return JSONResponse(summary.to_json())


@router.post("/v1/purge", summary="Delete observations older than a time (local admin token)")
async def purge(request: Request) -> JSONResponse:
    if not is_admin(request):
        return _forbidden()
    raw = await _body(request)
    _known(raw, {"before", "older_than_days"})
    state = state_of(request)
    if ("before" in raw) == ("older_than_days" in raw):
        raise IngestError("body: give exactly one of before (an ISO 8601 time) and older_than_days")
    if "before" in raw:
        before = parse_time(raw["before"], "before", UTC)
    else:
        days = raw["older_than_days"]
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise IngestError("older_than_days: expected a whole number of days, at least 1")
        before = state.clock() - timedelta(days=days)
    summary = await run_in_threadpool(lambda: purge_before(state.store, before, now=state.clock()))
    return JSONResponse(summary.to_json())


# export --------------------------------------------------------------------------------------------------------
def summary_header(summary: ExportSummary) -> str:
    """What a FOCUS export left out, as ASCII JSON for the ``X-Costline-Export-Summary`` header."""
    unpriced = sorted(summary.unpriced_by_model.items(), key=lambda item: (item[0] is None, item[0] or ""))
    left_out = sorted(summary.left_out.items())
    return json.dumps({
        "observations": summary.observations, "rows": summary.rows, "container": summary.container,
        "unpriced_by_model": [{"model": m, "count": n} for m, n in unpriced[:MAX_SUMMARY_ITEMS]],
        "left_out": [{"reason": r, "count": n, "cost": str(c)} for r, (n, c) in left_out[:MAX_SUMMARY_ITEMS]],
        "more": max(0, len(unpriced) - MAX_SUMMARY_ITEMS) + max(0, len(left_out) - MAX_SUMMARY_ITEMS),
    }, ensure_ascii=True, separators=(",", ":"))


@router.get("/v1/export", summary="Export the observations of a time range as a file")
async def export(request: Request) -> Any:
    params = request.query_params
    unknown = sorted(set(params) - {"from", "to", "format", "container"})
    if unknown:
        raise IngestError(f"{unknown[0]}: unknown parameter; expected from, to, format, container")
    fmt = params.get("format", "")
    if fmt not in FORMATS:
        raise IngestError(f"format: expected one of {', '.join(FORMATS)}")
    container = params.get("container", "parquet" if fmt == "parquet" else "csv")
    if container not in ("csv", "parquet") or (fmt != "focus" and "container" in params):
        raise IngestError("container: only for format=focus, csv or parquet")
    start, end = parse_time(params.get("from"), "from", UTC), parse_time(params.get("to"), "to", UTC)
    if end <= start:
        raise IngestError("to: must be after from")
    key = getattr(request.state, "api_key", None)
    project_id = key.project_id if key is not None else None
    ext = container if fmt == "focus" else fmt
    folder = Path(tempfile.mkdtemp(prefix="costline-export-"))
    target = folder / f"costline-export.{ext}"
    state = state_of(request)
    try:
        summary = await run_in_threadpool(
            lambda: export_observations(state.store, target, fmt, start=start, end=end, project_id=project_id))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    name = f"costline-{'focus-' if fmt == 'focus' else ''}{start:%Y%m%d}-{end:%Y%m%d}.{ext}"
    headers = {SUMMARY_HEADER: summary_header(summary),
               "x-costline-export-rows": str(summary.rows),
               "content-disposition": f'attachment; filename="{name}"'}
    return FileResponse(target, media_type=MEDIA_TYPES[ext], headers=headers,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
