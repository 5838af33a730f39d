"""LiteLLM's price map (``model_prices_and_context_window.json``) compiled into costline price records.

Each entry (keyed by model name) becomes one record matching that name exactly (ignoring case). LiteLLM
quotes prices per token, character, image, second or query; they are converted exactly to costline's
``Unit.per`` (``2.5e-06`` per token is 2.5 per million). Key conventions, as LiteLLM's cost calculator reads
them:

- ``<key>_above_<N>k_tokens`` is the rate once the prompt has more than N×1000 tokens (strict ``>``, the same
  as costline's ``TieredRate`` on ``input_tokens``; for xAI LiteLLM uses ``>=``: the threshold is N×1000−1);
- ``_batches``, ``_priority``, ``_flex``, ``_ultrafast``, ``_balanced`` are request variants
  (``processing=batch``, ``service_tier``); a unit without a variant key keeps the standard key's rate, and
  above a threshold the variant falls back to the standard above-threshold rate, as LiteLLM does;
- ``tiered_pricing`` (contiguous prompt-token ranges, all-or-nothing) becomes tiered rates.

Nothing becomes $0 by omission: keys costline cannot represent are left out with a warning, and an entry left
with no price (or with only zero prices while it had real ones) is skipped with the reason.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from costline.catalog.imported import ImportResult, Notes, per_unit_to_rate, price_value, tiered
from costline.core.price import Condition, Match, PriceRecord, Rate, Source, Variant
from costline.core.units import UNITS
from costline.errors import PriceDataError

FORMAT: Final = "litellm"

#: LiteLLM ``litellm_provider`` → genai-prices provider id (others keep LiteLLM's name).
PROVIDERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "openai": "openai", "text-completion-openai": "openai",
        "azure": "azure", "azure_ai": "azure", "azure_text": "azure",
        "anthropic": "anthropic", "gemini": "google",  # and every vertex_ai* provider
        "bedrock": "aws", "bedrock_converse": "aws",
        "mistral": "mistral", "cohere": "cohere", "cohere_chat": "cohere", "groq": "groq",
        "deepseek": "deepseek", "xai": "x-ai", "together_ai": "together", "fireworks_ai": "fireworks",
        "openrouter": "openrouter", "perplexity": "perplexity",
    }
)

#: base key → costline unit; the value is a price per one of the unit's own quantity (token, image, second)
_UNITS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "input_cost_per_token": "input_tokens",
        "output_cost_per_token": "output_tokens",
        "cache_read_input_token_cost": "cache_read_tokens",
        "cache_creation_input_token_cost": "cache_write_tokens",
        "cache_creation_input_token_cost_above_1hr": "cache_write_1h_tokens",
        "output_cost_per_reasoning_token": "output_reasoning_tokens",
        "input_cost_per_audio_token": "input_audio_tokens",
        "output_cost_per_audio_token": "output_audio_tokens",
        "cache_read_input_audio_token_cost": "cache_audio_read_tokens",
        "cache_creation_input_audio_token_cost": "cache_audio_write_tokens",
        "cache_read_input_image_token_cost": "cache_image_read_tokens",
        "input_cost_per_image_token": "input_image_tokens",
        "output_cost_per_image_token": "output_image_tokens",
        "input_cost_per_video_token": "input_video_tokens",
        "output_cost_per_video_token": "output_video_tokens",
        "citation_cost_per_token": "output_citation_tokens",
        "input_cost_per_character": "input_characters",
        "output_cost_per_character": "output_characters",
        "input_cost_per_image": "input_images",
        "output_cost_per_image": "output_images",
        "input_cost_per_request": "requests",
        "input_cost_per_text_message": "input_text_messages",
        "input_cost_per_audio_per_second": "input_audio_seconds",
        "input_cost_per_video_per_second": "input_video_seconds",
        "output_cost_per_video_per_second": "output_video_seconds",
        "ocr_cost_per_page": "input_document_pages",
        "annotation_cost_per_page": "input_annotated_document_pages",
    }
)

#: a modality cache unit is only meaningful next to the modality's own input rate
_NEEDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "cache_audio_read_tokens": "input_audio_tokens",
        "cache_audio_write_tokens": "input_audio_tokens",
        "cache_image_read_tokens": "input_image_tokens",
    }
)


@dataclass(frozen=True, slots=True)
class _Tier:
    suffix: str
    name: str
    conditions: tuple[Condition, ...]


def _service_tier(suffix: str, *values: str) -> _Tier:
    return _Tier(
        suffix, f"service_tier={suffix}", (Condition("attribute", key="service_tier", values=values),)
    )


#: request-variant suffixes, in the order their variants are listed (earlier wins when several apply)
_TIERS: Final[tuple[_Tier, ...]] = (
    _Tier("batches", "processing=batch", (Condition("attribute", key="processing", values=("batch",)),)),
    _service_tier("priority", "priority", "fast"),  # LiteLLM bills service_tier "fast" with _priority keys
    _service_tier("flex", "flex"),
    _service_tier("ultrafast", "ultrafast"),
    _service_tier("balanced", "balanced"),
)
_TIER_BY_SUFFIX: Final = MappingProxyType({t.suffix: t for t in _TIERS})
#: suffixes recognised but not imported (their meaning is not documented)
_UNMAPPED_SUFFIXES: Final = ("decisions",)
_ALL_SUFFIXES: Final = tuple(sorted((*_TIER_BY_SUFFIX, *_UNMAPPED_SUFFIXES), key=len, reverse=True))

#: LiteLLM's ``_INCLUSIVE_THRESHOLD_PROVIDERS``: the long-context rate applies from N tokens, not above N
_INCLUSIVE_THRESHOLDS: Final = frozenset({"xai"})

_THRESHOLD: Final = re.compile(r"(?P<base>.+)_above_(?P<n>\d+)(?P<k>k?)_tokens")

#: keys that are not prices but change a price; they are reported, not applied
_REGIONAL: Final = "regional uplift multipliers are not applied; the prices are the global ones"
_NOT_APPLIED: Final[Mapping[str, str]] = MappingProxyType(
    {
        "off_peak_pricing": "off-peak prices depend on the weekday, which costline cannot condition on; "
        "the standard prices apply at all times",
        "search_free_requests": "free search quotas are not modelled; every search is charged",
        "regional_processing_uplift_multiplier_eu": _REGIONAL,
        "regional_processing_uplift_multiplier_us": _REGIONAL,
        "regional_endpoint_uplift_multiplier": _REGIONAL,
    }
)


class _SkipError(Exception):
    """An entry that cannot be represented; the message is the reason."""


def _provider(raw: object) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    key = raw.strip().lower()
    if key.startswith("vertex_ai"):
        return "google"
    return PROVIDERS.get(key, key)


def parse_key(key: str) -> tuple[str, int | None, str | None]:
    """``cache_read_input_token_cost_above_200k_tokens_priority`` → (``cache_read_input_token_cost``, 200000,
    ``priority``). The suffix may also come before the threshold."""
    rest, threshold, suffix = key, None, None
    for candidate in _ALL_SUFFIXES:
        if rest.endswith("_" + candidate):
            rest, suffix = rest[: -len(candidate) - 1], candidate
            break
    m = _THRESHOLD.fullmatch(rest)
    if m is not None:
        rest = m["base"]
        threshold = int(m["n"]) * (1000 if m["k"] else 1)
        if suffix is None:
            for candidate in _ALL_SUFFIXES:
                if rest.endswith("_" + candidate):
                    rest, suffix = rest[: -len(candidate) - 1], candidate
                    break
    return rest, threshold, suffix


def _unit_for(base: str, mode: str | None) -> tuple[str | None, str]:
    """The costline unit of a base key in this entry's mode, or None and why not."""
    unit = _UNITS.get(base)
    if unit is not None:
        return unit, ""
    if base == "input_cost_per_second":
        if mode == "audio_transcription":
            return "input_audio_seconds", ""
        return None, f"per-second input prices are only imported for audio transcription, not mode {mode!r}"
    if base == "output_cost_per_second":
        return ("output_video_seconds" if mode == "video_generation" else "output_audio_seconds"), ""
    if base == "input_cost_per_query":
        if mode == "rerank":
            return "rerank_searches", ""
        if mode == "search":
            return "requests", ""
        return None, f"per-query prices are only imported for rerank and search, not mode {mode!r}"
    if base.startswith("cache_creation_input_token_cost_above_") and base.endswith("hr"):
        return None, "cache writes with this lifetime have no costline unit"
    if base.startswith(("output_cost_per_image_", "output_cost_per_second_")):
        return None, "size- or resolution-specific prices have no costline unit"
    if base in ("input_cost_per_pixel", "output_cost_per_pixel"):
        return None, "per-pixel image prices have no costline unit"
    if base.endswith("_dbu_cost_per_token"):
        return None, "Databricks DBU prices are not in USD (the USD keys are imported)"
    if base.endswith("_interval"):
        return None, "interval-dependent prices have no costline unit"
    return None, "no costline unit for this price"


