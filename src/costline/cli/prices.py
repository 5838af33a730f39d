"""``costline prices``: list, explain and import prices; list units."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from costline.catalog.book import IMPORT_FORMATS, ImportFormat, import_price_file, store_price_file
from costline.catalog.imported import find_conflicts
from costline.cli.context import CliContext, parse_when, pass_cli
from costline.cli.output import emit_csv_rows, emit_data, format_options, output_format_options
from costline.cli.render import console, emit_json, per_label, rate_json, rate_text, record_rates_json
from costline.core.price import PriceRecord
from costline.core.resolve import Explanation
from costline.core.units import UNITS


@click.group("prices")
def prices_group() -> None:
    """Inspect and manage the price catalog."""


def _summary_rate(record: PriceRecord, unit: str) -> str:
    rate = record.rates.get(unit)
    return "" if rate is None else rate_text(rate)


@prices_group.command("list")
@click.option("--provider", help="Only this provider's prices.")
@click.option("--search", help="Only models whose name contains TEXT (case-insensitive).", metavar="TEXT")
@click.option("--at", "at_text", metavar="ISO8601", help="Prices in force at this time (default: now).")
@click.option("--all", "show_all", is_flag=True, help="Include prices not in force at --at (history).")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N prices.")
@format_options
@pass_cli
def list_prices(obj: CliContext, provider: str | None, search: str | None, at_text: str | None, show_all: bool,
                limit: int | None, fmt: str) -> None:
    """List prices (USD per 1M tokens unless a record says otherwise)."""
    book = obj.book
    at = parse_when(at_text)
    provider_id = book.normalize_provider(provider)
    needle = search.lower() if search else None
    rows = [
        r for r in book.records
        if (provider_id is None or r.provider == provider_id)
        and (needle is None or needle in r.model.lower() or needle in r.description.lower())
        and (show_all or r.valid_at(at))
    ]
    if limit:
        rows = rows[:limit]
    if fmt == "json":
        emit_json([_record_json(r) for r in rows])
        return
    if fmt == "csv":
        emit_csv_rows(PRICE_COLUMNS, [_record_row(r) for r in rows])
        return
    table = Table(show_lines=False)
    for name in ("provider", "model", "input /1M", "cache read /1M", "cache write /1M", "output /1M",
                 "valid from", "source"):
        table.add_column(name, justify="right" if "/1M" in name else "left", overflow="fold")
    for r in rows:
        table.add_row(
            r.provider or "*", r.model + (f" → {r.alias_of}" if r.alias_of else ""),
            _summary_rate(r, "input_tokens"), _summary_rate(r, "cache_read_tokens"),
            _summary_rate(r, "cache_write_tokens"), _summary_rate(r, "output_tokens"),
            r.valid_from.date().isoformat() if r.valid_from else "", r.source_label,
        )
    out = console()
    out.print(table)
    out.print(f"{len(rows)} price(s)")


PRICE_COLUMNS = ("id", "provider", "model", "alias_of", "input_tokens", "cache_read_tokens", "cache_write_tokens",
                 "output_tokens", "currency", "valid_from", "valid_to", "source")


def _record_row(r: PriceRecord) -> dict[str, Any]:
    """A price as a csv row: the main rates per their unit (tiered rates as their JSON), dates in ISO 8601."""
    return {"id": r.id, "provider": r.provider, "model": r.model, "alias_of": r.alias_of,
            **{unit: rate_json(r.rates[unit]) if unit in r.rates else None for unit in PRICE_COLUMNS[4:8]},
            "currency": r.currency, "valid_from": r.valid_from.isoformat() if r.valid_from else None,
            "valid_to": r.valid_to.isoformat() if r.valid_to else None, "source": r.source_label}


def _record_json(r: PriceRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "model": r.model,
        "provider": r.provider,
        "match": r.match.describe(),
        "source": r.source_label,
        "valid_from": r.valid_from.isoformat() if r.valid_from else None,
        "valid_to": r.valid_to.isoformat() if r.valid_to else None,
        "currency": r.currency,
        "alias_of": r.alias_of,
        "context_window": r.context_window,
        "rates": record_rates_json(r),
        "variants": [
            {
                "name": v.name,
                "when": [c.describe() for c in v.conditions],
                "replace": v.replace,
                "rates": {u: rate_json(x) for u, x in v.rates.items()},
            }
            for v in r.variants
        ],
    }


@prices_group.command("explain")
@click.argument("model")
@click.option("--provider", help="Provider the call went to (default: inferred from the model name).")
@click.option("--at", "at_text", metavar="DATE", help="Explain the price in force at this date/time (default: now).")
@format_options
@pass_cli
def explain(obj: CliContext, model: str, provider: str | None, at_text: str | None, fmt: str) -> None:
    """Show which price rule matches MODEL, its source, effective range and every rate."""
    book = obj.book
    at = parse_when(at_text)
    result = book.explain(model, provider, at=at)
    if fmt == "csv":
        record = result.record
        if record is not None:
            emit_csv_rows(("unit", "rate", "per", "record", "source"),
                          [{"unit": u, "rate": rate_json(x), "per": UNITS[u].per, "record": record.id,
                            "source": record.source_label} for u, x in record.rates.items()])
        else:
            _no_price(model, result, at, Console(stderr=True, highlight=False, soft_wrap=True, markup=False))
        if record is None:
            sys.exit(1)
        return
    if fmt == "json":
        emit_json({
            "model": model,
            "provider": result.provider,
            "at": at.isoformat(),
            "matched": _record_json(result.record) if result.record else None,
            "alias_chain": list(result.alias_chain),
            "candidates": [
                {"id": c.record.id, "source": c.record.source_label, "match": c.record.match.describe(),
                 "valid_at": c.valid, "note": c.note}
                for c in result.candidates
            ],
            "nearest": list(result.nearest),
        })
        if result.record is None:
            sys.exit(1)
        return
    out = console()
    if result.record is None:
        _no_price(model, result, at, out)
        sys.exit(1)
    r = result.record
    out.print(f"{model} → {r.model} ({r.provider or 'any provider'})")
    for hop in result.alias_chain:
        out.print(f"  alias: {hop}")
    out.print(f"  rule:      {r.match.describe()}")
    out.print(f"  record:    {r.id}")
    out.print(f"  source:    {r.source_label}")
    out.print(f"  effective: {_range(r)}")
    if r.context_window:
        out.print(f"  context:   {r.context_window:,} tokens")
    table = Table(title=f"rates ({r.currency})", title_justify="left")
    table.add_column("unit")
    table.add_column("rate", justify="right")
    table.add_column("per")
    for unit, rate in r.rates.items():
        table.add_row(unit, rate_text(rate), per_label(unit))
    out.print(table)
    for v in r.variants:
        rates = ", ".join(f"{u} {rate_text(x)}" for u, x in v.rates.items()) or "no change from the base rates"
        kind = "replaces all rates" if v.replace else "overrides"
        out.print(f"  variant {v.name!r} when {' and '.join(c.describe() for c in v.conditions)}: {kind}: {rates}")
    others = [c for c in result.candidates if c.record is not r]
    if others:
        out.print("other candidates, in order of precedence:")
        for c in others[:10]:
            note = f" [{c.note}]" if c.note else ""
            out.print(f"  {c.record.id} ({c.record.source_label}; {c.record.match.describe()}){note}")


def _no_price(model: str, result: Explanation, at: datetime, out: Console) -> None:
    scope = f" (provider {result.provider})" if result.provider else ""
    msg = f"no price matches {model!r}{scope} at {at.date().isoformat()}"
    if result.candidates:
        msg += "; rules that match the name are not in force then: " + ", ".join(
            f"{c.record.id} ({_range(c.record)})" for c in result.candidates)
    out.print(msg)
    if result.nearest:
        out.print("nearest: " + ", ".join(result.nearest))
    out.print("costs for this model are recorded as `unpriced`; add a price with a user price file "
              "(docs/prices.md)")


def _range(r: PriceRecord) -> str:
    start = r.valid_from.isoformat() if r.valid_from else "always"
    end = r.valid_to.isoformat() if r.valid_to else "open-ended"
    return f"{start} → {end}"


@prices_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS), required=True, help="Format of FILE.")
@click.option("--dry-run", is_flag=True, help="Validate and report; do not store the file.")
@output_format_options
@pass_cli
def import_prices(obj: CliContext, file: Path, fmt: ImportFormat, dry_run: bool, output: str) -> None:
    """Validate a price file, report counts and conflicts, and add it to the catalog.

    LiteLLM and Langfuse files rank above the bundled catalog; costline files are user prices and rank above
    both.
    """
    result = import_price_file(file, fmt)
    at = parse_when(None)
    conflicts = find_conflicts(result.records, obj.book, at)
    stored = None if dry_run else store_price_file(file, fmt, obj.settings)
    if output != "table":
        emit_data(output, {
            "file": str(file),
            "format": fmt,
            "records": len(result.records),
            "skipped": [{"model": m, "reason": why} for m, why in result.skipped],
            "warnings": list(result.warnings),
            "conflicts": [
                {"model": c.model, "unit": c.unit, "new_rate": str(c.new_rate), "existing_rate": str(c.existing_rate),
                 "existing_id": c.existing_id}
                for c in conflicts
            ],
            "stored_as": str(stored) if stored else None,
        })
        return
    out = console()
    out.print(f"{file}: {len(result.records)} price record(s) read, {len(result.skipped)} skipped, "
              f"{len(result.warnings)} warning(s), {len(conflicts)} rate conflict(s) with the current catalog")
    for model, why in result.skipped[:20]:
        out.print(f"  skipped {model}: {why}")
    if len(result.skipped) > 20:
        out.print(f"  ... and {len(result.skipped) - 20} more (use --json for all)")
    for c in conflicts[:20]:
        out.print(f"  conflict {c.model} {c.unit}: file {c.new_rate} vs {c.existing_rate} ({c.existing_id})")
    if len(conflicts) > 20:
        out.print(f"  ... and {len(conflicts) - 20} more (use --json for all)")
    out.print(f"stored as {stored}" if stored else "dry run: nothing stored")


@prices_group.command("units")
@format_options
def units(fmt: str) -> None:
    """List the usage units prices can be given in, and what a rate is quoted per."""
    if fmt != "table":
        emit_data(fmt, [{"unit": u.name, "per": u.per, "dimensions": dict(sorted(u.dimensions))}
                        for u in UNITS.values()])
        return
    table = Table()
    table.add_column("unit")
    table.add_column("rate quoted")
    table.add_column("contained in")
    from costline.core.units import ANCESTORS

    for u in UNITS.values():
        table.add_row(u.name, per_label(u.name), ", ".join(sorted(ANCESTORS[u.name])))
    console().print(table)
