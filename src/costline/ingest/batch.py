"""What every decoder returns: the events it could read and, per bad item, an error naming the field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from costline.core.events import ObservationEvent, ScoreEvent, TraceEvent
from costline.errors import CostlineError

#: an item error's message is cut to this many characters (it may quote the bad value)
MAX_MESSAGE_CHARS = 1000


class IngestError(CostlineError):
    """A whole request body that cannot be read (bad JSON or protobuf, wrong top-level shape): HTTP 400."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ItemError:
    """One rejected item of a batch: its id (or position) and why, naming the field."""

    id: str
    message: str
    status: int = 400

    def __post_init__(self) -> None:  # the reply must be encodable whatever the input held (lone surrogates)
        object.__setattr__(self, "id", _printable(self.id)[:MAX_MESSAGE_CHARS])
        object.__setattr__(self, "message", _printable(self.message)[:MAX_MESSAGE_CHARS])


@dataclass
class Decoded:
    """Events decoded from one request, in arrival order, plus the ids accepted and the items rejected."""

    observations: list[ObservationEvent] = field(default_factory=list)
    traces: list[TraceEvent] = field(default_factory=list)
    scores: list[ScoreEvent] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    #: the item key (what ``accepted`` / ``errors`` call the item) of ``observations[i]`` when it is not the
    #: event's id (a Langfuse envelope id): the pipeline reports an item it refuses after merging under it
    keys: dict[int, str] = field(default_factory=dict)
    #: False when every observation event is a complete create (OTLP spans, native events): the pipeline
    #: then replaces stored rows without reading them first. True for protocols with partial updates.
    merge: bool = True
    #: (key, message) of each ``reject``: a merge run again (store/merge_group.py) rejects the same item again
    _rejected: set[tuple[str, str]] = field(default_factory=set, repr=False, compare=False)

    def key_of(self, index: int) -> str:
        return self.keys.get(index) or self.observations[index].id

    def reject(self, key: str, message: str) -> None:
        """Move an accepted item to the errors (the pipeline found it invalid once merged or priced)."""
        if key in self.accepted:
            self.accepted.remove(key)
        if (key, message) not in self._rejected:
            self._rejected.add((key, message))
            self.errors.append(ItemError(key, message))

    def extend(self, other: Decoded) -> None:
        offset = len(self.observations)
        self.keys.update({offset + i: key for i, key in other.keys.items()})
        self.observations.extend(other.observations)
        self.traces.extend(other.traces)
        self.scores.extend(other.scores)
        self.accepted.extend(other.accepted)
        self.errors.extend(other.errors)


def _printable(text: str) -> str:
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_json_body(body: bytes) -> Any:
    """A JSON request body. orjson first; what it refuses but Python's parser reads (NaN, Infinity, 1e400,
    lone ``\\ud800`` escapes, integers past 64 bits) is read again so that the value is refused in its item,
    with the field's path, instead of losing the whole batch: non-finite and out-of-range numbers become
    ``Decimal`` (refused where a number is read; ``limits.check_json`` refuses them in metadata)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        first_error = exc
    try:
        return json.loads(body, parse_float=_parse_float, parse_int=_parse_int, parse_constant=Decimal)
    except (ValueError, RecursionError):
        raise IngestError(f"body is not valid JSON: {first_error}") from None


def _parse_float(text: str) -> float | Decimal:
    number = float(text)
    return number if number not in (float("inf"), float("-inf")) else Decimal(text)


def _parse_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= 40 else Decimal(text)
