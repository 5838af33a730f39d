"""Strict readers for decoded JSON: each error names the field's path."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from costline.core.limits import MAX_ID_LENGTH, MAX_MESSAGE_LENGTH, MAX_TAGS, TimeRangeError, iso_utc, preview
from costline.core.money import to_decimal
from costline.errors import CostlineError


class FieldError(CostlineError):
    """A field of one item that cannot be read; the message starts with the field's path."""


def opt_str(data: Mapping[str, Any], key: str, path: str, *, max_length: int = MAX_MESSAGE_LENGTH) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(f"{path}.{key}: expected a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise FieldError(f"{path}.{key}: longer than {max_length} characters ({len(value)})")
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
        try:
            return iso_utc(value)
        except ValueError as exc:
            why = str(exc) if isinstance(exc, TimeRangeError) else ""
            raise FieldError(f"{path}.{key}: {preview(value)} is not an ISO 8601 date-time{why}") from None
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
    if len(value) > MAX_TAGS:
        raise FieldError(f"{path}.{key}: more than {MAX_TAGS} tags ({len(value)})")
    return tuple(value)


def opt_str_map(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, str] | None:
    value = opt_mapping(data, key, path)
    if value is None:
        return None
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, str):
            out[k] = v
        elif isinstance(v, int | float | Decimal):
            out[k] = str(to_decimal(v, field=f"{path}.{key}.{k}"))
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
            raise FieldError(f"{path}.{k}: a cost must not be negative, got {preview(v)}")
        out[k] = amount
    return out
