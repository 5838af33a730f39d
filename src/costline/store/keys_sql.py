"""API keys for both SQL stores: find, list, create, revoke (now or at a later time), rotate, last use.

A key's lifecycle lives beside it in ``api_key_state`` (migration 0006): ``revoked_at`` is when it stops
working (a rotation with a grace period sets it in the future) and ``last_used_at`` when a server last saw it,
written at most once a minute per key by each server (``server/auth.py``), so a busy key costs one small
upsert a minute, not one per request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from costline.store import rows
from costline.store.base import ApiKey, StoreError


class KeySql:
    """``Store`` key methods written once with ``?`` placeholders (the backend supplies the plumbing)."""

    _transaction: Callable[..., Any]
    _fetch: Callable[..., list[tuple[Any, ...]]]
    _q: Callable[[str], str]
    _time: Callable[[str], str]

    def _key_select(self) -> str:
        return (f"SELECT k.project_id, k.public_key, k.secret_hash, {self._time('k.created_at')}, "
                f"{self._time('s.last_used_at')}, {self._time('s.revoked_at')} "
                "FROM api_keys k LEFT JOIN api_key_state s ON s.public_key = k.public_key")

    def _find_key(self, column: str, value: str) -> ApiKey | None:
        found = self._fetch(self._q(f"{self._key_select()} WHERE k.{column} = ?"), [value])
        return _key(found[0]) if found else None

    def find_key_by_public(self, public_key: str) -> ApiKey | None:
        return self._find_key("public_key", public_key)

    def find_key_by_secret_hash(self, secret_hash: str) -> ApiKey | None:
        return self._find_key("secret_hash", secret_hash)

    def list_keys(self, project_id: str | None = None) -> list[ApiKey]:
        order = " ORDER BY k.project_id, k.created_at, k.public_key"
        if project_id is None:
            return [_key(r) for r in self._fetch(self._key_select() + order)]
        return [_key(r) for r in self._fetch(self._q(f"{self._key_select()} WHERE k.project_id = ?{order}"),
                                             [project_id])]

    def create_key(self, key: ApiKey) -> None:
        with self._transaction(f"creating key {key.public_key}") as conn:
            self._insert_key(conn, key)

    def _insert_key(self, conn: Any, key: ApiKey) -> None:
        if not conn.execute(self._q("SELECT 1 FROM projects WHERE id = ?"), [key.project_id]).fetchall():
            raise StoreError(f"no project {key.project_id!r}")
        conn.execute(
            self._q("INSERT INTO api_keys (project_id, public_key, secret_hash, created_at) VALUES (?, ?, ?, ?)"),
            [key.project_id, key.public_key, key.secret_hash, rows.utc_in(key.created_at, "created_at")],
        )

    def revoke_key(self, public_key: str, at: datetime) -> ApiKey | None:
        """Make the key stop working at ``at`` (an earlier revocation stands); the key as now stored, or None."""
        with self._transaction(f"revoking key {public_key}") as conn:
            self._revoke(conn, public_key, at)
        return self.find_key_by_public(public_key)

    def _revoke(self, conn: Any, public_key: str, at: datetime) -> None:
        conn.execute(
            self._q("INSERT INTO api_key_state (public_key, last_used_at, revoked_at) "
                    "SELECT public_key, NULL, ? FROM api_keys WHERE public_key = ? "
                    "ON CONFLICT (public_key) DO UPDATE SET revoked_at = CASE "
                    "WHEN api_key_state.revoked_at IS NULL OR api_key_state.revoked_at > excluded.revoked_at "
                    "THEN excluded.revoked_at ELSE api_key_state.revoked_at END"),
            [rows.utc_in(at, "revoked_at"), public_key],
        )

    def rotate_key(self, public_key: str, new_key: ApiKey, revoke_at: datetime) -> None:
        """In one transaction: add ``new_key`` (same project) and make ``public_key`` stop at ``revoke_at``."""
        with self._transaction(f"rotating key {public_key}") as conn:
            self._insert_key(conn, new_key)
            self._revoke(conn, public_key, revoke_at)

    def touch_key(self, public_key: str, at: datetime) -> None:
        """Record that the key was used at ``at`` (a later recorded use stands)."""
        with self._transaction(f"recording the use of key {public_key}") as conn:
            conn.execute(
                self._q("INSERT INTO api_key_state (public_key, last_used_at, revoked_at) "
                        "SELECT public_key, ?, NULL FROM api_keys WHERE public_key = ? "
                        "ON CONFLICT (public_key) DO UPDATE SET last_used_at = CASE "
                        "WHEN api_key_state.last_used_at IS NULL OR api_key_state.last_used_at < excluded.last_used_at "
                        "THEN excluded.last_used_at ELSE api_key_state.last_used_at END"),
                [rows.utc_in(at, "last_used_at"), public_key],
            )


def _key(r: Sequence[Any]) -> ApiKey:
    return ApiKey(r[0], r[1], r[2], rows.utc_out(r[3]), None if r[4] is None else rows.utc_out(r[4]),
                  None if r[5] is None else rows.utc_out(r[5]))
