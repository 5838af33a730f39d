"""The cost engine on hand-built records: every expected amount is worked out in the comments."""

from datetime import UTC, datetime, time
from decimal import Decimal as D

import pytest

from costline.core.cost import TOTAL, PricingStatus, calc_cost
from costline.core.price import Condition, Match, PriceRecord, TieredRate, Variant
from costline.core.usage import Usage
from costline.errors import PriceDataError, UsageError

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

# USD per 1M tokens, as OpenAI publishes them for gpt-4o
GPT4O = PriceRecord(
    id="t:gpt-4o", model="gpt-4o", match=Match("exact", "gpt-4o"), provider="openai",
    rates={"input_tokens": D("2.5"), "cache_read_tokens": D("1.25"), "output_tokens": D("10")},
)

# Anthropic's claude-sonnet-4-5: input 3, 5m write 3.75, 1h write 6, read 0.30, output 15; > 200k: double input
SONNET = PriceRecord(
    id="t:sonnet", model="claude-sonnet-4-5", match=Match("exact", "claude-sonnet-4-5"), provider="anthropic",
    rates={
        "input_tokens": TieredRate(D("3"), ((200_000, D("6")),)),
        "cache_write_tokens": TieredRate(D("3.75"), ((200_000, D("7.5")),)),
        "cache_write_1h_tokens": TieredRate(D("6"), ((200_000, D("12")),)),
        "cache_read_tokens": TieredRate(D("0.3"), ((200_000, D("0.6")),)),
        "output_tokens": TieredRate(D("15"), ((200_000, D("22.5")),)),
    },
)


def amounts(b: object) -> dict[str, D]:
    return {c.unit: c.amount for c in b.components}  # type: ignore[attr-defined]


def test_cached_tokens_are_not_counted_twice() -> None:
    usage = Usage.of(input_tokens=1000, cache_read_tokens=400, output_tokens=200)
    b = calc_cost(usage, GPT4O, at=AT)
    # uncached 600 × 2.5/1M = 0.0015; cached 400 × 1.25/1M = 0.0005; output 200 × 10/1M = 0.002
    assert amounts(b) == {"input_tokens": D("0.0015"), "cache_read_tokens": D("0.0005"), "output_tokens": D("0.002")}
    assert b.total == D("0.004")
    assert b.status is PricingStatus.PRICED
    assert b.price_id == "t:gpt-4o"
    assert b.component("input_tokens").quantity == 600  # type: ignore[union-attr]


def test_reasoning_without_its_own_rate_is_billed_as_output() -> None:
    usage = Usage.of(input_tokens=100, output_tokens=500, output_reasoning_tokens=300)
    b = calc_cost(usage, GPT4O, at=AT)
    # 100 × 2.5/1M = 0.00025; 500 output (300 of them reasoning) × 10/1M = 0.005
    assert b.total == D("0.00525")
    assert b.status is PricingStatus.PRICED


def test_anthropic_cache_ttls_and_long_context_tier() -> None:
    usage = Usage.of(
        input_tokens=10_000, cache_write_tokens=3_000, cache_write_1h_tokens=1_000, cache_read_tokens=5_000,
        output_tokens=1_000,
    )
    b = calc_cost(usage, SONNET, at=AT)
    # uncached input 10000-3000-5000 = 2000 × 3 = 6000; 5m-write 3000-1000 = 2000 × 3.75 = 7500;
    # 1h-write 1000 × 6 = 6000; read 5000 × 0.3 = 1500; output 1000 × 15 = 15000  (all /1M)
    # total = 36000 / 1M = 0.036
    assert b.total == D("0.036")
    big = Usage.of(input_tokens=250_000, cache_read_tokens=50_000, output_tokens=1_000)
    # above 200k input every token pays the tier rate: 200000 × 6 + 50000 × 0.6 + 1000 × 22.5
    # = 1,200,000 + 30,000 + 22,500 = 1,252,500 / 1M = 1.2525
    assert calc_cost(big, SONNET, at=AT).total == D("1.2525")


