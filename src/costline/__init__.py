"""costline: exact cost tracking for LLM applications.

The public surface is re-exported here; ``tests/test_public_api.py`` pins it.
"""

from costline.api import Estimate, cost, default_price_book, estimate, override_record
from costline.catalog.book import load_price_book
from costline.core.cost import CostBreakdown, CostComponent, PricingStatus, calc_cost
from costline.core.price import Match, PriceRecord, Source, TieredRate, Variant
from costline.core.resolve import PriceBook
from costline.core.usage import Usage
from costline.errors import CostlineError, ExtractionError, PriceDataError, ResolutionError, UsageError
from costline.extract import Extracted, extract_stream_usage, extract_usage

__all__ = [
    "CostBreakdown",
    "CostComponent",
    "CostlineError",
    "Estimate",
    "Extracted",
    "ExtractionError",
    "Match",
    "PriceBook",
    "PriceDataError",
    "PriceRecord",
    "PricingStatus",
    "ResolutionError",
    "Source",
    "TieredRate",
    "Usage",
    "UsageError",
    "Variant",
    "calc_cost",
    "cost",
    "default_price_book",
    "estimate",
    "extract_stream_usage",
    "extract_usage",
    "load_price_book",
    "override_record",
]
