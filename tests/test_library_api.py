"""The library's front door: costline.cost, overrides, provided costs, estimate."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

import costline
from costline.core.resolve import PriceBook

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_cost_with_keyword_quantities(bundled_book: PriceBook) -> None:
    b = costline.cost(model="gpt-4o", input_tokens=1000, cache_read_tokens=400, output_tokens=200, at=AT,
                      book=bundled_book)
    # 600 × 2.5 + 400 × 1.25 + 200 × 10 = 1500 + 500 + 2000 = 4000 / 1M
    assert b.total == D("0.004")
    assert b.status is costline.PricingStatus.PRICED


def test_batch_attribute_selects_the_batch_price(bundled_book: PriceBook) -> None:
    b = costline.cost({"input_tokens": 1_000_000, "output_tokens": 1_000_000}, model="gpt-4o", at=AT,
                      attributes={"processing": "batch"}, book=bundled_book)
    # OpenAI's Batch API halves gpt-4o: 1.25 + 5 = 6.25
    assert b.total == D("6.25")
    assert b.variants == ("processing=batch",)


def test_per_call_override_beats_every_catalog(bundled_book: PriceBook) -> None:
    b = costline.cost(model="gpt-4o", input_tokens=1_000_000, output_tokens=1_000_000, at=AT, book=bundled_book,
                      override={"input_tokens": 0.1, "output_tokens": "0.2"})
    # floats are converted through repr once: 0.1 is 0.1, not 0.1000000000000000055511151231257827
    assert b.total == D("0.3")
    assert b.price_source == "override"


def test_provided_float_is_converted_exactly_once(bundled_book: PriceBook) -> None:
    b = costline.cost(model="unknown-model-z", input_tokens=10, at=AT, book=bundled_book, provided={"total": 0.1})
    assert b.total == D("0.1")
    assert b.status is costline.PricingStatus.PROVIDED


def test_unknown_model_is_unpriced(bundled_book: PriceBook) -> None:
    b = costline.cost(model="unknown-model-z", input_tokens=10, at=AT, book=bundled_book)
    assert b.status is costline.PricingStatus.UNPRICED
    assert b.total is None  # never a silent 0
    assert b.reason == "no price for model 'unknown-model-z'"


def test_naive_datetime_is_utc(bundled_book: PriceBook) -> None:
    naive = costline.cost(model="o3", input_tokens=1000, at=datetime(2025, 5, 1), book=bundled_book)
    # before OpenAI's June 2025 cut o3 input was $10 / 1M: 1000 × 10 / 1M = 0.01
    assert naive.total == D("0.01")


def test_estimate(bundled_book: PriceBook) -> None:
    e = costline.estimate("gpt-4o", "Hello, world!", max_output_tokens=100, at=AT, book=bundled_book)
    # 4 tokens × 2.5 + 100 × 10 = 1010 / 1M
    assert e.prompt.tokens == 4
    assert e.cost.total == D("0.00101")
    with pytest.raises(ValueError, match="must not be negative"):
        costline.estimate("gpt-4o", "x", max_output_tokens=-1, book=bundled_book)


def test_default_book_reads_user_files_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = tmp_path / "p.yaml"
    prices.write_text("prices:\n  - model: env-model\n    rates: {input_tokens: 7, output_tokens: 7}\n", "utf-8")
    monkeypatch.setenv("COSTLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COSTLINE_PRICE_FILES", str(prices))
    monkeypatch.setenv("COSTLINE_BUNDLED_PRICES", "false")
    costline.default_price_book.cache_clear()
    try:
        book = costline.default_price_book()
        assert [r.model for r in book.records] == ["env-model"]
        assert costline.cost(model="env-model", input_tokens=1_000_000, at=AT).total == D("7")
    finally:
        costline.default_price_book.cache_clear()
