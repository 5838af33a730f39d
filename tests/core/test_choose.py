"""Choosing models by price: order, totals and constraints on a hand-built book, and the real catalog."""

from __future__ import annotations

import ast
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from costline.catalog.genai import load_genai_catalog
from costline.core import choose
from costline.core.choose import Choice, cheapest_models, estimate_cost
from costline.core.cost import PricingStatus
from costline.core.price import Match, PriceRecord, Source
from costline.core.resolve import PriceBook, ProviderInfo

AT = datetime(2025, 6, 1, 12, tzinfo=UTC)
D = Decimal


def record(
    provider: str, model: str, input_rate: str | None, output_rate: str | None, *, context: int | None = None,
    source: Source = Source.BUNDLED, **extra: object,
) -> PriceRecord:
    rates = {}
    if input_rate is not None:
        rates["input_tokens"] = D(input_rate)
    if output_rate is not None:
        rates["output_tokens"] = D(output_rate)
    return PriceRecord(
        id=f"{source.value}:{provider}:{model}", model=model, match=Match("exact", model), rates=rates,
        source=source, provider=provider, context_window=context, **extra,  # type: ignore[arg-type]
    )


# Rates are USD per 1M tokens. For 1,000 input and 1,000 output tokens:
# 1000×3/1e6 + 1000×15/1e6 = 0.003 + 0.015 = 0.018
LARGE = record("alpha", "alpha-large", "3", "15", context=200_000)
SMALL = record("alpha", "alpha-small", "0.5", "1.5", context=16_000)  # 0.0005 + 0.0015 = 0.002
MID = record("beta", "beta-mid", "1", "2")  # context unknown; 0.001 + 0.002 = 0.003
FREE = record("beta", "beta-free", "0", "0", context=8_000)  # 0 + 0 = 0
# a user price for alpha-small: resolution prefers it (user > bundled), but it is dearer:
# 0.0006 + 0.0016 = 0.0022
SMALL_USER = record("alpha", "alpha-small", "0.6", "1.6", context=16_000, source=Source.USER)
# never chosen: an alias (would be free if priced), an expired price (cheaper than all), an input-only price
# (output tokens unpriced → partially priced)
ALIAS = record("alpha", "alpha-latest", "0", "0", context=200_000, alias_of="alpha-large")
EXPIRED = record(
    "alpha", "alpha-old", "0.01", "0.01", context=200_000,
    valid_from=AT - timedelta(days=365), valid_to=AT - timedelta(days=1),
)
INPUT_ONLY = record("gamma", "gamma-embed", "0.01", None, context=8_000)

PROVIDERS = (
    ProviderInfo("alpha", "Alpha"),
    ProviderInfo("beta", "Beta", provider_match=Match("exact", "beta-cloud")),
    ProviderInfo("gamma", "Gamma"),
)


@pytest.fixture
def book() -> PriceBook:
    return PriceBook([LARGE, SMALL, MID, FREE, SMALL_USER, ALIAS, EXPIRED, INPUT_ONLY], PROVIDERS)


def ids(choices: list[Choice]) -> list[str]:
    return [c.record.id for c in choices]


def totals(choices: list[Choice]) -> list[Decimal]:
    return [c.cost.total for c in choices]


def test_order_and_totals(book: PriceBook) -> None:
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT)
    # free 0 < small 0.002 < (user small 0.0022, same provider and model: dropped) < mid 0.003 < large 0.018
    assert ids(choices) == [FREE.id, SMALL.id, MID.id, LARGE.id]
    assert totals(choices) == [D("0"), D("0.002"), D("0.003"), D("0.018")]
    assert all(c.cost.status is PricingStatus.PRICED for c in choices)
    assert [c.cost.price_id for c in choices] == ids(choices)


def test_limit(book: PriceBook) -> None:
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, limit=2)
    assert ids(choices) == [FREE.id, SMALL.id]
    assert cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, limit=-1)


def test_min_context_window(book: PriceBook) -> None:
    # free (8k) too small, mid (unknown) excluded because a context constraint is given; small 16k and large
    # 200k fit
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, min_context_window=10_000)
    assert ids(choices) == [SMALL.id, LARGE.id]
    assert totals(choices) == [D("0.002"), D("0.018")]
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, min_context_window=16_000)
    assert ids(choices) == [SMALL.id, LARGE.id]  # a window equal to the minimum fits


