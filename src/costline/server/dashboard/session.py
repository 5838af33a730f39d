"""Dashboard sessions: a signed cookie after signing in with a project's keys (or the local admin token).

The cookie holds the project, the public key it was opened with, a random CSRF token and its expiry, as
base64url JSON followed by an HMAC-SHA256 of that text. The HMAC key is derived from the seal key
(``COSTLINE_SEAL_KEY`` or ``<data_dir>/seal.key``, 0600: server/seals.py), so every server sharing the seal key
accepts the same sessions and nobody without it can forge or alter one. A session lasts ``SESSION_HOURS`` and
ends earlier when its key is no longer in the store or is revoked (checked on every page) or, for an admin
session, when the server's admin token changes (it restarted). The cookie is ``HttpOnly``, ``SameSite=Lax``
(a link from an alert opens the page signed in; pages only read) and ``Secure`` when the request came over
HTTPS.

Forms are CSRF-safe twice over: every POST carries the session's token (sign-in: a token from a short-lived
cookie, double-submitted), and a POST whose ``Origin`` (or, without one, ``Referer``) is another origin is
refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request

COOKIE: Final = "costline_session"
LOGIN_COOKIE: Final = "costline_login"
SESSION_HOURS: Final = 12
LOGIN_MINUTES: Final = 30
#: public key recorded for a session opened with the local admin token
ADMIN: Final = "local-admin"
_CONTEXT: Final = b"costline dashboard session v1"


def session_key(seal_key: bytes) -> bytes:
    """The HMAC key of dashboard cookies, derived from (never equal to) the seal key."""
    return hmac.new(seal_key, _CONTEXT, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Session:
    project_id: str  # "" for an admin session that has not chosen a project yet
    public_key: str  # ADMIN for the local admin token
    csrf: str
    expires: int  # epoch seconds
    #: for an admin session: a fingerprint of the admin token it was opened with
    admin_fp: str = ""

    @property
    def admin(self) -> bool:
        return self.public_key == ADMIN


def new_session(project_id: str, public_key: str, now: datetime, admin_fp: str = "") -> Session:
    expires = int((now + timedelta(hours=SESSION_HOURS)).timestamp())
    return Session(project_id, public_key, secrets.token_urlsafe(24), expires, admin_fp)


def admin_fingerprint(key: bytes, admin_token_hash: str) -> str:
    return hmac.new(key, admin_token_hash.encode(), hashlib.sha256).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal_session(session: Session, key: bytes) -> str:
    payload = _b64(json.dumps([session.project_id, session.public_key, session.csrf, session.expires,
                               session.admin_fp], separators=(",", ":")).encode())
    mac = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}"


def open_session(text: str | None, key: bytes, now: datetime) -> Session | None:
    """The session in a cookie value, or None (absent, altered, malformed or expired)."""
    if not text or len(text) > 4096 or "." not in text:
        return None
    payload, _, mac = text.partition(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        project_id, public_key, csrf, expires, admin_fp = json.loads(_unb64(payload))
    except (binascii.Error, ValueError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (project_id, public_key, csrf, admin_fp)) or not isinstance(expires, int):
        return None
    if expires <= now.timestamp():
        return None
    return Session(project_id, public_key, csrf, expires, admin_fp)


def login_token(key: bytes) -> tuple[str, str]:
    """A fresh sign-in form token and the cookie value that vouches for it."""
    token = secrets.token_urlsafe(24)
    return token, _b64(hmac.new(key, b"login:" + token.encode(), hashlib.sha256).digest())


def login_token_ok(key: bytes, token: str, cookie: str | None) -> bool:
    if not token or not cookie:
        return False
    return hmac.compare_digest(cookie, _b64(hmac.new(key, b"login:" + token.encode(), hashlib.sha256).digest()))


def same_origin(request: Request) -> bool:
    """False when the request names another origin in ``Origin`` (or, lacking it, ``Referer``)."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.lower() == own
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == own
    return True


def cookie_flags(request: Request) -> dict[str, object]:
    return {"httponly": True, "samesite": "lax", "secure": request.url.scheme == "https", "path": "/"}
