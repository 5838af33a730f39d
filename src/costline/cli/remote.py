"""Asking a running `costline serve` for query answers, when it owns the store (see server/local_admin.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from typing import Any

from costline.core.query import MONEY_MEASURES, Query, QueryResult
from costline.errors import CostlineError
from costline.server.local_admin import PROJECT_HEADER, RunningServer

TIMEOUT_SECONDS = 120


def remote_query(server: RunningServer, raw: dict[str, Any], query: Query) -> QueryResult:
    """``GET /v1/metrics`` on ``server`` with its admin token; the rows come back with exact values."""
    url = f"{server.url}/v1/metrics?{urllib.parse.urlencode({'query': json.dumps(raw)})}"
    headers = {"Authorization": f"Bearer {server.token}"}
    if query.project_id is not None:
        headers[PROJECT_HEADER] = query.project_id
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as reply:
            body = json.loads(reply.read(), parse_float=Decimal)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", str(exc))
        except ValueError:
            message = str(exc)
        raise CostlineError(f"the running server at {server.url} answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CostlineError(f"cannot reach the running server at {server.url}: {exc}") from None
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
