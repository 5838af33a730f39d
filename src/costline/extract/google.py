"""Google Gemini (AI Studio and Vertex AI) ``usageMetadata``, camelCase (REST) or snake_case (python SDK).

* ``promptTokenCount`` includes ``cachedContentTokenCount`` -> input_tokens / cache_read_tokens.
* ``candidatesTokenCount`` EXCLUDES thinking: output_tokens = candidates + ``thoughtsTokenCount``, and the
  thoughts are also output_reasoning_tokens.
* ``toolUsePromptTokenCount`` (e.g. search results fed back to the model) is not in ``promptTokenCount``
  and is billed as input, so it is added to input_tokens.
* ``promptTokensDetails`` / ``toolUsePromptTokensDetails`` / ``cacheTokensDetails``: per-modality
  ``[{modality, tokenCount}]`` -> input_{m}_tokens and cache_{m}_read_tokens for TEXT, IMAGE, AUDIO,
  VIDEO (DOCUMENT and unspecified modalities stay in the base input).
* ``candidatesTokensDetails``: only the AUDIO, IMAGE and VIDEO entries are kept (output_{m}_tokens); TEXT is
  not, since it leaves out the thinking text and so is not the inclusive text count.
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
    join,
    mapping,
    require_mapping,
    sequence,
    text,
)
from costline.extract._result import Extracted

PROVIDER = "google"

_FIELDS: Mapping[str, tuple[str, str]] = {
    "prompt": ("promptTokenCount", "prompt_token_count"),
    "candidates": ("candidatesTokenCount", "candidates_token_count"),
    "cached": ("cachedContentTokenCount", "cached_content_token_count"),
    "thoughts": ("thoughtsTokenCount", "thoughts_token_count"),
    "tool": ("toolUsePromptTokenCount", "tool_use_prompt_token_count"),
    "prompt_details": ("promptTokensDetails", "prompt_tokens_details"),
    "tool_details": ("toolUsePromptTokensDetails", "tool_use_prompt_tokens_details"),
    "cache_details": ("cacheTokensDetails", "cache_tokens_details"),
    "candidates_details": ("candidatesTokensDetails", "candidates_tokens_details"),
}
_INPUT_MODALITIES = {"TEXT": "text", "IMAGE": "image", "AUDIO": "audio", "VIDEO": "video"}
_OUTPUT_MODALITIES = {"IMAGE": "image", "AUDIO": "audio", "VIDEO": "video"}


def _key(usage: Mapping[str, Any], name: str) -> str:
    """The field's name in this object's style: REST keys are camelCase, the python SDK's snake_case."""
    camel, snake = _FIELDS[name]
    if camel in usage:
        return camel
    return snake if snake in usage or any("_" in str(key) for key in usage) else camel


def _count(usage: Mapping[str, Any], name: str, path: str, *, required: bool = False) -> int:
    key = _key(usage, name)
    value = usage.get(key)
    if value is None:
        if required:
            raise ExtractionError(f"{join(path, key)}: required field is missing")
        return 0
    return as_int(value, join(path, key))


def _by_modality(usage: Mapping[str, Any], name: str, path: str, known: Mapping[str, str]) -> dict[str, int]:
    key = _key(usage, name)
    where = join(path, key)
    result: dict[str, int] = {}
    for i, entry in enumerate(sequence(usage, key, path)):
        item = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ExtractionError(f"{item}: expected an object with modality and tokenCount")
        # "AUDIO" (REST) or "MediaModality.AUDIO" (a stringified SDK enum)
        modality = str(entry.get("modality", "")).rsplit(".", 1)[-1].upper()
        count_key = "tokenCount" if "tokenCount" in entry else "token_count"
        value = entry.get(count_key)
        tokens = 0 if value is None else as_int(value, join(item, count_key))
        if modality in known:
            result[known[modality]] = result.get(known[modality], 0) + tokens
    return result


def parse_usage(usage: Mapping[str, Any], path: str) -> Counts:
    q: Counts = {}
    tool = _count(usage, "tool", path)
    add(q, "input_tokens", _count(usage, "prompt", path, required=True) + tool)
    add(q, "cache_read_tokens", _count(usage, "cached", path))
    thoughts = _count(usage, "thoughts", path)
    # candidatesTokenCount excludes thoughts; Gemini omits it when nothing was generated
    add(q, "output_tokens", _count(usage, "candidates", path) + thoughts)
    add(q, "output_reasoning_tokens", thoughts)
    inputs = _by_modality(usage, "prompt_details", path, _INPUT_MODALITIES)
    for modality, tokens in _by_modality(usage, "tool_details", path, _INPUT_MODALITIES).items():
        inputs[modality] = inputs.get(modality, 0) + tokens
    for modality, tokens in inputs.items():
        add(q, f"input_{modality}_tokens", tokens)
    for modality, tokens in _by_modality(usage, "cache_details", path, _INPUT_MODALITIES).items():
        add(q, f"cache_{modality}_read_tokens", tokens)
    for modality, tokens in _by_modality(usage, "candidates_details", path, _OUTPUT_MODALITIES).items():
        add(q, f"output_{modality}_tokens", tokens)
    return q


def _usage_key(payload: Mapping[str, Any]) -> str | None:
    for key in ("usageMetadata", "usage_metadata"):
        if payload.get(key) is not None:
            return key
    return None


def extract(payload: Mapping[str, Any], provider: str | None = PROVIDER) -> Extracted:
    key = _usage_key(payload)
    if key is not None:
        usage = mapping(payload, key, "")
        assert usage is not None
        path = key
    elif any(payload.get(name) is not None for name in (*_FIELDS["prompt"], *_FIELDS["candidates"])):
        usage, path = payload, ""
    else:
        raise ExtractionError("usageMetadata: required field is missing (the payload has no usage metadata)")
    model = text(payload, "modelVersion", "model_version")
    return Extracted(build(parse_usage(usage, path)), model, provider)


def extract_stream(chunks: Iterable[object], provider: str | None = PROVIDER) -> Extracted | None:
    """Every streamed chunk may carry ``usageMetadata`` with running totals; the last one is final."""
    found: tuple[Mapping[str, Any], str] | None = None
    model: str | None = None
    for i, raw in enumerate(chunks):
        where = f"chunk[{i}]"
        chunk = require_mapping(raw, where)
        model = text(chunk, "modelVersion", "model_version") or model
        key = _usage_key(chunk)
        if key is not None:
            usage = mapping(chunk, key, where)
            assert usage is not None
            found = (usage, join(where, key))
    if found is None:
        return None
    return Extracted(build(parse_usage(*found)), model, provider)
