"""Asking a running ``costline serve`` when it owns the store (see server/local_admin.py): query answers for
``report`` and ``top``, JSON calls for ``projects``, ``reprice``, ``purge`` and the control commands, and export
files, all with the admin token of the server's ``server.json``."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from costline.core.query import MONEY_MEASURES, Query, QueryResult
from costline.errors import CostlineError
from costline.server.local_admin import PROJECT_HEADER, RunningServer, read_runtime_file
from costline.settings import Settings

TIMEOUT_SECONDS = 120
#: an export may take a while on the server before its first byte
EXPORT_TIMEOUT_SECONDS = 3600


class ServerError(CostlineError):
    """The server answered with an error status; ``answer`` is its JSON body when it had one."""

    def __init__(self, message: str, status: int, answer: Any) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer


def running_server(settings: Settings) -> RunningServer | None:
    """The live ``costline serve`` of the settings' data directory when it serves the settings' store."""
    server = read_runtime_file(settings.data_dir)
    return server if server is not None and server.store_url == settings.resolved_store_url else None


def _request(server: RunningServer, method: str, path: str, *, body: Any = None,
             params: Mapping[str, str] | None = None, project_id: str | None = None,
             accept: str = "application/json") -> urllib.request.Request:
    url = server.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
    headers = {"Authorization": f"Bearer {server.token}", "Accept": accept}
    if project_id is not None:
        headers[PROJECT_HEADER] = project_id
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    return urllib.request.Request(url, data=data, headers=headers, method=method)


def _failed(server: RunningServer, exc: urllib.error.HTTPError) -> ServerError:
    raw = exc.read()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    message = answer.get("message", str(exc)) if isinstance(answer, dict) else str(exc)
    message = str(message).replace(f"in the {PROJECT_HEADER} header", "with --project")
    return ServerError(message, exc.code, answer)


def call(server: RunningServer, method: str, path: str, *, body: Any = None,
         params: Mapping[str, str] | None = None, project_id: str | None = None, exact: bool = False) -> Any:
    """One JSON call; an error status raises ``ServerError`` with the server's message. ``exact``: JSON numbers
    with a fraction come back as Decimal."""
    request = _request(server, method, path, body=body, params=params, project_id=project_id)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as reply:
            return json.loads(reply.read(), parse_float=Decimal if exact else float)
    except urllib.error.HTTPError as exc:
        raise _failed(server, exc) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CostlineError(f"cannot reach the running server at {server.url}: {exc}") from None


def download(server: RunningServer, path: str, params: Mapping[str, str], target: Path, *,
             project_id: str | None = None) -> Mapping[str, str]:
    """Stream a file answer into ``target`` (through a hidden ``.partial`` file renamed when complete); the
    answer's headers."""
    request = _request(server, "GET", path, params=params, project_id=project_id, accept="*/*")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with urllib.request.urlopen(request, timeout=EXPORT_TIMEOUT_SECONDS) as reply, partial.open("wb") as f:
            while chunk := reply.read(1 << 20):
                f.write(chunk)
            headers = {k.lower(): v for k, v in reply.headers.items()}
        os.replace(partial, target)
    except urllib.error.HTTPError as exc:
        raise _failed(server, exc) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CostlineError(f"cannot reach the running server at {server.url}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return headers


def remote_query(server: RunningServer, raw: dict[str, Any], query: Query) -> QueryResult:
    """``GET /v1/metrics`` on ``server`` with its admin token; the rows come back with exact values."""
    try:
        body = call(server, "GET", "/v1/metrics", params={"query": json.dumps(raw)}, project_id=query.project_id,
                    exact=True)
    except ServerError as exc:
        raise CostlineError(f"the running server at {server.url} answered {exc.status}: {exc}") from None
    return QueryResult(query, tuple(body["columns"]), [_exact(query, row) for row in body["data"]],
                       bool(body.get("truncated")))


def _exact(query: Query, row: dict[str, Any]) -> dict[str, Any]:
    """Decimal strings back to values as ``Store.query`` gives them (money Decimal, integral quantities int)."""
    for metric in query.metrics:
        value = row.get(metric.label)
        if isinstance(value, str | Decimal):
            number = Decimal(value)
            keep_decimal = metric.measure in MONEY_MEASURES or metric.aggregation == "avg" or \
                metric.measure == "latency" or number != number.to_integral_value()
            row[metric.label] = number if keep_decimal else int(number)
    return row
