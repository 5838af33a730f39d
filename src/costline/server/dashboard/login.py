"""Signing in and out of the dashboard, and choosing a project for an admin-token session.

Sign-in takes a project's public and secret key (the same pair the API takes as HTTP Basic), or the local admin
token of ``<data_dir>/server.json`` as the secret with no public key. A failed attempt says only that the pair
was not accepted, never which half was wrong. Every form carries a CSRF token and is refused from another origin.
"""

from __future__ import annotations

import hmac
from typing import Final
from urllib.parse import parse_qs

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from costline.server.app import state_of
from costline.server.auth import hash_secret
from costline.server.dashboard.session import (
    ADMIN,
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_MINUTES,
    SESSION_HOURS,
    Session,
    admin_fingerprint,
    cookie_flags,
    login_token,
    login_token_ok,
    new_session,
    same_origin,
    seal_session,
)
from costline.server.dashboard.web import dashboard_of, render, viewer

router = APIRouter(include_in_schema=False)
MAX_FORM: Final = 16 * 1024
FAILED: Final = "Sign-in failed: that public key and secret key are not a valid pair."


async def read_form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {k: v[0] for k, v in parsed.items()}


def safe_next(target: str) -> str:
    """Only a path on this server (no scheme, no ``//host``, no backslash tricks)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target and "\n" not in target:
        return target
    return "/"


def _login_form(request: Request, message: str = "", status: int = 200, next_path: str = "/") -> Response:
    token, cookie = login_token(dashboard_of(request).key)
    response = render(request, "login.html", None, {"title": "Sign in", "csrf": token, "message": message,
                                                    "next": next_path, "hours": SESSION_HOURS}, status=status)
    response.set_cookie(LOGIN_COOKIE, cookie, max_age=LOGIN_MINUTES * 60, **cookie_flags(request))  # type: ignore[arg-type]
    return response


def forbidden(request: Request, message: str) -> Response:
    return render(request, "error.html", None, {"title": "Refused", "message": message}, status=403)


@router.get("/login")
async def login_page(request: Request) -> Response:
    return _login_form(request, next_path=safe_next(request.query_params.get("next", "/")))


@router.post("/login")
async def login(request: Request) -> Response:
    state = state_of(request)
    dash = dashboard_of(request)
    form = await read_form(request)
    next_path = safe_next(form.get("next", "/"))
    if not same_origin(request) or not login_token_ok(dash.key, form.get("csrf", ""),
                                                      request.cookies.get(LOGIN_COOKIE)):
        return forbidden(request, "The sign-in form expired or came from another site. Reload it and try again.")
    public, secret = form.get("public_key", "").strip(), form.get("secret_key", "").strip()
    now = state.clock()
    session: Session | None = None
    if secret and state.admin_token_hash and public in ("", ADMIN) and hmac.compare_digest(
            hash_secret(secret), state.admin_token_hash):
        projects = await run_in_threadpool(state.store.list_projects)
        only = projects[0].id if len(projects) == 1 else ""
        session = new_session(only, ADMIN, now, admin_fingerprint(dash.key, state.admin_token_hash))
    elif public and secret:
        key = await run_in_threadpool(state.store.find_key_by_public, public)
        if key is not None and hmac.compare_digest(key.secret_hash, hash_secret(secret)) and key.active(now):
            session = new_session(key.project_id, key.public_key, now)
    if session is None:
        return _login_form(request, FAILED, status=401, next_path=next_path)
    response = RedirectResponse(next_path if session.project_id else "/ui/project", status_code=303)
    response.set_cookie(COOKIE, seal_session(session, dash.key), max_age=SESSION_HOURS * 3600,
                        **cookie_flags(request))  # type: ignore[arg-type]
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


async def checked_form(request: Request, session: Session) -> dict[str, str] | Response:
    """The POSTed form when it carries the session's CSRF token and comes from this origin."""
    form = await read_form(request)
    if not same_origin(request) or not hmac.compare_digest(form.get("csrf", ""), session.csrf):
        return forbidden(request, "This form is not from your current session (missing or wrong CSRF token, or "
                                  "another site). Reload the page and try again.")
    return form


@router.post("/logout")
async def logout(request: Request) -> Response:
    who = await viewer(request)
    if isinstance(who, Response):
        return RedirectResponse("/login", status_code=303) if who.status_code == 303 else who
    form = await checked_form(request, who)
    if isinstance(form, Response):
        return form
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/ui/project")
async def project_page(request: Request) -> Response:
    who = await viewer(request)
    if isinstance(who, Response):
        return who
    if not who.admin:
        return RedirectResponse("/", status_code=303)
    projects = await run_in_threadpool(state_of(request).store.list_projects)
    return render(request, "project.html", who, {"title": "Choose a project", "projects": projects})


@router.post("/ui/project")
async def choose_project(request: Request) -> Response:
    who = await viewer(request)
    if isinstance(who, Response):
        return who
    form = await checked_form(request, who)
    if isinstance(form, Response):
        return form
    if not who.admin:
        return forbidden(request, "Only a session opened with the local admin token can switch projects.")
    state = state_of(request)
    project = await run_in_threadpool(state.store.get_project, form.get("project", ""))
    if project is None:
        return forbidden(request, "No such project.")
    session = Session(project.id, who.public_key, who.csrf, who.expires, who.admin_fp)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, seal_session(session, dashboard_of(request).key),
                        max_age=max(0, who.expires - int(state.clock().timestamp())), **cookie_flags(request))  # type: ignore[arg-type]
    return response
