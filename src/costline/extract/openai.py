"""OpenAI and OpenAI-compatible payloads: Chat Completions, Responses, embeddings, realtime, transcription.

All of OpenAI's counts are inclusive, like costline's: ``prompt_tokens`` / ``input_tokens`` already count
the cached (``cached_tokens``, read), cache-write (``cache_write_tokens``) and audio tokens,
``completion_tokens`` / ``output_tokens`` already count reasoning, audio and (accepted or rejected)
prediction tokens. Two compatible vendors differ, and both are detected from the payload itself rather than
the vendor name:

* xAI reports ``reasoning_tokens`` *outside* ``completion_tokens`` (its ``total_tokens`` is prompt +
  completion + reasoning). When ``total_tokens`` equals exactly that additive sum (and not prompt +
  completion), the reasoning tokens are added to the output.
* DeepSeek reports cache hits as ``prompt_cache_hit_tokens`` (a subset of ``prompt_tokens``); it is used
  when ``prompt_tokens_details.cached_tokens`` is absent.

Costs the payload reports: OpenRouter's ``usage.cost`` (USD) and xAI's ``usage.cost_in_usd_ticks``
(1 USD = 10^10 ticks) become ``provided_cost["total"]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from costline.errors import ExtractionError
from costline.extract._fields import (
    Counts,
    add,
    amount,
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

#: format name -> provider id (genai-prices ids; the price book falls back from azure to openai)
PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "azure": "azure",
    "azure_openai": "azure",
    "openrouter": "openrouter",
    "deepseek": "deepseek",
    "groq": "groq",
    "together": "together",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "fireworks": "fireworks",
}

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
_MODALITIES = ("text", "audio", "image")


def locate(payload: Mapping[str, Any], path: str = "") -> tuple[Mapping[str, Any], str, Mapping[str, Any]]:
    """(usage object, its path, the body it belongs to) for a whole response, an event or a bare usage."""
    if "usage" in payload:
        return _usage_at(payload, path), join(path, "usage"), payload
    response = payload.get("response")
    if isinstance(response, Mapping) and "usage" in response:
        # Responses API stream event (response.completed) or realtime ``response.done``
        where = join(path, "response")
        return _usage_at(response, where), join(where, "usage"), response
    if any(key in payload for key in _USAGE_KEYS) or payload.get("type") == "duration":
        return payload, path, payload
    raise ExtractionError(
        f"{join(path, 'usage')}: required field is missing (the payload has no usage object; "
        f"keys present: {', '.join(sorted(map(str, payload))) or 'none'})"
    )


def _usage_at(body: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    usage = mapping(body, "usage", path, required=True)
    assert usage is not None
    return usage


def _is_embedding(body: Mapping[str, Any], usage: Mapping[str, Any]) -> bool:
    if body.get("object") == "list":
        return True
    # a bare embeddings usage object: {"prompt_tokens": 8, "total_tokens": 8}
    return "completion_tokens" not in usage and usage.get("total_tokens") == usage.get("prompt_tokens")


def parse_usage(usage: Mapping[str, Any], path: str, body: Mapping[str, Any]) -> Counts:
    """The quantities of one OpenAI-shaped usage object (``body`` is the response it came with)."""
    q: Counts = {}
    if usage.get("type") == "duration":  # whisper-1 transcription: billed per second of input audio
        seconds = amount(usage, "seconds", path)
        if seconds is None:
            raise ExtractionError(f"{join(path, 'seconds')}: required field is missing")
        add(q, "input_audio_seconds", seconds)
        return q
    chat = usage.get("prompt_tokens") is not None or usage.get("input_tokens") is None
    if chat:
        inp = count(usage, "prompt_tokens", path, required=True) or 0
        out = count(usage, "completion_tokens", path)
        if out is None and not _is_embedding(body, usage):
            raise ExtractionError(f"{join(path, 'completion_tokens')}: required field is missing")
        in_key, out_key = "prompt_tokens_details", "completion_tokens_details"
    else:
        inp = count(usage, "input_tokens", path, required=True) or 0
        out = count(usage, "output_tokens", path, required=True)
        # Responses API: input_tokens_details; realtime and transcription: input_token_details
        in_key = "input_tokens_details" if "input_tokens_details" in usage else "input_token_details"
        out_key = "output_tokens_details" if "output_tokens_details" in usage else "output_token_details"
    output = out or 0

    in_details = mapping(usage, in_key, path) or {}
    in_path = join(path, in_key)
    cached = count(in_details, "cached_tokens", in_path)
    if cached is None:  # DeepSeek
        cached = count(usage, "prompt_cache_hit_tokens", path)
    add(q, "cache_read_tokens", cached)
    # openai 2.x: prompt_tokens_details / input_tokens_details.cache_write_tokens, a subset of the input too
    add(q, "cache_write_tokens", count(in_details, "cache_write_tokens", in_path))
    for modality in _MODALITIES:
        add(q, f"input_{modality}_tokens", count(in_details, f"{modality}_tokens", in_path))
    cached_details = mapping(in_details, "cached_tokens_details", in_path) or {}
    cached_path = join(in_path, "cached_tokens_details")
    for modality in _MODALITIES:
        add(q, f"cache_{modality}_read_tokens", count(cached_details, f"{modality}_tokens", cached_path))

    out_details = mapping(usage, out_key, path) or {}
    out_path = join(path, out_key)
    reasoning = count0(out_details, "reasoning_tokens", out_path)
    total = count(usage, "total_tokens", path)
    if reasoning and total is not None and total == inp + output + reasoning != inp + output:
        output += reasoning  # xAI: reasoning is reported outside completion_tokens
    add(q, "output_reasoning_tokens", reasoning)
    for modality in _MODALITIES:
        add(q, f"output_{modality}_tokens", count(out_details, f"{modality}_tokens", out_path))
    # accepted_/rejected_prediction_tokens are already inside completion_tokens and billed as output

    add(q, "input_tokens", inp)
    add(q, "output_tokens", output)
    if body.get("object") == "response":  # Responses API: hosted web search is billed per call
        add(q, "web_searches", sum(1 for item in sequence(body, "output", "output") if _is_search(item)))
    return q


def _is_search(item: object) -> bool:
    return isinstance(item, Mapping) and item.get("type") == "web_search_call"


def provided_cost(usage: Mapping[str, Any], path: str) -> Mapping[str, Decimal] | None:
    total = amount(usage, "cost", path)  # OpenRouter, USD
    if total is None:
        ticks = count(usage, "cost_in_usd_ticks", path)  # xAI
        total = None if ticks is None else Decimal(ticks).scaleb(-10)
    return None if total is None else {"total": total}


def extract(payload: Mapping[str, Any], provider: str | None = "openai") -> Extracted:
    usage, path, body = locate(payload)
    return Extracted(
        build(parse_usage(usage, path, body)), text(body, "model"), provider, provided_cost(usage, path)
    )


def stream_usage(
    chunks: Iterable[object], unwrap: str | None = None
) -> tuple[Mapping[str, Any], str, Mapping[str, Any], str | None] | None:
    """The last non-null usage of an OpenAI-style stream: (usage, path, body, model) or ``None``.

    Chat Completions streams carry ``usage`` on the final chunk when ``stream_options.include_usage`` is
    set (``null`` before); Responses streams carry it in ``response.completed``'s ``response.usage``;
    Groq puts it in ``x_groq.usage``. ``unwrap`` names a wrapper key (Mistral's SDK events: ``data``).
    """
    found: tuple[Mapping[str, Any], str, Mapping[str, Any]] | None = None
    model: str | None = None
    for i, raw in enumerate(chunks):
        where = f"chunk[{i}]"
        chunk = require_mapping(raw, where)
        if unwrap and isinstance(chunk.get(unwrap), Mapping):
            chunk, where = chunk[unwrap], join(where, unwrap)
        response = chunk.get("response")
        body = response if isinstance(response, Mapping) else chunk
        model = text(body, "model") or model
        for holder, holder_path in (
            (chunk, where),
            (body, join(where, "response")),
            (chunk.get("x_groq"), join(where, "x_groq")),
        ):
            if isinstance(holder, Mapping) and holder.get("usage") is not None:
                usage = mapping(holder, "usage", holder_path)
                assert usage is not None
                found = (usage, join(holder_path, "usage"), body)
                break
    return None if found is None else (*found, model)


def extract_stream(
    chunks: Iterable[object], provider: str | None = "openai", unwrap: str | None = None
) -> Extracted | None:
    located = stream_usage(chunks, unwrap)
    if located is None:
        return None
    usage, path, body, model = located
    return Extracted(build(parse_usage(usage, path, body)), model, provider, provided_cost(usage, path))
