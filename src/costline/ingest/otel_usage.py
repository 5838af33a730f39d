"""OTel span attributes → costline usage and provided cost (wire-formats.md B.5, B.6, C.1).

Usage is costline's INCLUSIVE usage (``input_tokens`` counts cached tokens, ``output_tokens`` counts reasoning):

1. ``langfuse.observation.usage_details`` (JSON) is read by the Langfuse extractor (disjoint Langfuse buckets, or
   the raw OpenAI usage dict of the Langfuse OpenAI integration); a flat Chat Completions dict
   (``prompt_tokens`` + ``completion_tokens``) goes through the OpenAI extractor, so OpenRouter's ``cost`` and
   xAI/DeepSeek quirks are read too.
2. Otherwise the generic ``gen_ai.usage.*`` / ``llm.token_count.*`` attributes, which semconv defines as
   inclusive. **Anthropic rule**: some instrumentations (OpenLLMetry's anthropic) pass Anthropic's EXCLUSIVE
   ``input_tokens`` through. When the provider is ``anthropic`` or ``aws`` and either cache read + cache write
   exceed the input, or the reported total equals input + output + cache read + cache write, the input is taken
   as exclusive and the cache tokens are added to it. Any other subset above its parent is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from costline.core.limits import MAX_INTEGER, parse_count, preview
from costline.core.money import to_decimal
from costline.core.units import ANCESTORS, DIRECT_PARENTS, ROOT_OF, UNITS
from costline.core.usage import Usage
from costline.errors import CostlineError, ExtractionError
from costline.extract import extract_usage
from costline.ingest.otel_values import Attrs, attr, loads

if TYPE_CHECKING:
    from costline.ingest.otel_attributes import Plan

# generic usage: costline unit <- attributes, first present wins (C.1 current names, then deprecated/vendor ones)
GENERIC_USAGE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("input_tokens", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")),
    ("output_tokens",
     ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")),
    ("cache_read_tokens", (
        "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read", "gen_ai.usage.prompt_tokens_details.cached_tokens",
    )),
    ("cache_write_tokens", (
        "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    )),
    ("output_reasoning_tokens", (
        "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    )),
    ("input_audio_tokens", ("gen_ai.usage.audio.input_tokens", "llm.token_count.prompt_details.audio")),
    ("output_audio_tokens", ("gen_ai.usage.audio.output_tokens", "llm.token_count.completion_details.audio")),
    ("input_text_tokens", ("gen_ai.usage.text.input_tokens",)),
    ("input_image_tokens", ("gen_ai.usage.image.input_tokens",)),
    ("input_video_tokens", ("gen_ai.usage.video.input_tokens",)),
    ("output_text_tokens", ("gen_ai.usage.text.output_tokens",)),
)
TOTAL_KEYS = ("gen_ai.usage.total_tokens", "llm.token_count.total")

# Langfuse cost_details keys -> costline units (a costline unit name maps to itself)
_COST_UNITS: Mapping[str, str] = {
    **dict.fromkeys(("input", "input_tokens", "prompt_tokens"), "input_tokens"),
    **dict.fromkeys(("output", "output_tokens", "completion_tokens"), "output_tokens"),
    **dict.fromkeys(("input_cached_tokens", "input_cache_read", "cache_read_input_tokens", "cache_read_tokens"),
                    "cache_read_tokens"),
    **dict.fromkeys(
        ("input_cache_creation", "input_cache_write", "cache_creation_input_tokens", "cache_write_tokens"),
        "cache_write_tokens",
    ),
    **dict.fromkeys(("output_reasoning_tokens", "output_reasoning", "reasoning_tokens"), "output_reasoning_tokens"),
    **{
        f"{direction}_{modality}{suffix}": f"{direction}_{modality}_tokens"
        for direction in ("input", "output") for modality in ("text", "audio", "image") for suffix in ("", "_tokens")
    },
}
COST_KEYS = ("gen_ai.usage.cost", "llm.cost.total")
_EXCLUSIVE_INPUT_PROVIDERS = frozenset({"anthropic", "aws"})


def _token_count(attrs: Attrs, key: str) -> int | None:
    value = attrs.get(key)
    if type(value) is int and value >= 0:  # the common case first
        return value
    if value is None or value == "":
        return None
    number: object = value
    if isinstance(value, str):
        number = parse_count(value)
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ExtractionError(f"{attr(key)}: expected a non-negative integer token count, got {preview(value)}")
    return number


def _langfuse_usage(attrs: Attrs) -> tuple[Usage | None, Mapping[str, Decimal] | None] | None:
    """From ``langfuse.observation.usage_details``; ``None`` when absent or not JSON (generic extraction runs)."""
    key = "langfuse.observation.usage_details"
    raw = attrs.get(key)
    if raw is None:
        return None
    details = loads(raw)
    if isinstance(details, str):
        return None  # not JSON: fall through, as Langfuse does
    if not isinstance(details, Mapping) or not details:
        return None, None
    shape = "openai" if "prompt_tokens" in details and "completion_tokens" in details else "langfuse"
    try:
        got = extract_usage(details, shape)
    except CostlineError as exc:
        raise type(exc)(f"{attr(key)}.{exc}") from None
    return got.usage, got.provided_cost


def _generic_usage(attrs: Attrs, provider_id: str | None, plan: Plan) -> Usage | None:
    q: dict[str, int] = {}
    for unit, keys in plan.usage_units:  # only the units sent, each with its keys present, in precedence order
        for key in keys:
            number = _token_count(attrs, key)
            if number is not None:
                q[unit] = number
                break
    if not q:
        return None
    total = None
    for key in plan.total_keys:
        total = _token_count(attrs, key)
        if total is not None:
            break
    if provider_id in _EXCLUSIVE_INPUT_PROVIDERS:  # Anthropic's exclusive input_tokens passed through (docstring)
        cache = q.get("cache_read_tokens", 0) + q.get("cache_write_tokens", 0)
        given = q.get("input_tokens", 0)
        if cache and (cache > given or total == given + cache + q.get("output_tokens", 0)):
            q["input_tokens"] = given + cache
    return token_usage(q)


_SubsetChecks = tuple[
    tuple[str, ...],  # units that need their root unit, which is not among them: must be 0
    tuple[tuple[str, str], ...],  # (unit, an ancestor among them): unit <= ancestor
    tuple[tuple[str, tuple[str, ...]], ...],  # (parent, its children along one axis, 2 or more): sum <= parent
]
_SUBSET_CHECKS: dict[tuple[str, ...], _SubsetChecks] = {}


def _subset_checks(units: tuple[str, ...]) -> _SubsetChecks:
    """The comparisons ``Usage`` makes for this set of units (its ``_check_subsets``, from the same tables)."""
    checks = _SUBSET_CHECKS.get(units)
    if checks is None:
        present = set(units)
        sums: dict[tuple[str, str], list[str]] = {}
        for unit in units:
            for parent, axis in DIRECT_PARENTS[unit]:
                if parent in present:
                    sums.setdefault((parent, axis), []).append(unit)
        checks = _SUBSET_CHECKS[units] = (
            tuple(unit for unit in units if unit in ROOT_OF and ROOT_OF[unit] not in present),
            tuple((unit, ancestor) for unit in units for ancestor in sorted(ANCESTORS[unit]) if ancestor in present),
            tuple((parent, tuple(children)) for (parent, _), children in sums.items() if len(children) > 1),
        )
    return checks


def token_usage(q: dict[str, int]) -> Usage:
    """``Usage(q)`` for token counts already read as non-negative ints of known units (``_generic_usage``).

    ``Usage`` validates every quantity and its subsets. Here the counts are ints of known token units, so what
    is left to check is the range and the subset comparisons, compiled once per set of units from the tables
    ``Usage`` reads; when they all hold the validated record is built directly, otherwise ``Usage(q)`` runs and
    raises its own error.
    """
    needs_root, ordered, sums = _subset_checks(tuple(q))
    valid = max(q.values()) <= MAX_INTEGER  # plain loops below: generator expressions cost more than the checks
    for unit in needs_root:
        if q[unit]:
            valid = False
    for unit, ancestor in ordered:
        if q[unit] > q[ancestor]:
            valid = False
    for parent, children in sums:
        if sum([q[child] for child in children]) > q[parent]:
            valid = False
    if not valid:
        return Usage(q)  # raises the error naming the units (or, were these checks stricter, accepts)
    return Usage.validated({unit: number for unit, number in q.items() if number})


def usage(
    attrs: Attrs, provider_id: str | None, aggregate: bool, plan: Plan
) -> tuple[Usage | None, Mapping[str, Decimal] | None]:
    """(usage, cost the usage dict itself reported); ``UsageError`` when a subset exceeds its parent."""
    found = _langfuse_usage(attrs) if plan.langfuse_usage else None
    if found is not None:
        return found
    if aggregate:
        return None, None
    return _generic_usage(attrs, provider_id, plan), None


def _amount(value: object, where: str) -> Decimal:
    try:
        number = to_decimal(value, field=where)
    except CostlineError as exc:
        raise ExtractionError(str(exc)) from None
    if number < 0:
        raise ExtractionError(f"{where}: expected a non-negative cost, got {preview(value)}")
    return number


def langfuse_cost(details: Mapping[str, Any], where: str) -> dict[str, Decimal] | None:
    """Langfuse ``cost_details`` -> costline provided cost.

    Bucket keys map to costline units where unambiguous (``input`` -> input_tokens, ``input_cached_tokens`` ->
    cache_read_tokens, ...); as in Langfuse, provided costs are authoritative, so ``total`` is the given total,
    else the sum of every entry (keys with no costline unit are only folded into it).
    """
    cost: dict[str, Decimal] = {}
    total: Decimal | None = None
    summed = Decimal(0)
    seen = False
    for key, value in details.items():
        if value is None:
            continue
        seen = True
        amount = _amount(value, f"{where}.{key}")
        if key == "total":
            total = amount
            continue
        summed += amount
        unit = key if key in UNITS else _COST_UNITS.get(key)
        if unit is not None:
            cost[unit] = cost.get(unit, Decimal(0)) + amount
    if not seen:
        return None
    cost["total"] = summed if total is None else total
    return cost


def provided_cost(attrs: Attrs, aggregate: bool, plan: Plan) -> dict[str, Decimal] | None:
    """B.6: ``langfuse.observation.cost_details`` > ``gen_ai.usage.cost`` > ``llm.cost.total``.

    A zero ``gen_ai.usage.cost`` / ``llm.cost.total`` is ignored: OpenLIT reports 0 for models missing from its
    own price table, and costline's price would otherwise be overridden by it.
    """
    key = "langfuse.observation.cost_details"
    details = attrs.get(key) if plan.cost_details else None
    if details is not None:
        details = loads(details)
        if isinstance(details, Mapping) and details:
            return langfuse_cost(details, attr(key))
    if aggregate:
        return None
    for key in plan.cost_keys:
        value = attrs.get(key)
        if value is not None and value != "":
            amount = _amount(value, attr(key))
            if amount:
                return {"total": amount}
    return None
