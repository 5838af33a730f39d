"""The OTel attribute rules' shortcuts against the general code they stand in for.

``token_usage`` builds a validated ``Usage`` without ``Usage``'s own checks when the subset comparisons it
compiles hold; ``Usage(q)`` is the authority it must agree with, on every input: the same quantities, or the
same error.
"""

from __future__ import annotations

import itertools
import random

import pytest

from costline.core.limits import MAX_INTEGER
from costline.core.usage import Usage
from costline.errors import UsageError
from costline.ingest import otel_usage as ou

GENERIC_UNITS = [unit for unit, _ in ou.GENERIC_USAGE]


def outcome(build: object, q: dict[str, int]) -> tuple[str, object]:
    try:
        return "ok", dict(build(dict(q)).quantities)  # type: ignore[operator]
    except UsageError as exc:
        return "error", str(exc)


def test_token_usage_agrees_with_usage_on_small_counts() -> None:
    # every pair and triple of units, counts 0..3 each: all orders between parents, children and sums
    for size in (1, 2, 3):
        for units in itertools.permutations(GENERIC_UNITS, size):
            for counts in itertools.product(range(4), repeat=size):
                q = dict(zip(units, counts, strict=True))
                assert outcome(ou.token_usage, q) == outcome(Usage, q), q


def test_token_usage_agrees_with_usage_on_random_sets() -> None:
    rng = random.Random(15)
    for _ in range(5000):
        units = rng.sample(GENERIC_UNITS, rng.randint(1, len(GENERIC_UNITS)))
        q = {unit: rng.choice((0, 1, 5, 10, 100, 1000)) for unit in units}
        assert outcome(ou.token_usage, q) == outcome(Usage, q), q


@pytest.mark.parametrize("q", [
    {"input_tokens": MAX_INTEGER + 1},
    {"input_tokens": MAX_INTEGER, "output_tokens": MAX_INTEGER + 1},
    {"cache_read_tokens": 5},  # no input_tokens to be part of
    {"input_tokens": 10, "cache_read_tokens": 6, "cache_write_tokens": 5},  # 11 > 10
    {"input_tokens": 0, "output_tokens": 0},
])
def test_token_usage_edges(q: dict[str, int]) -> None:
    assert outcome(ou.token_usage, q) == outcome(Usage, q)
