"""Choosing a model by price: the cheapest records for a given workload, and one model's estimated cost."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from costline.core.cost import CostBreakdown, PricingStatus, calc_cost
from costline.core.money import DEFAULT_CURRENCY
from costline.core.price import PriceRecord
from costline.core.resolve import PriceBook
from costline.core.usage import Usage


@dataclass(frozen=True, slots=True)
class Choice:
    """A record that fits the workload and what the workload costs with it."""

    record: PriceRecord
    cost: CostBreakdown


def cheapest_models(
    book: PriceBook,
    *,
    input_tokens: int,
    output_tokens: int,
    at: datetime,
    min_context_window: int | None = None,
    max_cost: Decimal | None = None,
    providers: Collection[str] | None = None,
    models: Collection[str] | None = None,
    limit: int = 10,
    currency: str = DEFAULT_CURRENCY,
) -> list[Choice]:
    """The ``limit`` cheapest records for ``input_tokens`` in and ``output_tokens`` out, as of ``at``.

    Considered: every non-alias record valid at ``at`` in ``currency`` (totals in different currencies are
    not comparable); of the ``providers`` given (names are normalized with ``book.normalize_provider``;
    records scoped to no provider are then left out); and, when ``models`` are given, only the records those
    names resolve to (with each given provider, if any). Dropped: a known context window smaller than
    ``input_tokens + output_tokens`` or than ``min_context_window``; an unknown context window when
    ``min_context_window`` is given; a total above ``max_cost``; a result that is not fully ``priced``.
    Sorted by (total, record id); free models (total 0) come first. Only the first record of each
    (provider, model) is kept.
    """
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    usage = Usage.of(input_tokens=input_tokens, output_tokens=output_tokens)
    wanted: set[str] | None = None
    if providers is not None:
        wanted = {p for p in (book.normalize_provider(name) for name in providers) if p}
    candidates: Iterable[PriceRecord] = book.records
    if models is not None:
        candidates = _resolved(book, models, wanted, at)
    needed = input_tokens + output_tokens
    choices: list[Choice] = []
    for record in candidates:
        if record.alias_of is not None or not record.valid_at(at) or record.currency != currency:
            continue
        if wanted is not None and record.provider not in wanted:
            continue
        window = record.context_window
        if window is None:
            if min_context_window is not None:
                continue
        elif window < needed or (min_context_window is not None and window < min_context_window):
            continue
        breakdown = calc_cost(usage, record, at=at)
        if breakdown.status is not PricingStatus.PRICED or breakdown.total is None:
            continue
        if max_cost is not None and breakdown.total > max_cost:
            continue
        choices.append(Choice(record, breakdown))
    choices.sort(key=lambda c: (c.cost.total or 0, c.record.id))
    seen: set[tuple[str | None, str]] = set()
    result: list[Choice] = []
    for choice in choices:
        if len(result) >= limit:
            break
        key = (choice.record.provider, choice.record.model)
        if key in seen:
            continue
        seen.add(key)
        result.append(choice)
    return result


def _resolved(
    book: PriceBook, models: Collection[str], providers: set[str] | None, at: datetime
) -> list[PriceRecord]:
    """The distinct records ``models`` resolve to at ``at`` (with each of ``providers``, when given)."""
    scopes: Sequence[str | None] = sorted(providers) if providers is not None else [None]
    found: dict[int, PriceRecord] = {}
    for model in models:
        for provider in scopes:
            record = book.resolve(model, provider, at=at)
            if record is not None:
                found.setdefault(id(record), record)
    return list(found.values())


def estimate_cost(
    book: PriceBook,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    at: datetime,
    provider: str | None = None,
) -> CostBreakdown:
    """The cost of ``input_tokens`` in and ``output_tokens`` out with the record ``model`` resolves to at
    ``at``; an ``unpriced`` breakdown (never a silent zero) when none does."""
    usage = Usage.of(input_tokens=input_tokens, output_tokens=output_tokens)
    provider_id = book.normalize_provider(provider)
    record = book.resolve(model, provider_id, at=at)
    if record is None:
        return calc_cost(usage, None, at=at, model=model, provider=provider_id)
    return calc_cost(usage, record, at=at)
