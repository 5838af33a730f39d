"""The app factory: ``create_app(settings, store, book, clock)``. Nothing happens at import time."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from costline.control.alerts import AlertEngine
from costline.control.budgets import BudgetService
from costline.core.resolve import PriceBook
from costline.errors import CostlineError
from costline.ingest.batch import IngestError
from costline.ingest.pipeline import Clock, Pipeline
from costline.server.auth import Authenticator, hash_secret
from costline.server.local_admin import PROJECT_HEADER
from costline.settings import Settings
from costline.store.base import ApiKey, Store, StoreError

log = logging.getLogger(__name__)

#: routes that answer without a key when the server listens on loopback only
OPEN_ON_LOOPBACK = frozenset({"/api/public/health", "/docs", "/openapi.json", "/docs/oauth2-redirect"})
#: the content types a browser may send cross-site without a CORS preflight, with cached Basic credentials:
#: no route reads them, so a request that carries one is refused before it is authenticated (CSRF)
FORM_CONTENT_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
#: the OTLP routes answer an unsupported content type themselves, with a google.rpc.Status body
OTLP_PATHS = frozenset({"/v1/traces", "/api/public/otel/v1/traces"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServerState:
    settings: Settings
    store: Store
    pipeline: Pipeline
    auth: Authenticator
    clock: Clock
    require_auth_everywhere: bool
    budgets: BudgetService
    alerts: AlertEngine
    #: SHA-256 of the local admin token (server.json), or None
    admin_token_hash: str | None = None


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.costline
    return state


def key_of(request: Request) -> ApiKey:
    key: ApiKey = request.state.api_key
    return key


def costline_version() -> str:
    from importlib.metadata import version

    return version("costline")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _admin_key(state: ServerState, request: Request) -> ApiKey | JSONResponse:
    """The project an admin-token request is about: the ``X-Costline-Project`` header, or the only one."""
    wanted = request.headers.get(PROJECT_HEADER)
    projects = state.store.list_projects()
    if wanted is None and len(projects) == 1:
        wanted = projects[0].id
    project = next((p for p in projects if p.id == wanted), None)
    if project is None:
        names = ", ".join(p.id for p in projects) or "none"
        return JSONResponse({"message": f"name the project in the {PROJECT_HEADER} header (projects: {names})"},
                            status_code=400)
    return ApiKey(project.id, "local-admin", "", project.created_at)


def create_app(settings: Settings, store: Store, book: PriceBook, clock: Clock = _utcnow,
               admin_token: str | None = None) -> FastAPI:
    """The server. ``admin_token``, when given, reaches every project (the local control file's token)."""
    from costline.server import prometheus
    from costline.server.routes import alerts, budgets, langfuse, langfuse_metrics, native, otlp, queries

    app = FastAPI(title="costline", version=costline_version(), docs_url="/docs", redoc_url=None)
    pipeline = Pipeline(store, book, clock)
    budget_service = BudgetService(store, pipeline, clock, ttl=timedelta(seconds=settings.reservation_ttl_s))
    app.state.costline = ServerState(
        settings=settings,
        store=store,
        pipeline=pipeline,
        auth=Authenticator(store),
        clock=clock,
        require_auth_everywhere=not is_loopback(settings.bind_host),
        budgets=budget_service,
        alerts=AlertEngine(store, budget_service, clock, interval_s=settings.alert_interval_s),
        admin_token_hash=hash_secret(admin_token) if admin_token else None,
    )

    @app.middleware("http")
    async def refuse_form_bodies(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method in ("POST", "PUT", "PATCH") and request.url.path not in OTLP_PATHS:
            media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media in FORM_CONTENT_TYPES:
                return JSONResponse(
                    {"message": f"unsupported content type {media!r}: send the body as application/json"},
                    status_code=415,
                )
        return await call_next(request)

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        state = state_of(request)
        path = request.url.path
        open_route = path in OPEN_ON_LOOPBACK and not state.require_auth_everywhere
        header = request.headers.get("authorization")
        key: ApiKey | None
        scheme, _, token = (header or "").partition(" ")
        if state.admin_token_hash and scheme.lower() == "bearer" and hmac.compare_digest(
            hash_secret(token.strip()), state.admin_token_hash
        ):
            admin = await run_in_threadpool(_admin_key, state, request)
            if isinstance(admin, JSONResponse):
                return admin
            key = admin
        else:
            key = state.auth.authenticate(header)
        if key is None and not open_route:
            return JSONResponse(
                {"message": "missing or invalid credentials: send HTTP Basic public_key:secret_key or "
                            "Authorization: Bearer <secret_key>"},
                status_code=401, headers={"WWW-Authenticate": 'Basic realm="costline"'},
            )
        request.state.api_key = key
        return await call_next(request)

    @app.exception_handler(IngestError)
    async def ingest_error(request: Request, exc: IngestError) -> JSONResponse:
        return JSONResponse({"message": str(exc)}, status_code=exc.status)

    @app.exception_handler(CostlineError)
    async def costline_error(request: Request, exc: CostlineError) -> JSONResponse:
        if isinstance(exc, StoreError):  # the store failed, not the request: the client may retry
            log.error("store error on %s %s: %s", request.method, request.url.path, exc)
            return JSONResponse({"message": f"the store is unavailable: {exc}"}, status_code=503,
                                headers={"Retry-After": "1"})
        return JSONResponse({"message": str(exc)}, status_code=400)

    app.include_router(native.router)
    app.include_router(otlp.router)
    app.include_router(langfuse.router)
    app.include_router(queries.router)
    app.include_router(langfuse_metrics.router)
    app.include_router(budgets.router)
    app.include_router(alerts.router)
    prometheus.install(app)
    return app
