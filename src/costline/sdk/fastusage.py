"""``Usage`` from a plain mapping of integer quantities, validated with a plan cached per set of unit names.

``Usage(mapping)`` re-derives the unit relations on every call (about 5 µs); the tracker records a
generation in about that much time in total, so it checks the common case (known units, non-negative ints)
against the same relations (``costline.core.units``) precomputed once per key order. Anything else, or any
violation, goes through ``Usage(mapping)`` so the error is the core's own. tests/sdk/test_fastusage.py
checks that both agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costline.core.units import ANCESTORS, DIRECT_PARENTS, ROOT_OF, UNITS
from costline.core.usage import Usage

#: (child, parent) pairs to compare, and (parent, children) groups whose sum must fit in the parent
_Plan = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, tuple[str, ...]], ...]]

_PLANS: dict[tuple[str, ...], _Plan | None] = {}
_MAX_PLANS = 4096


def _plan(units: tuple[str, ...]) -> _Plan | None:
    present = set(units)
    if len(present) != len(units) or not present <= UNITS.keys():
        return None
    pairs: list[tuple[str, str]] = []
    groups: dict[tuple[str, str], list[str]] = {}
    for unit in units:
        root = ROOT_OF.get(unit)
        if root is not None and root not in present:
            return None  # the core decides (an error unless the quantity is zero)
        pairs.extend((unit, ancestor) for ancestor in ANCESTORS[unit] if ancestor in present)
        for parent, axis in DIRECT_PARENTS[unit]:
            if parent in present:
                groups.setdefault((parent, axis), []).append(unit)
    return tuple(pairs), tuple((parent, tuple(c)) for (parent, _), c in groups.items() if len(c) > 1)


def fast_usage(raw: Mapping[str, Any]) -> Usage:
    """The same ``Usage`` (or the same ``UsageError``) as ``Usage(raw)``, faster for plain int quantities."""
    key = tuple(raw)
    try:
        plan = _PLANS[key]
    except KeyError:
        plan = _plan(key)
        if len(_PLANS) < _MAX_PLANS:
            _PLANS[key] = plan
    if plan is None:
        return Usage(raw)
    zeros = False
    for value in raw.values():
        if type(value) is not int or value < 0:
            return Usage(raw)
        if not value:
            zeros = True
    pairs, groups = plan
    for child, parent in pairs:
        if raw[child] > raw[parent]:
            return Usage(raw)
    for parent, children in groups:
        if sum(raw[c] for c in children) > raw[parent]:
            return Usage(raw)
    # validated() copies the mapping; without zeros to drop there is nothing to filter first
    return Usage.validated({unit: value for unit, value in raw.items() if value} if zeros else raw)
