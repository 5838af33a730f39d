"""costline: exact cost tracking for LLM applications.

The public surface is re-exported here; ``tests/test_public_api.py`` pins it. The names are loaded on first
use (PEP 562), so ``import costline`` (and the ``costline`` command, which imports this package first) pays
neither for the price catalog, the tokenizer, the store nor the server; ``tests/cli/test_startup.py`` checks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from costline.api import Estimate, cost, default_price_book, estimate, override_record
    from costline.catalog.book import load_price_book
    from costline.core.cost import CostBreakdown, CostComponent, PricingStatus, calc_cost
    from costline.core.price import Match, PriceRecord, Source, TieredRate, Variant
    from costline.core.resolve import PriceBook
    from costline.core.usage import Usage
    from costline.errors import CostlineError, ExtractionError, PriceDataError, ResolutionError, UsageError
    from costline.extract import Extracted, extract_stream_usage, extract_usage

#: public name → the module that defines it
_SOURCES = {
    "Estimate": "costline.api", "cost": "costline.api", "default_price_book": "costline.api",
    "estimate": "costline.api", "override_record": "costline.api",
    "load_price_book": "costline.catalog.book",
    "CostBreakdown": "costline.core.cost", "CostComponent": "costline.core.cost",
    "PricingStatus": "costline.core.cost", "calc_cost": "costline.core.cost",
    "Match": "costline.core.price", "PriceRecord": "costline.core.price", "Source": "costline.core.price",
    "TieredRate": "costline.core.price", "Variant": "costline.core.price",
    "PriceBook": "costline.core.resolve",
    "Usage": "costline.core.usage",
    "CostlineError": "costline.errors", "ExtractionError": "costline.errors", "PriceDataError": "costline.errors",
    "ResolutionError": "costline.errors", "UsageError": "costline.errors",
    "Extracted": "costline.extract", "extract_stream_usage": "costline.extract", "extract_usage": "costline.extract",
}


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module 'costline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