def test_tier_threshold_is_strictly_greater() -> None:
    at_threshold = Usage.of(input_tokens=200_000, output_tokens=0)
    # 200000 × 3 / 1M = 0.6 (not yet the 200k tier)
    assert calc_cost(at_threshold, SONNET, at=AT).total == D("0.6")


def test_unknown_model_is_unpriced_not_zero() -> None:
    b = calc_cost(Usage.of(input_tokens=10, output_tokens=5), None, at=AT, model="my-model", provider="acme")
    assert b.status is PricingStatus.UNPRICED
    assert b.reason == "no price for model 'my-model' of provider 'acme'"
    assert b.components == ()


def test_unit_without_any_rate_makes_partially_priced() -> None:
    usage = Usage.of(input_tokens=100, output_tokens=10, web_searches=2)
    b = calc_cost(usage, GPT4O, at=AT)
    assert b.status is PricingStatus.PARTIALLY_PRICED
    assert "web_searches" in (b.reason or "")
    # 100 × 2.5/1M + 10 × 10/1M = 0.00025 + 0.0001
    assert b.total == D("0.00035")


def test_free_model_is_priced_at_zero() -> None:
    free = PriceRecord(id="t:free", model="llama-local", match=Match("exact", "llama-local"),
                       rates={"input_tokens": D(0), "output_tokens": D(0)})
    b = calc_cost(Usage.of(input_tokens=5000, output_tokens=100), free, at=AT)
    assert b.status is PricingStatus.PRICED
    assert b.total == 0
    assert free.is_free


def test_provided_cost_wins_per_component_and_total_is_computed() -> None:
    usage = Usage.of(input_tokens=1000, output_tokens=200)
    b = calc_cost(usage, GPT4O, at=AT, provided={"output_tokens": D("0.01")})
    # input computed: 1000 × 2.5/1M = 0.0025; output provided 0.01 → total 0.0125
    assert amounts(b) == {"input_tokens": D("0.0025"), "output_tokens": D("0.01")}
    assert b.total == D("0.0125")
    assert b.status is PricingStatus.PRICED
    assert b.component("output_tokens").provided  # type: ignore[union-attr]


def test_provided_total_for_unknown_model() -> None:
    b = calc_cost(Usage.of(input_tokens=10), None, at=AT, provided={TOTAL: D("0.42")}, model="x")
    assert b.status is PricingStatus.PROVIDED
    assert b.total == D("0.42")


def test_provided_total_below_components_wins_and_says_so() -> None:
    b = calc_cost(Usage.of(input_tokens=10), GPT4O, at=AT, provided={"input_tokens": D("1"), TOTAL: D("0.5")})
    assert b.total == D("0.5")
    assert b.status is PricingStatus.PROVIDED
    assert [(c.unit, c.amount) for c in b.components] == [("total", D("0.5"))]
    assert "below the sum of the priced components 1" in (b.reason or "")


def test_provided_total_above_components_keeps_the_difference_visible() -> None:
    b = calc_cost(Usage.of(input_tokens=10), None, at=AT, provided={"input_tokens": D("1"), TOTAL: D("1.5")})
    assert b.total == D("1.5")
    assert [(c.unit, c.amount) for c in b.components] == [("input_tokens", D("1")), ("other", D("0.5"))]
    assert b.status is PricingStatus.PROVIDED


def test_batch_variant_and_service_tier() -> None:
    record = PriceRecord(
        id="t:o", model="o", match=Match("exact", "o"),
        rates={"input_tokens": D("2"), "output_tokens": D("8")},
        variants=(
            Variant("batch", (Condition("attribute", key="processing", values=("batch",)),),
                    {"input_tokens": D("1"), "output_tokens": D("4")}),
            Variant("flex", (Condition("attribute", key="service_tier", values=("flex",)),),
                    {"input_tokens": D("1.5")}),
        ),
    )
    usage = Usage.of(input_tokens=1_000_000, output_tokens=1_000_000)
    assert calc_cost(usage, record, at=AT).total == D("10")  # 2 + 8
    assert calc_cost(usage, record, at=AT, attributes={"processing": "batch"}).total == D("5")  # 1 + 4
    flex = calc_cost(usage, record, at=AT, attributes={"service_tier": "flex"})
    assert flex.total == D("9.5")  # 1.5 + 8
    assert flex.variants == ("flex",)


