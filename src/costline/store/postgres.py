"""The PostgreSQL backend, for several costline servers sharing one database.

psycopg 3 over a small lock-guarded pool of autocommit connections (``psycopg_pool`` is not a dependency);
each store call borrows one connection and runs in one transaction. A batch is COPY-ed into a per-connection
temporary table and moved with one ``INSERT ... SELECT ... ON CONFLICT (project_id, id) DO UPDATE``, in key
order so concurrent writers of overlapping batches queue instead of deadlocking. Migrations take
``pg_advisory_xact_lock`` so that servers starting together apply each one once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import set_json_loads

from costline.core.events import Observation, Score, Trace
from costline.store import rollup_sql, rows
from costline.store.base import StoreError, UnstorableTextError, redact_url
from costline.store.dialects import PostgresDialect
from costline.store.migrations import SCHEMA_MIGRATIONS_DDL, load_migrations
from costline.store.postgres_control import LOCK_COUNTER, PipelinedControl, is_nul
from costline.store.rows import Column
from costline.store.sql import NO_NEW_KEYS, NewKeys, SqlStore

log = logging.getLogger(__name__)

POOL_SIZE = 8
POOL_TIMEOUT_S = 30.0
#: pg_advisory_xact_lock key serialising migrations ("costline" as a 64-bit integer)
MIGRATION_LOCK = int.from_bytes(b"costline", "big")
#: first keys of the two-integer advisory locks ``merge_write`` takes: ``(ID_LOCKS, 0)`` around all of them,
#: ``(ID_LOCK, hash)`` per id ("cl" + "ML" / "MI" as 32-bit integers)
ID_LOCKS = int.from_bytes(b"clML", "big")
ID_LOCK = int.from_bytes(b"clMI", "big")
#: a merge of more ids than this takes ``(ID_LOCKS, 0)`` exclusively instead of a lock per id
MAX_ID_LOCKS = 64
#: pg_advisory_xact_lock key serialising rollup refreshes ("clRollup" as a 64-bit integer)
ROLLUP_LOCK = int.from_bytes(b"clRollup", "big")


#: ``url`` with any password replaced by ``***``, for messages
redact = redact_url


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
_OBSERVATIONS_BY_ID = f"SELECT {_OBS} FROM observations WHERE project_id = %s AND id = ANY(%s)"
_STORED_HOURS = ("SELECT id, (EXTRACT(EPOCH FROM start_time) * 1000000)::bigint FROM observations "
                 "WHERE project_id = %s AND id = ANY(%s)")
_TRACES_BY_ID = f"SELECT {_names(rows.TRACE_COLUMNS)} FROM traces WHERE project_id = %s AND id = ANY(%s)"


def _id_key(kind: str, project_id: str, record_id: str) -> int:
    """A 32-bit advisory lock key for one observation (``o``) or trace (``t``) id of a project; a collision
    only makes two ids wait for each other."""
    digest = hashlib.blake2b(f"{kind}\x00{project_id}\x00{record_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


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


class PostgresStore(PipelinedControl, SqlStore):
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
                if is_nul(exc):
                    raise UnstorableTextError(what) from exc
                raise StoreError(f"{what} failed, nothing was stored: {exc}") from exc

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            try:
                with conn.cursor() as cur:
                    return cur.execute(sql, params).fetchall()
            except psycopg.Error as exc:
                if is_nul(exc):
                    raise UnstorableTextError("query") from exc
                raise StoreError(f"query failed on {redact(self.url)}: {exc}") from exc

    def _columns(self, columns: Sequence[Column]) -> str:
        return _names(columns)

    def _lock_rollups(self, conn: Any) -> None:
        conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")  # each statement sees the commits before it
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK])

    def _analyze_rollups(self, conn: Any) -> None:
        conn.execute("ANALYZE rollup_hours, rollup_user_hours, rollup_trace_hours, rollup_meta_hours")

    def _snapshot(self, conn: Any) -> None:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def _lock_counters(self, conn: Any, keys: Sequence[str]) -> None:
        # READ COMMITTED whatever the server's default: each statement then takes its snapshot after the locks
        # are held; under REPEATABLE READ the snapshot would predate the lock wait and miss the holds before it
        conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        for key in keys:  # sorted by the caller, so two calls on the same counters queue instead of deadlocking
            conn.execute(LOCK_COUNTER, [key])

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
        with self._pool.connection() as conn, conn.cursor() as cur:
            return self._read_observations(cur, project_id, ids)

    def get_traces(self, project_id: str, ids: Sequence[str]) -> dict[str, Trace]:
        if not ids:
            return {}
        with self._pool.connection() as conn, conn.cursor() as cur:
            return self._read_traces(cur, project_id, ids)

    def _read_observations(self, cur: Any, project_id: str, ids: Sequence[str]) -> dict[str, Observation]:
        found = self._run(cur, _OBSERVATIONS_BY_ID, [project_id, list(ids)])
        return {o.id: o for o in map(rows.observation_from_row, found)}

    def _read_traces(self, cur: Any, project_id: str, ids: Sequence[str]) -> dict[str, Trace]:
        found = self._run(cur, _TRACES_BY_ID, [project_id, list(ids)])
        return {t.id: t for t in map(rows.trace_from_row, found)}

    def _run(self, cur: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            found: list[tuple[Any, ...]] = cur.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"query failed on {redact(self.url)}: {exc}") from exc
        return found

    def _lock_ids(self, conn: Any, project_id: str, observation_ids: Sequence[str],
                  trace_ids: Sequence[str]) -> None:
        """Transaction-scoped advisory locks on the ids about to be read and merged (in the two-integer key
        space, apart from the budget counters' and the migrations' single-key locks).

        Every locker first takes the ``(ID_LOCKS, 0)`` lock: shared when it then locks at most
        ``MAX_ID_LOCKS`` ids one by one (in key order, so two lockers queue instead of deadlocking), exclusive
        (and no per-id locks) for a larger batch, which so waits for, and holds off, every other merge. That
        bounds the locks a transaction takes: PostgreSQL keeps them in a shared table of
        ``max_locks_per_transaction`` × ``max_connections`` entries.
        """
        keys = sorted({_id_key("o", project_id, i) for i in observation_ids}
                      | {_id_key("t", project_id, i) for i in trace_ids})
        if not keys:
            return
        # READ COMMITTED whatever the server's default: the reads after the locks must see the commits the
        # locks waited for (under REPEATABLE READ the snapshot would be taken by the first statement, before)
        conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        if len(keys) > MAX_ID_LOCKS:
            conn.execute("SELECT pg_advisory_xact_lock(%s::int4, 0)", [ID_LOCKS])
            return
        conn.execute("SELECT pg_advisory_xact_lock_shared(%s::int4, 0)", [ID_LOCKS])
        # unnest yields the sorted array in order, and each row's lock is taken as the row is produced
        conn.execute("SELECT pg_advisory_xact_lock(%s::int4, k) FROM unnest(%s::int4[]) AS k", [ID_LOCK, keys])

    def write(
        self,
        observations: Sequence[Observation] = (),
        traces: Sequence[Trace] = (),
        scores: Sequence[Score] = (),
    ) -> None:
        if not (observations or traces or scores):
            return
        with self._transaction("write") as cur:
            rollup_sql.dirty_marks(self._runner(cur), self.DIALECT, observations, traces)
            self._write_rows(cur, observations, traces, scores)

    def _stored_hours(self, cur: Any, project_id: str, ids: Sequence[str]) -> list[tuple[str, int]]:
        return self._run(cur, _STORED_HOURS, [project_id, list(ids)])

    def _write_rows(self, cur: Any, observations: Sequence[Observation], traces: Sequence[Trace],
                    scores: Sequence[Score], new: NewKeys = NO_NEW_KEYS) -> None:
        # always upserts: a blind ``write`` (which takes no id lock) may store one of these ids meanwhile
        batches = [
            ("observations", [rows.observation_row(o) for o in rows.latest_by_key(observations)]),
            ("traces", [rows.trace_row(t) for t in rows.latest_by_key(traces)]),
            ("scores", [rows.score_row(s) for s in rows.latest_by_key(scores)]),
        ]
        for table, values in batches:
            if not values:
                continue
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
            rollup_sql.mark_rows(self._runner(cur), self.DIALECT, f"start_time < ?{scope.replace('%s', '?')}", params)
            cur.execute(f"DELETE FROM observations WHERE start_time < %s{scope}", params)
            deleted = cur.rowcount
            cur.execute(f'DELETE FROM scores WHERE "timestamp" < %s{scope}', params)
            cur.execute(
                f'DELETE FROM traces t WHERE t."timestamp" < %s{scope} AND NOT EXISTS ('
                "SELECT 1 FROM observations o WHERE o.project_id = t.project_id AND o.trace_id = t.id)",
                params,
            )
        return deleted

    def replace_groups(self, project_id: str, group_ids: Sequence[str], observations: Sequence[Observation]) -> int:
        values = [rows.observation_row(o) for o in observations]
        with self._transaction("replacing imported billing periods") as cur:
            run = self._runner(cur)
            rollup_sql.mark_rows(run, self.DIALECT, "project_id = ? AND type = 'cloud' AND trace_id = ANY(?)",
                                 [project_id, list(group_ids)])
            rollup_sql.dirty_marks(run, self.DIALECT, observations, ())
            cur.execute("DELETE FROM observations WHERE project_id = %s AND type = 'cloud' AND trace_id = ANY(%s)",
                        [project_id, list(group_ids)])
            removed = cur.rowcount
            if values:
                cur.execute("CREATE TEMP TABLE IF NOT EXISTS observations_in (LIKE observations INCLUDING DEFAULTS) "
                            "ON COMMIT DELETE ROWS")
                with cur.copy(f"COPY pg_temp.observations_in ({_names(rows.OBSERVATION_COLUMNS)}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
                cur.execute(_UPSERTS["observations"])
        return removed

