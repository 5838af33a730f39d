"""The PostgreSQL budget check in two round trips instead of six.

``ControlSql.reserve`` runs BEGIN, the isolation level, a lock per counter, the spend-and-holds read, the hold's
INSERT and COMMIT one after the other, each waiting for its reply: on a quiet machine most of a check is those
waits. Here libpq's pipeline mode sends BEGIN (with the isolation level), the locks and the read together, and
after the decision the hold's INSERT and COMMIT together. The server still runs them in order, so the read's
snapshot is taken after the locks are held, and what the caller sees is unchanged: one transaction, rolled
back on any error (the caller's ``decide`` included).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

import psycopg
from psycopg.pq import TransactionStatus

from costline.core.enforce import CounterUsage
from costline.core.query import Query
from costline.store import rows
from costline.store.base import Reservation, StoreError, UnstorableTextError
from costline.store.control_sql import usage_from_row

T = TypeVar("T")
#: the statement taking one counter's lock until COMMIT (keys are hashed by the server: every version agrees)
LOCK_COUNTER = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


class _Pool(Protocol):
    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    def close(self) -> None: ...


class PipelinedControl:
    """Mixin for ``PostgresStore``: ``reserve`` in pipeline mode (the other reservation methods are one
    statement each already)."""

    _pool: _Pool
    ROLLUP_BUDGETS: ClassVar[bool]
    _usage_statement: Callable[..., tuple[str, list[Any]]]
    _reservation_rows: Callable[[Reservation], tuple[str, list[list[Any]]]]

    def reserve(
        self,
        project_id: str,
        counters: Sequence[tuple[str, Query]],
        decide: Callable[[Mapping[str, CounterUsage]], tuple[T, Reservation | None]],
        now: datetime,
    ) -> T:
        keys = sorted({key for key, _ in counters})
        now = rows.utc_in(now, "now")
        if self.ROLLUP_BUDGETS:  # compiling a read through the rollups runs statements: not in a pipeline
            return super().reserve(project_id, counters, decide, now)  # type: ignore[misc, no-any-return]
        with self._pool.connection() as conn:
            read = self._usage_statement(conn, project_id, counters, now) if counters else None
            try:
                with conn.pipeline() as pipeline:
                    # READ COMMITTED whatever the server's default: each statement's snapshot is then taken
                    # after the locks before it are held (REPEATABLE READ would miss the holds of the calls
                    # it queued behind)
                    conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                    for key in keys:  # sorted, so two checks on the same counters queue instead of deadlocking
                        conn.execute(LOCK_COUNTER, [f"{project_id}|{key}"])
                    cursor = conn.execute(*read) if read is not None else None
                    pipeline.sync()
                    usage = usage_from_row(counters, cursor.fetchall()[0]) if cursor is not None else {}
                    result, reservation = decide(usage)
                    if reservation is not None:
                        sql, params = self._reservation_rows(reservation)
                        conn.cursor().executemany(sql, params)
                    conn.execute("COMMIT")
            except psycopg.Error as exc:
                _roll_back(conn)
                if is_nul(exc):
                    raise UnstorableTextError("budget check") from exc
                raise StoreError(f"budget check failed, nothing was stored: {exc}") from exc
            except BaseException:
                _roll_back(conn)
                raise
        return result


def _roll_back(conn: psycopg.Connection[Any]) -> None:
    """End the failed transaction so the connection goes back to the pool (the pool closes it otherwise)."""
    if conn.broken or conn.info.transaction_status == TransactionStatus.IDLE:
        return
    with suppress(psycopg.Error):  # the pool closes a connection that is not idle
        conn.execute("ROLLBACK")


def is_nul(exc: psycopg.Error) -> bool:
    """A NUL character in text or JSON sent to PostgreSQL (which keeps neither): client-side in psycopg, or
    the server's untranslatable character (22P05) for ``\\u0000`` in JSON."""
    return exc.sqlstate == "22P05" or "NUL (0x00)" in str(exc)