# unit -> {threshold (None = base rate): rate}
_Ladder = dict[int | None, Decimal]


@dataclass
class _Entry:
    name: str
    notes: Notes
    #: LiteLLM bills these providers' long-context rate from the threshold itself (``>=``)
    inclusive_thresholds: bool = False
    base: dict[str, _Ladder] = field(default_factory=dict)
    variants: dict[str, dict[str, _Ladder]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # keys with a non-zero price that were left out

    def note(self, message: str) -> None:
        self.notes.add(self.name, message)

    def drop(self, key: str, value: object, why: str) -> None:
        self.note(f"{key}: {why}; not imported")
        try:
            if price_value(value) != 0:
                self.dropped.append(key)
        except ValueError:
            if isinstance(value, Mapping | list):
                self.dropped.append(key)

    def put(self, key: str, unit: str, threshold: int | None, suffix: str | None, value: object) -> None:
        try:
            number = price_value(value)
        except ValueError as exc:
            raise _SkipError(f"{key}: {exc}") from None
        if threshold is not None and self.inclusive_thresholds:
            threshold -= 1  # token counts are whole: ">= N" is "> N - 1"
        ladder = (self.base if suffix is None else self.variants.setdefault(suffix, {})).setdefault(unit, {})
        rate = per_unit_to_rate(number, unit)
        if threshold in ladder and ladder[threshold] != rate:
            first = f"{ladder[threshold]} per {UNITS[unit].per:,} {unit}"
            self.note(f"{key}: a second price for {unit} (the first, {first}, kept)")
            return
        ladder[threshold] = rate


def import_litellm(data: Mapping[str, Any], *, source_name: str) -> ImportResult:
    """Compile a LiteLLM price map (already parsed with ``parse_float=Decimal``) into imported records."""
    records: list[PriceRecord] = []
    skipped: list[tuple[str, str]] = []
    notes = Notes()
    for name, raw in data.items():
        if name == "sample_spec":
            continue
        try:
            records.append(_compile(str(name), raw, source_name, notes))
        except _SkipError as exc:
            skipped.append((str(name), str(exc)))
        except PriceDataError as exc:
            skipped.append((str(name), str(exc)))
    return ImportResult(
        format=FORMAT,
        source_name=source_name,
        records=tuple(records),
        skipped=tuple(skipped),
        warnings=notes.render(),
    )


def _compile(name: str, raw: Any, source_name: str, notes: Notes) -> PriceRecord:
    if not isinstance(raw, Mapping):
        raise _SkipError("entry is not a JSON object")
    mode = raw.get("mode") if isinstance(raw.get("mode"), str) else None
    entry = _Entry(name, notes, inclusive_thresholds=raw.get("litellm_provider") in _INCLUSIVE_THRESHOLDS)
    cache_hit: object = None
    tiered_pricing: object = None
    for key, value in raw.items():
        if not isinstance(key, str) or value is None:
            continue
        if key in _NOT_APPLIED:
            entry.note(f"{key}: {_NOT_APPLIED[key]}")
            continue
        if key == "tiered_pricing":
            tiered_pricing = value
            continue
        if "cost" not in key:
            continue  # capabilities, limits, metadata
        if key == "input_cost_per_token_cache_hit":
            cache_hit = value
            continue
        if key == "search_context_cost_per_query":
            if not isinstance(value, Mapping):
                raise _SkipError(f"{key}: expected an object of search context sizes")
            if "search_context_size_medium" not in value:
                entry.drop(key, value, "no search_context_size_medium price")
                continue
            entry.put(key, "web_searches", None, None, value["search_context_size_medium"])
            continue
        base, threshold, suffix = parse_key(key)
        unit, why = _unit_for(base, mode)
        if unit is None:
            entry.drop(key, value, why)
            continue
        if suffix in _UNMAPPED_SUFFIXES:
            entry.drop(key, value, f"the _{suffix} variant is not imported")
            continue
        entry.put(key, unit, threshold, suffix, value)
    if tiered_pricing is not None:
        _apply_tiered_pricing(entry, tiered_pricing)
    if cache_hit is not None:
        _apply_cache_hit(entry, cache_hit)
    _image_output_fallback(entry)
    for unit, needed in _NEEDS.items():
        if unit in entry.base and needed not in entry.base:
            entry.note(f"a {unit} price without a {needed} price cannot be represented; not imported")
            del entry.base[unit]
    rates = _rates(entry)
    variants = _variants(entry)
    if not rates:
        left_out = f" (left out: {', '.join(entry.dropped)})" if entry.dropped else ""
        if variants:
            names = ", ".join(v.name for v in variants)
            raise _SkipError(f"only variant prices ({names}), no standard price")
        if not any("cost" in str(key) or key == "tiered_pricing" for key in raw):
            raise _SkipError("no prices in the entry")
        raise _SkipError(f"no price costline can represent{left_out}")
    record = PriceRecord(
        id=f"litellm:{name}",
        model=name,
        match=Match("exact", name),
        rates=rates,
        source=Source.IMPORTED,
        source_name=source_name,
        provider=_provider(raw.get("litellm_provider")),
        variants=variants,
        context_window=_context_window(raw.get("max_input_tokens")),
        description=mode or "",
    )
    if entry.dropped and record.is_free:
        raise _SkipError(
            f"only zero prices are representable, but {', '.join(entry.dropped)} "
            "charge(s) and cannot be imported; refusing to price it at $0"
        )
    return record


def _context_window(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _rates(entry: _Entry) -> dict[str, Rate]:
    rates: dict[str, Rate] = {}
    for unit, ladder in entry.base.items():
        if None not in ladder:
            entry.note(f"a long-context {unit} price without a standard one cannot be represented; "
                       "not imported")
            continue
        rates[unit] = tiered(ladder[None], ((t, r) for t, r in ladder.items() if t is not None))
    return rates


def _variants(entry: _Entry) -> tuple[Variant, ...]:
    variants: list[Variant] = []
    for tier in _TIERS:
        units = entry.variants.get(tier.suffix)
        if not units:
            continue
        rates: dict[str, Rate] = {}
        for unit, own in units.items():
            standard = entry.base.get(unit, {})
            below = own.get(None, standard.get(None))
            if below is None:
                entry.note(
                    f"a long-context _{tier.suffix} {unit} price without a standard one cannot be "
                    "represented; not imported"
                )
                continue
            thresholds = sorted({t for t in (*own, *standard) if t is not None})
            # above a threshold LiteLLM takes the variant's own rate, else the standard above-threshold rate
            rates[unit] = tiered(below, ((t, own.get(t, standard.get(t, below))) for t in thresholds))
        if rates:
            variants.append(Variant(name=tier.name, conditions=tier.conditions, rates=rates))
    return tuple(variants)


def _apply_cache_hit(entry: _Entry, value: object) -> None:
    """``input_cost_per_token_cache_hit`` is an older name for the cache-read price."""
    try:
        rate = per_unit_to_rate(price_value(value), "cache_read_tokens")
    except ValueError as exc:
        raise _SkipError(f"input_cost_per_token_cache_hit: {exc}") from None
    ladder = entry.base.get("cache_read_tokens")
    if ladder is None:
        entry.base["cache_read_tokens"] = {None: rate}
    elif ladder.get(None) != rate:
        entry.note(
            "input_cost_per_token_cache_hit differs from cache_read_input_token_cost; "
            "cache_read_input_token_cost kept"
        )


def _image_output_fallback(entry: _Entry) -> None:
    """LiteLLM bills every output token at ``output_cost_per_image_token`` when a model has no
    ``output_cost_per_token`` (image generation: all output is image tokens); do the same."""
    if "output_tokens" in entry.base or "output_image_tokens" not in entry.base:
        return
    entry.note(
        "no output_cost_per_token: output tokens are priced at output_cost_per_image_token, as LiteLLM does"
    )
    entry.base["output_tokens"] = dict(entry.base["output_image_tokens"])
    for units in entry.variants.values():
        if "output_image_tokens" in units and "output_tokens" not in units:
            units["output_tokens"] = dict(units["output_image_tokens"])


_TIER_KEYS: Final = (
    ("input_cost_per_token", "input_tokens"),
    ("output_cost_per_token", "output_tokens"),
    ("cache_read_input_token_cost", "cache_read_tokens"),
    ("cache_creation_input_token_cost", "cache_write_tokens"),
    ("output_cost_per_reasoning_token", "output_reasoning_tokens"),
)


def _apply_tiered_pricing(entry: _Entry, value: object) -> None:
    """``tiered_pricing``: a list of ``{range: [lo, hi], <rates>}``. LiteLLM picks the one tier with
    ``lo < prompt_tokens <= hi`` (the last one above every range) and bills every token at its rates, so
    contiguous ranges from 0 are exactly a ``TieredRate`` with thresholds at each ``lo``. A rate a tier does
    not give falls back as in LiteLLM: cache prices to the tier's input rate (costline's parent fallback),
    reasoning to the tier's output rate, output to the model's standard output rate."""
    key = "tiered_pricing"
    steps = _tier_steps(value)
    if steps is None:
        entry.drop(key, value, "only contiguous prompt-token ranges starting at 0 can be represented")
        return
    flat_output = entry.base.get("output_tokens", {}).get(None)
    ladders: dict[str, _Ladder] = {}
    for tier_key, unit in _TIER_KEYS:
        if not any(tier_key in tier for _, tier in steps):
            continue
        ladder: _Ladder = {}
        for threshold, tier in steps:
            raw = tier.get(tier_key)
            if raw is None:
                if unit == "input_tokens":
                    entry.drop(key, value, "a tier without input_cost_per_token cannot be represented")
                    return
                if unit == "output_tokens":
                    raw_rate = flat_output
                elif unit == "output_reasoning_tokens":
                    raw_rate = ladders.get("output_tokens", {}).get(threshold, flat_output)
                else:  # cache prices fall back to the tier's input rate
                    raw_rate = ladders["input_tokens"][threshold]
                if raw_rate is None:
                    entry.drop(key, value, f"a tier without {tier_key} and no standard one")
                    return
                ladder[threshold] = raw_rate
                continue
            try:
                ladder[threshold] = per_unit_to_rate(price_value(raw), unit)
            except ValueError as exc:
                raise _SkipError(f"{key}: {tier_key}: {exc}") from None
        ladders[unit] = ladder
    if "input_tokens" not in ladders:
        entry.drop(key, value, "tiers without input_cost_per_token cannot be represented")
        return
    for unit, ladder in ladders.items():
        # the tiers are the price for any prompt; they replace the flat keys for these units
        entry.base[unit] = {None if t == 0 else t: r for t, r in ladder.items()}


def _tier_steps(value: object) -> list[tuple[int, Mapping[str, Any]]] | None:
    """[(threshold, tier)] with threshold 0 for the first tier, or None if the ranges are not contiguous
    prompt-token ranges from 0."""
    if not isinstance(value, list) or not value:
        return None
    ranges: list[tuple[int, int, Mapping[str, Any]]] = []
    for tier in value:
        if not isinstance(tier, Mapping):
            return None
        bounds = tier.get("range")
        if not isinstance(bounds, list) or len(bounds) != 2:
            return None
        try:
            start, end = (price_value(b) for b in bounds)
        except ValueError:
            return None
        if start != start.to_integral_value() or end != end.to_integral_value() or end <= start:
            return None
        ranges.append((int(start), int(end), tier))
    ranges.sort(key=lambda r: r[0])
    if ranges[0][0] != 0:
        return None
    for (_, upper, _), (lower, _, _) in itertools.pairwise(ranges):
        if lower != upper:
            return None
    return [(start, tier) for start, _, tier in ranges]
