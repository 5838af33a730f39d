"""Bounds on every value that comes from outside, in one table, and the checks that apply them.

Every ingestion decoder (native ``/v1/ingest``, the Langfuse batch and scores routes, OTLP protobuf and JSON)
runs its events through ``check_observation`` / ``check_trace`` / ``check_score``, and numbers through
``to_decimal`` (whose exponent cap is ``MAX_EXPONENT``) and ``Usage`` (counts up to ``MAX_INTEGER``). So a value
the stores cannot hold (a count past BIGINT, money past DECIMAL(38,12), a NUL character on PostgreSQL, JSON
nested deeper than a serialiser recurses) is an item error naming the field on every route, and never a store
error that loses the whole batch. docs/api.md "Limits" is this table in prose; keep them in step.

NUL (U+0000) and lone surrogates (U+D800..U+DFFF, which JSON's ``\\ud800`` escapes can carry) are refused in
every stored string, on both stores alike: PostgreSQL cannot store NUL in text or JSONB, and a lone surrogate
is not encodable as UTF-8 at all. Values that are not stored (Langfuse ``input`` / ``output``) are not checked.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from costline.errors import CostlineError

if TYPE_CHECKING:  # events import usage, which imports money, which imports this module: no cycle at run time
    from costline.core.events import ObservationEvent, ScoreEvent, TraceEvent

#: ids: observation, trace, parent, score and Langfuse envelope ids (an over-long id is refused, never cut)
MAX_ID_LENGTH: Final = 256
#: observation, trace and score names
MAX_NAME_LENGTH: Final = 1024
MAX_MODEL_LENGTH: Final = 512
MAX_PROVIDER_LENGTH: Final = 128
#: user and session ids
MAX_USER_LENGTH: Final = 512
MAX_ENVIRONMENT_LENGTH: Final = 64
#: release, version, level, score data type and text value
MAX_TEXT_LENGTH: Final = 4096
#: status messages and score comments
MAX_MESSAGE_LENGTH: Final = 32_768
MAX_TAGS: Final = 100
MAX_TAG_LENGTH: Final = 256
#: metadata, model parameters and price attributes: size as compact UTF-8 JSON, nesting, keys at every level
MAX_JSON_BYTES: Final = 65_536
MAX_JSON_DEPTH: Final = 20
MAX_JSON_KEYS: Final = 1000
MAX_KEY_LENGTH: Final = 256
#: token counts, other usage quantities and nanosecond times: 0 .. 2^63-1 (a BIGINT); JSON integers in
#: metadata: -2^63 .. 2^63-1
MAX_INTEGER: Final = 2**63 - 1
MIN_INTEGER: Final = -(2**63)
#: money (costs, score values): |amount| below 10^15 after rounding to 12 decimal places. The column is
#: DECIMAL(38,12) (below 10^26), but DuckDB sums it in 38 digits too, so a per-value bound of 10^15 keeps
#: every SUM over up to 10^11 rows exact instead of overflowing a report.
MONEY_LIMIT: Final = Decimal(10) ** 15
MONEY_PLACES: Final = 12
#: the adjusted exponent of any decimal read from outside lies within ±MAX_EXPONENT; it is checked before any
#: arithmetic, since ``Decimal("9e999999999")`` is finite and formatting or converting it never ends
MAX_EXPONENT: Final = 100
#: the digits of an integer written as a decimal string (``"12345"`` for a token count)
MAX_INTEGER_DIGITS: Final = len(str(MAX_INTEGER))

_MONEY_QUANTUM: Final = Decimal(1).scaleb(-MONEY_PLACES)
_MONEY_CONTEXT: Final = Context(prec=60)


class LimitError(CostlineError):
    """A value outside the bounds above; the message starts with the field."""


#: the instants costline stores and queries (a margin inside datetime's years 1..9999, so that a zone offset
#: or a bucket step never overflows)
EARLIEST: Final = datetime(1000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


class TimeRangeError(ValueError):
    """A date-time that parses but falls outside the years 1000..9000 once converted to UTC."""

    def __str__(self) -> str:
        return f" (outside the years {EARLIEST.year}..{LATEST.year} in UTC)"


# scalars --------------------------------------------------------------------------------------------------


def preview(value: object, width: int = 40) -> str:
    """``repr`` of a value, cut to ``width`` characters: error messages never echo a huge input."""
    if isinstance(value, int) and value.bit_length() > 4 * MAX_INTEGER_DIGITS:  # repr refuses > 4300 digits
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored (NUL, lone surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL character (U+0000), which is not stored"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not valid Unicode"
    return None


def check_text(value: str, field: str, max_length: int) -> str:
    if len(value) > max_length:
        raise LimitError(f"{field}: longer than {max_length} characters ({len(value)})")
    problem = text_problem(value)
    if problem is not None:
        raise LimitError(f"{field}: {problem}")
    return value


def check_count(value: int, field: str) -> int:
    """A count or nanosecond time: 0 .. 2^63-1."""
    if value < 0 or value > MAX_INTEGER:
        raise LimitError(f"{field}: {preview(value)} is out of range (0 .. 2^63-1)")
    return value


def parse_count(text: str) -> int | None:
    """An integer written with ASCII digits (spaces around allowed), or None. ``str.isdigit`` also takes
    ``"²"`` and other digits ``int`` refuses, and ``int`` refuses more than 4300 digits: both used to be 500s."""
    digits = text.strip()
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > MAX_INTEGER_DIGITS + 20:
        return None
    return int(digits)


def check_exponent(value: Decimal, field: str) -> Decimal:
    """Refuse a finite decimal whose exponent is out of ±MAX_EXPONENT, before any arithmetic on it."""
    if value and not -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        raise LimitError(f"{field}: {preview(value)} is out of range (exponent beyond ±{MAX_EXPONENT})")
    return value


def check_money(value: Decimal, field: str) -> Decimal:
    """A cost or score value: finite and ``|value|`` below ``MONEY_LIMIT`` once rounded to 12 places."""
    # the common case without rounding: |value| < 10^14 cannot round up to 10^15
    if value.is_finite() and (not value or -MAX_EXPONENT <= value.adjusted() <= 13):
        return value
    if not value.is_finite():
        raise LimitError(f"{field}: {preview(value)} is not a finite number")
    check_exponent(value, field)
    try:
        rounded = value.quantize(_MONEY_QUANTUM, context=_MONEY_CONTEXT)
    except InvalidOperation:
        rounded = value
    if abs(rounded) >= MONEY_LIMIT:
        raise LimitError(f"{field}: {preview(value)} is out of range (an amount must be below 10^15)")
    return value


def iso_utc(text: str) -> datetime:
    """An ISO 8601 date-time (``Z``, an offset or none, naive = UTC) as an aware UTC datetime.

    ``ValueError`` when unreadable, ``TimeRangeError`` when the instant falls outside the years 1000..9000 in
    UTC (``9999-12-31T23:59:59-05:00`` used to raise OverflowError, a 500).
    """
    # the common ``2026-11-01T12:00:00Z`` without the rewrite and the conversion (else: the general path)
    if len(text) == 20 and text[19] == "Z" and text[10] == "T" and text[13] == ":" and text[16] == ":":
        try:
            moment = datetime.fromisoformat(text[:19])
        except ValueError:
            pass
        else:
            moment = moment.replace(tzinfo=UTC)
            if not EARLIEST <= moment <= LATEST:
                raise TimeRangeError
            return moment
    stripped = text.strip()
    if stripped.endswith(("Z", "z")):
        stripped = stripped[:-1] + "+00:00"
    moment = datetime.fromisoformat(stripped)
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise TimeRangeError from None
    if not EARLIEST <= moment <= LATEST:
        raise TimeRangeError
    return moment


# JSON values ----------------------------------------------------------------------------------------------


def _scalar_problem(item: Any) -> str | None:
    """Why a JSON scalar cannot be stored, or None (containers are walked by ``check_json``)."""
    if isinstance(item, str):
        return None if item.isascii() and "\x00" not in item else text_problem(item)
    if item is None or isinstance(item, bool):
        return None
    if isinstance(item, int):
        return None if MIN_INTEGER <= item <= MAX_INTEGER else f"{preview(item)} is out of range (-2^63 .. 2^63-1)"
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{item!r} is not a finite number"
    if isinstance(item, Decimal):
        if not item.is_finite():
            return f"{preview(item)} is not a finite number"
        if item and not -MAX_EXPONENT <= item.adjusted() <= MAX_EXPONENT:
            return f"{preview(item)} is out of range (exponent beyond ±{MAX_EXPONENT})"
        return None
    return f"a {type(item).__name__} is not a JSON value"


def _child_path(where: str, key: object) -> str:
    return f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"


def check_json(value: Any, field: str) -> None:
    """Metadata-like JSON: nesting, keys, strings, numbers and total size within the bounds above.

    Field paths are built only for an error: this runs once per stored object of every event.
    """
    keys = chars = items = 0
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        container, where, depth = stack.pop()
        if isinstance(container, Mapping):
            if depth >= MAX_JSON_DEPTH:
                raise LimitError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
            keys += len(container)
            if keys > MAX_JSON_KEYS:
                raise LimitError(f"{field}: more than {MAX_JSON_KEYS} keys")
            pairs: Any = container.items()
        elif isinstance(container, list | tuple):
            if depth >= MAX_JSON_DEPTH:
                raise LimitError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
            pairs = enumerate(container)
        else:
            problem = _scalar_problem(container)
            if problem is not None:
                raise LimitError(f"{where}: {problem}")
            if isinstance(container, str):
                chars += len(container)
            continue
        for key, child in pairs:
            items += 1
            if isinstance(key, str):
                chars += len(key)
                if len(key) > MAX_KEY_LENGTH or not key.isascii() or "\x00" in key:
                    check_text(key, f"{where}: key {preview(key)}", MAX_KEY_LENGTH)
            elif isinstance(container, Mapping):
                raise LimitError(f"{where}: keys must be strings, got {preview(key)}")
            if isinstance(child, Mapping | list | tuple):
                stack.append((child, _child_path(where, key), depth + 1))
            elif isinstance(child, str) and child.isascii() and "\x00" not in child:
                chars += len(child)
            else:
                problem = _scalar_problem(child)
                if problem is not None:
                    raise LimitError(f"{_child_path(where, key)}: {problem}")
                if isinstance(child, str):
                    chars += len(child)
        if chars > MAX_JSON_BYTES:
            raise LimitError(f"{field}: larger than {MAX_JSON_BYTES} bytes as JSON")
    if 4 * chars + 32 * items > MAX_JSON_BYTES:  # it might be over: measure it exactly
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())
        if size > MAX_JSON_BYTES:
            raise LimitError(f"{field}: larger than {MAX_JSON_BYTES} bytes as JSON ({size})")


def check_tags(tags: tuple[str, ...], field: str) -> None:
    if len(tags) > MAX_TAGS:
        raise LimitError(f"{field}: more than {MAX_TAGS} tags ({len(tags)})")
    for i, tag in enumerate(tags):
        check_text(tag, f"{field}[{i}]", MAX_TAG_LENGTH)


# events ---------------------------------------------------------------------------------------------------

#: (field, bound) for the string fields of the events
_OBSERVATION_TEXT: Final = (
    ("id", MAX_ID_LENGTH), ("trace_id", MAX_ID_LENGTH), ("parent_id", MAX_ID_LENGTH), ("type", MAX_TEXT_LENGTH),
    ("name", MAX_NAME_LENGTH), ("model", MAX_MODEL_LENGTH), ("provider", MAX_PROVIDER_LENGTH),
    ("user_id", MAX_USER_LENGTH), ("session_id", MAX_USER_LENGTH), ("environment", MAX_ENVIRONMENT_LENGTH),
    ("release", MAX_TEXT_LENGTH), ("version", MAX_TEXT_LENGTH), ("level", MAX_TEXT_LENGTH),
    ("status_message", MAX_MESSAGE_LENGTH),
)
_TRACE_TEXT: Final = (
    ("id", MAX_ID_LENGTH), ("name", MAX_NAME_LENGTH), ("user_id", MAX_USER_LENGTH),
    ("session_id", MAX_USER_LENGTH), ("environment", MAX_ENVIRONMENT_LENGTH), ("release", MAX_TEXT_LENGTH),
    ("version", MAX_TEXT_LENGTH),
)
_SCORE_TEXT: Final = (
    ("id", MAX_ID_LENGTH), ("name", MAX_NAME_LENGTH), ("trace_id", MAX_ID_LENGTH),
    ("observation_id", MAX_ID_LENGTH), ("session_id", MAX_USER_LENGTH), ("data_type", MAX_TEXT_LENGTH),
    ("comment", MAX_MESSAGE_LENGTH), ("environment", MAX_ENVIRONMENT_LENGTH),
)

#: each table's fields read in one C call
_TEXT_VALUES: Final[dict[tuple[tuple[str, int], ...], operator.attrgetter[Any]]] = {
    table: operator.attrgetter(*(name for name, _ in table)) for table in (_OBSERVATION_TEXT, _TRACE_TEXT, _SCORE_TEXT)
}


def _check_texts(event: object, table: tuple[tuple[str, int], ...], names: Mapping[str, str]) -> None:
    for (name, bound), value in zip(table, _TEXT_VALUES[table](event), strict=True):
        # the common case inline (short, ASCII, no NUL); check_text words the error otherwise
        if value is not None and (len(value) > bound or not value.isascii() or "\x00" in value):
            check_text(value, names.get(name, name), bound)


def check_observation(event: ObservationEvent, names: Mapping[str, str] | None = None) -> None:
    """Every stored field of an observation event within bounds; ``names`` maps a field to the protocol's
    name for it (``{"user_id": "userId"}``) so the error names what the client sent."""
    names = names or {}
    _check_texts(event, _OBSERVATION_TEXT, names)
    if event.tags is not None:
        check_tags(event.tags, names.get("tags", "tags"))
    for name in ("metadata", "model_parameters", "attributes"):
        value = getattr(event, name)
        if value is not None:
            check_json(value, names.get(name, name))
    if event.provided_cost is not None:
        where = names.get("provided_cost", "cost")
        for unit, amount in event.provided_cost.items():
            check_money(amount, f"{where}.{unit}")
    if event.start_time is not None and event.end_time is not None and event.end_time < event.start_time:
        raise LimitError(
            f"{names.get('end_time', 'end_time')}: {event.end_time.isoformat()} is before "
            f"{names.get('start_time', 'start_time')} {event.start_time.isoformat()}"
        )


def check_trace(event: TraceEvent, names: Mapping[str, str] | None = None) -> None:
    names = names or {}
    _check_texts(event, _TRACE_TEXT, names)
    if event.tags is not None:
        check_tags(event.tags, names.get("tags", "tags"))
    if event.metadata is not None:
        check_json(event.metadata, names.get("metadata", "metadata"))


def check_score(event: ScoreEvent, names: Mapping[str, str] | None = None) -> None:
    names = names or {}
    _check_texts(event, _SCORE_TEXT, names)
    if isinstance(event.value, str):
        check_text(event.value, names.get("value", "value"), MAX_TEXT_LENGTH)
    else:
        check_money(event.value, names.get("value", "value"))
    if event.metadata is not None:
        check_json(event.metadata, names.get("metadata", "metadata"))
