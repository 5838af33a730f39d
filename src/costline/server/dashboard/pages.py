"""The dashboard's pages (docs/dashboard.md). Each one signs the viewer in, asks the figure helpers (the API's
query path) and renders a template; a bad parameter shows its message on the page with status 400.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from costline.core.query import QueryError
from costline.errors import CostlineError
from costline.server.dashboard import control_figures, figures
from costline.server.dashboard.params import csv_cell, exact
from costline.server.dashboard.web import SECURITY_HEADERS, render, viewer
from costline.server.native_views import plain

router = APIRouter(include_in_schema=False)


async def _page(request: Request, template: str, build: Callable[[], Awaitable[dict[str, Any] | None]],
                title: str) -> Response:
    who = await viewer(request)
    if isinstance(who, Response):
        return who
    try:
        context = await build()
    except (QueryError, CostlineError) as exc:
        return render(request, "error.html", who, {"title": title, "message": str(exc)}, status=400)
    if context is None:
        return render(request, "error.html", who, {"title": title, "message": "Not found."}, status=404)
    return render(request, template, who, {"title": title, **context})


@router.get("/")
async def overview(request: Request) -> Response:
    return await _page(request, "overview.html", lambda: figures.overview(request), "Overview")


@router.get("/ui/breakdown")
async def breakdown(request: Request) -> Response:
    if request.query_params.get("format") == "csv":
        return await breakdown_csv(request)
    return await _page(request, "breakdown.html", lambda: figures.breakdown(request), "Breakdown")


async def breakdown_csv(request: Request) -> Response:
    """The breakdown table as CSV: the same query, the same columns, exact amounts."""
    who = await viewer(request)
    if isinstance(who, Response):
        return who
    try:
        found = await figures.breakdown(request)
    except (QueryError, CostlineError) as exc:
        return Response(f"{exc}\n", status_code=400, media_type="text/plain")
    columns = list(found["result"].columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in found["rows"]:
        writer.writerow([csv_cell(exact(row[c]) if c.startswith("sum_") and row[c] is not None else plain(row[c]))
                         for c in columns])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        **SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="costline-breakdown.csv"'})


@router.get("/ui/users")
async def users(request: Request) -> Response:
    return await _page(request, "top.html", lambda: figures.top_by(request, "user"), "Users")


@router.get("/ui/users/{user_id:path}")
async def user(request: Request, user_id: str) -> Response:
    return await _page(request, "user.html", lambda: figures.user_page(request, user_id), "User")


@router.get("/ui/sessions")
async def sessions(request: Request) -> Response:
    return await _page(request, "top.html", lambda: figures.top_by(request, "session"), "Sessions")


@router.get("/ui/traces")
async def traces(request: Request) -> Response:
    return await _page(request, "traces.html", lambda: figures.traces(request), "Traces")


@router.get("/ui/traces/{trace_id:path}")
async def trace(request: Request, trace_id: str) -> Response:
    return await _page(request, "trace.html", lambda: control_figures.trace_page(request, trace_id), "Trace")


@router.get("/ui/budgets")
async def budgets(request: Request) -> Response:
    return await _page(request, "budgets.html", lambda: control_figures.budgets_page(request), "Budgets & alerts")


@router.get("/ui/cloud")
async def cloud(request: Request) -> Response:
    return await _page(request, "cloud.html", lambda: control_figures.cloud_page(request), "Cloud")


@router.get("/ui/prices")
async def prices(request: Request) -> Response:
    return await _page(request, "prices.html", lambda: control_figures.prices_page(request), "Prices")
