"""Langfuse model definitions (``default-model-prices.json``, or an export of the Models API) compiled into
costline price records.

Each model becomes one record matching its ``matchPattern`` (a regular expression that Postgres evaluates;
a leading ``(?i)`` makes it case-insensitive, otherwise it is case-sensitive). Prices are USD per unit (per
token), converted exactly to costline's ``Unit.per``.

Usage keys: Langfuse prices *disjoint* buckets (``input`` excludes cached and cache-creation tokens,
``output`` excludes reasoning), while costline usage is inclusive and charges each priced unit for its
quantity minus its priced subsets. The rate of a bucket is therefore exactly the rate of the costline unit
it is the remainder of: ``input`` → ``input_tokens``, ``input_cached_tokens`` → ``cache_read_tokens``, and so
on. Langfuse lists several equal-price names for one bucket (``input``, ``input_tokens``,
``promptTokenCount``, ...); they become one unit, with a warning if their prices differ.

Pricing tiers: the default tier gives the record's rates; the others, in ascending ``priority``, become
variants. All tiers of a model price the same keys, so costline's "first matching variant wins per unit" is
Langfuse's "first matching tier wins".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from costline.catalog.imported import ImportResult, Notes, per_unit_to_rate, price_value
from costline.catalog.patterns import PatternError, compile_pattern, regex_match
from costline.core.price import Condition, Match, PriceRecord, Rate, Source, Variant
from costline.core.units import ANCESTORS
from costline.errors import PriceDataError

FORMAT: Final = "langfuse"

#: costline unit → the Langfuse usage keys that price it, the preferred one first
_ALIASES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("input_tokens", ("input", "input_tokens", "prompt_token_count", "promptTokenCount", "input_text",
                      "input_modality_1", "input_text_tokens")),
    ("output_tokens", ("output", "output_tokens", "candidates_token_count", "candidatesTokenCount",
                       "output_text", "output_modality_1", "output_text_tokens")),
    ("cache_read_tokens", ("input_cached_tokens", "input_cache_read", "cache_read_input_tokens",
                           "cached_content_token_count", "input_cached_text_tokens")),
    ("cache_write_tokens", ("input_cache_creation", "cache_creation_input_tokens", "cache_write_tokens")),
    ("cache_write_5m_tokens", ("input_cache_creation_5m",)),
    ("cache_write_1h_tokens", ("input_cache_creation_1h",)),
    ("output_reasoning_tokens", ("output_reasoning_tokens", "output_reasoning", "reasoning_tokens",
                                 "thoughtsTokenCount", "thoughts_token_count")),
    ("input_audio_tokens", ("input_audio", "input_audio_tokens")),
    ("output_audio_tokens", ("output_audio", "output_audio_tokens")),
    ("cache_audio_read_tokens", ("input_cached_audio_tokens",)),
    ("input_image_tokens", ("input_image",)),
    ("web_searches", ("grounding_queries", "groundingQueries", "web_search_queries", "webSearchQueries")),
)

#: Langfuse usage key → costline unit
USAGE_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {key: unit for unit, keys in _ALIASES for key in keys}
)

#: position of a key among its unit's aliases (0 = preferred)
_RANK: Final[Mapping[str, int]] = MappingProxyType(
    {key: index for _, keys in _ALIASES for index, key in enumerate(keys)}
)

#: for models priced per character (legacy ``unit: CHARACTERS``)
_CHARACTER_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {"input": "input_characters", "output": "output_characters"}
)

_OPENAI_PREFIXES: Final = (
    "gpt-", "o1", "o3", "o4", "text-embedding", "davinci", "babbage", "whisper", "tts", "chatgpt",
    "text-ada", "text-babbage", "text-curie", "text-davinci", "omni-moderation",
)
_GOOGLE_PREFIXES: Final = (
    "gemini", "gemma", "chat-bison", "codechat", "code-gecko", "code-bison", "text-bison", "text-unicorn",
    "textembedding",
)

_OPERATORS: Final = frozenset({"gt", "gte", "lt", "lte", "eq", "neq"})


class _SkipError(Exception):
    """A model that cannot be represented; the message is the reason."""


def infer_provider(model_name: str) -> str | None:
    """The genai-prices provider id a Langfuse model name belongs to, when the name makes it plain."""
    name = model_name.strip().lower()
    name = name.removeprefix("ft:")
    if name.startswith(_OPENAI_PREFIXES):
        return "openai"
    if name.startswith("claude"):
        return "anthropic"
    if name.startswith(_GOOGLE_PREFIXES):
        return "google"
    return None


def import_langfuse(data: Sequence[Mapping[str, Any]], *, source_name: str) -> ImportResult:
    """Compile Langfuse model definitions (parsed with ``parse_float=Decimal``) into imported records."""
    records: list[PriceRecord] = []
    skipped: list[tuple[str, str]] = []
    notes = Notes()
    for index, model in enumerate(data):
        name = _model_name(model, index)
        try:
            records.append(_compile(name, model, source_name, notes))
        except (_SkipError, PriceDataError) as exc:
            skipped.append((name, str(exc)))
    return ImportResult(
        format=FORMAT,
        source_name=source_name,
        records=tuple(records),
        skipped=tuple(skipped),
        warnings=notes.render(),
    )


def _model_name(model: object, index: int) -> str:
    if isinstance(model, Mapping) and isinstance(model.get("modelName"), str) and model["modelName"]:
        return str(model["modelName"])
    return f"[{index}]"


def _compile(name: str, model: Any, source_name: str, notes: Notes) -> PriceRecord:
    if not isinstance(model, Mapping):
        raise _SkipError("model is not a JSON object")
    if name.startswith("["):
        raise _SkipError("modelName is missing")
    pattern = model.get("matchPattern")
    if not isinstance(pattern, str) or not pattern:
        raise _SkipError("matchPattern is missing")
    unit = model.get("unit") or "TOKENS"
    if unit not in ("TOKENS", "CHARACTERS"):
        raise _SkipError(f"unit {unit!r}: only TOKENS and CHARACTERS prices can be represented")
    keys = _CHARACTER_KEYS if unit == "CHARACTERS" else USAGE_KEYS
    model_id = model.get("id")
    record_id = f"langfuse:{model_id if isinstance(model_id, str) and model_id else name}"
    tiers = model.get("pricingTiers")
    variants: tuple[Variant, ...] = ()
    if tiers is None or (isinstance(tiers, list) and not tiers):
        rates = _legacy_rates(name, model, unit, notes)
    else:
        rates, variants = _tiered_rates(name, tiers, keys, notes)
    if not rates:
        raise _SkipError("no price costline can represent")
    return PriceRecord(
        id=record_id,
        model=name,
        match=_match(pattern),
        rates=rates,
        source=Source.IMPORTED,
        source_name=source_name,
        provider=infer_provider(name),
        valid_from=_start_date(model.get("startDate")),
        variants=variants,
    )


def _match(pattern: str) -> Match:
    """``(?i)`` at the start means case-insensitive (the Langfuse convention); anything else is
    case-sensitive, as Postgres' ``~`` is."""
    case_sensitive = True
    if pattern.startswith("(?i)"):
        pattern, case_sensitive = pattern[4:], False
    try:
        return regex_match(pattern, case_sensitive=case_sensitive, field="matchPattern")
    except PatternError as exc:
        raise _SkipError(str(exc)) from None


