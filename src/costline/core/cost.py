"""The cost function: (usage, price record) -> cost breakdown. Pure, exact, and fast.

Quantities are decomposed against the units the record prices: every priced unit is charged for its own
quantity minus what its priced subsets already charged (so cached tokens are never paid twice), a unit
without a rate of its own is charged at its nearest priced parent's rate, and a negative remainder is an
error, never a clamp. Usage with no priced unit at all makes the result ``partially_priced``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, getcontext, localcontext, setcontext
from enum import StrEnum
from types import MappingProxyType
from typing import Final, NamedTuple

from costline.core.money import DEFAULT_CURRENCY, MONEY_CONTEXT, ZERO
from costline.core.price import PriceRecord, Rate, TieredRate
from costline.core.units import ANCESTORS, UNITS
from costline.core.usage import Quantity, Usage
from costline.errors import UsageError


class PricingStatus(StrEnum):
    PRICED = "priced"
    PARTIALLY_PRICED = "partially_priced"
    UNPRICED = "unpriced"
    PROVIDED = "provided"


class CostComponent(NamedTuple):
    """One line of a breakdown: ``amount = quantity × rate / per`` (or a caller-provided amount)."""

    unit: str
    quantity: Quantity | None
    rate: Decimal | None
    per: int
    amount: Decimal
    provided: bool = False


class CostBreakdown(NamedTuple):
    """The priced result. A ``NamedTuple`` rather than a frozen dataclass: it is built once per event on the
    hot path, and a frozen dataclass costs 0.75 µs more to construct (measured, docs/architecture.md)."""

    #: None when the result is ``unpriced``: a cost that is not known is never a number
    total: Decimal | None
    currency: str
    status: PricingStatus
    components: tuple[CostComponent, ...]
    model: str | None = None
    provider: str | None = None
    price_id: str | None = None
    price_source: str | None = None
    reason: str | None = None
    variants: tuple[str, ...] = ()

    def component(self, unit: str) -> CostComponent | None:
        return next((c for c in self.components if c.unit == unit), None)


#: Key of a provided amount that is the whole cost rather than one unit's.
TOTAL: Final = "total"
#: The reason of a call priced by a record but reporting no usage at all.
NO_USAGE: Final = "no usage"

_NO_ATTRIBUTES: Mapping[str, str] = {}
#: a record pricing only these needs no usage: every call is one request
_PER_REQUEST: Final = frozenset({"requests"})


class _Step(NamedTuple):
    unit: str
    descendants: tuple[str, ...]
    rate: Rate
    per: int
    # rate for one unit when ``per`` is a power of ten (exact); None when the division must come last
    unit_rate: Decimal | None
    # -log10(per) when ``per`` is a power of ten, else None
    exponent: int | None
    # whether a later step subtracts this step's remainder
    keep: bool


# (steps in decomposition order, usage units with no rate of their own or of a parent)
_Plan = tuple[tuple[_Step, ...], tuple[str, ...]]
_PLANS: dict[tuple[int, frozenset[str]], tuple[Mapping[str, Rate], _Plan]] = {}
_MAX_PLANS: Final = 65536


def _power_of_ten_exponent(per: int) -> int | None:
    text = str(per)
    return -(len(text) - 1) if text.strip("0") == "1" else None


def _compile(rates: Mapping[str, Rate], present: frozenset[str]) -> _Plan:
    priced = frozenset(rates)
    relevant = [
        p for p in priced
        if p in present or p == "requests" or any(p in ANCESTORS[u] for u in present)
    ]
    relevant.sort(key=lambda p: (-len(UNITS[p].dimensions), p))
    steps = []
    for p in relevant:
        rate = rates[p]
        per = UNITS[p].per
        exponent = _power_of_ten_exponent(per)
        unit_rate = None
        if exponent is not None and not isinstance(rate, TieredRate):
            unit_rate = rate.scaleb(exponent, MONEY_CONTEXT)
        descendants = tuple(d for d in relevant if p in ANCESTORS[d])
        keep = any(a in priced for a in ANCESTORS[p])
        steps.append(_Step(p, descendants, rate, per, unit_rate, exponent, keep))
    unpriced = tuple(sorted(u for u in present if u not in priced and not (ANCESTORS[u] & priced)))
    return tuple(steps), unpriced


def _plan(rates: Mapping[str, Rate], present: frozenset[str]) -> _Plan:
    key = (id(rates), present)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is rates:
        return hit[1]
    plan = _compile(rates, present)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = (rates, plan)  # keeping ``rates`` alive keeps its id from being reused
    return plan


_MERGED: dict[tuple[int, tuple[str, ...]], tuple[PriceRecord, Mapping[str, Rate]]] = {}


def effective_rates(
    record: PriceRecord, quantities: Mapping[str, Quantity], attributes: Mapping[str, str], at: datetime
) -> tuple[Mapping[str, Rate], tuple[str, ...]]:
    """The record's rates after its variants (off-peak, batch, service tier, long context) are applied."""
    if not record.variants or (not attributes and record.attribute_variants_only):
        return record.rates, ()
    base: Mapping[str, Rate] = record.rates
    names: list[str] = []
    for variant in record.variants:
        if variant.replace and all(c.holds(quantities, attributes, at) for c in variant.conditions):
            base = variant.rates
            names.append(variant.name)
            break
    overriding = [
        v for v in record.variants
        if not v.replace and all(c.holds(quantities, attributes, at) for c in v.conditions)
    ]
    if not overriding:
        return base, tuple(names)
    names.extend(v.name for v in overriding)
    key = (id(record), tuple(names))
    hit = _MERGED.get(key)
    if hit is not None and hit[0] is record:
        return hit[1], key[1]
    overrides: dict[str, Rate] = {}
    for variant in overriding:
        for unit, rate in variant.rates.items():
            overrides.setdefault(unit, rate)
    merged = MappingProxyType({**base, **overrides})
    if len(_MERGED) >= _MAX_PLANS:
        _MERGED.clear()
    _MERGED[key] = (record, merged)  # one merged mapping per combination, so plans can be cached by its id
    return merged, key[1]


