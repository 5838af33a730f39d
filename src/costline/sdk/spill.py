"""The SDK's spill file: events it could not deliver, one JSON object a line, with why.

A line is ``{"kind": ..., "reason": ..., "status": ..., "at": ..., "event": {...}}``:

- ``kind``: ``shutdown`` (still queued when the tracker shut down), ``gave_up`` (a batch retried
  ``max_retries`` times or for ``max_retry_time`` seconds: 5xx, 408, 429, connection errors), ``refused`` (the
  whole batch refused with a 4xx: wrong key, ...), ``rejected`` (one item of a 207/400 reply).
- ``reason``: the server's message (for ``rejected``, the item's own message, naming the field).
- ``status``: the HTTP status, or null (no reply: connection refused, timeout; or not HTTP).
- ``at``: when it was written (RFC 3339, UTC); ``event``: the native event as it would have been sent.

The next tracker with the same ``spill_path`` re-sends the ``shutdown`` and ``gave_up`` lines at start (lines
written by older versions, bare events, count as ``shutdown``) and leaves the others in the file: sent again
unchanged they would be refused again. ``costline replay FILE`` sends every line (after the key or the data
was fixed) and keeps in the file only what still fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from costline.core.usage import Usage
from costline.errors import CostlineError

Event = dict[str, Any]

#: kinds the next tracker re-sends by itself (the others would be refused again unchanged)
RESENT_KINDS = frozenset({"shutdown", "gave_up"})
_INDEX = re.compile(r"^events\[(\d+)\]")


def _default(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Usage):
        return wire_usage(value)
    if isinstance(value, MappingProxyType | Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(str(v) for v in value)
    return str(value)


_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: object) -> bytes:
    """JSON the server reads: exact decimals as strings, datetimes as RFC 3339, anything else as text.

    Events built by the tracker hold only values orjson writes natively (``wire_usage``, ``wire_cost``), so
    ``_default`` is not called for them; it is there for what users put in metadata. Non-string keys (only
    possible in metadata) need ``OPT_NON_STR_KEYS``, which halves orjson's speed, so it is used only when
    the plain call refuses a key."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        try:
            return orjson.dumps(value, default=_default, option=_OPTIONS | orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:
            # what orjson cannot write at all (an integer past 64 bits): the standard library can, so the
            # server answers that item with its error and the rest of the batch is delivered (never a batch
            # retried forever because one value cannot be serialised)
            return json.dumps(value, default=_stdlib_default, separators=(",", ":"), ensure_ascii=False).encode()


def _stdlib_default(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return _default(value)


def wire_usage(usage: Usage) -> dict[str, Any]:
    """A ``Usage`` as an event's ``usage`` member: its quantities as a plain dict orjson writes natively, with
    decimal quantities (non-token units) as exact strings. Token counts are ints, so this is usually the
    Usage's own dict, shared rather than copied: a Usage is immutable and the dict is only read (serialised)."""
    quantities = usage._lookup
    for value in quantities.values():
        if type(value) is not int:
            return {unit: q if type(q) is int else str(q) for unit, q in quantities.items()}
    return quantities


def wire_cost(cost: Mapping[str, Decimal]) -> dict[str, str]:
    """Provided amounts as an event's ``cost`` member: exact decimal strings."""
    return {unit: str(amount) for unit, amount in cost.items()}


def readable(event: Mapping[str, Any]) -> Event:
    """A copy of a queued event with ``usage`` as a ``Usage`` and ``cost`` amounts as ``Decimal`` (queued
    events hold them as JSON-ready dicts; ``Tracker.events()``)."""
    out = dict(event)
    usage = out.get("usage")
    if isinstance(usage, Mapping):
        # a line of an older spill file that the server would reject stays as it is
        with contextlib.suppress(CostlineError):
            out["usage"] = Usage(usage)
    cost = out.get("cost")
    if isinstance(cost, Mapping):
        out["cost"] = {unit: _amount(amount) for unit, amount in cost.items()}
    return out


def _amount(value: object) -> object:
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:  # not a number (an older spill line): as it is
            return value
    return value


def item_index(message: str, item_id: object, events: Sequence[Event]) -> int:
    """The position in ``events`` of a rejected item: from its message's ``events[N]`` path, else its id."""
    match = _INDEX.match(message)
    if match is not None:
        return int(match.group(1))
    for index, event in enumerate(events):
        if isinstance(event, Mapping) and str(event.get("id")) == str(item_id):
            return index
    if isinstance(item_id, str) and item_id.isdigit():
        return int(item_id)
    return -1


def line(event: Event, *, kind: str, reason: str, status: int | None, at: datetime) -> bytes:
    return dumps({"kind": kind, "reason": reason, "status": status, "at": at.isoformat(), "event": event}) + b"\n"


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """A spill line as ``{kind, reason, status, at, event}`` (a bare event from an older version becomes a
    ``shutdown`` entry); None when the line is not a JSON object."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("event"), dict) and "kind" in data:
        return data
    return {"kind": "shutdown", "reason": "undelivered at shutdown", "status": None, "at": None, "event": data}


class SpillFile:
    """Appends and reads one spill file; writes are serialised (the sender thread and shutdown share it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, events: Sequence[Event], *, kind: str, status: int | None, reasons: Sequence[str]) -> None:
        at = datetime.now(UTC)
        data = b"".join(line(e, kind=kind, reason=r, status=status, at=at) for e, r in zip(events, reasons,
                                                                                          strict=True))
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as out:
                out.write(data)

    def entries(self) -> list[dict[str, Any]]:
        """Every readable line (unreadable ones are skipped)."""
        if not self.path.exists():
            return []
        return [e for e in map(parse_line, self.path.read_bytes().splitlines()) if e is not None]

    def replace(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Rewrite the file with ``entries`` (remove it when there are none), atomically."""
        data = b"".join(dumps(dict(e)) + b"\n" for e in entries)
        with self._lock:
            if not data:
                if self.path.exists():
                    self.path.unlink()
                return
            temporary = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, self.path)

    def take_resendable(self) -> list[Event]:
        """The events the next tracker re-sends (``shutdown``, ``gave_up``); the other lines stay in the file."""
        if not self.path.exists():
            return []
        entries = self.entries()
        resend = [e for e in entries if e.get("kind") in RESENT_KINDS]
        self.replace(e for e in entries if e.get("kind") not in RESENT_KINDS)
        return [dict(e["event"]) for e in resend]