def test_time_of_day_variant_replaces_rates() -> None:
    record = PriceRecord(
        id="t:ds", model="ds", match=Match("exact", "ds"),
        rates={"input_tokens": D("0.27"), "output_tokens": D("1.1")},
        variants=(
            Variant("off-peak", (Condition("time_of_day", start=time(16, 30), end=time(0, 30)),),
                    {"input_tokens": D("0.135"), "output_tokens": D("0.55")}, replace=True),
        ),
    )
    usage = Usage.of(input_tokens=1_000_000, output_tokens=1_000_000)
    assert calc_cost(usage, record, at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC)).total == D("1.37")
    assert calc_cost(usage, record, at=datetime(2026, 1, 1, 23, 0, tzinfo=UTC)).total == D("0.685")
    assert calc_cost(usage, record, at=datetime(2026, 1, 1, 0, 15, tzinfo=UTC)).total == D("0.685")


def test_non_token_units_divide_by_their_per() -> None:
    whisper = PriceRecord(id="t:w", model="whisper", match=Match("exact", "whisper"),
                          rates={"audio_seconds": D("0.36")})  # USD per hour
    b = calc_cost(Usage.of(audio_seconds=90), whisper, at=AT)
    # 90 s × 0.36 / 3600 = 0.009
    assert b.total == D("0.009")
    per_request = PriceRecord(id="t:r", model="r", match=Match("exact", "r"),
                              rates={"input_tokens": D("1"), "requests": D("5")})  # 5 USD per 1000 requests
    # no requests quantity given: one call is one request → 5/1000 = 0.005, plus 1000 × 1/1M
    assert calc_cost(Usage.of(input_tokens=1000), per_request, at=AT).total == D("0.006")


def test_priced_subset_missing_its_parent_quantity() -> None:
    audio = PriceRecord(id="t:a", model="a", match=Match("exact", "a"), rates={
        "input_tokens": D("2.5"), "input_audio_tokens": D("40"), "cache_audio_read_tokens": D("2.5"),
        "cache_read_tokens": D("1.25"), "output_tokens": D("10")})
    with pytest.raises(UsageError, match=r"cache_audio_read_tokens .10. reported without input_audio_tokens"):
        calc_cost(Usage.of(input_tokens=100, cache_read_tokens=10, cache_audio_read_tokens=10), audio, at=AT)


def test_audio_cache_lattice_inclusion_exclusion() -> None:
    audio = PriceRecord(id="t:a", model="a", match=Match("exact", "a"), rates={
        "input_tokens": D("2"), "input_audio_tokens": D("40"), "cache_read_tokens": D("1"),
        "cache_audio_read_tokens": D("4"), "output_tokens": D("10")})
    usage = Usage.of(input_tokens=1000, input_audio_tokens=300, cache_read_tokens=500, cache_audio_read_tokens=100)
    b = calc_cost(usage, audio, at=AT)
    # cached audio 100 × 4 = 400; cached non-audio 500-100 = 400 × 1 = 400; uncached audio 300-100 = 200 × 40
    # = 8000; uncached text 1000-500-300+100 = 300 × 2 = 600 → 9400 / 1M
    assert b.total == D("0.0094")
    assert {c.unit: c.quantity for c in b.components} == {
        "cache_audio_read_tokens": 100, "cache_read_tokens": 400, "input_audio_tokens": 200, "input_tokens": 300}


def test_rates_are_validated() -> None:
    with pytest.raises(PriceDataError, match="must be a non-negative decimal"):
        PriceRecord(id="x", model="x", match=Match("exact", "x"), rates={"input_tokens": D("-1")})
    with pytest.raises(PriceDataError, match="unknown unit"):
        PriceRecord(id="x", model="x", match=Match("exact", "x"), rates={"prompt": D("1")})
    with pytest.raises(PriceDataError, match="none for input_tokens"):
        PriceRecord(id="x", model="x", match=Match("exact", "x"), rates={"cache_read_tokens": D("1")})
    with pytest.raises(PriceDataError, match="invalid regex"):
        Match("regex", "gpt-(", case_sensitive=True)
