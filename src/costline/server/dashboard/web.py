"""The dashboard's plumbing: templates (Jinja2, autoescaped), security headers, and who is signed in.

A page is shown to a signed-in session (server/dashboard/session.py) or to a request with the API's own
credentials (HTTP Basic ``public:secret`` or ``Bearer <secret>``); anything else is sent to ``/login``. The
key found is put where the API routes find theirs (``request.state.api_key``), so the query helpers the API
uses answer for the same project.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode
from zoneinfo import available_timezones

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from costline.server.app import state_of
from costline.server.dashboard import params
from costline.server.dashboard.session import (
    COOKIE,
    Session,
    admin_fingerprint,
    open_session,
)
from costline.store.base import ApiKey

HERE: Final = Path(__file__).parent
STATIC: Final = "/ui/static"
#: only this server's own files: scripts and styles from STATIC, no inline script, no other origin
CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
              "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS: Final = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                           "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
NAV: Final = (("/", "Overview"), ("/ui/breakdown", "Breakdown"), ("/ui/users", "Users"), ("/ui/sessions", "Sessions"),
              ("/ui/traces", "Traces"), ("/ui/budgets", "Budgets & alerts"), ("/ui/cloud", "Cloud"),
              ("/ui/prices", "Prices"))


def is_dashboard_path(path: str) -> bool:
    """Paths the dashboard authenticates itself (the API's middleware lets them through)."""
    return path in ("/", "/login", "/logout") or path.startswith("/ui/")


@dataclass
class Dashboard:
    key: bytes
    env: jinja2.Environment


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = params.money
    env.filters["exact"] = params.exact
    env.filters["urlpart"] = lambda v: quote(str(v), safe="")
    env.globals["nav"] = NAV
    env.globals["static"] = STATIC
    env.globals["zones"] = sorted(available_timezones())
    env.globals["query_string"] = lambda **kw: urlencode({k: v for k, v in kw.items() if v not in (None, "")})
    return env


def dashboard_of(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


def render(request: Request, template: str, session: Session | None, context: dict[str, Any],
           status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    html = dashboard_of(request).env.get_template(template).render(
        request=request, session=session, path=request.url.path, **{"title": "costline", **context})
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def basic_csrf(key: bytes, api_key: ApiKey) -> str:
    return hmac.new(key, f"basic:{api_key.public_key}".encode(), hashlib.sha256).hexdigest()[:32]


async def viewer(request: Request) -> Session | Response:
    """The signed-in session (its key set on the request), or the response to send instead."""
    state = state_of(request)
    dash = dashboard_of(request)
    header = request.headers.get("authorization")
    if header:
        api_key = await run_in_threadpool(state.auth.authenticate, header)
        if api_key is None:
            return HTMLResponse("missing or invalid credentials", status_code=401, headers={
                **SECURITY_HEADERS, "WWW-Authenticate": 'Basic realm="costline"'})
        request.state.api_key = api_key
        return Session(api_key.project_id, api_key.public_key, basic_csrf(dash.key, api_key), 0)
    session = open_session(request.cookies.get(COOKIE), dash.key, state.clock())
    if session is None:
        return _to_login(request)
    if session.admin:
        if not state.admin_token_hash or not hmac.compare_digest(
                session.admin_fp, admin_fingerprint(dash.key, state.admin_token_hash)):
            return _to_login(request)
        project = await run_in_threadpool(state.store.get_project, session.project_id) if session.project_id else None
        if project is None:
            if request.url.path == "/ui/project":
                return session
            return RedirectResponse("/ui/project", status_code=303)
        request.state.api_key = ApiKey(project.id, "local-admin", "", project.created_at)
        return session
    api_key = await run_in_threadpool(state.store.find_key_by_public, session.public_key)
    if api_key is None or api_key.project_id != session.project_id or not api_key.active(state.clock()):
        return _to_login(request)  # the key was removed, revoked, or its rotation grace period ended
    request.state.api_key = api_key
    return session
