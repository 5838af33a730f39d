"""API keys: a project has a public key and a secret key; the secret is stored as its SHA-256 digest.

A project may have several keys; each can be revoked (at once, or at a later time when a rotation leaves the
old key a grace period). Requests authenticate with HTTP Basic ``public:secret`` (what the Langfuse SDK sends) or
``Authorization: Bearer <secret>``. Secrets are 32 random bytes, so a fast hash is enough (no password
stretching is needed against guessing), and lookups by digest make Bearer auth one index probe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from costline.errors import CostlineError
from costline.store.base import ApiKey, Project, Store

log = logging.getLogger(__name__)

PUBLIC_PREFIX = "pk-cl-"
SECRET_PREFIX = "sk-cl-"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewProject:
    project: Project
    public_key: str
    secret_key: str  # shown once, never stored

    def to_json(self) -> dict[str, Any]:
        """What ``POST /v1/projects`` and ``costline projects create --format json`` answer."""
        return {"project_id": self.project.id, "name": self.project.name,
                "created_at": self.project.created_at.isoformat(), "public_key": self.public_key,
                "secret_key": self.secret_key}


def project_json(project: Project) -> dict[str, Any]:
    """A project as ``GET /v1/projects`` and ``costline projects list --format json`` show it."""
    return {"id": project.id, "name": project.name, "created_at": project.created_at.isoformat()}


def create_project(store: Store, name: str, now: datetime) -> NewProject:
    if not name.strip():
        raise ValueError("a project needs a name")
    project = Project(id=uuid.uuid4().hex, name=name.strip(), created_at=now)
    key, secret_key = new_key(project.id, now)
    store.create_project(project, key)
    return NewProject(project, key.public_key, secret_key)


def new_key(project_id: str, now: datetime) -> tuple[ApiKey, str]:
    """A fresh key pair for the project: the record to store and the secret (shown once, never stored)."""
    public_key = PUBLIC_PREFIX + secrets.token_hex(12)
    secret_key = SECRET_PREFIX + secrets.token_urlsafe(32)
    return ApiKey(project_id, public_key, hash_secret(secret_key), now), secret_key


#: a key's last use is written at most this often per key and server
TOUCH_INTERVAL: Final = timedelta(seconds=60)
#: default seconds a looked-up key is trusted before the store is asked again (COSTLINE_KEY_CACHE_TTL)
DEFAULT_CACHE_TTL_S: Final = 5.0
CACHE_LIMIT: Final = 10_000


@dataclass(frozen=True, slots=True)
class _Cached:
    key: ApiKey | None
    until: float  # time.monotonic() after which the store is asked again


class Authenticator:
    """Resolves an Authorization header to an active API key.

    Lookups (hits and misses) are cached for ``ttl_s`` seconds, so a key revoked through any server sharing
    the store stops working here within ``ttl_s``; a key whose ``revoked_at`` passes while cached stops at that
    time. A key's use is written to the store at most once per ``TOUCH_INTERVAL``.
    """

    def __init__(self, store: Store, clock: Callable[[], datetime], *, ttl_s: float = DEFAULT_CACHE_TTL_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        #: called with a key and its secret after a lookup that saw the secret (seals it for SigV4)
        self.on_secret: Callable[[ApiKey, str], None] | None = None
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, _Cached] = {}
        self._touched: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def fast(self, header: str | None) -> bool:
        """True when ``authenticate(header)`` needs no store call (so it can run on the event loop)."""
        if not header:
            return True
        hit = self._cache.get(header)
        if hit is None or hit.until <= self._monotonic():
            return False
        return hit.key is None or not self._touch_due(hit.key, self.clock())

    def authenticate(self, header: str | None) -> ApiKey | None:
        if not header:
            return None
        hit = self._cache.get(header)
        if hit is None or hit.until <= self._monotonic():
            key = self._lookup(header)
            with self._lock:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                if self.ttl_s > 0:
                    self._cache[header] = _Cached(key, self._monotonic() + self.ttl_s)
        else:
            key = hit.key
        now = self.clock()
        if key is None or not key.active(now):
            return None
        if self._touch_due(key, now):
            self._touch(key, now)
        return key

    def forget(self) -> None:
        """Drop every cached lookup (this server changed a key)."""
        with self._lock:
            self._cache.clear()

    def _touch_due(self, key: ApiKey, now: datetime) -> bool:
        last = self._touched.get(key.public_key) or key.last_used_at
        return last is None or now - last >= TOUCH_INTERVAL

    def _touch(self, key: ApiKey, now: datetime) -> None:
        with self._lock:
            if not self._touch_due(key, now):
                return
            self._touched[key.public_key] = now
            if len(self._touched) >= CACHE_LIMIT:
                self._touched = {key.public_key: now}
        try:
            self.store.touch_key(key.public_key, now)
        except CostlineError as exc:  # bookkeeping: never refuse a request because it could not be noted
            log.warning("could not record the use of key %s: %s", key.public_key, exc)

    def _lookup(self, header: str) -> ApiKey | None:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            found = self.store.find_key_by_secret_hash(hash_secret(value))
            if found is not None and self.on_secret is not None and found.active(self.clock()):
                self.on_secret(found, value)
            return found
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            public, sep, secret = decoded.partition(":")
            if not sep:
                return None
            key = self.store.find_key_by_public(public)
            if key is not None and hmac.compare_digest(key.secret_hash, hash_secret(secret)):
                if self.on_secret is not None and key.active(self.clock()):
                    self.on_secret(key, secret)
                return key
        return None