def calc_cost(
    usage: Usage,
    record: PriceRecord | None,
    *,
    at: datetime,
    attributes: Mapping[str, str] | None = None,
    provided: Mapping[str, Decimal] | None = None,
    model: str | None = None,
    provider: str | None = None,
    unpriced_reason: str | None = None,
    failed: bool = False,
) -> CostBreakdown:
    """Price ``usage`` with ``record`` as of ``at``.

    Usage with no quantity at all is ``unpriced`` with the reason ``no usage`` (a stream that reported no
    usage cost something nobody knows), unless the record is free, prices only requests, or the call
    ``failed`` (an error reply reports no usage and is billed nothing).

    ``record=None`` means no price was found: the result is ``unpriced`` (with ``unpriced_reason``) unless the
    caller ``provided`` amounts. ``provided`` maps unit names (or ``"total"``) to amounts the caller already
    knows (for example a provider-reported cost); each wins over the computed amount of the same unit.
    """
    quantities = usage._lookup
    if model is None and record is not None:
        model = record.model
    if provider is None and record is not None:
        provider = record.provider
    components: list[CostComponent] = []
    unpriced_units: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    total = ZERO
    if record is not None:
        if record.variants and (attributes or not record.attribute_variants_only):
            rates, variants = effective_rates(record, quantities, attributes or _NO_ATTRIBUTES, at)
        else:
            rates = record.rates
        hit = _PLANS.get((id(rates), usage.units))
        if hit is not None and hit[0] is rates:
            steps, unpriced_units = hit[1]
        else:
            steps, unpriced_units = _plan(rates, usage.units)
        total = _price_steps(steps, quantities, components)
    else:
        unpriced_units = tuple(sorted(quantities))
    if provided:
        with localcontext(MONEY_CONTEXT):
            return _with_provided(
                components, provided, unpriced_units, record, model, provider,
                record.currency if record is not None else DEFAULT_CURRENCY, variants, unpriced_reason
            )
    result_total: Decimal | None = total
    if record is None:
        status, result_total = PricingStatus.UNPRICED, None
        reason = unpriced_reason or f"no price for model {model!r}" + (f" of provider {provider!r}" if provider else "")
    elif not quantities and not (failed or record.is_free or _PER_REQUEST.issuperset(record.rates)):
        # a call that reported no usage (a stream without usage) has a cost nobody knows; a free model's is 0
        status, result_total, reason = PricingStatus.UNPRICED, None, NO_USAGE
    elif unpriced_units and record.rates:
        reason = f"no rate for {', '.join(unpriced_units)} in price {record.id!r}"
        # nothing at all was priced (characters against a per-token price): unpriced, never a partial $0
        status = PricingStatus.PARTIALLY_PRICED if components else PricingStatus.UNPRICED
        if not components:
            result_total = None
    else:
        status, reason = PricingStatus.PRICED, None
    return _new_breakdown(
        CostBreakdown,
        (
            result_total, record.currency if record is not None else DEFAULT_CURRENCY, status, tuple(components), model,
            provider, record.id if record is not None else None, record.source_label if record is not None else None,
            reason, variants,
        ),
    )


