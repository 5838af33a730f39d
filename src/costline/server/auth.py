"""API keys: a project has a public key and a secret key; the secret is stored as its SHA-256 digest.

Requests authenticate with HTTP Basic ``public:secret`` (what the Langfuse SDK sends) or
``Authorization: Bearer <secret>``. Secrets are 32 random bytes, so a fast hash is enough (no password
stretching is needed against guessing), and lookups by digest make Bearer auth one index probe.

A key found in the store is remembered for ``CACHE_TTL_S`` seconds (5), so a change to a key in the store (a
revocation) takes effect on every server within that time. The server looks keys up on its thread pool
(``authenticate``), never on the event loop; only the in-memory ``cached`` runs there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costline.store.base import ApiKey, Project, Store

#: seconds a key found in the store is used without asking the store again
CACHE_TTL_S = 5.0
PUBLIC_PREFIX = "pk-cl-"
SECRET_PREFIX = "sk-cl-"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def project_json(project: Project) -> dict[str, Any]:
    """A project as ``GET /v1/projects`` and ``costline projects list --format json`` show it."""
    return {"id": project.id, "name": project.name, "created_at": project.created_at.isoformat()}


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


def create_project(store: Store, name: str, now: datetime) -> NewProject:
    if not name.strip():
        raise ValueError("a project needs a name")
    project = Project(id=uuid.uuid4().hex, name=name.strip(), created_at=now)
    public_key = PUBLIC_PREFIX + secrets.token_hex(12)
    secret_key = SECRET_PREFIX + secrets.token_urlsafe(32)
    store.create_project(project, ApiKey(project.id, public_key, hash_secret(secret_key), now))
    return NewProject(project, public_key, secret_key)


class Authenticator:
    """Resolves an Authorization header to an API key; successful lookups are cached in memory for
    ``ttl_s`` seconds."""

    def __init__(self, store: Store, *, ttl_s: float = CACHE_TTL_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        #: called with a key and its secret after a lookup that saw the secret (seals it for SigV4)
        self.on_secret: Callable[[ApiKey, str], None] | None = None
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def cached(self, header: str | None) -> ApiKey | None:
        """The key remembered for ``header`` if it is still fresh; no I/O (safe on the event loop)."""
        hit = self._cache.get(header) if header else None
        if hit is None or hit[1] <= self._monotonic():
            return None
        return hit[0]

    def authenticate(self, header: str | None) -> ApiKey | None:
        """The key for ``header``: from the cache, else from the store (blocking: call it off the event loop)."""
        if not header:
            return None
        hit = self.cached(header)
        if hit is not None:
            return hit
        key = self._lookup(header)
        if key is not None:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[header] = (key, self._monotonic() + self.ttl_s)
        return key

    def _lookup(self, header: str) -> ApiKey | None:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            found = self.store.find_key_by_secret_hash(hash_secret(value))
            if found is not None and self.on_secret is not None:
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
                if self.on_secret is not None:
                    self.on_secret(key, secret)
                return key
        return None
