"""Langfuse usage: legacy ``usage`` ({input, output, total, unit}) and ``usage_details`` dicts.

Rules chosen (Langfuse's own model is the reference):

* Usage-type keys are DISJOINT buckets, as Langfuse prices them (each key at its own rate, no
  subtraction): ``input`` is the uncached, non-audio remainder; ``input_cache_read``,
  ``input_cached_tokens``, ``input_audio`` ... are other parts of the prompt. costline's inclusive
  ``input_tokens`` is the sum of every input bucket and each bucket also counts toward its subset unit
  (cache_read_tokens, input_audio_tokens, ...). Likewise ``output``: when reasoning is given under
  ``output_reasoning_tokens`` / ``output_reasoning`` / ``reasoning_tokens``, ``output`` is the
  non-reasoning remainder and output_tokens = output + reasoning (+ audio ...). Any other ``input_*`` /
  ``output_*`` key is a bucket of that direction with no subset unit; ``total`` is ignored, so a total
  that disagrees with the buckets never double counts.
* An OpenAI-shaped usage with nested ``prompt_tokens_details`` / ``completion_tokens_details`` (or the
  Responses ``*_tokens_details``) is INCLUSIVE, as Langfuse's server treats it: it is read with the OpenAI
  rules instead.
* ``unit``: TOKENS (default); CHARACTERS -> input_characters / output_characters; IMAGES -> input_images /
  output_images; REQUESTS -> requests (input + output, or total when only a total is given); SECONDS and
  MILLISECONDS are taken as audio duration -> input_audio_seconds / output_audio_seconds, and a bare
  ``total`` of seconds (no direction) -> audio_seconds.
* ``cost_details`` / ``costDetails`` (and legacy ``inputCost`` / ``outputCost`` / ``totalCost``) become
  ``provided_cost``; a missing ``total`` is the sum of the other entries, as in Langfuse.
* A key that is neither a Langfuse usage type, a direction bucket nor a costline non-token unit raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from costline.core.units import UNITS
from costline.errors import ExtractionError
from costline.extract import openai
from costline.extract._fields import (
    Counts,
    add,
    amount,
    as_int,
    build,
    join,
    mapping,
    require_mapping,
    text,
)
from costline.extract._result import Extracted

_IN, _OUT = "input", "output"
#: usage-type key -> (direction, subset units the bucket also counts toward)
_KEYS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    **dict.fromkeys(("input", "input_tokens", "prompt_tokens", "promptTokens"), (_IN, ())),
    **dict.fromkeys(("output", "output_tokens", "completion_tokens", "completionTokens"), (_OUT, ())),
    **dict.fromkeys(
        ("input_cached_tokens", "input_cache_read", "cache_read_input_tokens", "cache_read_tokens"),
        (_IN, ("cache_read_tokens",)),
    ),
    **dict.fromkeys(
        ("input_cache_creation", "input_cache_write", "cache_creation_input_tokens", "cache_write_tokens"),
        (_IN, ("cache_write_tokens",)),
    ),
    **{
        k: (_IN, ("cache_write_tokens", f"cache_write_{ttl}_tokens"))
        for ttl in ("5m", "1h")
        for k in (f"input_cache_creation_{ttl}", f"input_ephemeral_{ttl}_input_tokens")
    },
    **dict.fromkeys(
        ("output_reasoning_tokens", "output_reasoning", "reasoning_tokens"),
        (_OUT, ("output_reasoning_tokens",)),
    ),
    **{
        k: (direction, (f"{direction}_{modality}_tokens",))
        for direction in (_IN, _OUT)
        for modality in ("text", "audio", "image")
        for k in (f"{direction}_{modality}", f"{direction}_{modality}_tokens")
    },
}
_MODALITIES = {"TEXT": "text", "IMAGE": "image", "AUDIO": "audio", "VIDEO": "video"}
_NOT_USAGE = frozenset({"model", "providedModelName", "provided_model_name", "cost_details", "costDetails"})
_IGNORED = frozenset({"total", "total_tokens", "totalTokens", "unit"}) | _NOT_USAGE
_LEGACY_COST = {"inputCost": "input", "outputCost": "output", "totalCost": "total"}
_OPENAI_DETAILS = (
    "prompt_tokens_details",
    "completion_tokens_details",
    "input_tokens_details",
    "output_tokens_details",
)
#: unit -> (input unit, output unit, direction-less unit)
_UNITS: Mapping[str, tuple[str, str, str | None]] = {
    "CHARACTERS": ("input_characters", "output_characters", None),
    "IMAGES": ("input_images", "output_images", None),
    "SECONDS": ("input_audio_seconds", "output_audio_seconds", "audio_seconds"),
    "MILLISECONDS": ("input_audio_seconds", "output_audio_seconds", "audio_seconds"),
    "REQUESTS": ("requests", "requests", "requests"),
}


def _bucket(key: str) -> tuple[str, tuple[str, ...]] | None:
    if key in _KEYS:
        return _KEYS[key]
    for prefix, direction, unit in (
        ("input_modality_", _IN, "input_{}_tokens"),
        ("output_modality_", _OUT, "output_{}_tokens"),
        ("cached_modality_", _IN, "cache_{}_read_tokens"),
    ):
        if key.startswith(prefix):
            modality = _MODALITIES.get(key[len(prefix) :].upper())
            if modality is None:
                return direction, ()
            if prefix == "cached_modality_":
                return direction, ("cache_read_tokens", unit.format(modality), f"input_{modality}_tokens")
            return direction, (unit.format(modality),)
    if key.startswith(("input_", "output_")) and key not in UNITS:
        return (_IN if key.startswith("input_") else _OUT), ()
    return None


def _tokens(usage: Mapping[str, Any], path: str) -> Counts:
    q: Counts = {}
    totals = {_IN: 0, _OUT: 0}
    seen = False
    for key, value in usage.items():
        if value is None or key in _IGNORED or key in _LEGACY_COST:
            continue
        where = join(path, str(key))
        bucket = _bucket(str(key))
        if bucket is None:
            if key in UNITS and UNITS[key].family != "tokens":
                add(q, key, amount(usage, key, path))
                continue
            raise ExtractionError(
                f"{where}: unknown Langfuse usage type (expected input/output buckets such as input, output, "
                "input_cache_read, input_cache_creation, output_reasoning_tokens, or a costline unit name)"
            )
        seen = True
        direction, subsets = bucket
        tokens = as_int(value, where)
        totals[direction] += tokens
        for unit in subsets:
            add(q, unit, tokens)
    if not seen and not q:
        if usage.get("total") is not None or usage.get("totalTokens") is not None:
            raise ExtractionError(
                f"{join(path, 'total')}: a token total without input/output buckets cannot be priced"
            )
        raise ExtractionError(f"{join(path, 'input')}: required field is missing (no usage buckets)")
    add(q, "input_tokens", totals[_IN])
    add(q, "output_tokens", totals[_OUT])
    return q


def _other_unit(usage: Mapping[str, Any], path: str, unit: str) -> Counts:
    scale = Decimal("0.001") if unit == "MILLISECONDS" else Decimal(1)
    in_unit, out_unit, plain = _UNITS[unit]
    q: Counts = {}
    inp, out = amount(usage, "input", path), amount(usage, "output", path)
    if inp is None and out is None:
        total = amount(usage, "total", path)
        if total is None or plain is None:
            raise ExtractionError(f"{join(path, 'input')}: required field is missing (unit {unit})")
        add(q, plain, total * scale)
        return q
    add(q, in_unit, None if inp is None else inp * scale)
    add(q, out_unit, None if out is None else out * scale)
    return q


def parse_usage(usage: Mapping[str, Any], path: str) -> Counts:
    if any(usage.get(key) is not None for key in _OPENAI_DETAILS):
        return openai.parse_usage(usage, path, {})
    raw_unit = usage.get("unit")
    unit = raw_unit.upper() if isinstance(raw_unit, str) else "TOKENS"
    if unit == "TOKENS":
        return _tokens(usage, path)
    if unit not in _UNITS:
        raise ExtractionError(
            f"{join(path, 'unit')}: unknown unit {raw_unit!r}; expected one of TOKENS, {', '.join(_UNITS)}"
        )
    return _other_unit(usage, path, unit)


def _provided_cost(
    payload: Mapping[str, Any], usage: Mapping[str, Any], usage_path: str
) -> dict[str, Decimal] | None:
    result: dict[str, Decimal] = {}
    for key in ("cost_details", "costDetails"):
        details = mapping(payload, key, "")
        if details is not None:
            for name, value in details.items():
                if value is not None:
                    result[str(name)] = amount(details, name, key) or Decimal(0)
            break
    for legacy, name in _LEGACY_COST.items():
        value = amount(usage, legacy, usage_path)
        if value is not None and name not in result:
            result[name] = value
    if not result:
        return None
    if "total" not in result:
        result["total"] = sum(result.values(), Decimal(0))
    return result


def _locate(payload: Mapping[str, Any], path: str) -> tuple[Mapping[str, Any], str] | None:
    for key in ("usage_details", "usageDetails", "usage"):
        if payload.get(key) is not None:
            usage = mapping(payload, key, path)
            assert usage is not None
            return usage, join(path, key)
    if any(key not in _NOT_USAGE for key in payload):
        return payload, path  # a bare usage dict
    return None


def extract(payload: Mapping[str, Any], provider: str | None = None) -> Extracted:
    located = _locate(payload, "")
    if located is None:
        raise ExtractionError("usage_details: required field is missing (no usage_details or usage)")
    usage, path = located
    model = text(payload, "model", "providedModelName", "provided_model_name")
    return Extracted(build(parse_usage(usage, path)), model, provider, _provided_cost(payload, usage, path))


def extract_stream(chunks: Iterable[object], provider: str | None = None) -> Extracted | None:
    """Langfuse has no streams; for a sequence of updates to one generation, the last usage wins."""
    last: Mapping[str, Any] | None = None
    for i, raw in enumerate(chunks):
        chunk = require_mapping(raw, f"chunk[{i}]")
        if _locate(chunk, f"chunk[{i}]") is not None:
            last = chunk
    return None if last is None else extract(last, provider)