# NamedTuple construction without the Python-level ``__new__`` frame (0.3 µs a tuple on the hot path)
_new_component = tuple.__new__
_new_breakdown = tuple.__new__


def _price_steps(steps: tuple[_Step, ...], quantities: Mapping[str, Quantity], out: list[CostComponent]) -> Decimal:
    """Charge each priced unit for its quantity minus what its priced subsets charged; return the total."""
    # Operators under MONEY_CONTEXT: exact (60 digits, traps on invalid operations) and 3× faster than the
    # context's methods. The caller's context is restored before returning.
    saved = getcontext()
    setcontext(MONEY_CONTEXT)
    try:
        total = ZERO
        leaves: dict[str, Quantity] = {}
        for unit, descendants, rate, per, unit_rate, exponent, keep in steps:
            raw = quantities.get(unit)
            if raw is None:
                if unit == "requests":
                    raw = 1
                elif descendants:
                    present = ", ".join(f"{d} ({quantities[d]})" for d in descendants if d in quantities)
                    raise UsageError(f"{present} reported without {unit}, which includes it; give {unit} too")
                else:
                    raw = 0
            leaf = raw
            if descendants:
                for d in descendants:
                    leaf -= leaves[d]
                if leaf < 0:
                    parts = ", ".join(f"{d} ({quantities.get(d, 0)})" for d in descendants)
                    raise UsageError(f"{parts} add up to more than {unit} ({raw}), which includes them")
            if keep:
                leaves[unit] = leaf
            if not leaf:
                continue
            if unit_rate is not None:
                amount = leaf * unit_rate
            else:
                if isinstance(rate, TieredRate):
                    rate = rate.rate_for(quantities.get(rate.basis, 0))
                amount = (leaf * rate).scaleb(exponent) if exponent is not None else leaf * rate / per
            total += amount
            out.append(_new_component(CostComponent, (unit, leaf, rate, per, amount, False)))
        return total
    finally:
        setcontext(saved)


def _with_provided(
    computed: list[CostComponent],
    provided: Mapping[str, Decimal],
    unpriced_units: tuple[str, ...],
    record: PriceRecord | None,
    model: str | None,
    provider: str | None,
    currency: str,
    variants: tuple[str, ...],
    unpriced_reason: str | None,
) -> CostBreakdown:
    for key, amount in provided.items():
        if key != TOTAL and key not in UNITS:
            raise UsageError(f"provided cost for unknown unit {key!r}")
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
            raise UsageError(f"provided cost for {key} must be a non-negative decimal, got {amount!r}")
    by_unit = {c.unit: c for c in computed}
    components: list[CostComponent] = []
    for unit, amount in provided.items():
        if unit == TOTAL:
            continue
        known = by_unit.pop(unit, None)
        components.append(
            CostComponent(unit, known.quantity if known else None, None, UNITS[unit].per, amount, provided=True)
        )
    components.extend(by_unit.values())
    subtotal = sum((c.amount for c in components), ZERO)
    if TOTAL in provided:
        # a provided total is the authority (e.g. what the provider billed); components explain it
        total = provided[TOTAL]
        reason = None
        if total > subtotal:
            label = "other" if components else TOTAL
            components.append(CostComponent(label, None, None, 1, total - subtotal, provided=True))
        elif total < subtotal:
            reason = (f"provided total {total} is below the sum of the priced components {subtotal}; "
                      "the provided total is kept as one component")
            components = [CostComponent(TOTAL, None, None, 1, total, provided=True)]
        status = PricingStatus.PROVIDED
    else:
        total = subtotal
        covered = set(provided)
        missing = [u for u in unpriced_units if u not in covered and not (ANCESTORS[u] & covered)]
        if missing:
            status = PricingStatus.PARTIALLY_PRICED
            reason = (unpriced_reason if record is None and unpriced_reason
                      else f"no rate for {', '.join(missing)}")
        elif all(c.provided for c in components):
            status, reason = PricingStatus.PROVIDED, None
        else:
            status, reason = PricingStatus.PRICED, None
    return _new_breakdown(
        CostBreakdown,
        (
            total, currency, status, tuple(components), model,
            provider, record.id if record is not None else None, record.source_label if record is not None else None,
            reason, variants,
        ),
    )


_UNIT_ORDER: Final = {name: i for i, name in enumerate(UNITS)}


def ordered_components(breakdown: CostBreakdown) -> list[CostComponent]:
    """Components in display order (input, output, then subsets), for tables and JSON."""
    return sorted(breakdown.components, key=lambda c: _UNIT_ORDER.get(c.unit, len(_UNIT_ORDER)))
