"""The library's front door: price a call, extract usage, estimate before calling.

These functions read the clock and the default price book (shell concerns); the numbers come from
``costline.core``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from costline.core.choose import estimate_cost
from costline.core.cost import CostBreakdown, calc_cost
from costline.core.money import to_decimal
from costline.core.price import Match, PriceRecord, Rate, Source
from costline.core.resolve import PriceBook
from costline.core.usage import Usage
from costline.tokens import TokenCount, count_tokens


@lru_cache(maxsize=1)
def default_price_book() -> PriceBook:
    """The price book from the environment's settings (user files, imported files, bundled catalog)."""
    from costline.catalog.book import load_price_book

    return load_price_book()


def _as_utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def override_record(model: str, rates: Mapping[str, Any], *, provider: str | None = None) -> PriceRecord:
    """A per-call price: ``rates`` per the units' standard quantities (USD per 1M tokens, ...)."""
    parsed: dict[str, Rate] = {unit: to_decimal(value, field=f"override.{unit}") for unit, value in rates.items()}
    return PriceRecord(
        id=f"override:{model}", model=model, match=Match("exact", model), rates=parsed,
        source=Source.OVERRIDE, provider=provider,
    )


def cost(
    usage: Usage | Mapping[str, Any] | None = None,
    *,
    model: str,
    provider: str | None = None,
    at: datetime | None = None,
    attributes: Mapping[str, str] | None = None,
    provided: Mapping[str, Any] | None = None,
    override: PriceRecord | Mapping[str, Any] | None = None,
    book: PriceBook | None = None,
    **quantities: Any,
) -> CostBreakdown:
    """Price one model call.

    ``costline.cost(model="gpt-4o", input_tokens=1000, cache_read_tokens=400, output_tokens=200)``.
    ``usage`` may be a ``Usage`` or a mapping of unit → quantity; keyword quantities are merged in.
    ``provided`` amounts (unit → amount, or ``total``) win over computed ones; ``override`` is a per-call
    price (a record or a mapping of rates) that wins over every catalog. An unknown model gives a breakdown
    with status ``unpriced``, never a silent zero.
    """
    if not isinstance(usage, Usage):
        usage = Usage({**(usage or {}), **quantities})
    elif quantities:
        usage = usage + Usage(quantities)
    when = _as_utc(at)
    book = book or default_price_book()
    provider_id = book.normalize_provider(provider)
    if override is not None:
        record: PriceRecord | None = (
            override if isinstance(override, PriceRecord) else override_record(model, override, provider=provider_id)
        )
    else:
        record = book.resolve(model, provider_id, at=when)
    provided_amounts = (
        {k: to_decimal(v, field=f"provided.{k}") for k, v in provided.items()} if provided else None
    )
    return calc_cost(
        usage, record, at=when, attributes=attributes, provided=provided_amounts,
        model=None if record else model, provider=provider_id if record is None else None,
    )


@dataclass(frozen=True, slots=True)
class Estimate:
    """A cost before the call: counted prompt tokens, assumed output tokens, and their price."""

    model: str
    prompt: TokenCount
    output_tokens: int
    cost: CostBreakdown


def estimate(
    model: str,
    prompt: str,
    *,
    max_output_tokens: int = 0,
    provider: str | None = None,
    at: datetime | None = None,
    book: PriceBook | None = None,
) -> Estimate:
    """Count the prompt's tokens (exact for OpenAI encodings, labelled estimate otherwise) and price them
    with ``max_output_tokens`` of output (the most the call can cost)."""
    if max_output_tokens < 0:
        raise ValueError("max_output_tokens must not be negative")
    counted = count_tokens(prompt, model)
    book = book or default_price_book()
    breakdown = estimate_cost(
        book, model, input_tokens=counted.tokens, output_tokens=max_output_tokens, at=_as_utc(at),
        provider=book.normalize_provider(provider),
    )
    return Estimate(model, counted, max_output_tokens, breakdown)
