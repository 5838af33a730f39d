"""Anthropic Messages payloads (also Claude on Bedrock InvokeModel and Vertex, which return the same body).

Anthropic's ``usage.input_tokens`` EXCLUDES the cache: the prompt is split into three disjoint parts,
``input_tokens`` (uncached), ``cache_creation_input_tokens`` (written) and ``cache_read_input_tokens``
(read). costline's inclusive ``input_tokens`` is their sum. ``cache_creation.ephemeral_5m_input_tokens`` /
``ephemeral_1h_input_tokens`` split the cache write by TTL. ``output_tokens`` already counts extended
thinking (there is no separate count). ``server_tool_use.web_search_requests`` is billed per search.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from costline.errors import ExtractionError
from costline.extract._fields import (
    Counts,
    add,
    as_int,
    build,
    count,
    count0,
    join,
    mapping,
    require_mapping,
    text,
)
from costline.extract._result import Extracted

PROVIDER = "anthropic"


def parse_usage(usage: Mapping[str, Any], path: str) -> Counts:
    q: Counts = {}
    uncached = count(usage, "input_tokens", path, required=True) or 0
    written = count0(usage, "cache_creation_input_tokens", path)
    read = count0(usage, "cache_read_input_tokens", path)
    # input_tokens excludes the cache: total prompt = uncached + written + read
    add(q, "input_tokens", uncached + written + read)
    add(q, "cache_write_tokens", written)
    add(q, "cache_read_tokens", read)
    by_ttl = mapping(usage, "cache_creation", path) or {}
    ttl_path = join(path, "cache_creation")
    add(q, "cache_write_5m_tokens", count(by_ttl, "ephemeral_5m_input_tokens", ttl_path))
    add(q, "cache_write_1h_tokens", count(by_ttl, "ephemeral_1h_input_tokens", ttl_path))
    add(q, "output_tokens", count(usage, "output_tokens", path, required=True))
    tools = mapping(usage, "server_tool_use", path) or {}
    add(q, "web_searches", count(tools, "web_search_requests", join(path, "server_tool_use")))
    return q


def _locate(payload: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, Mapping[str, Any]]:
    if "usage" in payload:
        usage = mapping(payload, "usage", "", required=True)
        assert usage is not None
        return usage, "usage", payload
    message = payload.get("message")
    if isinstance(message, Mapping) and "usage" in message:  # a message_start event
        usage = mapping(message, "usage", "message", required=True)
        assert usage is not None
        return usage, "message.usage", message
    if "input_tokens" in payload or "output_tokens" in payload:
        return payload, "", payload
    raise ExtractionError("usage: required field is missing (the payload has no usage object)")


def extract(payload: Mapping[str, Any], provider: str | None = PROVIDER) -> Extracted:
    usage, path, body = _locate(payload)
    return Extracted(build(parse_usage(usage, path)), text(body, "model"), provider)


def extract_stream(chunks: Iterable[object], provider: str | None = PROVIDER) -> Extracted | None:
    """Merge ``message_start``'s ``message.usage`` with every ``message_delta``'s ``usage``.

    ``message_delta`` counts are cumulative, so the last one wins; newer API versions repeat the input and
    cache counts there too, and any non-null field present overrides the ``message_start`` value.
    """
    merged: dict[str, Any] = {}
    model: str | None = None
    seen = False
    for i, raw in enumerate(chunks):
        where = f"chunk[{i}]"
        event = require_mapping(raw, where)
        kind = event.get("type")
        if kind == "message_start":
            message = mapping(event, "message", where) or {}
            model = text(message, "model") or model
            upath = join(where, "message.usage")
            usage = mapping(message, "usage", join(where, "message"))
        elif kind == "message_delta":
            upath = join(where, "usage")
            usage = mapping(event, "usage", where)
        else:
            continue
        if usage is not None:
            seen = True
            for key, value in usage.items():
                if value is not None:
                    if key.endswith("_tokens"):
                        as_int(value, join(upath, key))  # name the chunk in the error
                    merged[key] = value
    if not seen:
        return None
    return Extracted(build(parse_usage(merged, "stream usage")), model, provider)
