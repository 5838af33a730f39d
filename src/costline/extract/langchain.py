"""LangChain ``AIMessage`` dicts (``message.model_dump()`` or the ``dumpd`` form with ``kwargs``).

``usage_metadata`` is preferred: it is LangChain's normalised, INCLUSIVE record (``input_tokens`` counts
cached tokens; ``input_token_details`` {cache_read, cache_creation, audio} and ``output_token_details``
{reasoning, audio} are subsets). langchain-anthropic may also put the cache-write TTL split there
(``ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``); newer versions then zero
``cache_creation`` to avoid double counting and older ones keep the full count, so the cache write is
``max(cache_creation, 5m + 1h)`` — right for both.

Without ``usage_metadata`` the vendor's raw usage is read from ``response_metadata``: ``token_usage``
(OpenAI style) or ``usage`` (OpenAI, Anthropic or Bedrock Converse style, told apart by its keys; the
Anthropic and Bedrock ones exclude the cache). The provider comes from ``response_metadata.model_provider``
(langchain-core >= 1.0) when it names a known provider, else ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from costline.errors import ExtractionError
from costline.extract import anthropic, bedrock, openai
from costline.extract._fields import (
    Counts,
    add,
    build,
    count,
    count0,
    join,
    mapping,
    require_mapping,
    text,
)
from costline.extract._result import Extracted

_MODEL_PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "azure": "azure",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "google_genai": "google",
    "google_vertexai": "google",
    "google_anthropic_vertex": "google",
    "aws": "aws",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "cohere": "cohere",
    "mistral": "mistral",
    "mistralai": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "xai": "x-ai",
    "openrouter": "openrouter",
    "fireworks": "fireworks",
    "together": "together",
}


def parse_usage_metadata(meta: Mapping[str, Any], path: str) -> Counts:
    q: Counts = {}
    add(q, "input_tokens", count(meta, "input_tokens", path, required=True))
    add(q, "output_tokens", count(meta, "output_tokens", path, required=True))
    inp = mapping(meta, "input_token_details", path) or {}
    in_path = join(path, "input_token_details")
    add(q, "cache_read_tokens", count(inp, "cache_read", in_path))
    five = count0(inp, "ephemeral_5m_input_tokens", in_path)
    hour = count0(inp, "ephemeral_1h_input_tokens", in_path)
    add(q, "cache_write_tokens", max(count0(inp, "cache_creation", in_path), five + hour))
    add(q, "cache_write_5m_tokens", five)
    add(q, "cache_write_1h_tokens", hour)
    add(q, "input_audio_tokens", count(inp, "audio", in_path))
    out = mapping(meta, "output_token_details", path) or {}
    out_path = join(path, "output_token_details")
    add(q, "output_reasoning_tokens", count(out, "reasoning", out_path))
    add(q, "output_audio_tokens", count(out, "audio", out_path))
    return q


def _vendor_usage(usage: Mapping[str, Any], path: str) -> Counts:
    if "prompt_tokens" in usage:
        return openai.parse_usage(usage, path, {})
    if "inputTokens" in usage:
        return bedrock.parse_usage(usage, path)
    if "input_tokens" in usage:
        return anthropic.parse_usage(usage, path)
    raise ExtractionError(f"{path}: no prompt_tokens, input_tokens or inputTokens in this usage object")


def _message(payload: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    kwargs = payload.get("kwargs")
    if payload.get("lc") is not None and isinstance(kwargs, Mapping):  # langchain_core.load.dumpd form
        return kwargs, "kwargs"
    return payload, ""


def _counts(message: Mapping[str, Any], path: str) -> Counts | None:
    if message.get("usage_metadata") is not None:
        meta = mapping(message, "usage_metadata", path)
        assert meta is not None
        return parse_usage_metadata(meta, join(path, "usage_metadata"))
    meta_path = join(path, "response_metadata")
    response_metadata = mapping(message, "response_metadata", path) or {}
    for key in ("token_usage", "usage"):
        usage = mapping(response_metadata, key, meta_path)
        if usage is not None:
            return _vendor_usage(usage, join(meta_path, key))
    if "input_tokens" in message and "output_tokens" in message:  # a bare usage_metadata dict
        return parse_usage_metadata(message, path)
    return None


def _model_and_provider(message: Mapping[str, Any]) -> tuple[str | None, str | None]:
    meta = message.get("response_metadata")
    if not isinstance(meta, Mapping):
        return None, None
    name = text(meta, "model_provider")
    return text(meta, "model_name", "model", "model_id"), _MODEL_PROVIDERS.get(name.lower()) if name else None


def extract(payload: Mapping[str, Any], provider: str | None = None) -> Extracted:
    message, path = _message(payload)
    q = _counts(message, path)
    if q is None:
        raise ExtractionError(
            f"{join(path, 'usage_metadata')}: required field is missing (and no "
            "response_metadata.token_usage or response_metadata.usage either)"
        )
    model, reported = _model_and_provider(message)
    return Extracted(build(q), model, reported or provider)


def extract_stream(chunks: Iterable[object], provider: str | None = None) -> Extracted | None:
    """``AIMessageChunk`` dicts: their ``usage_metadata`` are summed, as LangChain does when it adds chunks.

    If no chunk has ``usage_metadata``, the last vendor usage in a ``response_metadata`` is used.
    """
    total: Counts = {}
    summed = False
    fallback: Counts | None = None
    model: str | None = None
    reported: str | None = None
    for i, raw in enumerate(chunks):
        message, path = _message(require_mapping(raw, f"chunk[{i}]"))
        path = join(f"chunk[{i}]", path) if path else f"chunk[{i}]"
        chunk_model, chunk_provider = _model_and_provider(message)
        model, reported = chunk_model or model, chunk_provider or reported
        q = _counts(message, path)
        if q is None:
            continue
        if message.get("usage_metadata") is not None:
            summed = True
            for unit, value in q.items():
                add(total, unit, value)
        else:
            fallback = q
    if not summed and fallback is None:
        return None
    return Extracted(build(total if summed else fallback or {}), model, reported or provider)
