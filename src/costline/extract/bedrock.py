"""AWS Bedrock Converse / ConverseStream payloads.

Convention (verified against the AWS prompt-caching guide, which states that with caching enabled
``inputTokens`` counts only the non-cached input and "total input tokens = inputTokens +
cacheReadInputTokens + cacheWriteInputTokens"): like Anthropic, ``inputTokens`` EXCLUDES the cache, so
costline's inclusive input_tokens is the sum of the three. ``cacheDetails`` ``[{inputTokens, ttl}]`` splits
the cache write by TTL ("5m" / "1h"). Converse responses do not echo the model id (it is in the request),
so ``model`` is ``None`` unless the payload carries ``modelId``.

Claude through InvokeModel returns Anthropic's own body (snake_case ``usage.input_tokens``); such a payload
is read with the Anthropic rules and reported as provider "aws".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from costline.errors import ExtractionError
from costline.extract import anthropic
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
    sequence,
    text,
)
from costline.extract._result import Extracted

PROVIDER = "aws"


def parse_usage(usage: Mapping[str, Any], path: str) -> Counts:
    q: Counts = {}
    uncached = count(usage, "inputTokens", path, required=True) or 0
    read = count0(usage, "cacheReadInputTokens", path)
    written = count0(usage, "cacheWriteInputTokens", path)
    # inputTokens excludes the cache (AWS: total input = inputTokens + cacheRead + cacheWrite)
    add(q, "input_tokens", uncached + read + written)
    add(q, "cache_read_tokens", read)
    add(q, "cache_write_tokens", written)
    details_path = join(path, "cacheDetails")
    for i, entry in enumerate(sequence(usage, "cacheDetails", path)):
        item = f"{details_path}[{i}]"
        if not isinstance(entry, Mapping):
            raise ExtractionError(f"{item}: expected an object with inputTokens and ttl")
        ttl = entry.get("ttl")
        if ttl in ("5m", "1h"):
            tokens = as_int(entry.get("inputTokens", 0), join(item, "inputTokens"))
            add(q, f"cache_write_{ttl}_tokens", tokens)
    add(q, "output_tokens", count(usage, "outputTokens", path, required=True))
    return q


def _locate(payload: Mapping[str, Any], path: str) -> tuple[Mapping[str, Any], str] | None:
    """The usage object of a Converse response, a ConverseStream ``metadata`` event, or a bare usage."""
    metadata = payload.get("metadata")
    if isinstance(metadata, Mapping) and "usage" in metadata:
        path, payload = join(path, "metadata"), metadata
    if "usage" in payload:
        usage = mapping(payload, "usage", path, required=True)
        assert usage is not None
        return usage, join(path, "usage")
    if "inputTokens" in payload or "outputTokens" in payload:
        return payload, path
    return None


def extract(payload: Mapping[str, Any], provider: str | None = PROVIDER) -> Extracted:
    usage_obj = payload.get("usage")
    if isinstance(usage_obj, Mapping) and "input_tokens" in usage_obj:  # InvokeModel with Claude
        return anthropic.extract(payload, provider)
    located = _locate(payload, "")
    if located is None:
        raise ExtractionError("usage: required field is missing (the payload has no usage object)")
    return Extracted(build(parse_usage(*located)), text(payload, "modelId", "model"), provider)


def extract_stream(chunks: Iterable[object], provider: str | None = PROVIDER) -> Extracted | None:
    """ConverseStream: the usage is in the ``metadata`` event (``{"metadata": {"usage": {...}}}``)."""
    found: tuple[Mapping[str, Any], str] | None = None
    for i, raw in enumerate(chunks):
        where = f"chunk[{i}]"
        event = require_mapping(raw, where)
        if isinstance(event.get("metadata"), Mapping) or "usage" in event:  # boto3 or raw event payload
            found = _locate(event, where) or found
    if found is None:
        return None
    return Extracted(build(parse_usage(*found)), None, provider)
