"""The public surface is pinned: a change to it is a deliberate change to this test."""

import costline


def test_public_names() -> None:
    assert sorted(costline.__all__) == sorted([
        "CostBreakdown", "CostComponent", "CostlineError", "Estimate", "Extracted", "ExtractionError", "Match",
        "PriceBook", "PriceDataError", "PriceRecord", "PricingStatus", "ResolutionError", "Source",
        "TieredRate", "Usage", "UsageError", "Variant", "calc_cost", "cost", "default_price_book", "estimate",
        "extract_stream_usage", "extract_usage", "load_price_book", "override_record",
    ])
    for name in costline.__all__:
        assert getattr(costline, name) is not None
