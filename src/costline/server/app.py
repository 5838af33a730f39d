"""The app factory: ``create_app(settings, store, book, clock)``. Nothing happens at import time."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from costline.control.alerts import AlertEngine
from costline.control.budgets import BudgetService
from costline.control.destinations import DestinationPolicy
from costline.core.resolve import PriceBook
from costline.errors import CostlineError
from costline.ingest.batch import IngestError
from costline.ingest.pipeline import Clock, Pipeline
from costline.server.auth import Authenticator, hash_secret
from costline.server.gate import Gate, SingleFlight
from costline.server.local_admin import PROJECT_HEADER
from costline.server.seals import Seals, load_seal_key
from costline.settings import Settings
from costline.store.base import ApiKey, Store, StoreError

if TYPE_CHECKING:
    from costline.server.ingest_workers import IngestWorkers

log = logging.getLogger(__name__)

#: where the Swagger UI and ReDoc assets are served from (fastapi-offline's copies: no CDN, /docs works offline)
DOCS_ASSETS = "/docs-assets"
#: routes that answer without a key when the server listens on loopback only (and the assets under DOCS_ASSETS)
OPEN_ON_LOOPBACK = frozenset({"/api/public/health", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})
#: routes about every project: the local admin token reaches them without naming a project (routes/admin.py)
ALL_PROJECT_ROUTES = frozenset({"/v1/projects", "/v1/export", "/v1/reprice", "/v1/purge"})


#: routes that authenticate themselves (AWS Signature V4: server/routes/cloud.py)
AWS_PREFIX = "/aws/"
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
    #: sealed secrets for the SigV4-signed Cost Explorer endpoint (server/seals.py)
    seals: Seals | None = None
    #: worker processes for large native batches and OTLP exports (server/ingest_workers.py; DuckDB)
    ingest_workers: IngestWorkers | None = None


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.costline
    return state


def key_of(request: Request) -> ApiKey:
    key: ApiKey = request.state.api_key
    return key


def is_admin(request: Request) -> bool:
    """True when the request carries the local admin token (server.json)."""
    return bool(getattr(request.state, "admin", False))


def costline_version() -> str:
    from importlib.metadata import version

    return version("costline")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def failure(request: Request, exc: BaseException) -> JSONResponse:
    """The answer to a request the server could not complete: the exception is logged with a new error id, and
    the body says only what happened in general and that id (``{"error", "error_id", "message"}``), never the
    database's or the exception's text, SQL or file paths. A store failure is a 503 (retry), anything else 500."""
    error_id = uuid.uuid4().hex
    unavailable = isinstance(exc, StoreError)
    log.error("%s %s failed (error id %s)", request.method, request.url.path, error_id, exc_info=exc)
    error = "the store is unavailable; try again" if unavailable else "internal error"
    return JSONResponse({"error": error, "error_id": error_id, "message": f"{error} (error id {error_id})"},
                        status_code=503 if unavailable else 500, headers={"Retry-After": "1"} if unavailable else None)


def _nul_in_url(request: Request) -> bool:
    """A NUL character in the path or query (no store can hold one in text)."""
    return "\x00" in request.url.path or b"%00" in request.scope.get("query_string", b"")


#: the public key an admin-token request carries (``request.state.api_key``); only it reaches /v1/admin/
ADMIN_PUBLIC_KEY = "local-admin"
ADMIN_PREFIX = "/v1/admin/"


def _admin_key(state: ServerState, request: Request) -> ApiKey | JSONResponse:
    """The project an admin-token request is about: the ``X-Costline-Project`` header, or the only one
    (``/v1/admin/`` routes name their project in the path)."""
    if request.url.path.startswith(ADMIN_PREFIX):
        return ApiKey("", ADMIN_PUBLIC_KEY, "", datetime.fromtimestamp(0, UTC))
    wanted = request.headers.get(PROJECT_HEADER)
    projects = state.store.list_projects()
    if wanted is None and len(projects) == 1:
        wanted = projects[0].id
    project = next((p for p in projects if p.id == wanted), None)
    if project is None:
        names = ", ".join(p.id for p in projects) or "none"
        return JSONResponse({"message": f"name the project: --project on the command line, the {PROJECT_HEADER} "
                                        f"header over HTTP (projects: {names})"}, status_code=400)
    return ApiKey(project.id, ADMIN_PUBLIC_KEY, "", project.created_at)


def create_app(settings: Settings, store: Store, book: PriceBook, clock: Clock = _utcnow,
               admin_token: str | None = None) -> FastAPI:
    """The server. ``admin_token``, when given, reaches every project (the local control file's token)."""
    from fastapi_offline import FastAPIOffline

    from costline.server import dashboard, prometheus
    from costline.server.dashboard.web import is_dashboard_path
    from costline.server.routes import (
        admin,
        admin_keys,
        alerts,
        budgets,
        cloud,
        langfuse,
        langfuse_metrics,
        langfuse_reads,
        native,
        otlp,
        queries,
    )

    app = FastAPIOffline(title="costline", version=costline_version(), docs_url="/docs", redoc_url="/redoc",
                         static_url=DOCS_ASSETS)
    pipeline = Pipeline(store, book, clock)
    budget_service = BudgetService(store, pipeline, clock, ttl=timedelta(seconds=settings.reservation_ttl_s))
    seals = Seals(store, load_seal_key(settings.seal_key, settings.data_dir))
    authenticator = Authenticator(store, clock, ttl_s=settings.key_cache_ttl_s)
    authenticator.on_secret = lambda key, secret: seals.remember(key, secret, clock())
    app.state.costline = ServerState(
        settings=settings,
        store=store,
        pipeline=pipeline,
        auth=authenticator,
        clock=clock,
        require_auth_everywhere=not is_loopback(settings.bind_host),
        budgets=budget_service,
        alerts=AlertEngine(store, budget_service, clock, interval_s=settings.alert_interval_s,
                           destinations=DestinationPolicy(settings.channel_allow_hosts),
                           reservation_keep=timedelta(seconds=settings.reservation_keep_s)),
        admin_token_hash=hash_secret(admin_token) if admin_token else None,
        seals=seals,
    )

    async def refuse_form_bodies(request: Request) -> Response | None:
        # dashboard forms are form bodies on purpose: they carry a CSRF token and an Origin check (server/dashboard)
        if request.method in ("POST", "PUT", "PATCH") and request.url.path not in OTLP_PATHS and \
                not is_dashboard_path(request.url.path):
            media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media in FORM_CONTENT_TYPES:
                return JSONResponse(
                    {"message": f"unsupported content type {media!r}: send the body as application/json"},
                    status_code=415,
                )
        return None

    lookups: SingleFlight[ApiKey | None] = SingleFlight()

    async def authenticate(request: Request) -> Response | None:
        state = state_of(request)
        path = request.url.path
        if path.startswith(AWS_PREFIX):  # AWS Signature V4, verified by the route over the body it signs
            return None
        if _nul_in_url(request):
            return JSONResponse({"message": "url: contains a NUL character (%00), which text in costline cannot "
                                            "hold"}, status_code=400)
        if is_dashboard_path(path):  # a session cookie or the API's keys, checked by the page (server/dashboard)
            return None
        open_route = (path in OPEN_ON_LOOPBACK or path.startswith(DOCS_ASSETS + "/")) and \
            not state.require_auth_everywhere
        header = request.headers.get("authorization")
        key: ApiKey | None = None
        scheme, _, token = (header or "").partition(" ")
        admin_token = bool(state.admin_token_hash) and scheme.lower() == "bearer" and hmac.compare_digest(
            hash_secret(token.strip()), state.admin_token_hash or "")
        request.state.admin = admin_token
        if admin_token and not (path in ALL_PROJECT_ROUTES and PROJECT_HEADER not in request.headers):
            admin = await run_in_threadpool(_admin_key, state, request)
            if isinstance(admin, JSONResponse):
                return admin
            key = admin
        elif not admin_token and state.auth.fast(header):
            key = state.auth.authenticate(header)
        elif not admin_token:  # a store lookup or a last-use write: off the event loop, once for a burst
            key = await lookups.run(header or "", lambda: state.auth.authenticate(header))
        if path.startswith(ADMIN_PREFIX) and key is not None and key.public_key != ADMIN_PUBLIC_KEY:
            return JSONResponse({"message": "the /v1/admin/ routes need the server's admin token (server.json)"},
                                status_code=403)
        if key is None and not admin_token and not open_route:
            return JSONResponse(
                {"message": "missing or invalid credentials: send HTTP Basic public_key:secret_key or "
                            "Authorization: Bearer <secret_key>"},
                status_code=401, headers={"WWW-Authenticate": 'Basic realm="costline"'},
            )
        request.state.api_key = key
        return None

    app.add_middleware(Gate, check=refuse_form_bodies)
    app.add_middleware(Gate, check=authenticate)  # added last: runs first

    @app.exception_handler(IngestError)
    async def ingest_error(request: Request, exc: IngestError) -> JSONResponse:
        return JSONResponse({"message": str(exc)}, status_code=exc.status)

    @app.exception_handler(CostlineError)
    async def costline_error(request: Request, exc: CostlineError) -> JSONResponse:
        if isinstance(exc, StoreError):  # the store failed, not the request: the client may retry
            return failure(request, exc)
        return JSONResponse({"message": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        return failure(request, exc)

    app.include_router(native.router)
    app.include_router(otlp.router)
    app.include_router(langfuse.router)
    app.include_router(langfuse_reads.router)
    app.include_router(queries.router)
    app.include_router(langfuse_metrics.router)
    app.include_router(budgets.router)
    app.include_router(alerts.router)
    app.include_router(cloud.router)
    app.include_router(admin.router)
    app.include_router(admin_keys.router)
    prometheus.install(app)
    dashboard.install(app, settings)
    return app