def test_workload_must_fit_the_known_context_window(book: PriceBook) -> None:
    # 10,000 + 10,000 = 20,000 tokens: free (8k) and small (16k) are too small; mid's window is unknown and no
    # minimum was asked for, so it stays.
    # mid: 10000×1/1e6 + 10000×2/1e6 = 0.01 + 0.02 = 0.03
    # large: 10000×3/1e6 + 10000×15/1e6 = 0.03 + 0.15 = 0.18
    choices = cheapest_models(book, input_tokens=10_000, output_tokens=10_000, at=AT)
    assert ids(choices) == [MID.id, LARGE.id]
    assert totals(choices) == [D("0.03"), D("0.18")]
    # 8,000 + 8,000 = 16,000 exactly fills small's window
    assert SMALL.id in ids(cheapest_models(book, input_tokens=8_000, output_tokens=8_000, at=AT))


def test_max_cost(book: PriceBook) -> None:
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, max_cost=D("0.003"))
    assert ids(choices) == [FREE.id, SMALL.id, MID.id]  # 0.003 is not above 0.003; large's 0.018 is
    assert cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, max_cost=D("0")) == [
        Choice(FREE, choices[0].cost)
    ]


def test_providers(book: PriceBook) -> None:
    # "Beta-Cloud" normalizes to beta through its provider_match; names are case-insensitive
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, providers={"Beta-Cloud"})
    assert ids(choices) == [FREE.id, MID.id]
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, providers=["ALPHA"])
    assert ids(choices) == [SMALL.id, LARGE.id]
    assert cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, providers={"gamma"}) == []
    assert cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, providers=()) == []


def test_models_use_resolution(book: PriceBook) -> None:
    # alpha-small resolves to the user price (user > bundled), so that is the one listed: 0.0022
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, models=["alpha-small"])
    assert ids(choices) == [SMALL_USER.id]
    assert totals(choices) == [D("0.0022")]
    # an alias resolves to its target; unknown names are ignored
    choices = cheapest_models(
        book, input_tokens=1000, output_tokens=1000, at=AT, models=["alpha-latest", "beta-mid", "nope"]
    )
    assert ids(choices) == [MID.id, LARGE.id]
    # models and providers together
    choices = cheapest_models(
        book, input_tokens=1000, output_tokens=1000, at=AT,
        models=["alpha-large", "beta-mid"], providers={"beta"},
    )
    assert ids(choices) == [MID.id]


def test_validity_is_checked_at_the_given_time(book: PriceBook) -> None:
    before = AT - timedelta(days=30)  # the expired price (0.01 + 0.01 per 1M: 0.00002) is valid then
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=before, limit=2)
    assert ids(choices) == [FREE.id, EXPIRED.id]
    assert totals(choices) == [D("0"), D("0.00002")]


def test_estimate_cost(book: PriceBook) -> None:
    found = estimate_cost(book, "alpha-large", input_tokens=1000, output_tokens=1000, at=AT)
    assert found.status is PricingStatus.PRICED
    assert found.total == D("0.018")
    assert (found.price_id, found.model, found.provider) == (LARGE.id, "alpha-large", "alpha")
    aliased = estimate_cost(book, "alpha-latest", input_tokens=1000, output_tokens=1000, at=AT)
    assert aliased.price_id == LARGE.id
    missing = estimate_cost(book, "nope", input_tokens=1000, output_tokens=1000, at=AT, provider="Beta-Cloud")
    assert missing.status is PricingStatus.UNPRICED
    assert missing.total is None  # an unknown cost is never 0
    assert (missing.model, missing.provider, missing.price_id) == ("nope", "beta", None)


def test_real_catalog_openai() -> None:
    records, providers = load_genai_catalog()
    book = PriceBook(records, providers)
    choices = cheapest_models(book, input_tokens=1000, output_tokens=1000, at=AT, providers={"openai"})
    assert 0 < len(choices) <= 10
    assert all(c.record.provider == "openai" for c in choices)
    assert all(c.cost.status is PricingStatus.PRICED for c in choices)
    assert totals(choices) == sorted(totals(choices))
    assert len({(c.record.provider, c.record.model) for c in choices}) == len(choices)
    # the cheapest is no dearer than a well-known cheap model priced directly
    mini = estimate_cost(book, "gpt-4o-mini", input_tokens=1000, output_tokens=1000, at=AT, provider="openai")
    assert mini.status is PricingStatus.PRICED
    assert choices[0].cost.total <= mini.total


def test_core_module_is_pure() -> None:
    source = Path(choose.__file__).read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or name.startswith("costline.core"), name
