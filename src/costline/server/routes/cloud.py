"""Cloud routes (docs/cloud.md): billing imports (``POST /v1/cloud/imports``) and the AWS Cost Explorer JSON
protocol at ``/aws/ce`` (boto3's ``ce`` client with ``endpoint_url=http://HOST:PORT/aws/ce``), signed with AWS
Signature V4 using a project's public key as access key id and its secret key as secret access key.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from costline.cloud import explorer
from costline.cloud.expression import ValidationException, validate
from costline.cloud.files import BillingFileError
from costline.cloud.importer import BillingImportError, import_billing
from costline.cloud.ledger import OBSERVATION_TYPE
from costline.cloud.lines import FORMATS
from costline.cloud.report import by_keys, cloud_report, lint_context, lint_filter
from costline.core.limits import iso_utc
from costline.server import sigv4
from costline.server.app import key_of, state_of
from costline.server.body import read_body
from costline.store.base import ApiKey

log = logging.getLogger(__name__)
router = APIRouter()

CE_PATH: Final = "/aws/ce"
MAX_CE_BODY: Final = 1024 * 1024
TARGET_PREFIX: Final = "AWSInsightsIndexService."
_SUFFIXES: Final = (".csv.gz", ".csv", ".gz", ".parquet")
_JSON_11: Final = "application/x-amz-json-1.1"


def _suffix(filename: str | None) -> str:
    name = (filename or "").lower()
    return next((s for s in _SUFFIXES if name.endswith(s)), ".csv")


@router.post("/v1/cloud/imports", summary="Import a FOCUS or CUR billing file (the body is the file)")
async def import_file(request: Request) -> JSONResponse:
    state = state_of(request)
    fmt = request.query_params.get("format")
    if fmt is not None and fmt not in FORMATS:
        return JSONResponse({"message": f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}"}, 400)
    filename = request.query_params.get("filename")
    body = await read_body(request, state.settings.max_body_bytes)
    project = key_of(request).project_id
    # the file name only picks a suffix from a fixed list: nothing from the request reaches a path
    fd, name = tempfile.mkstemp(prefix="costline-import-", suffix=_suffix(filename))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        path = Path(name)
        summary = await run_in_threadpool(import_billing, state.store, project, [path], fmt, now=state.clock())
    except BillingImportError as exc:
        shown = name if filename is None else filename
        return JSONResponse({"message": "rows cannot be imported, nothing was written",
                             "errors": [e.replace(name, shown) for e in exc.errors]}, status_code=400)
    except BillingFileError as exc:
        return JSONResponse({"message": str(exc).replace(name, filename or "body")}, status_code=400)
    finally:
        Path(name).unlink(missing_ok=True)
    data = summary.as_json()
    data["files"] = [filename or "body"]
    return JSONResponse(data)


def _report(state: Any, project: str, start: datetime, end: datetime, keys: list[str],
            expr: Mapping[str, Any] | None) -> dict[str, Any]:
    lines = list(state.store.iter_observations(start=start, end=end, project_id=project, type_is=OBSERVATION_TYPE))
    report = cloud_report(lines, keys, dict(expr) if expr is not None else None)
    report["from"], report["to"] = start.isoformat(), end.isoformat()
    return report


def _cloud_filter(text: str | None, where: str) -> Mapping[str, Any] | None:
    if text is None:
        return None
    try:
        expr = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValidationException(f"{where}: not JSON") from None
    if isinstance(expr, Mapping) and set(expr) == {"Filter"}:  # a cost-filter.json holding {"Filter": ...}
        expr = expr["Filter"]
    validate(expr)
    return expr  # type: ignore[no-any-return]


@router.get("/v1/cloud/report", summary="Cloud spend by service, account, region, tag... (costline cloud report)")
async def report(request: Request) -> JSONResponse:
    state = state_of(request)
    q = request.query_params
    try:
        keys = by_keys(q.get("by", "service"))
        start, end = iso_utc(q.get("from", "")), iso_utc(q.get("to", ""))
        if start >= end:
            raise ValueError("from: must be before to (the end is exclusive)")
        expr = _cloud_filter(q.get("filter"), "filter")
    except ValidationException as exc:
        return JSONResponse({"message": f"filter: {exc}"}, status_code=400)
    except ValueError as exc:
        text = str(exc)
        message = text if text.startswith(("by:", "from:")) else "from, to: ISO 8601 date-times (the end exclusive)"
        return JSONResponse({"message": message}, status_code=400)
    body = await run_in_threadpool(_report, state, key_of(request).project_id, start, end, keys, expr)
    return JSONResponse(body)


def _lint(state: Any, project: str, expr: Mapping[str, Any]) -> list[str]:
    services, tag_keys = lint_context(state.store.iter_observations(project_id=project, type_is=OBSERVATION_TYPE))
    return lint_filter(expr, services, tag_keys)


@router.post("/v1/cloud/lint", summary="Check a Cost Explorer filter against the imported data (costline cloud lint)")
async def lint(request: Request) -> JSONResponse:
    state = state_of(request)
    body = await read_body(request, MAX_CE_BODY)
    try:
        expr = _cloud_filter(body.decode("utf-8", "replace"), "body")
    except ValidationException as exc:
        return JSONResponse({"message": str(exc)}, status_code=400)
    warnings = await run_in_threadpool(_lint, state, key_of(request).project_id, expr or {})
    return JSONResponse({"warnings": warnings})


# --- Cost Explorer ------------------------------------------------------------------------------------------
def _aws_error(kind: str, message: str, status: int = 400) -> Response:
    return Response(orjson.dumps({"__type": kind, "message": message}), status_code=status,
                    media_type=_JSON_11, headers={"x-amzn-ErrorType": kind})


def _load(state: Any, project: str, start: datetime, end: datetime) -> list[explorer.CostLine]:
    found = state.store.iter_observations(start=start, end=end, project_id=project, type_is=OBSERVATION_TYPE)
    return [explorer.cost_line(o) for o in found if o.provider == "aws"]


def _range(operation: str, request: Mapping[str, Any], today: date) -> tuple[datetime, datetime]:
    if operation == "GetCostForecast":
        end = datetime.combine(today, datetime.min.time(), UTC)
        return end - timedelta(days=30), end
    return explorer.time_period(request)


_OPERATIONS: Final[Mapping[str, Callable[..., dict[str, Any]]]] = {
    "GetCostAndUsage": explorer.get_cost_and_usage,
    "GetDimensionValues": explorer.get_dimension_values,
    "GetTags": explorer.get_tags,
    "GetCostForecast": explorer.get_cost_forecast,
}


def _answer(state: Any, key: ApiKey, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
    today = state.clock().date()
    start, end = _range(operation, request, today)
    lines = _load(state, key.project_id, start, end)
    if operation == "GetCostForecast":
        return explorer.get_cost_forecast(request, lines, today)
    return _OPERATIONS[operation](request, lines)


async def _signed_key(request: Request, body: bytes) -> ApiKey | Response:
    state = state_of(request)
    try:
        cred = sigv4.parse(request.headers.get("authorization"))
    except sigv4.SignatureError as exc:
        return _aws_error("IncompleteSignatureException", str(exc))
    key = await run_in_threadpool(state.store.find_key_by_public, cred.access_key)
    if key is not None and not key.active(state.clock()):
        key = None  # revoked (or past its rotation grace period)
    seals = state.seals
    secret = await run_in_threadpool(seals.secret_of, key) if key is not None and seals is not None else None
    if key is None or secret is None:
        return _aws_error("UnrecognizedClientException", "The security token included in the request is invalid. "
                          "(Use a costline public key that has authenticated once with its secret.)", 403)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        sigv4.verify(cred, secret, request.method, request.url.path, request.url.query, headers, body, state.clock())
    except sigv4.SignatureError as exc:
        return _aws_error("InvalidSignatureException", str(exc), 403)
    return key


@router.post(CE_PATH, summary="AWS Cost Explorer JSON protocol (GetCostAndUsage, GetDimensionValues, GetTags, "
                             "GetCostForecast) over imported AWS billing data")
async def cost_explorer(request: Request) -> Response:
    state = state_of(request)
    body = await read_body(request, MAX_CE_BODY)
    key = await _signed_key(request, body)
    if isinstance(key, Response):
        return key
    target = request.headers.get("x-amz-target", "")
    operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
    if operation not in _OPERATIONS:
        return _aws_error("UnknownOperationException", f"operation {target!r} is not served here; served: "
                          f"{', '.join(_OPERATIONS)}")
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return _aws_error("SerializationException", "the body is not JSON")
    if not isinstance(data, dict):
        return _aws_error("SerializationException", "the body is not a JSON object")
    try:
        answer = await run_in_threadpool(_answer, state, key, operation, data)
    except explorer.InvalidNextToken as exc:
        return _aws_error("InvalidNextTokenException", str(exc))
    except explorer.RequestChanged as exc:
        return _aws_error("RequestChangedException", str(exc))
    except explorer.DataUnavailable as exc:
        return _aws_error("DataUnavailableException", str(exc))
    except ValidationException as exc:
        return _aws_error("ValidationException", str(exc))
    return Response(orjson.dumps(answer), media_type=_JSON_11)
