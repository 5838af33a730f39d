"""Properties of the cost engine that hold for any usage (hypothesis)."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costline.core.cost import calc_cost
from costline.core.price import Match, PriceRecord, TieredRate
from costline.core.usage import Usage
from costline.errors import UsageError

AT = datetime(2026, 11, 1, tzinfo=UTC)
RECORD = PriceRecord(
    id="p", model="p", match=Match("exact", "p"),
    rates={
        "input_tokens": TieredRate(D("3"), ((200_000, D("6")),)),
        "cache_read_tokens": D("0.3"),
        "cache_write_tokens": D("3.75"),
        "cache_write_1h_tokens": D("6"),
        "input_audio_tokens": D("40"),
        "output_tokens": D("15"),
        "output_reasoning_tokens": D("15"),
        "web_searches": D("10"),
    },
)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    read = draw(st.integers(0, 300_000))
    write_5m = draw(st.integers(0, 100_000))
    write_1h = draw(st.integers(0, 100_000))
    audio = draw(st.integers(0, 50_000))
    extra = draw(st.integers(0, 300_000))
    reasoning = draw(st.integers(0, 50_000))
    visible = draw(st.integers(0, 50_000))
    return Usage.of(
        input_tokens=read + write_5m + write_1h + audio + extra,
        cache_read_tokens=read,
        cache_write_tokens=write_5m + write_1h,
        cache_write_1h_tokens=write_1h,
        input_audio_tokens=audio,
        output_tokens=reasoning + visible,
        output_reasoning_tokens=reasoning,
        web_searches=draw(st.integers(0, 5)),
    )


@given(usages())
@settings(max_examples=300, deadline=None)
def test_components_sum_to_total_and_nothing_is_negative(usage: Usage) -> None:
    b = calc_cost(usage, RECORD, at=AT)
    if not usage:  # nothing reported: the cost is unknown, never 0
        assert b.total is None and b.reason == "no usage"
        return
    assert b.total is not None
    assert sum((c.amount for c in b.components), D(0)) == b.total
    assert b.total >= 0
    assert all(c.amount >= 0 and (c.quantity or 0) >= 0 for c in b.components)
    # every priced token is counted once: component token quantities add up to the input and output totals
    tokens = sum(c.quantity for c in b.components if c.unit.endswith("_tokens"))  # type: ignore[misc]
    assert tokens == usage["input_tokens"] + usage["output_tokens"]


@given(usages(), st.sampled_from(["input_tokens", "output_tokens", "web_searches"]), st.integers(1, 10_000))
@settings(max_examples=300, deadline=None)
def test_cost_does_not_decrease_when_a_quantity_grows(usage: Usage, unit: str, more: int) -> None:
    grown = Usage({**usage.quantities, unit: usage[unit] + more})
    before = calc_cost(usage, RECORD, at=AT).total
    after = calc_cost(grown, RECORD, at=AT).total
    assert after is not None
    assert before is None if not usage else after >= before


@given(st.integers(0, 10**9), st.integers(1, 10**6))
def test_subset_above_parent_always_raises(parent: int, excess: int) -> None:
    with pytest.raises(UsageError, match=rf"\({parent + excess}\) exceeds input_tokens \({parent}\)"):
        Usage.of(input_tokens=parent, cache_read_tokens=parent + excess)


@given(st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False), st.integers(0, 10**12))
def test_money_is_exact(rate: D, quantity: int) -> None:
    record = PriceRecord(id="e", model="e", match=Match("exact", "e"), rates={"input_tokens": rate,
                                                                               "output_tokens": D(0)})
    b = calc_cost(Usage.of(input_tokens=quantity), record, at=AT)
    if not quantity:  # no usage: unknown, never 0, unless the record is free
        assert b.total == 0 if rate == 0 else b.total is None
        return
    assert b.total is not None and b.total * 1_000_000 == rate * quantity
