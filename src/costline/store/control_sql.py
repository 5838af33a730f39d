"""Budgets, alert rules and channels, reservations, user tiers, alert states and deliveries, for both SQL stores.

The one operation that must be atomic is ``reserve``: it locks every counter a call falls under (PostgreSQL
transaction-scoped advisory locks taken in key order; DuckDB's store lock, since one process owns the file),
reads what each counter has spent in its window and holds in live reservations in ONE statement (one snapshot,
so a call being recorded is counted either as its observation or as its hold, never neither), lets the caller
decide, and writes the reservation it asks for before the locks are released at COMMIT. Concurrent calls on a
counter therefore queue, and each sees the holds of the ones before it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from costline.core.enforce import CounterUsage
from costline.core.query import Metric, Query
from costline.store import rows
from costline.store.base import AlertState, ControlObject, DeliveryEntry, Reservation
from costline.store.query_sql import Compiled, compile_query

T = TypeVar("T")
_SUM = Metric("cost", "sum")
_COUNT = Metric("calls", "count")
CONTROL_KINDS = ("budget", "alert", "channel", "key_seal")


class ControlSql:
    """Mixin for ``SqlStore`` subclasses (it uses their ``_transaction``, ``_fetch``, ``_q`` and dialect)."""

    _transaction: Callable[..., Any]
    _fetch: Callable[..., list[tuple[Any, ...]]]
    _q: Callable[[str], str]
    DIALECT: ClassVar[Any]
    PARAM: ClassVar[str] = "?"

    def _usage_compiled(self, conn: Any, query: Query) -> Compiled:
        """The statement reading one counter's spend (the rollup's where the store uses it: ``SqlStore``)."""
        return compile_query(query, self.DIALECT)

    def _lock_counters(self, conn: Any, keys: Sequence[str]) -> None:
        """Serialise reservations on these counters until COMMIT (a backend without a store-wide lock)."""

    # budgets, alert rules, channels -------------------------------------------------------------------------
    def put_control(self, obj: ControlObject) -> None:
        with self._transaction(f"saving {obj.kind} {obj.id!r}") as conn:
            self._upsert_control(conn, obj)

    def _upsert_control(self, conn: Any, obj: ControlObject) -> None:
        if obj.kind not in CONTROL_KINDS:
            raise ValueError(f"unknown control kind {obj.kind!r}")
        conn.execute(
            self._q("INSERT INTO control_objects VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, kind, id) "
                    "DO UPDATE SET spec = excluded.spec, source = excluded.source, updated_at = excluded.updated_at"),
            [obj.project_id, obj.kind, obj.id, rows.dumps_json(obj.spec), obj.source,
             rows.utc_in(obj.created_at, "created_at"), rows.utc_in(obj.updated_at, "updated_at")],
        )

    def replace_control(self, project_id: str, source: str, objects: Sequence[ControlObject]) -> int:
        """Make ``objects`` exactly what ``source`` (a file) defines in the project, in one transaction:
        objects of that source not in ``objects`` are deleted. Returns how many were deleted."""
        with self._transaction(f"applying {source}") as conn:
            keep = {(o.kind, o.id) for o in objects}
            found = conn.execute(
                self._q("SELECT kind, id FROM control_objects WHERE project_id = ? AND source = ?"),
                [project_id, source],
            ).fetchall()
            gone = [(kind, oid) for kind, oid in found if (kind, oid) not in keep]
            for kind, oid in gone:
                conn.execute(self._q("DELETE FROM control_objects WHERE project_id = ? AND kind = ? AND id = ?"),
                             [project_id, kind, oid])
            for obj in objects:
                self._upsert_control(conn, obj)
        return len(gone)

    def get_control(self, project_id: str, kind: str, object_id: str) -> ControlObject | None:
        found = self._fetch(
            self._q(f"{self._control_select()} WHERE project_id = ? AND kind = ? AND id = ?"),
            [project_id, kind, object_id],
        )
        return _control(found[0]) if found else None

    def list_control(self, kind: str, project_id: str | None = None) -> list[ControlObject]:
        if project_id is None:
            found = self._fetch(self._q(f"{self._control_select()} WHERE kind = ? ORDER BY project_id, id"), [kind])
        else:
            found = self._fetch(
                self._q(f"{self._control_select()} WHERE kind = ? AND project_id = ? ORDER BY id"), [kind, project_id]
            )
        return [_control(r) for r in found]

    def delete_control(self, project_id: str, kind: str, object_id: str) -> bool:
        with self._transaction(f"deleting {kind} {object_id!r}") as conn:
            found = conn.execute(
                self._q("DELETE FROM control_objects WHERE project_id = ? AND kind = ? AND id = ? RETURNING id"),
                [project_id, kind, object_id],
            ).fetchall()
        return bool(found)

    def _control_select(self) -> str:
        return (f"SELECT project_id, kind, id, spec, source, {self._time('created_at')}, {self._time('updated_at')} "
                "FROM control_objects")

    def _time(self, column: str) -> str:
        return f"timezone('UTC', {column})" if self.PARAM == "?" else column

    # reservations -------------------------------------------------------------------------------------------
    def reserve(
        self,
        project_id: str,
        counters: Sequence[tuple[str, Query]],
        decide: Callable[[Mapping[str, CounterUsage]], tuple[T, Reservation | None]],
        now: datetime,
    ) -> T:
        """Read each counter's usage (``key`` → spend query) under its lock, call ``decide``, write the
        reservation it returns (one row per counter it names); all in one transaction."""
        keys = sorted({key for key, _ in counters})
        now = rows.utc_in(now, "now")
        with self._transaction("budget check") as conn:
            self._lock_counters(conn, [f"{project_id}|{key}" for key in keys])
            usage = self._read_usage(conn, project_id, counters, now) if counters else {}
            result, reservation = decide(usage)
            if reservation is not None:
                self._insert_reservation(conn, reservation)
        return result

    def _read_usage(self, conn: Any, project_id: str, counters: Sequence[tuple[str, Query]],
                    now: datetime, *, holds: bool = True) -> dict[str, CounterUsage]:
        """Each counter's spend and (with ``holds``) live holds, in one statement."""
        sql, params = self._usage_statement(conn, project_id, counters, now, holds=holds)
        return usage_from_row(counters, conn.execute(sql, params).fetchall()[0])

    def _usage_statement(self, conn: Any, project_id: str, counters: Sequence[tuple[str, Query]],
                         now: datetime, *, holds: bool = True) -> tuple[str, list[Any]]:
        """The one statement ``_read_usage`` runs: four columns per counter (spend, calls, held, holds)."""
        parts: list[str] = []
        columns: list[str] = []
        params: list[Any] = []
        for i, (key, query) in enumerate(counters):
            compiled = self._usage_compiled(conn, query)
            aliases = {metric: alias for _, alias, metric, _ in compiled.outputs}
            parts.append(f"({compiled.sql}) q{i}")
            params.extend(compiled.params)
            columns.extend([f"q{i}.{aliases[_SUM]}", f"q{i}.{aliases[_COUNT]}"])
            if not holds:
                columns.extend(["0", "0"])
                continue
            parts.append(f"(SELECT COALESCE(sum(amount), 0) AS s, count(DISTINCT id) AS n FROM budget_reservations "
                         f"WHERE project_id = ? AND counter = ? AND expires_at > ?) r{i}")
            params.extend([project_id, key, now])
            columns.extend([f"r{i}.s", f"r{i}.n"])
        return self._q(f"SELECT {', '.join(columns)} FROM {' CROSS JOIN '.join(parts)}"), params

    def _reservation_rows(self, reservation: Reservation) -> tuple[str, list[list[Any]]]:
        """The statement writing a reservation and its parameters, one row per counter it names."""
        return self._q("INSERT INTO budget_reservations VALUES (?, ?, ?, ?, ?, ?, ?)"), [
            [reservation.project_id, reservation.id, counter, str(reservation.amount),
             rows.utc_in(reservation.created_at, "created_at"), rows.utc_in(reservation.expires_at, "expires_at"),
             rows.dumps_json(reservation.details)]
            for counter in dict.fromkeys(reservation.counters)
        ]

    def _insert_reservation(self, conn: Any, reservation: Reservation) -> None:
        sql, params = self._reservation_rows(reservation)
        for row in params:
            conn.execute(sql, row)

    def get_reservation(self, project_id: str, reservation_id: str) -> Reservation | None:
        found = self._fetch(
            self._q(f"SELECT counter, amount, {self._time('created_at')}, {self._time('expires_at')}, details "
                    "FROM budget_reservations WHERE project_id = ? AND id = ? ORDER BY counter"),
            [project_id, reservation_id],
        )
        if not found:
            return None
        first = found[0]
        return Reservation(project_id, reservation_id, tuple(r[0] for r in found), Decimal(first[1]),
                           rows.utc_out(first[2]), rows.utc_out(first[3]), rows.json_out(first[4]))

    def release_reservations(self, project_id: str, ids: Sequence[str]) -> int:
        """Delete the reservations (settled or cancelled); returns how many there were."""
        if not ids:
            return 0
        marks = ", ".join("?" for _ in ids)
        with self._transaction("releasing reservations") as conn:
            found = conn.execute(
                self._q(f"DELETE FROM budget_reservations WHERE project_id = ? AND id IN ({marks}) RETURNING id"),
                [project_id, *ids],
            ).fetchall()
        return len({r[0] for r in found})

    def purge_reservations(self, before: datetime) -> int:
        """Delete reservations that expired before ``before``; returns the rows deleted."""
        with self._transaction("purging expired reservations") as conn:
            found = conn.execute(self._q("DELETE FROM budget_reservations WHERE expires_at <= ? RETURNING id"),
                                 [rows.utc_in(before, "before")]).fetchall()
        return len(found)

    # user tiers ---------------------------------------------------------------------------------------------
    def set_user_tier(self, project_id: str, user_id: str, tier: str | None, now: datetime) -> None:
        with self._transaction(f"setting the tier of {user_id!r}") as conn:
            if tier is None:
                conn.execute(self._q("DELETE FROM user_tiers WHERE project_id = ? AND user_id = ?"),
                             [project_id, user_id])
                return
            conn.execute(
                self._q("INSERT INTO user_tiers VALUES (?, ?, ?, ?) ON CONFLICT (project_id, user_id) DO UPDATE "
                        "SET tier = excluded.tier, updated_at = excluded.updated_at"),
                [project_id, user_id, tier, rows.utc_in(now, "now")],
            )

    def get_user_tier(self, project_id: str, user_id: str) -> str | None:
        found = self._fetch(self._q("SELECT tier FROM user_tiers WHERE project_id = ? AND user_id = ?"),
                            [project_id, user_id])
        return str(found[0][0]) if found else None

    def list_user_tiers(self, project_id: str, tier: str | None = None) -> dict[str, str]:
        if tier is None:
            found = self._fetch(self._q("SELECT user_id, tier FROM user_tiers WHERE project_id = ?"), [project_id])
        else:
            found = self._fetch(self._q("SELECT user_id, tier FROM user_tiers WHERE project_id = ? AND tier = ?"),
                                [project_id, tier])
        return {str(u): str(t) for u, t in found}

    # leases ---------------------------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``; False while another holder's
        lease is still running. One atomic upsert, so two servers asking at once cannot both get it."""
        now = rows.utc_in(now, "now")
        with self._transaction(f"lease {name!r}") as conn:
            found = conn.execute(
                self._q("INSERT INTO leases VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET holder = "
                        "excluded.holder, until = excluded.until WHERE leases.until <= ? OR leases.holder = "
                        "excluded.holder RETURNING holder"),
                [name, holder, now + ttl, now],
            ).fetchall()
        return bool(found) and found[0][0] == holder

    # alert states and deliveries -----------------------------------------------------------------------------
    def get_alert_states(self, project_id: str, rule_id: str | None = None) -> list[AlertState]:
        sql = f"SELECT rule_id, subject, state, {self._time('updated_at')} FROM alert_states WHERE project_id = ?"
        params: list[Any] = [project_id]
        if rule_id is not None:
            sql += " AND rule_id = ?"
            params.append(rule_id)
        found = self._fetch(self._q(sql + " ORDER BY rule_id, subject"), params)
        return [AlertState(project_id, r[0], r[1], rows.json_out(r[2]), rows.utc_out(r[3])) for r in found]

    def put_alert_states(self, states: Sequence[AlertState]) -> None:
        if not states:
            return
        with self._transaction("saving alert states") as conn:
            for s in states:
                conn.execute(
                    self._q("INSERT INTO alert_states VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, rule_id, "
                            "subject) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"),
                    [s.project_id, s.rule_id, s.subject, rows.dumps_json(s.state), rows.utc_in(s.updated_at, "at")],
                )

    def add_delivery(self, entry: DeliveryEntry) -> None:
        with self._transaction("logging a delivery") as conn:
            conn.execute(
                self._q('INSERT INTO alert_deliveries VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, id) '
                        'DO UPDATE SET "at" = excluded."at", status = excluded.status, entry = excluded.entry'),
                [entry.project_id, entry.id, rows.utc_in(entry.at, "at"), entry.rule_id, entry.channel,
                 entry.status, rows.dumps_json(entry.entry)],
            )

    def list_deliveries(self, project_id: str, *, rule_id: str | None = None, limit: int = 100) -> list[DeliveryEntry]:
        at = self._time('"at"')
        sql = f"SELECT id, {at}, rule_id, channel, status, entry FROM alert_deliveries WHERE project_id = ?"
        params: list[Any] = [project_id]
        if rule_id is not None:
            sql += " AND rule_id = ?"
            params.append(rule_id)
        found = self._fetch(self._q(f'{sql} ORDER BY "at" DESC, id DESC LIMIT {int(limit)}'), params)
        return [DeliveryEntry(project_id, r[0], rows.utc_out(r[1]), r[2], r[3], r[4], rows.json_out(r[5]))
                for r in found]


def _control(r: Sequence[Any]) -> ControlObject:
    return ControlObject(r[0], r[1], r[2], rows.json_out(r[3]), r[4], rows.utc_out(r[5]), rows.utc_out(r[6]))


def usage_from_row(counters: Sequence[tuple[str, Query]], row: Sequence[Any]) -> dict[str, CounterUsage]:
    """The usage of each counter from the row of ``ControlSql._usage_statement``."""
    usage: dict[str, CounterUsage] = {}
    for i, (key, _) in enumerate(counters):
        spent, requests, reserved, held = row[4 * i: 4 * i + 4]
        usage[key] = CounterUsage(Decimal(spent or 0), int(requests or 0), Decimal(reserved or 0), int(held or 0))
    return usage
