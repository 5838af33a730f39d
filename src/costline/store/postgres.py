"""The PostgreSQL backend, for several costline servers sharing one database.

psycopg 3 over a small lock-guarded pool of autocommit connections (``psycopg_pool`` is not a dependency);
each store call borrows one connection and runs in one transaction. A batch is COPY-ed into a per-connection
temporary table and moved with one ``INSERT ... SELECT ... ON CONFLICT (project_id, id) DO UPDATE``, in key
order so concurrent writers of overlapping batches queue instead of deadlocking. Migrations take
``pg_advisory_xact_lock`` so that servers starting together apply each one once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import set_json_loads

from costline.core.events import Observation, Score, Trace
from costline.store import rows
from costline.store.base import StoreError
from costline.store.dialects import PostgresDialect
from costline.store.migrations import SCHEMA_MIGRATIONS_DDL, load_migrations
from costline.store.rows import Column
from costline.store.sql import SqlStore

log = logging.getLogger(__name__)

POOL_SIZE = 8
POOL_TIMEOUT_S = 30.0
#: pg_advisory_xact_lock key serialising migrations ("costline" as a 64-bit integer)
MIGRATION_LOCK = int.from_bytes(b"costline", "big")


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    url = re.sub(r"(://[^:/@?]*:)[^@/?]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


def connect(url: str, *, pool_size: int = POOL_SIZE) -> PostgresStore:
    return PostgresStore(url, pool_size=pool_size)


def _names(columns: Sequence[Column]) -> str:
    return ", ".join(f'"{c.name}"' for c in columns)


def _upsert_sql(table: str, columns: Sequence[Column]) -> str:
    updates = ", ".join(f'"{c.name}" = excluded."{c.name}"' for c in columns if c.name not in ("project_id", "id"))
    return (
        f"INSERT INTO {table} ({_names(columns)}) SELECT {_names(columns)} FROM pg_temp.{table}_in "
        f"ORDER BY project_id, id ON CONFLICT (project_id, id) DO UPDATE SET {updates}, ingested_at = now()"
    )


_TABLES: Mapping[str, tuple[Column, ...]] = {
    "observations": rows.OBSERVATION_COLUMNS, "traces": rows.TRACE_COLUMNS, "scores": rows.SCORE_COLUMNS,
}
_UPSERTS = {table: _upsert_sql(table, columns) for table, columns in _TABLES.items()}
_OBS = _names(rows.OBSERVATION_COLUMNS)


class _Pool:
    """At most ``size`` connections; a caller waits for a free one (up to ``POOL_TIMEOUT_S``)."""

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._size = size
        self._open_count = 0
        self._idle: list[psycopg.Connection[Any]] = []
        self._cond = threading.Condition()
        self._closed = False

    def _new(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {redact(self._url)}: {exc}".strip()) from exc
        set_json_loads(rows.loads_json, conn)
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    def _acquire(self) -> psycopg.Connection[Any]:
        with self._cond:
            while True:
                if self._closed:
                    raise StoreError(f"the store {redact(self._url)} is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open_count < self._size:
                    self._open_count += 1
                    break
                if not self._cond.wait(POOL_TIMEOUT_S):
                    raise StoreError(f"no free PostgreSQL connection after {POOL_TIMEOUT_S:.0f} s")
        try:
            return self._new()
        except BaseException:
            with self._cond:
                self._open_count -= 1
                self._cond.notify()
            raise

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        unusable = conn.closed or conn.broken or conn.info.transaction_status != TransactionStatus.IDLE
        with self._cond:
            if unusable or self._closed:
                self._open_count -= 1
                conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open_count -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


class PostgresStore(SqlStore):
    """``Store`` on a PostgreSQL database (the tables live in the first schema of the search path)."""

    DIALECT = PostgresDialect()

    PARAM = "%s"

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self._pool = _Pool(url, pool_size)
        with self._pool.connection():  # fail now, with the reason, if the server is not there
            pass

    # plumbing ----------------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, what: str) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction on a pooled connection; rolled back on any error (``StoreError`` for SQL errors)."""
        with self._pool.connection() as conn:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise StoreError(f"{what} failed, nothing was stored: {exc}") from exc

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            try:
                with conn.cursor() as cur:
                    return cur.execute(sql, params).fetchall()
            except psycopg.Error as exc:
                raise StoreError(f"query failed on {redact(self.url)}: {exc}") from exc

    def _columns(self, columns: Sequence[Column]) -> str:
        return _names(columns)

    def _lock_counters(self, conn: Any, keys: Sequence[str]) -> None:
        # READ COMMITTED whatever the server's default: each statement then takes its snapshot after the locks
        # are held; under REPEATABLE READ the snapshot would predate the lock wait and miss the holds before it
        conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        for key in keys:  # sorted by the caller, so two calls on the same counters queue instead of deadlocking
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])

    def migrate(self) -> list[str]:
        applied: list[str] = []
        for migration in load_migrations("postgres"):
            with self._transaction(f"migration {migration.name}") as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
                cur.execute(SCHEMA_MIGRATIONS_DDL)
                if cur.execute("SELECT 1 FROM schema_migrations WHERE name = %s", [migration.name]).fetchone():
                    continue
                cur.execute(migration.sql)
                cur.execute("INSERT INTO schema_migrations VALUES (%s, now())", [migration.name])
            log.info("applied migration %s to %s", migration.name, redact(self.url))
            applied.append(migration.name)
        return applied

    def close(self) -> None:
        self._pool.close()

    # writes ------------------------------------------------------------------------------------------------
    def get_observations(self, project_id: str, ids: Sequence[str]) -> dict[str, Observation]:
        if not ids:
            return {}
        found = self._fetch(
            f"SELECT {_OBS} FROM observations WHERE project_id = %s AND id = ANY(%s)", [project_id, list(ids)]
        )
        return {o.id: o for o in map(rows.observation_from_row, found)}

    def traces_observations(self, project_id: str, trace_ids: Sequence[str]) -> list[Observation]:
        if not trace_ids:
            return []
        found = self._fetch(
            f"SELECT {_OBS} FROM observations WHERE project_id = %s AND trace_id = ANY(%s)",
            [project_id, list(trace_ids)],
        )
        return [rows.observation_from_row(r) for r in found]

    def get_traces(self, project_id: str, ids: Sequence[str]) -> dict[str, Trace]:
        if not ids:
            return {}
        found = self._fetch(
            f"SELECT {_names(rows.TRACE_COLUMNS)} FROM traces WHERE project_id = %s AND id = ANY(%s)",
            [project_id, list(ids)],
        )
        return {t.id: t for t in map(rows.trace_from_row, found)}

    def write(
        self,
        observations: Sequence[Observation] = (),
        traces: Sequence[Trace] = (),
        scores: Sequence[Score] = (),
    ) -> None:
        batches = [
            ("observations", [rows.observation_row(o) for o in rows.latest_by_key(observations)]),
            ("traces", [rows.trace_row(t) for t in rows.latest_by_key(traces)]),
            ("scores", [rows.score_row(s) for s in rows.latest_by_key(scores)]),
        ]
        batches = [(table, values) for table, values in batches if values]
        if not batches:
            return
        with self._transaction("write") as cur:
            for table, values in batches:
                # created once per connection (ON COMMIT DROP would cost ~1 ms and catalog churn per write); a
                # migration that adds columns must run before the pool's connections create these
                cur.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {table}_in (LIKE {table} INCLUDING DEFAULTS) "
                    "ON COMMIT DELETE ROWS"
                )
                with cur.copy(f"COPY pg_temp.{table}_in ({_names(_TABLES[table])}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
                cur.execute(_UPSERTS[table])

    def delete_price(self, project_id: str, price_id: str) -> bool:
        with self._transaction(f"deleting price {price_id!r}") as cur:
            cur.execute("DELETE FROM prices WHERE project_id = %s AND id = %s", [project_id, price_id])
            return cur.rowcount > 0

    def purge(self, before: datetime, project_id: str | None = None) -> int:
        params: list[Any] = [rows.utc_in(before, "before")]
        scope = ""
        if project_id is not None:
            scope = " AND project_id = %s"
            params.append(project_id)
        with self._transaction("purge") as cur:
            cur.execute(f"DELETE FROM observations WHERE start_time < %s{scope}", params)
            deleted = cur.rowcount
            cur.execute(f'DELETE FROM scores WHERE "timestamp" < %s{scope}', params)
            cur.execute(
                f'DELETE FROM traces t WHERE t."timestamp" < %s{scope} AND NOT EXISTS ('
                "SELECT 1 FROM observations o WHERE o.project_id = t.project_id AND o.trace_id = t.id)",
                params,
            )
        return deleted
