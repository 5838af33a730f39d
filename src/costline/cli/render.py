"""Rendering of cost breakdowns and price records as JSON (decimal strings) and rich tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from costline.core.cost import CostBreakdown, PricingStatus, ordered_components
from costline.core.money import decimal_str
from costline.core.price import PriceRecord, Rate, TieredRate
from costline.core.resolve import PriceBook
from costline.core.units import UNITS
from costline.core.usage import Usage

#: the width of output to a pipe or a file: tables get the width their values need, never cut to 80 columns
PIPE_WIDTH = 100_000


def console() -> Console:
    """Standard output as rich prints it: the terminal's width, or unlimited when it is not a terminal."""
    out = Console(highlight=False, soft_wrap=True, markup=False)
    if not out.is_terminal:
        out.width = PIPE_WIDTH
    return out


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def rate_text(rate: Rate) -> str:
    if isinstance(rate, TieredRate):
        tiers = ", ".join(f"{decimal_str(r)} if {rate.basis} > {t:,}" for t, r in rate.tiers)
        return f"{decimal_str(rate.base)} ({tiers})"
    return decimal_str(rate)


def rate_json(rate: Rate) -> Any:
    if isinstance(rate, TieredRate):
        return {
            "base": decimal_str(rate.base),
            "basis": rate.basis,
            "tiers": [{"above": t, "rate": decimal_str(r)} for t, r in rate.tiers],
        }
    return decimal_str(rate)


def per_label(unit: str) -> str:
    per = UNITS[unit].per
    family = UNITS[unit].family
    if per == 1_000_000:
        return "per 1M"
    if per == 1000:
        return "per 1K"
    if per == 3600:
        return "per hour"
    if per == 1_000_000_000:
        return "per 1G"
    return "per 1" if family != "durations" else "per second"


def breakdown_json(
    b: CostBreakdown, *, requested_model: str, usage: Usage, record: PriceRecord | None
) -> dict[str, Any]:
    return {
        # an unknown model has no total: null, never "0" (the library's breakdown says so by its status)
        "total": None if b.total is None else decimal_str(b.total),
        "currency": b.currency,
        "status": b.status.value,
        "reason": b.reason,
        "model": b.model,
        "requested_model": requested_model,
        "provider": b.provider,
        "price_id": b.price_id,
        "price_source": b.price_source,
        "valid_from": record.valid_from.isoformat() if record and record.valid_from else None,
        "valid_to": record.valid_to.isoformat() if record and record.valid_to else None,
        "variants": list(b.variants),
        "usage": {k: decimal_str(v) if isinstance(v, Decimal) else v for k, v in usage.quantities.items()},
        "components": [
            {
                "unit": c.unit,
                "quantity": None if c.quantity is None else decimal_str(c.quantity),
                "rate": None if c.rate is None else decimal_str(c.rate),
                "per": c.per,
                "amount": decimal_str(c.amount),
                "provided": c.provided,
            }
            for c in ordered_components(b)
        ],
    }


def print_breakdown(b: CostBreakdown, *, requested_model: str) -> None:
    out = console()
    title = f"{b.model or requested_model}"
    if b.provider:
        title += f" ({b.provider})"
    table = Table(title=title, title_justify="left")
    table.add_column("unit")
    table.add_column("quantity", justify="right")
    table.add_column(f"rate ({b.currency})", justify="right")
    table.add_column(f"amount ({b.currency})", justify="right")
    for c in ordered_components(b):
        rate = "provided" if c.provided else ("" if c.rate is None else f"{decimal_str(c.rate)} {per_label(c.unit)}")
        quantity = "" if c.quantity is None else f"{c.quantity:,}"
        table.add_row(c.unit, quantity, rate, decimal_str(c.amount))
    table.add_section()
    table.add_row("total", "", "", "unpriced" if b.total is None else decimal_str(b.total))
    out.print(table)
    out.print(f"status: {b.status.value}" + (f" ({b.reason})" if b.reason else ""))
    if b.price_id:
        variants = f"; variants: {', '.join(b.variants)}" if b.variants else ""
        out.print(f"price: {b.price_id} from {b.price_source}{variants}")


def breakdown_rows(b: CostBreakdown) -> list[dict[str, Any]]:
    """A breakdown as csv rows: one per component, then a ``total`` row (empty amount when unpriced)."""
    rows: list[dict[str, Any]] = [
        {"unit": c.unit, "quantity": c.quantity, "rate": c.rate, "per": c.per, "amount": c.amount,
         "currency": b.currency, "provided": c.provided, "status": b.status.value, "price_id": b.price_id}
        for c in ordered_components(b)
    ]
    total = None if b.status is PricingStatus.UNPRICED else b.total
    rows.append({"unit": "total", "amount": total, "currency": b.currency, "status": b.status.value,
                 "price_id": b.price_id})
    return rows


BREAKDOWN_COLUMNS = ("unit", "quantity", "rate", "per", "amount", "currency", "provided", "status", "price_id")


def emit_breakdown(fmt: str, b: CostBreakdown, *, requested_model: str, usage: Usage,
                   record: PriceRecord | None, extra: Mapping[str, Any] | None = None) -> None:
    """One breakdown as ``fmt``: the JSON object (with ``extra`` fields), csv rows, or the table."""
    from costline.cli.output import emit_csv_rows

    if fmt == "json":
        emit_json({**breakdown_json(b, requested_model=requested_model, usage=usage, record=record),
                   **(extra or {})})
    elif fmt == "csv":
        emit_csv_rows(BREAKDOWN_COLUMNS, breakdown_rows(b))
    else:
        print_breakdown(b, requested_model=requested_model)


def exit_if_unknown(book: PriceBook, b: CostBreakdown, model: str, provider: str | None, at: datetime) -> None:
    """A model no price matches: its closest catalog names on stderr (as ``prices explain`` shows them), exit 1."""
    if b.status is not PricingStatus.UNPRICED:
        return
    nearest = book.explain(model, provider, at=at).nearest
    hint = f"; closest catalog names: {', '.join(nearest)}" if nearest else ""
    click.echo(f"error: no price for model {model!r}{hint} (`costline prices explain {model}` shows the rules "
               "it tried)", err=True)
    sys.exit(1)


def record_rates_json(record: PriceRecord) -> Mapping[str, Any]:
    return {unit: rate_json(rate) for unit, rate in record.rates.items()}
