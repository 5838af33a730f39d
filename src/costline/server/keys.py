"""Key lifecycle over a store: list, create, revoke, rotate; what the admin routes and ``costline keys`` share.

A project may hold several keys. Revoking one sets its ``revoked_at`` to now; rotating one creates a new pair
for the same project and revokes the old key now or after a grace period, in one transaction. The new secret
is returned once and only its SHA-256 digest is stored. Servers that share the store see a revocation within
their key cache TTL (``COSTLINE_KEY_CACHE_TTL``, 5 s by default; server/auth.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from costline.errors import CostlineError
from costline.server.auth import new_key
from costline.store.base import ApiKey, Store

#: the longest grace period a rotation may leave the old key
MAX_GRACE = timedelta(days=30)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class KeyNotFoundError(CostlineError, LookupError):
    """No such key or project."""


class KeyStateError(CostlineError, ValueError):
    """A key operation that cannot be done (the message says why)."""


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key pair: the stored record and the secret, shown once."""

    key: ApiKey
    secret_key: str


def key_json(key: ApiKey, now: datetime) -> dict[str, Any]:
    """A key as listed (never its secret or digest)."""
    return {
        "public_key": key.public_key, "project_id": key.project_id, "created_at": key.created_at.isoformat(),
        "last_used_at": None if key.last_used_at is None else key.last_used_at.isoformat(),
        "revoked_at": None if key.revoked_at is None else key.revoked_at.isoformat(),
        "active": key.active(now),
    }


def issued_json(issued: IssuedKey, now: datetime) -> dict[str, Any]:
    return {**key_json(issued.key, now), "secret_key": issued.secret_key}


def parse_grace(value: Any, field: str = "grace") -> timedelta:
    """A grace period: seconds as a number, or text such as ``90s``, ``30m``, ``1h``, ``2d``; at most 30 days."""
    if isinstance(value, bool) or value is None:
        raise KeyStateError(f"{field}: expected seconds or a duration such as 30m, 1h, 2d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise KeyStateError(f"{field}: {value!r} is not a duration; use seconds or 90s, 30m, 1h, 2d")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 0 <= seconds <= MAX_GRACE.total_seconds():
        raise KeyStateError(f"{field}: expected 0 to {MAX_GRACE.days} days, got {value!r}")
    return timedelta(seconds=seconds)


def list_keys(store: Store, project_id: str | None = None) -> list[ApiKey]:
    if project_id is not None and store.get_project(project_id) is None:
        raise KeyNotFoundError(f"no project {project_id!r}")
    return store.list_keys(project_id)


def create_key(store: Store, project_id: str, now: datetime) -> IssuedKey:
    if store.get_project(project_id) is None:
        raise KeyNotFoundError(f"no project {project_id!r}")
    key, secret = new_key(project_id, now)
    store.create_key(key)
    return IssuedKey(key, secret)


def revoke_key(store: Store, public_key: str, now: datetime) -> ApiKey:
    """Revoke now (a key already revoked keeps its earlier time); the key as stored."""
    found = store.revoke_key(public_key, now)
    if found is None:
        raise KeyNotFoundError(f"no key {public_key!r}")
    return found


def rotate_key(store: Store, public_key: str, now: datetime,
               grace: timedelta = timedelta(0)) -> tuple[ApiKey, IssuedKey]:
    """A new pair for the key's project; the old key stops working at ``now + grace``. The old key as stored
    and the new pair."""
    old = store.find_key_by_public(public_key)
    if old is None:
        raise KeyNotFoundError(f"no key {public_key!r}")
    if not old.active(now):
        raise KeyStateError(f"key {public_key} was revoked at {old.revoked_at.isoformat() if old.revoked_at else '?'}; "
                        "create a new one with `costline keys create`")
    key, secret = new_key(old.project_id, now)
    store.rotate_key(public_key, key, now + grace)
    stored = store.find_key_by_public(public_key)
    return (stored or old), IssuedKey(key, secret)
