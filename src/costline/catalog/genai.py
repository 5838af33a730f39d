"""The bundled default catalog: the ``genai-prices`` package, compiled into costline's flat price records.

Each genai-prices model becomes one record per date range (its ``StartDateConstraint``s and dated price
variants cut the timeline into segments); time-of-day prices become ``replace`` variants and request
variants (``processing=batch``, ``service_tier=flex``, ...) become attribute variants. Provider rules
(``model_match``, ``provider_match``, ``fallback_model_providers``) become ``ProviderInfo``s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from costline.core.price import Condition, Match, PriceRecord, Rate, Source, TieredRate, Variant
from costline.core.resolve import ProviderInfo
from costline.core.units import UNITS_BY_PRICE_KEY

log = logging.getLogger(__name__)


def genai_prices_version() -> str:
    from importlib.metadata import version

    return version("genai-prices")


@lru_cache(maxsize=4)
def load_genai_catalog(cache_dir: Path | None = None) -> tuple[tuple[PriceRecord, ...], tuple[ProviderInfo, ...]]:
    """The installed genai-prices data compiled, from the copy in ``cache_dir`` when there is a current one
    (``costline.catalog.cache``): importing and compiling it takes about a second."""
    from costline.catalog.cache import cached

    return cached(cache_dir, "genai-catalog", _compile_catalog)


def _compile_catalog() -> tuple[tuple[PriceRecord, ...], tuple[ProviderInfo, ...]]:
    from genai_prices.data import providers

    source_name = f"genai-prices@{genai_prices_version()}"
    records: list[PriceRecord] = []
    infos: list[ProviderInfo] = []
    for provider in providers:
        infos.append(
            ProviderInfo(
                id=provider.id,
                name=provider.name,
                provider_match=compile_match(provider.provider_match) if provider.provider_match else None,
                model_match=compile_match(provider.model_match) if provider.model_match else None,
                fallbacks=tuple(provider.fallback_model_providers or ()),
            )
        )
        for model in provider.models:
            records.extend(_compile_model(provider.id, model, source_name))
    return tuple(records), tuple(infos)


def compile_match(clause: Any) -> Match:
    """genai-prices match clauses → ``Match`` (genai-prices compares lower-cased names)."""
    name = type(clause).__name__
    if name == "ClauseEquals":
        return Match("exact", clause.equals)
    if name == "ClauseStartsWith":
        return Match("prefix", clause.starts_with)
    if name == "ClauseEndsWith":
        return Match("suffix", clause.ends_with)
    if name == "ClauseContains":
        return Match("contains", clause.contains)
    if name == "ClauseRegex":
        return Match("regex", clause.regex, case_sensitive=False)
    if name == "ClauseOr":
        return Match("any", clauses=tuple(compile_match(c) for c in clause.or_))
    if name == "ClauseAnd":
        return Match("all", clauses=tuple(compile_match(c) for c in clause.and_))
    raise ValueError(f"unsupported genai-prices match clause {name}")


def compile_rates(model_price: Any) -> dict[str, Rate]:
    rates: dict[str, Rate] = {}
    for key, value in vars(model_price).items():
        if value is None or key.startswith("_"):
            continue
        unit = UNITS_BY_PRICE_KEY.get(key)
        if unit is None:
            log.debug("genai-prices price key %s has no costline unit; skipped", key)
            continue
        if isinstance(value, Decimal):
            rates[unit.name] = value
        else:  # TieredPrices
            rates[unit.name] = TieredRate(
                base=value.base, tiers=tuple((t.start, t.price) for t in value.tiers), basis="input_tokens"
            )
    return rates


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _kind(constraint: Any) -> str:
    return "none" if constraint is None else type(constraint).__name__


def _compile_model(provider_id: str, model: Any, source_name: str) -> Iterator[PriceRecord]:
    prices = model.prices
    conditional = prices if isinstance(prices, list) else None
    variants_raw = list(model.price_variants or ())
    starts: set[date] = set()
    for item in [*(conditional or ()), *variants_raw]:
        constraint = item.constraint
        if _kind(constraint) == "StartDateConstraint":
            starts.add(constraint.start_date)
    boundaries: list[date | None] = [None, *sorted(starts)]
    match = compile_match(model.match)
    for index, start in enumerate(boundaries):
        end = boundaries[index + 1] if index + 1 < len(boundaries) else None

        def active(constraint: Any, start: date | None = start) -> bool:
            return _kind(constraint) != "StartDateConstraint" or (
                start is not None and constraint.start_date <= start
            )

        variants: list[Variant] = []
        if conditional is None:
            base = compile_rates(prices)
        else:
            # genai-prices: the last active conditional price wins; if none, the first one.
            always = [i for i, c in enumerate(conditional) if _kind(c.constraint) != "TimeOfDateConstraint"
                      and active(c.constraint)]
            base_index = always[-1] if always else 0
            base = compile_rates(conditional[base_index].prices)
            later = [c for c in conditional[base_index + 1:] if _kind(c.constraint) == "TimeOfDateConstraint"]
            for c in reversed(later):
                variants.append(
                    Variant(
                        name=f"time {c.constraint.start_time}-{c.constraint.end_time}",
                        conditions=(
                            Condition("time_of_day", start=_utc_time(c.constraint.start_time),
                                      end=_utc_time(c.constraint.end_time)),
                        ),
                        rates=compile_rates(c.prices),
                        replace=True,
                    )
                )
        for pv in variants_raw:
            if _kind(pv.constraint) == "TimeOfDateConstraint" or not active(pv.constraint):
                continue
            rates = compile_rates(pv.prices)
            conditions = tuple(Condition("attribute", key=k, values=(v,)) for k, v in pv.when.items())
            label = ",".join(f"{k}={v}" for k, v in pv.when.items())
            variants.append(Variant(name=label, conditions=conditions, rates=rates))
        suffix = f"@{start.isoformat()}" if start else ""
        yield PriceRecord(
            id=f"{provider_id}:{model.id}{suffix}",
            model=model.id,
            match=match,
            rates=base,
            source=Source.BUNDLED,
            source_name=source_name,
            provider=provider_id,
            valid_from=_midnight(start) if start else None,
            valid_to=_midnight(end) if end else None,
            variants=tuple(variants),
            context_window=model.context_window,
            description=model.name or "",
        )


def _utc_time(value: Any) -> Any:
    if value.tzinfo is None:
        return value
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()
