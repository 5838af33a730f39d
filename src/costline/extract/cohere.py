"""Cohere payloads: v2 chat (``usage``), v1 chat/generate/embed/rerank (``meta``), and their streams.

``billed_units`` is what Cohere charges, ``tokens`` what the model saw (it adds the prompt template);
billed units are preferred and ``tokens`` is only the fallback when no billed units are reported.
Billed units read: ``input_tokens``, ``output_tokens``, ``search_units`` (rerank) -> rerank_searches,
``images`` (embed) -> input_images. ``classifications`` has no costline unit and is not read; neither is
``cached_tokens`` (Cohere does not bill it separately from the billed input).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from costline.errors import ExtractionError
from costline.extract._fields import (
    Counts,
    add,
    build,
    count,
    join,
    mapping,
    require_mapping,
    text,
)
from costline.extract._result import Extracted

PROVIDER = "cohere"

_BILLED = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("search_units", "rerank_searches"),
    ("images", "input_images"),
)


def parse_usage(usage: Mapping[str, Any], path: str) -> Counts:
    """``usage`` is a v2 ``usage`` or a v1 ``meta`` object: both hold ``billed_units`` and/or ``tokens``."""
    q: Counts = {}
    billed = mapping(usage, "billed_units", path)
    if billed is not None and any(billed.get(key) is not None for key, _ in _BILLED):
        where = join(path, "billed_units")
        for key, unit in _BILLED:
            add(q, unit, count(billed, key, where))
        return q
    tokens = mapping(usage, "tokens", path)
    if tokens is None:
        raise ExtractionError(
            f"{join(path, 'billed_units')}: required field is missing (no billed_units or tokens)"
        )
    where = join(path, "tokens")
    add(q, "input_tokens", count(tokens, "input_tokens", where, required=True))
    add(q, "output_tokens", count(tokens, "output_tokens", where))
    return q


def _locate(payload: Mapping[str, Any], path: str) -> tuple[Mapping[str, Any], str] | None:
    for key in ("usage", "meta"):
        if payload.get(key) is not None:
            holder = mapping(payload, key, path)
            assert holder is not None
            if "billed_units" in holder or "tokens" in holder:
                return holder, join(path, key)
    if "billed_units" in payload or "tokens" in payload:
        return payload, path
    return None


def extract(payload: Mapping[str, Any], provider: str | None = PROVIDER) -> Extracted:
    located = _locate(payload, "")
    if located is None:
        raise ExtractionError(
            "usage: required field is missing (no usage or meta.billed_units in the payload)"
        )
    return Extracted(build(parse_usage(*located)), text(payload, "model"), provider)


def extract_stream(chunks: Iterable[object], provider: str | None = PROVIDER) -> Extracted | None:
    """v2: the ``message-end`` event's ``delta.usage``; v1: the ``stream-end`` event's ``response.meta``."""
    found: tuple[Mapping[str, Any], str] | None = None
    for i, raw in enumerate(chunks):
        where = f"chunk[{i}]"
        event = require_mapping(raw, where)
        for key in ("delta", "response"):
            inner = event.get(key)
            if isinstance(inner, Mapping):
                found = _locate(inner, join(where, key)) or found
        found = _locate(event, where) or found
    if found is None:
        return None
    return Extracted(build(parse_usage(*found)), None, provider)