def _start_date(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _SkipError(f"startDate: expected an ISO date-time string, got {value!r}")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _SkipError(f"startDate: {value!r} is not an ISO date-time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _legacy_rates(name: str, model: Mapping[str, Any], unit: str, notes: Notes) -> dict[str, Rate]:
    """Models from before usage types: flat ``inputPrice`` / ``outputPrice`` / ``totalPrice``."""
    prices = {
        key: model[field]
        for key, field in (("input", "inputPrice"), ("output", "outputPrice"), ("total", "totalPrice"))
        if model.get(field) is not None
    }
    if not prices:
        raise _SkipError("no pricingTiers and no inputPrice, outputPrice or totalPrice")
    keys = _CHARACTER_KEYS if unit == "CHARACTERS" else USAGE_KEYS
    return _tier_rates(name, "legacy prices", prices, keys, notes)


def _tiered_rates(
    name: str, tiers: object, keys: Mapping[str, str], notes: Notes
) -> tuple[dict[str, Rate], tuple[Variant, ...]]:
    if not isinstance(tiers, list) or not all(isinstance(t, Mapping) for t in tiers):
        raise _SkipError("pricingTiers is not a list of objects")
    defaults = [t for t in tiers if t.get("isDefault") is True]
    if not defaults:
        defaults = [t for t in tiers if t.get("priority") == 0 and not t.get("conditions")]
    if len(defaults) != 1:
        raise _SkipError(f"expected exactly one default pricing tier, found {len(defaults)}")
    default = defaults[0]
    if default.get("conditions"):
        raise _SkipError("the default pricing tier has conditions")
    base = _tier_rates(name, _tier_label(default), _prices(default), keys, notes)
    price_keys = set(_prices(default))
    others = [t for t in tiers if t is not default]
    for tier in others:
        if not isinstance(tier.get("priority"), int) or isinstance(tier.get("priority"), bool):
            raise _SkipError(f"pricing tier {_tier_label(tier)}: priority must be an integer")
    variants: list[Variant] = []
    for tier in sorted(others, key=lambda t: int(t["priority"])):
        label = _tier_label(tier)
        if set(_prices(tier)) != price_keys:
            notes.add(name, "a pricing tier prices other usage keys than the default tier; "
                      "keys it lacks keep the default price")
        conditions = tier.get("conditions")
        if not isinstance(conditions, list) or not conditions:
            raise _SkipError(f"pricing tier {label}: a non-default tier needs at least one condition")
        compiled = tuple(_condition(name, label, c, _prices(tier), keys, notes) for c in conditions)
        rates = _tier_rates(name, label, _prices(tier), keys, notes)
        variants.append(Variant(name=str(tier.get("name") or label), conditions=compiled, rates=rates))
    return base, tuple(variants)


def _tier_label(tier: Mapping[str, Any]) -> str:
    return repr(tier.get("name") or f"priority {tier.get('priority')}")


def _prices(tier: Mapping[str, Any]) -> Mapping[str, Any]:
    prices = tier.get("prices")
    if not isinstance(prices, Mapping):
        raise _SkipError(f"pricing tier {_tier_label(tier)}: prices is not an object")
    return prices


def _tier_rates(
    name: str, label: str, prices: Mapping[str, Any], keys: Mapping[str, str], notes: Notes
) -> dict[str, Rate]:
    """One tier's prices (USD per unit, keyed by Langfuse usage type) → costline rates."""
    values: dict[str, Decimal] = {}
    for key, raw in prices.items():
        try:
            values[key] = price_value(raw)
        except ValueError as exc:
            raise _SkipError(f"pricing tier {label}: {key}: {exc}") from None
    rates: dict[str, Rate] = {}
    chosen: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in values.items():
        unit = keys.get(key)
        if unit is None:
            if key != "total":
                unknown.append(key)
            continue
        rate = per_unit_to_rate(value, unit)
        if unit not in chosen or _preference(key) < _preference(chosen[unit]):
            if unit in chosen and rates[unit] != rate:
                notes.add(name, f"usage keys {key} and {chosen[unit]} price {unit} differently; {key} kept")
            rates[unit], chosen[unit] = rate, key
        elif rates[unit] != rate:
            kept = chosen[unit]
            notes.add(name, f"usage keys {kept} and {key} price {unit} differently; {kept} kept")
    if "total" in values:
        # legacy: one price for every token, input or output
        roots = (keys["input"], keys["output"])
        if any(unit in rates for unit in roots):
            notes.add(name, "a total price next to input/output prices is ambiguous; total not imported")
        else:
            for unit in roots:
                rates[unit] = per_unit_to_rate(values["total"], unit)
    for key in unknown:
        notes.add(name, f"usage key {key!r} has no costline unit; not imported")
    return rates


def _preference(key: str) -> int:
    return _RANK.get(key, 0)


def _condition(
    name: str, label: str, raw: object, prices: Mapping[str, Any], keys: Mapping[str, str], notes: Notes
) -> Condition:
    if not isinstance(raw, Mapping):
        raise _SkipError(f"pricing tier {label}: a condition is not an object")
    operator = raw.get("operator")
    if "usageDetailPattern" in raw:
        if operator not in _OPERATORS:
            raise _SkipError(f"pricing tier {label}: unknown usage operator {operator!r}")
        try:
            threshold = price_value(raw.get("value"))
        except ValueError as exc:
            raise _SkipError(f"pricing tier {label}: usage condition value: {exc}") from None
        units = usage_condition_units(
            str(raw["usageDetailPattern"]),
            case_sensitive=raw.get("caseSensitive") is True,
            usage_keys=[k for k in prices if k in keys],
            keys=keys,
            on_warning=lambda message: notes.add(name, message),
        )
        return Condition("usage", units=units, op=operator, threshold=threshold)
    if "key" in raw:
        values = raw.get("values")
        if operator != "in" or not isinstance(values, list) or not values:
            raise _SkipError(
                f"pricing tier {label}: only 'in' conditions on a list of values can be represented"
            )
        return Condition("attribute", key=str(raw["key"]), values=tuple(str(v) for v in values))
    raise _SkipError(f"pricing tier {label}: unknown condition {raw!r}")


def usage_condition_units(
    pattern: str,
    *,
    case_sensitive: bool = False,
    usage_keys: Iterable[str],
    keys: Mapping[str, str] = USAGE_KEYS,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[str, ...]:
    """The costline units whose (inclusive) sum equals Langfuse's sum of the usage keys ``pattern`` matches.

    Langfuse adds up the disjoint buckets whose key the pattern finds (``re.search``); costline adds up
    inclusive units. Among the model's ``usage_keys``, a unit counts as matched if one of its keys matches;
    the answer is the matched units not contained in another matched unit, which is exact when every priced
    subset of those units is matched too (``(input|cached)`` → ``input_tokens``: uncached + cached input is
    all input). Anything else cannot be represented and raises ``PriceDataError``.
    """
    regex = compile_pattern(pattern, case_sensitive=case_sensitive, field="usageDetailPattern")
    matched: dict[str, list[str]] = {}
    unmatched: dict[str, list[str]] = {}
    for key in usage_keys:
        unit = keys.get(key)
        if unit is not None:
            (matched if regex.search(key) else unmatched).setdefault(unit, []).append(key)
    if not matched:
        raise PriceDataError(f"usage condition pattern {pattern!r} matches none of the priced usage keys")
    roots = sorted(u for u in matched if not (ANCESTORS[u] & matched.keys()))
    priced = matched.keys() | unmatched.keys()
    for unit in priced:
        above = [r for r in roots if r in ANCESTORS[unit] or r == unit]
        if len(above) > 1:
            raise PriceDataError(
                f"usage condition pattern {pattern!r} would count {unit} twice (in {' and '.join(above)})"
            )
        if above and unit not in matched:
            raise PriceDataError(
                f"usage condition pattern {pattern!r} counts {above[0]} without its part {unit} "
                f"({', '.join(unmatched[unit])}); costline cannot represent that sum"
            )
        if unit in matched and unit in unmatched and on_warning is not None:
            on_warning(
                f"usage condition pattern {pattern!r} counts {unit} under {', '.join(matched[unit])} but not "
                f"under {', '.join(unmatched[unit])}; costline counts all {unit}"
            )
    return tuple(roots)
