"""Price records: who they apply to (match rule, provider, dates), their per-unit rates, and conditional tiers.

A record is validated data, compiled from a catalog (genai-prices, LiteLLM, Langfuse) or a user price file.
Rates are ``Decimal`` per ``Unit.per`` units (USD per million tokens, per thousand requests, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, Protocol

from costline.core.money import DEFAULT_CURRENCY
from costline.core.units import ANCESTORS, UNITS
from costline.errors import PriceDataError


class Source(StrEnum):
    """Where a record came from; also its precedence (lower rank wins)."""

    OVERRIDE = "override"
    PROJECT = "project"
    USER = "user"
    IMPORTED = "imported"
    BUNDLED = "bundled"

    @property
    def rank(self) -> int:
        return _SOURCE_RANK[self]


_SOURCE_RANK = {Source.OVERRIDE: 0, Source.PROJECT: 1, Source.USER: 2, Source.IMPORTED: 3, Source.BUNDLED: 4}

MatchKind = Literal["exact", "prefix", "suffix", "contains", "regex", "any", "all"]


class Searcher(Protocol):
    """A compiled pattern: ``search`` finds it anywhere in the text (``re.Pattern`` is one)."""

    def search(self, text: str, /) -> object | None: ...


@dataclass(frozen=True, slots=True)
class Match:
    """A rule matching model names.

    ``exact``, ``prefix``, ``suffix`` and ``contains`` compare text (case-insensitively unless
    ``case_sensitive``); ``regex`` searches the name (case-sensitive unless ``case_sensitive`` is False: the
    flag is explicit, never hidden in the pattern) with ``searcher``, the pattern compiled by the caller; without
    one, Python's ``re`` compiles it, which backtracks: that is for trusted patterns only (the bundled catalog,
    a program's own rules). Patterns from users go through ``costline.catalog.patterns`` (RE2, linear time).
    ``any``/``all`` combine ``clauses``.
    """

    kind: MatchKind
    value: str = ""
    case_sensitive: bool = False
    clauses: tuple[Match, ...] = ()
    searcher: Searcher | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind == "regex":
            if self.searcher is None:
                try:
                    pattern = re.compile(self.value, 0 if self.case_sensitive else re.IGNORECASE)
                except re.error as exc:
                    raise PriceDataError(f"invalid regex {self.value!r}: {exc}") from None
                object.__setattr__(self, "searcher", pattern)
        elif self.kind in ("any", "all"):
            if not self.clauses:
                raise PriceDataError(f"match rule {self.kind!r} needs at least one clause")
        elif not self.value:
            raise PriceDataError(f"match rule {self.kind!r} needs a value")

    def matches(self, name: str, lowered: str) -> bool:
        """``lowered`` is ``name.lower()``, passed in so a lookup lowers once."""
        kind = self.kind
        if kind == "regex":
            assert self.searcher is not None
            return self.searcher.search(name) is not None
        if kind == "any":
            return any(c.matches(name, lowered) for c in self.clauses)
        if kind == "all":
            return all(c.matches(name, lowered) for c in self.clauses)
        text, value = (name, self.value) if self.case_sensitive else (lowered, self.value.lower())
        if kind == "exact":
            return text == value
        if kind == "prefix":
            return text.startswith(value)
        if kind == "suffix":
            return text.endswith(value)
        return value in text

    def specificity(self) -> int:
        """Higher is more specific: exact > longest prefix/suffix > contains > regex > combinations."""
        if self.kind == "exact":
            return 1_000_000
        if self.kind in ("prefix", "suffix"):
            return 10_000 + len(self.value)
        if self.kind == "contains":
            return 1_000 + len(self.value)
        if self.kind == "regex":
            return 100
        return max(c.specificity() for c in self.clauses) // 2

    def exact_names(self) -> tuple[str, ...]:
        """Names this rule accepts by plain equality (for indexing); empty if it needs scanning."""
        if self.kind == "exact" and not self.case_sensitive:
            return (self.value.lower(),)
        if self.kind == "any" and all(c.kind == "exact" and not c.case_sensitive for c in self.clauses):
            return tuple(c.value.lower() for c in self.clauses)
        return ()

    def describe(self) -> str:
        if self.kind in ("any", "all"):
            joiner = " or " if self.kind == "any" else " and "
            return "(" + joiner.join(c.describe() for c in self.clauses) + ")"
        case = "" if self.kind == "exact" or not self.case_sensitive else " (case-sensitive)"
        if self.kind == "regex":
            case = " (case-sensitive)" if self.case_sensitive else " (ignore case)"
        return f"{self.kind} {self.value!r}{case}"


@dataclass(frozen=True, slots=True)
class TieredRate:
    """A rate that changes with a usage threshold ("cliff" model: above the threshold, every unit pays the
    tier's rate). ``tiers`` are ``(threshold, rate)`` pairs, applied when the ``basis`` quantity is strictly
    greater than the threshold."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]
    basis: str = "input_tokens"

    def rate_for(self, basis_quantity: int | Decimal) -> Decimal:
        chosen = self.base
        for threshold, rate in self.tiers:
            if basis_quantity > threshold:
                chosen = rate
        return chosen


Rate = Decimal | TieredRate


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition of a variant.

    - ``attribute``: request attribute ``key`` (e.g. ``service_tier``, ``processing``) is one of ``values``.
    - ``usage``: the sum of the ``units`` quantities compared with ``threshold`` by ``op``.
    - ``time_of_day``: the event's UTC time of day is in ``[start, end)`` (wrapping past midnight).
    """

    kind: Literal["attribute", "usage", "time_of_day"]
    key: str = ""
    values: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    op: Literal["gt", "gte", "lt", "lte", "eq", "neq"] = "gt"
    threshold: Decimal = Decimal(0)
    start: time | None = None
    end: time | None = None

    def holds(self, usage: Mapping[str, int | Decimal], attributes: Mapping[str, str], at: datetime) -> bool:
        if self.kind == "attribute":
            value = attributes.get(self.key)
            return value is not None and str(value) in self.values
        if self.kind == "usage":
            total = sum((usage.get(u, 0) for u in self.units), 0)
            t = self.threshold
            op = self.op
            if op == "gt":
                return total > t
            if op == "gte":
                return total >= t
            if op == "lt":
                return total < t
            if op == "lte":
                return total <= t
            if op == "eq":
                return total == t
            return total != t
        assert self.start is not None and self.end is not None
        current = (at.astimezone(UTC) if at.tzinfo is not None else at).time()
        if self.end <= self.start:
            return current >= self.start or current < self.end
        return self.start <= current < self.end

    def describe(self) -> str:
        if self.kind == "attribute":
            return f"{self.key} in {list(self.values)}"
        if self.kind == "usage":
            return f"{'+'.join(self.units)} {self.op} {self.threshold}"
        return f"UTC time in [{self.start}, {self.end})"


@dataclass(frozen=True, slots=True)
class Variant:
    """Alternative rates under conditions (all must hold).

    ``replace`` variants swap the whole rate set (off-peak prices); the others override only the units they
    list (batch, flex, priority, long context). Among matching variants, earlier ones win per unit.
    """

    name: str
    conditions: tuple[Condition, ...]
    rates: Mapping[str, Rate]
    replace: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", MappingProxyType(dict(self.rates)))


@dataclass(frozen=True, slots=True)
class PriceRecord:
    """One price: which models, which provider, when, at what rates."""

    id: str
    model: str
    match: Match
    rates: Mapping[str, Rate]
    source: Source = Source.BUNDLED
    source_name: str = ""
    provider: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    variants: tuple[Variant, ...] = ()
    currency: str = DEFAULT_CURRENCY
    alias_of: str | None = None
    context_window: int | None = None
    description: str = ""
    #: computed: the source as shown in results ("bundled:genai-prices@0.2.3")
    source_label: str = field(init=False, default="", compare=False)
    #: computed: every variant depends only on request attributes (so no attributes means no variant)
    attribute_variants_only: bool = field(init=False, default=True, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", MappingProxyType(dict(self.rates)))
        label = f"{self.source.value}:{self.source_name}" if self.source_name else self.source.value
        object.__setattr__(self, "source_label", label)
        object.__setattr__(
            self, "attribute_variants_only",
            all(c.kind == "attribute" for v in self.variants for c in v.conditions),
        )
        where = f"price {self.id!r}"
        for unit, rate in self.rates.items():
            _check_rate(where, unit, rate)
        for variant in self.variants:
            for unit, rate in variant.rates.items():
                _check_rate(f"{where} variant {variant.name!r}", unit, rate)
        if self.alias_of is None:
            _check_ancestor_coverage(where, self.rates)
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise PriceDataError(f"{where}: valid_to {self.valid_to} is not after valid_from {self.valid_from}")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise PriceDataError(f"{where}: currency must be an ISO 4217 code such as USD, got {self.currency!r}")

    def valid_at(self, at: datetime) -> bool:
        valid_from, valid_to = self.valid_from, self.valid_to
        return (valid_from is None or at >= valid_from) and (valid_to is None or at < valid_to)

    @property
    def is_free(self) -> bool:
        return all(
            (r.base == 0 and all(t == 0 for _, t in r.tiers)) if isinstance(r, TieredRate) else r == 0
            for r in self.rates.values()
        )


def _check_rate(where: str, unit: str, rate: Rate) -> None:
    if unit not in UNITS:
        raise PriceDataError(f"{where}: unknown unit {unit!r}")
    values = [rate.base, *(r for _, r in rate.tiers)] if isinstance(rate, TieredRate) else [rate]
    for value in values:
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
            raise PriceDataError(f"{where}: rate for {unit} must be a non-negative decimal, got {value!r}")


def _check_ancestor_coverage(where: str, rates: Mapping[str, Rate]) -> None:
    # A rate for a subset (cache reads) needs the rate of what contains it (input tokens); otherwise the
    # remainder of the parent would have no price.
    for unit in rates:
        for ancestor in ANCESTORS[unit]:
            if ancestor not in rates and _is_root_of_family(ancestor):
                raise PriceDataError(f"{where}: has a rate for {unit} but none for {ancestor}, which contains it")


def _is_root_of_family(unit: str) -> bool:
    return unit in ("input_tokens", "output_tokens")
