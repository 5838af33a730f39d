"""Records ⇄ SQL rows, shared by the DuckDB and PostgreSQL backends so both store exactly the same values.

Each table is a tuple of ``Column``s: a name and a kind. A backend maps the kinds to its SQL types and to the
expressions it reads them with; this module turns records into rows of plain Python values and back:

- ``time``: tz-aware UTC ``datetime`` (a naive datetime is refused on the way in, taken as UTC on the way out).
- ``money``: the decimal as a plain string (the backend casts it to DECIMAL(38,12)); read back as ``Decimal``.
- ``json``: JSON text. Money maps hold decimal strings; usage holds ints as JSON ints and decimals as strings,
  so both come back exactly (ints stay ints). Decimals elsewhere (metadata) are written as JSON numbers when a
  float carries them exactly (else as strings) and JSON numbers with a fraction come back as ``Decimal``, as
  the HTTP body parser gives them.
- ``tags``: a list of strings; ``text``, ``bool``: as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

import orjson

from costline.core.events import Observation, Score, Trace
from costline.core.money import to_decimal
from costline.core.usage import Quantity
from costline.store.base import StoreError

Kind = Literal["text", "time", "json", "money", "tags", "bool"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind = "text"


OBSERVATION_COLUMNS: tuple[Column, ...] = (
    Column("project_id"), Column("id"), Column("trace_id"), Column("parent_id"), Column("type"), Column("name"),
    Column("start_time", "time"), Column("end_time", "time"), Column("completion_start_time", "time"),
    Column("model"), Column("resolved_model"), Column("provider"), Column("usage", "json"), Column("cost", "json"),
    Column("total_cost", "money"), Column("currency"), Column("pricing_status"), Column("price_id"),
    Column("pricing_reason"), Column("provided_cost", "json"), Column("attributes", "json"), Column("user_id"),
    Column("session_id"), Column("tags", "tags"), Column("metadata", "json"), Column("environment"),
    Column("release"), Column("version"), Column("level"), Column("status_message"),
    Column("model_parameters", "json"),
)

TRACE_COLUMNS: tuple[Column, ...] = (
    Column("project_id"), Column("id"), Column("timestamp", "time"), Column("name"), Column("user_id"),
    Column("session_id"), Column("tags", "tags"), Column("metadata", "json"), Column("environment"),
    Column("release"), Column("version"), Column("public", "bool"),
)

SCORE_COLUMNS: tuple[Column, ...] = (
    Column("project_id"), Column("id"), Column("name"), Column("value_numeric", "money"), Column("value_text"),
    Column("timestamp", "time"), Column("trace_id"), Column("observation_id"), Column("session_id"),
    Column("data_type"), Column("comment"), Column("environment"), Column("metadata", "json"),
)

PROJECT_COLUMNS: tuple[Column, ...] = (
    Column("id"), Column("name"), Column("created_at", "time"), Column("retention_days"),
)
API_KEY_COLUMNS: tuple[Column, ...] = (
    Column("project_id"), Column("public_key"), Column("secret_hash"), Column("created_at", "time"),
)
PRICE_COLUMNS: tuple[Column, ...] = (
    Column("project_id"), Column("id"), Column("entry", "json"), Column("created_at", "time"),
    Column("updated_at", "time"),
)
AUDIT_COLUMNS: tuple[Column, ...] = (Column("id"), Column("at", "time"), Column("kind"), Column("details", "json"))


# values ------------------------------------------------------------------------------------------------------

def utc_in(value: datetime, field: str) -> datetime:
    """An aware datetime converted to UTC; a naive one is refused (it would be ambiguous)."""
    if value.tzinfo is UTC:  # already UTC (what the decoders give): nothing to convert
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(f"{field}: {value.isoformat()} has no time zone; pass tz-aware UTC datetimes")
    return value.astimezone(UTC)


def utc_out(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _opt_utc_in(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else utc_in(value, field)


def _opt_utc_out(value: datetime | None) -> datetime | None:
    return None if value is None else utc_out(value)


def money_text(value: Decimal | int | None) -> str | None:
    """A decimal as plain text (no exponent) for a DECIMAL column or a JSON money map."""
    if value is None:
        return None
    return format(value if isinstance(value, Decimal) else Decimal(value), "f")


def money_out(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else to_decimal(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value.is_finite():
            as_float = float(value)
            if Decimal(repr(as_float)) == value:
                return as_float
        return format(value, "f")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"cannot store a {type(value).__name__} in JSON")


def dumps_json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=_json_default).decode()
    except TypeError as exc:
        raise StoreError(f"value cannot be stored as JSON: {exc}") from None


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads_json(text: str | bytes | memoryview) -> Any:
    """JSON text → Python, with fractional numbers as exact ``Decimal`` (orjson when there are none)."""
    if not isinstance(text, str | bytes):  # psycopg may hand over a memoryview
        text = bytes(text)
    data = orjson.loads(text)
    if _has_float(data):
        data = json.loads(text, parse_float=Decimal)
    return data


def json_out(value: Any) -> Any:
    """A JSON column's value: text from DuckDB, already decoded (by ``loads_json``) from PostgreSQL."""
    return loads_json(value) if isinstance(value, str | bytes) else value


