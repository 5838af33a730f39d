"""Strict readers for decoded JSON: each error names the field's path."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costline.core.money import to_decimal
from costline.core.query import EARLIEST, LATEST
from costline.errors import CostlineError

MAX_ID_LENGTH = 256
MAX_TEXT_LENGTH = 4096


class FieldError(CostlineError):
    """A field of one item that cannot be read; the message starts with the field's path."""


def opt_str(data: Mapping[str, Any], key: str, path: str, *, max_length: int = MAX_TEXT_LENGTH) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(f"{path}.{key}: expected a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise FieldError(f"{path}.{key}: longer than {max_length} characters")
    return value


def req_id(data: Mapping[str, Any], key: str, path: str) -> str:
    value = opt_str(data, key, path, max_length=MAX_ID_LENGTH)
    if not value:
        raise FieldError(f"{path}.{key}: required (a non-empty string)")
    return value


def opt_time(data: Mapping[str, Any], key: str, path: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
            moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: the offset takes it past year 1 or 9999
            raise FieldError(f"{path}.{key}: {value!r} is not an ISO 8601 date-time") from None
        if not EARLIEST <= moment <= LATEST:
            raise FieldError(f"{path}.{key}: {value!r} is out of range; use a time from year {EARLIEST.year} to "
                             f"{LATEST.year}")
        return moment
    raise FieldError(f"{path}.{key}: expected an ISO 8601 string, got {type(value).__name__}")


def opt_mapping(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise FieldError(f"{path}.{key}: expected an object, got {type(value).__name__}")
    return value


def opt_tags(data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise FieldError(f"{path}.{key}: expected a list of strings")
    if len(value) > 100:
        raise FieldError(f"{path}.{key}: more than 100 tags")
    return tuple(value)


def opt_str_map(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, str] | None:
    value = opt_mapping(data, key, path)
    if value is None:
        return None
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, (str, int, float, Decimal)):
            out[k] = str(v)
        else:
            raise FieldError(f"{path}.{key}.{k}: expected a string")
    return out


def money_map(value: Any, path: str) -> dict[str, Decimal]:
    """A provided cost: ``{"total": "0.0012"}`` or per unit; numbers as strings or JSON numbers."""
    if not isinstance(value, Mapping):
        raise FieldError(f"{path}: expected an object of amounts, got {type(value).__name__}")
    out: dict[str, Decimal] = {}
    for k, v in value.items():
        if v is None:
            continue
        try:
            amount = to_decimal(v, field=f"{path}.{k}")
        except CostlineError as exc:
            raise FieldError(str(exc)) from None
        if amount < 0:
            raise FieldError(f"{path}.{k}: a cost must not be negative, got {v!r}")
        out[k] = amount
    return out
