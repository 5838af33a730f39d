"""Strict field readers shared by the extractors; every error names the field path.

Every reader takes the mapping it reads from and the dotted path of that mapping inside the payload, so an
error says exactly which field was wrong (``usage.prompt_tokens_details.cached_tokens: expected a
non-negative integer, got -3``). ``None`` is treated as absent: OpenAI-compatible servers send ``null`` for
detail objects they do not fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from costline.core.money import to_decimal
from costline.core.usage import Usage
from costline.errors import CostlineError, ExtractionError

Counts = dict[str, int | Decimal]


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return f"a boolean ({value})"
    return repr(value) if isinstance(value, int | float | Decimal) or value is None else type(value).__name__


def as_int(value: object, path: str) -> int:
    """A token count: a non-negative int (an integer-valued float such as ``12.0`` is accepted)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ExtractionError(f"{path}: expected a non-negative integer, got {describe(value)}")
    if isinstance(value, int):
        number = value
    elif value != value or value in (float("inf"), float("-inf")) or value != int(value):
        raise ExtractionError(f"{path}: expected a non-negative integer, got {describe(value)}")
    else:
        number = int(value)
    if number < 0:
        raise ExtractionError(f"{path}: expected a non-negative integer, got {describe(value)}")
    return number


def count(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> int | None:
    """``obj[key]`` as a token count; ``None`` when absent or null, unless ``required``."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ExtractionError(f"{join(path, key)}: required field is missing")
        return None
    return as_int(value, join(path, key))


def count0(obj: Mapping[str, Any], key: str, path: str) -> int:
    return count(obj, key, path) or 0


def amount(obj: Mapping[str, Any], key: str, path: str) -> Decimal | None:
    """``obj[key]`` as an exact non-negative number (durations, costs); floats go through ``repr``."""
    value = obj.get(key)
    if value is None:
        return None
    where = join(path, key)
    try:
        number = to_decimal(value, field=where)
    except CostlineError as exc:
        raise ExtractionError(str(exc)) from None
    if number < 0:
        raise ExtractionError(f"{where}: expected a non-negative number, got {describe(value)}")
    return number


def mapping(
    obj: Mapping[str, Any], key: str, path: str, *, required: bool = False
) -> Mapping[str, Any] | None:
    """``obj[key]`` as an object; ``None`` when absent or null, unless ``required``."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ExtractionError(f"{join(path, key)}: required field is missing")
        return None
    if not isinstance(value, Mapping):
        raise ExtractionError(f"{join(path, key)}: expected an object, got {describe(value)}")
    return value


def sequence(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ExtractionError(f"{join(path, key)}: expected a list, got {describe(value)}")
    return list(value)


def text(obj: Mapping[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` holding a non-empty string (model names); anything else reads as absent."""
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def require_mapping(payload: object, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise ExtractionError(f"{what}: expected a JSON object (a mapping), got {describe(payload)}")
    return payload


def add(q: Counts, unit: str, value: int | Decimal | None) -> None:
    """Add a quantity to ``q`` (absent and zero quantities are skipped)."""
    if value:
        q[unit] = q.get(unit, 0) + value


def build(q: Counts) -> Usage:
    """The validated ``Usage`` (a subset above its parent raises ``UsageError`` with both numbers)."""
    return Usage(q)


def cost(value: Decimal | None) -> Mapping[str, Decimal] | None:
    return None if value is None else {"total": value}
