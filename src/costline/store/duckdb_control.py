"""Budget checks on the DuckDB store without a statement on their path: holds and counters' spend in memory.

``ControlSql.reserve`` (PostgreSQL) reads spend and holds in one statement and writes the hold in the same
transaction: on DuckDB that is a scan of the project's window and a synced COMMIT, milliseconds that grow with
the day's volume. One process owns a DuckDB file, so here, under the store's lock (which every write takes too):

- the spend of each counter comes from ``SpendCache`` (exact: kept up to date by the writes of new rows,
  forgotten by any other change, read raw when not kept);
- holds live in a ``HoldBook``, synced to its journal before the check answers (durable as before).

The lock makes the read, the decision and the hold one step, as the transaction did: a call being recorded is
counted as its observation or its hold (or, for a moment, both), never neither.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from costline.core.enforce import CounterUsage
from costline.core.query import Query
from costline.store import rows
from costline.store.base import Reservation
from costline.store.holds import HoldBook
from costline.store.spend_cache import SpendCache

T = TypeVar("T")


class MemoryControl:
    """Mixin for ``DuckDBStore``: overrides the reservation methods of ``ControlSql``."""

    _lock: AbstractContextManager[Any]
    _holds: HoldBook
    _spend: SpendCache
    _rolled_back: Callable[[str], AbstractContextManager[Any]]
    _transaction: Callable[[str], AbstractContextManager[Any]]
    _read_usage: Callable[..., dict[str, CounterUsage]]

    def reserve(
        self,
        project_id: str,
        counters: Sequence[tuple[str, Query]],
        decide: Callable[[Mapping[str, CounterUsage]], tuple[T, Reservation | None]],
        now: datetime,
    ) -> T:
        now = rows.utc_in(now, "now")
        with self._rolled_back("budget check") as conn:
            spend = self._kept_spend(conn, project_id, counters, now)
            usage = {}
            for key, (spent, requests) in spend.items():
                reserved, held = self._holds.usage(project_id, key, now)
                usage[key] = CounterUsage(spent, requests, reserved, held)
            result, reservation = decide(usage)
            if reservation is not None:
                self._holds.add(reservation)
        return result

    def _kept_spend(self, conn: Any, project_id: str, counters: Sequence[tuple[str, Query]],
                    now: datetime) -> dict[str, tuple[Decimal, int]]:
        spend: dict[str, tuple[Decimal, int]] = {}
        missing: list[tuple[str, Query]] = []
        for key, query in counters:
            kept = self._spend.get(project_id, key, query)
            if kept is None:
                missing.append((key, query))
            else:
                spend[key] = kept
        if missing:
            read = self._read_usage(conn, project_id, missing, now, holds=False)
            for key, query in missing:
                spent, requests = read[key].spent, read[key].requests
                self._spend.put(project_id, key, query, spent, requests)
                spend[key] = (spent, requests)
        return {key: spend[key] for key, _ in counters}

    def get_reservation(self, project_id: str, reservation_id: str) -> Reservation | None:
        with self._lock:
            return self._holds.get(project_id, reservation_id)

    def release_reservations(self, project_id: str, ids: Sequence[str]) -> int:
        with self._lock:
            return self._holds.release(project_id, ids)

    def purge_reservations(self, before: datetime) -> int:
        before = rows.utc_in(before, "before")
        with self._lock:
            return self._holds.purge(before)

    def _adopt_table_holds(self) -> None:
        """Move the holds an older version kept in ``budget_reservations`` into the journal (synced first)."""
        with self._transaction("moving budget holds to their journal") as conn:
            found = conn.execute(
                "SELECT project_id, id, counter, amount, timezone('UTC', created_at), timezone('UTC', expires_at), "
                "details FROM budget_reservations ORDER BY project_id, id, counter").fetchall()
            if not found:
                return
            held: dict[tuple[str, str], list[Any]] = {}
            for r in found:
                held.setdefault((r[0], r[1]), list(r)).append(r[2])
            self._holds.adopt(
                Reservation(r[0], r[1], tuple(r[7:]), Decimal(r[3]), rows.utc_out(r[4]), rows.utc_out(r[5]),
                            rows.json_out(r[6])) for r in held.values())
            conn.execute("DELETE FROM budget_reservations")
