"""The canonical usage record: quantities in named units, inclusive, validated once at construction."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from costline.core.limits import MAX_INTEGER, preview
from costline.core.money import to_decimal
from costline.core.units import ANCESTORS, DIRECT_PARENTS, ROOT_OF, UNITS
from costline.errors import CostlineError, UsageError

Quantity = int | Decimal


def _quantity(unit: str, value: object) -> Quantity:
    if isinstance(value, int) and not isinstance(value, bool):
        number: Quantity = value
    else:
        try:
            number = to_decimal(value, field=unit)
        except CostlineError as exc:
            raise UsageError(str(exc)) from None
        if number == number.to_integral_value():
            number = int(number)
    if number < 0:
        raise UsageError(f"{unit}: quantity must not be negative, got {preview(value)}")
    if number > MAX_INTEGER:
        raise UsageError(f"{unit}: {preview(value)} is out of range (at most 2^63-1)")
    if not isinstance(number, int) and UNITS[unit].family == "tokens":
        raise UsageError(f"{unit}: a token count must be a whole number, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class Usage:
    """Quantities by unit name (see ``costline.core.units``).

    Token units are inclusive: ``input_tokens`` counts every input token, cached or not, and
    ``cache_read_tokens`` is a subset of it. A subset larger than its parent, or subsets along one axis (cache
    read + cache write, text + audio + image, 5m + 1h) adding up to more than the parent, raise ``UsageError``
    with both numbers. Zero quantities are dropped.
    """

    quantities: Mapping[str, Quantity] = field(default_factory=dict)
    #: the unit names present (computed; used as a cache key by the cost engine)
    units: frozenset[str] = field(init=False, repr=False, compare=False)
    #: the same quantities as a plain dict, for the cost engine's lookups (never handed out)
    _lookup: dict[str, Quantity] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given: dict[str, Quantity] = {}
        for unit, value in self.quantities.items():
            if unit not in UNITS:
                raise UsageError(f"unknown usage unit {unit!r}; see `costline prices units` for the unit names")
            given[unit] = _quantity(unit, value)
        _check_subsets(given)
        clean = {unit: number for unit, number in given.items() if number}
        object.__setattr__(self, "_lookup", clean)
        object.__setattr__(self, "quantities", MappingProxyType(clean))
        object.__setattr__(self, "units", frozenset(clean))

    @classmethod
    def validated(cls, quantities: Mapping[str, Quantity]) -> Usage:
        """A Usage from quantities that already passed validation (``Usage.quantities`` of another Usage, or
        rows written from one); skips the checks."""
        usage = object.__new__(cls)
        clean = dict(quantities)
        object.__setattr__(usage, "_lookup", clean)
        object.__setattr__(usage, "quantities", MappingProxyType(clean))
        object.__setattr__(usage, "units", frozenset(clean))
        return usage

    @classmethod
    def of(cls, **quantities: Any) -> Usage:
        """``Usage.of(input_tokens=1000, cache_read_tokens=200, output_tokens=50)``."""
        return cls(quantities)

    def get(self, unit: str) -> Quantity:
        return self.quantities.get(unit, 0)

    def __getitem__(self, unit: str) -> Quantity:
        return self.quantities.get(unit, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(self.quantities)

    def __bool__(self) -> bool:
        return bool(self.quantities)

    def __add__(self, other: Usage) -> Usage:
        merged = dict(self.quantities)
        for unit, value in other.quantities.items():
            merged[unit] = merged.get(unit, 0) + value
        return Usage(merged)

    def to_dict(self) -> dict[str, Quantity]:
        return dict(self.quantities)


#: per tuple of unit names (in the order given): each unit's root and ancestors, and the groups of children
#: along one axis of a parent that must add up to at most the parent (at most ``_MAX_SUBSET_PLANS`` kept)
_SubsetPlan = tuple[tuple[tuple[str, str | None, tuple[str, ...]], ...], tuple[tuple[str, tuple[str, ...]], ...]]
_SUBSET_PLANS: dict[tuple[str, ...], _SubsetPlan] = {}
_MAX_SUBSET_PLANS = 1024


def _subset_plan(units: tuple[str, ...]) -> _SubsetPlan:
    sums: dict[tuple[str, str], list[str]] = {}
    for unit in units:
        for parent, axis in DIRECT_PARENTS[unit]:
            if parent in units:
                sums.setdefault((parent, axis), []).append(unit)
    plan = (
        tuple((unit, ROOT_OF.get(unit), tuple(ANCESTORS[unit])) for unit in units),
        tuple((parent, tuple(children)) for (parent, _axis), children in sums.items() if len(children) > 1),
    )
    if len(_SUBSET_PLANS) >= _MAX_SUBSET_PLANS:
        _SUBSET_PLANS.clear()
    _SUBSET_PLANS[units] = plan
    return plan


def _check_subsets(q: Mapping[str, Quantity]) -> None:
    units = tuple(q)
    per_unit, groups = _SUBSET_PLANS.get(units) or _subset_plan(units)
    for unit, root, ancestors in per_unit:
        value = q[unit]
        if not value:
            continue
        if root is not None and root not in q:
            raise UsageError(
                f"{unit} ({value}) was given without {root}; usage is inclusive, so {root} must be the "
                f"total that {unit} is part of"
            )
        for ancestor in ancestors:
            parent_value = q.get(ancestor)
            if parent_value is not None and value > parent_value:
                raise UsageError(f"{unit} ({value}) exceeds {ancestor} ({parent_value}), which includes it")
    # children along one axis are disjoint: their sum must fit in the parent
    for parent, children in groups:
        total = sum(q[c] for c in children)
        if total > q[parent]:
            parts = " + ".join(f"{c} ({q[c]})" for c in sorted(children))
            raise UsageError(f"{parts} = {total} exceeds {parent} ({q[parent]}), which includes them")
