"""Observations as flat export records, carrying the attributes they get from their trace.

The attribution is the query model's (``costline.core.query``): ``user_id``, ``session_id`` and ``release``
come from the trace when the trace has them and from the observation otherwise, ``trace_name`` is the trace's
name, tags are the union of the observation's and the trace's (observation's first, each once), and metadata
is the trace's with the observation's keys on top. So an export and a report of the same range agree.

A record is a dict of plain values keyed by the names in ``OBSERVATION_FIELDS``; each ``Field`` has a kind
that tells a writer how to spell it (exact decimal strings for money, UTC ``...Z`` times, JSON text).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson

from costline.core.events import Observation, Trace
from costline.core.money import decimal_str

#: text; time (aware datetime); money and decimal (Decimal, DECIMAL(38,12) in Parquet); int; json (a value
#: written as JSON text, or nested in JSONL); tags (a list of strings)
Kind = Literal["text", "time", "money", "decimal", "int", "json", "tags"]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind = "text"


#: first characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class CsvLines:
    """CSV rows ending in ``\n`` whose fields holding a ``\r`` or ``\n`` are quoted (Python's writer quotes only
    the characters of its line terminator, so a lone CR would otherwise end the row for a reader)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def line(self, values: Iterable[Any]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(values)
        return self._buffer.getvalue()[:-2] + "\n"


def csv_cell(text: str) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text: a cell starting with ``= + - @``, a tab or a carriage
    return gets a leading ``'``, unless it is a plain number (``-1.50`` stays a number)."""
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


OBSERVATION_FIELDS: tuple[Field, ...] = (
    Field("project_id"), Field("id"), Field("trace_id"), Field("parent_id"), Field("type"), Field("name"),
    Field("trace_name"), Field("start_time", "time"), Field("end_time", "time"), Field("model"),
    Field("resolved_model"), Field("provider"), Field("currency"), Field("total_cost", "money"),
    Field("pricing_status"), Field("price_id"), Field("pricing_reason"), Field("input_tokens", "int"),
    Field("output_tokens", "int"), Field("usage", "json"), Field("cost", "json"), Field("user_id"),
    Field("session_id"), Field("tags", "tags"), Field("metadata", "json"), Field("environment"),
    Field("release"), Field("version"), Field("level"),
)


def effective_record(obs: Observation, trace: Trace | None) -> dict[str, Any]:
    """``obs`` as an export record with its trace's attributes applied (see the module docstring)."""
    t_user = trace.user_id if trace else None
    t_session = trace.session_id if trace else None
    t_release = trace.release if trace else None
    tags = list(dict.fromkeys((*obs.tags, *(trace.tags if trace else ()))))
    metadata = {**trace.metadata, **obs.metadata} if trace else dict(obs.metadata)
    return {
        "project_id": obs.project_id, "id": obs.id, "trace_id": obs.trace_id, "parent_id": obs.parent_id,
        "type": obs.type, "name": obs.name, "trace_name": trace.name if trace else None,
        "start_time": obs.start_time, "end_time": obs.end_time, "model": obs.model,
        "resolved_model": obs.resolved_model, "provider": obs.provider, "currency": obs.currency,
        "total_cost": obs.total_cost, "pricing_status": obs.pricing_status, "price_id": obs.price_id,
        "pricing_reason": obs.pricing_reason, "input_tokens": obs.usage.get("input_tokens"),
        "output_tokens": obs.usage.get("output_tokens"), "usage": dict(obs.usage), "cost": dict(obs.cost),
        "user_id": t_user if t_user is not None else obs.user_id,
        "session_id": t_session if t_session is not None else obs.session_id,
        "tags": tags, "metadata": metadata, "environment": obs.environment,
        "release": t_release if t_release is not None else obs.release, "version": obs.version,
        "level": obs.level,
    }


def effective_records(observations: Sequence[Observation], traces: Mapping[tuple[str, str], Trace]
                      ) -> list[dict[str, Any]]:
    """Records for a batch; ``traces`` maps (project_id, trace_id) to the stored trace, when there is one."""
    return [effective_record(o, traces.get((o.project_id, o.trace_id))) for o in observations]


def trace_keys(observations: Iterable[Observation]) -> dict[str, list[str]]:
    """The distinct trace ids of a batch, per project (what ``Store.get_traces`` takes)."""
    found: dict[str, dict[str, None]] = {}
    for o in observations:
        found.setdefault(o.project_id, {})[o.trace_id] = None
    return {project: list(ids) for project, ids in found.items()}


# spelling values ---------------------------------------------------------------------------------------------

def iso_z(moment: datetime) -> str:
    """A UTC time as ``YYYY-MM-DDTHH:MM:SSZ`` (with ``.ffffff`` only when it has microseconds)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond:06d}Z" if moment.microsecond else f"{text}Z"


def exact_map(values: Mapping[str, Any]) -> dict[str, Any]:
    """A usage or cost map for JSON: whole numbers stay numbers, decimals become exact strings (money rule)."""
    return {k: decimal_str(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def _default(value: Any) -> Any:
    """orjson fallback: a metadata ``Decimal`` is a JSON number when a float spells it exactly (as the stores
    write it), else an exact string."""
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if value.is_finite() and Decimal(repr(as_float)) == value else decimal_str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, datetime):
        return iso_z(value)
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def json_value(name: str, value: Any) -> Any:
    """The JSON-ready value of a ``json`` field (usage and cost as exact maps, metadata as it is)."""
    return exact_map(value) if name in ("usage", "cost") else value


def json_text(value: Any) -> str:
    """Compact JSON text (keys in order; see ``_default`` for decimals)."""
    return orjson.dumps(value, default=_default).decode()


def json_bytes(value: Any) -> bytes:
    """``json_text`` as bytes ending in a newline (a JSON Lines line)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_APPEND_NEWLINE)


def json_field(name: str, value: Any) -> str | None:
    """The JSON text of a ``json`` field, or None."""
    return None if value is None else json_text(json_value(name, value))
