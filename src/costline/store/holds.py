"""Budget holds (reservations) of the DuckDB store: in memory, durable in an fsynced journal beside the file.

One process owns a DuckDB file, so the holds of every call in flight can live in that process's memory: a
budget check reads and writes them without a database statement. Each change is appended to a journal
(``<store file>.holds``, JSON lines, owner-only) and synced before the call returns, so a hold that was
acknowledged survives a crash: the journal is replayed when the store opens again. A last line cut short by a
crash was never acknowledged and is dropped. The journal is rewritten with the live holds alone when it opens
and when it has grown to many times the holds it keeps.

Semantics are those of the ``budget_reservations`` table on PostgreSQL (``store/control_sql.py``): a hold
counts while ``expires_at`` is after the check's time; an expired hold stays readable until it is purged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Final

import orjson

from costline.store import rows
from costline.store.base import Reservation, StoreError

log = logging.getLogger(__name__)

#: the journal is rewritten when it holds more than this many records per live hold (and at least MIN_RECORDS)
COMPACT_RATIO: Final = 8
MIN_RECORDS: Final = 10_000
_PLACES: Final = Decimal("1e-12")
#: a hold this long expired leaves its counter's index (no check's time is that far behind the last one's)
STALE_AFTER: Final = timedelta(days=1)


def journal_path(store_file: Path) -> Path:
    return store_file.with_name(store_file.name + ".holds")


class HoldBook:
    """The live and expired-but-unpurged reservations, by id and by counter. Not thread-safe: the store calls
    it under its own lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_id: dict[tuple[str, str], Reservation] = {}
        self._by_counter: dict[tuple[str, str], dict[str, Reservation]] = {}
        self._records = 0
        self._fd: int | None = None
        if path.exists():
            self._replay(path.read_bytes())
            self._rewrite()

    # reads -------------------------------------------------------------------------------------------------
    def usage(self, project_id: str, counter: str, now: datetime) -> tuple[Decimal, int]:
        """(sum of the live holds' amounts, how many there are) on one counter at ``now``."""
        held = self._by_counter.get((project_id, counter))
        if not held:
            return Decimal(0), 0
        live: list[Decimal] = []
        stale: list[str] = []
        for r in held.values():
            if r.expires_at > now:
                live.append(r.amount)
            elif r.expires_at < now - STALE_AFTER:  # kept by id for a late settle, no longer by counter
                stale.append(r.id)
        for reservation_id in stale:
            del held[reservation_id]
        return sum(live, Decimal(0)), len(live)

    def get(self, project_id: str, reservation_id: str) -> Reservation | None:
        return self._by_id.get((project_id, reservation_id))

    def __len__(self) -> int:
        return len(self._by_id)

    # changes -----------------------------------------------------------------------------------------------
    def add(self, reservation: Reservation) -> None:
        """Keep ``reservation`` (synced to the journal before it counts); an id already held is refused."""
        if (reservation.project_id, reservation.id) in self._by_id:
            raise StoreError(f"budget check failed, nothing was stored: reservation {reservation.id!r} exists")
        kept = normalized(reservation)
        self._append([{"hold": _to_json(kept)}])
        self._keep(kept)
        self._maybe_compact()

    def release(self, project_id: str, ids: Sequence[str]) -> int:
        """Drop the holds (settled or cancelled); returns how many of them there were."""
        found = [i for i in dict.fromkeys(ids) if (project_id, i) in self._by_id]
        if not found:
            return 0
        self._append([{"release": [project_id, found]}])
        for reservation_id in found:
            self._drop(project_id, reservation_id)
        self._maybe_compact()
        return len(found)

    def purge(self, before: datetime) -> int:
        """Drop the holds that expired at or before ``before``; returns the (hold, counter) pairs dropped, as
        the table's rows would be counted."""
        gone = [r for r in self._by_id.values() if r.expires_at <= before]
        if not gone:
            return 0
        self._append([{"purge": before.isoformat()}])
        for r in gone:
            self._drop(r.project_id, r.id)
        self._maybe_compact()
        return sum(len(r.counters) for r in gone)

    def adopt(self, reservations: Iterable[Reservation]) -> int:
        """Take over holds kept elsewhere (the table of an older store); synced before they count."""
        found = [normalized(r) for r in reservations if (r.project_id, r.id) not in self._by_id]
        if found:
            self._append([{"hold": _to_json(r)} for r in found])
            for r in found:
                self._keep(r)
            self._maybe_compact()
        return len(found)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # memory ------------------------------------------------------------------------------------------------
    def _keep(self, r: Reservation) -> None:
        self._drop(r.project_id, r.id)
        self._by_id[(r.project_id, r.id)] = r
        for counter in r.counters:
            self._by_counter.setdefault((r.project_id, counter), {})[r.id] = r

    def _drop(self, project_id: str, reservation_id: str) -> None:
        r = self._by_id.pop((project_id, reservation_id), None)
        if r is None:
            return
        for counter in r.counters:
            held = self._by_counter.get((project_id, counter))
            if held is not None:
                held.pop(reservation_id, None)
                if not held:
                    del self._by_counter[(project_id, counter)]

    # journal -----------------------------------------------------------------------------------------------
    def _replay(self, data: bytes) -> None:
        lines = data.split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                self._apply(record)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                if number >= len(lines) - 1:  # the last line, cut short by a crash: never acknowledged
                    log.warning("dropping the unfinished last record of %s", self.path)
                    return
                raise StoreError(f"the hold journal {self.path} is damaged at line {number}: {exc}; move it "
                                 "aside to start without the holds of calls in flight") from exc

    def _apply(self, record: dict[str, Any]) -> None:
        if "hold" in record:
            self._keep(_from_json(record["hold"]))
        elif "release" in record:
            project_id, ids = record["release"]
            for reservation_id in ids:
                self._drop(str(project_id), str(reservation_id))
        elif "purge" in record:
            before = datetime.fromisoformat(record["purge"])
            for r in [r for r in self._by_id.values() if r.expires_at <= before]:
                self._drop(r.project_id, r.id)
        else:
            raise ValueError(f"unknown record {sorted(record)}")

    def _append(self, records: list[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, data)
            os.fdatasync(self._fd)
        except OSError as exc:
            raise StoreError(f"cannot write the hold journal {self.path}: {exc}") from exc
        self._records += len(records)

    def _maybe_compact(self) -> None:
        """Rewrite the journal when it has grown past its live holds; called once a change is in memory too
        (the rewrite is made from memory: before, it would lose the change)."""
        if self._records > max(MIN_RECORDS, COMPACT_RATIO * len(self._by_id)):
            self._rewrite()

    def _rewrite(self) -> None:
        """Write the live holds to a new journal and move it over the old one (synced: file, then folder)."""
        self.close()
        temporary = self.path.with_name(self.path.name + ".tmp")
        data = b"".join(orjson.dumps({"hold": _to_json(r)}) + b"\n" for r in self._by_id.values())
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            raise StoreError(f"cannot write the hold journal {self.path}: {exc}") from exc
        self._records = len(self._by_id)


def normalized(r: Reservation) -> Reservation:
    """The reservation as the table would give it back: amount to 12 places, UTC times, details through JSON,
    each counter once."""
    return Reservation(r.project_id, r.id, tuple(dict.fromkeys(r.counters)), r.amount.quantize(_PLACES, ROUND_HALF_UP),
                       rows.utc_in(r.created_at, "created_at"), rows.utc_in(r.expires_at, "expires_at"),
                       rows.json_out(rows.dumps_json(r.details)))


def _to_json(r: Reservation) -> dict[str, Any]:
    """A ``normalized`` reservation as a journal record."""
    return {"project_id": r.project_id, "id": r.id, "counters": list(r.counters), "amount": str(r.amount),
            "created_at": r.created_at.isoformat(), "expires_at": r.expires_at.isoformat(),
            "details": rows.dumps_json(r.details)}


def _from_json(raw: dict[str, Any]) -> Reservation:
    return Reservation(str(raw["project_id"]), str(raw["id"]), tuple(str(c) for c in raw["counters"]),
                       Decimal(raw["amount"]), datetime.fromisoformat(raw["created_at"]),
                       datetime.fromisoformat(raw["expires_at"]), rows.json_out(raw["details"]))
