"""Reading values out of a flat OTel attribute mapping (``otlp.py`` flattens them), shared by the rules of
``otel_attributes`` and ``otel_usage``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Attrs = Mapping[str, Any]


def attr(key: str) -> str:
    return f'attributes["{key}"]'


def first(attrs: Attrs, *keys: str) -> Any:
    """The first value among ``keys`` that is present and not empty."""
    for key in keys:
        value = attrs.get(key)
        if value is None:  # the common case first: most keys looked up are absent
            continue
        if value != "" and value != [] and value != {}:
            return value
    return None


def text(attrs: Attrs, *keys: str) -> str | None:
    """The first non-empty string (or number, as text) among ``keys``."""
    for key in keys:
        value = attrs.get(key)
        if value is None:  # the common case first: most keys looked up are absent
            continue
        if isinstance(value, str):
            if value.strip():
                return value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    return None


def is_true(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def loads(value: object) -> Any:
    """``value`` JSON-decoded when it is a string holding JSON, else as is."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # also past 4300 digits, or nested past the parser's stack
            return value
    return value