def _opt_json(value: Any) -> str | None:
    return None if value is None else dumps_json(value)


def money_map_json(amounts: Mapping[str, Decimal] | None) -> str | None:
    if amounts is None:
        return None
    return dumps_json({unit: money_text(amount) for unit, amount in amounts.items()})


def _flat_json_out(value: Any) -> Any:
    """A usage or money map column: its values are ints and decimal strings by construction, so orjson alone
    reads it exactly (a stray float still converts exactly, through ``repr``, in ``to_decimal``)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def money_map_out(value: Any) -> dict[str, Decimal] | None:
    data = _flat_json_out(value)
    if data is None:
        return None
    return {unit: to_decimal(amount, field=unit) for unit, amount in data.items()}


def usage_json(quantities: Mapping[str, Quantity]) -> str:
    return dumps_json({
        unit: number if isinstance(number, int) else money_text(number) for unit, number in quantities.items()
    })


def usage_out(value: Any) -> dict[str, Quantity]:
    data = _flat_json_out(value) or {}
    return {
        unit: number if isinstance(number, int) and not isinstance(number, bool) else to_decimal(number, field=unit)
        for unit, number in data.items()
    }


# records ⇄ rows ----------------------------------------------------------------------------------------------

def observation_row(o: Observation) -> tuple[Any, ...]:
    """``o`` as values in ``OBSERVATION_COLUMNS`` order."""
    return (
        o.project_id, o.id, o.trace_id, o.parent_id, o.type, o.name,
        utc_in(o.start_time, "start_time"), _opt_utc_in(o.end_time, "end_time"),
        _opt_utc_in(o.completion_start_time, "completion_start_time"),
        o.model, o.resolved_model, o.provider, usage_json(o.usage), money_map_json(o.cost),
        money_text(o.total_cost), o.currency, o.pricing_status, o.price_id, o.pricing_reason,
        money_map_json(o.provided_cost), _opt_json(o.attributes), o.user_id, o.session_id, list(o.tags),
        dumps_json(o.metadata), o.environment, o.release, o.version, o.level, o.status_message,
        _opt_json(o.model_parameters),
    )


def observation_from_row(r: Sequence[Any]) -> Observation:
    return Observation(
        project_id=r[0], id=r[1], trace_id=r[2], parent_id=r[3], type=r[4], name=r[5],
        start_time=utc_out(r[6]), end_time=_opt_utc_out(r[7]), completion_start_time=_opt_utc_out(r[8]),
        model=r[9], resolved_model=r[10], provider=r[11], usage=usage_out(r[12]), cost=money_map_out(r[13]) or {},
        total_cost=money_out(r[14]), currency=r[15], pricing_status=r[16], price_id=r[17], pricing_reason=r[18],
        provided_cost=money_map_out(r[19]), attributes=json_out(r[20]), user_id=r[21], session_id=r[22],
        tags=tuple(r[23] or ()), metadata=json_out(r[24]) or {}, environment=r[25], release=r[26], version=r[27],
        level=r[28], status_message=r[29], model_parameters=json_out(r[30]),
    )


def trace_row(t: Trace) -> tuple[Any, ...]:
    return (
        t.project_id, t.id, utc_in(t.timestamp, "timestamp"), t.name, t.user_id, t.session_id, list(t.tags),
        dumps_json(t.metadata), t.environment, t.release, t.version, bool(t.public),
    )


def trace_from_row(r: Sequence[Any]) -> Trace:
    return Trace(
        project_id=r[0], id=r[1], timestamp=utc_out(r[2]), name=r[3], user_id=r[4], session_id=r[5],
        tags=tuple(r[6] or ()), metadata=json_out(r[7]) or {}, environment=r[8], release=r[9], version=r[10],
        public=bool(r[11]),
    )


def score_row(s: Score) -> tuple[Any, ...]:
    numeric = None if isinstance(s.value, str) else money_text(s.value)
    text = s.value if isinstance(s.value, str) else None
    return (
        s.project_id, s.id, s.name, numeric, text, utc_in(s.timestamp, "timestamp"), s.trace_id,
        s.observation_id, s.session_id, s.data_type, s.comment, s.environment, dumps_json(s.metadata),
    )


def score_from_row(r: Sequence[Any]) -> Score:
    numeric = money_out(r[3])
    value: Decimal | str = r[4] if r[4] is not None else numeric if numeric is not None else Decimal(0)
    return Score(
        project_id=r[0], id=r[1], name=r[2], value=value, timestamp=utc_out(r[5]), trace_id=r[6],
        observation_id=r[7], session_id=r[8], data_type=r[9], comment=r[10], environment=r[11],
        metadata=json_out(r[12]) or {},
    )


R = TypeVar("R", Observation, Trace, Score)


def latest_by_key(records: Iterable[R]) -> list[R]:
    """One record per (project_id, id), the last one given winning, in key order.

    An upsert statement may not touch a row twice, and a fixed key order keeps concurrent writers from
    deadlocking on PostgreSQL.
    """
    latest = {(r.project_id, r.id): r for r in records}
    return [latest[key] for key in sorted(latest)]
