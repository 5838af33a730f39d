"""``costline reprice`` and ``costline purge``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import click

from costline.cli.context import CliContext, parse_when, pass_cli
from costline.cli.render import console, emit_json
from costline.cli.serve import _open, _settings
from costline.core.money import decimal_str

BATCH = 1000


def _like(pattern: str | None) -> str | None:
    """A glob (``gpt-4o*``) as a SQL LIKE pattern; ``%`` and ``_`` in the glob are taken literally."""
    if pattern is None:
        return None
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


@click.command("reprice")
@click.option("--from", "from_text", required=True, metavar="DATE", help="First day (inclusive), ISO 8601.")
@click.option("--to", "to_text", required=True, metavar="DATE", help="End (exclusive), ISO 8601.")
@click.option("--model", "model_glob", metavar="PATTERN", help="Only models matching this glob, e.g. 'gpt-4o*'.")
@click.option("--store", "store_url", metavar="URL", help="Store URL (default: as for serve).")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_cli
def reprice_command(obj: CliContext, from_text: str, to_text: str, model_glob: str | None,
                    store_url: str | None, dry_run: bool, as_json: bool) -> None:
    """Recompute stored costs with today's price book and record an audit entry."""
    from costline.catalog.book import load_price_book
    from costline.ingest.pipeline import Pipeline

    start, end = parse_when(from_text, "--from"), parse_when(to_text, "--to")
    if end <= start:
        raise click.BadParameter("must be after --from", param_hint="--to")
    settings = _settings(obj, store_url=store_url)
    store = _open(settings)
    try:
        pipeline = Pipeline(store, load_price_book(settings, extra_files=obj.price_files), lambda: datetime.now(UTC))
        scanned = changed = 0
        old_total = new_total = Decimal(0)
        pending = []
        observations = store.iter_observations(start=start, end=end, model_like=_like(model_glob))
        for old, new in pipeline.reprice(observations):
            scanned += 1
            old_total += old.total_cost or 0
            new_total += new.total_cost or 0
            if (old.total_cost, old.pricing_status, old.price_id, dict(old.cost)) != (
                new.total_cost, new.pricing_status, new.price_id, dict(new.cost)
            ):
                changed += 1
                if not dry_run:
                    pending.append(new)
                    if len(pending) >= BATCH:
                        pipeline.write_repriced(pending)
                        pending = []
        if pending:
            pipeline.write_repriced(pending)
        summary = {
            "from": start.isoformat(), "to": end.isoformat(), "model": model_glob, "dry_run": dry_run,
            "scanned": scanned, "changed": changed,
            "old_total": decimal_str(old_total), "new_total": decimal_str(new_total),
        }
        if not dry_run:
            store.add_audit("reprice", summary, datetime.now(UTC))
    finally:
        store.close()
    if as_json:
        emit_json(summary)
        return
    out = console()
    verb = "would change" if dry_run else "changed"
    out.print(f"{scanned} observation(s) scanned, {changed} {verb}")
    out.print(f"total before: {summary['old_total']}  after: {summary['new_total']}")
    if dry_run:
        out.print("dry run: nothing written")


@click.command("purge")
@click.option("--older-than", "days", type=click.IntRange(min=1), metavar="DAYS",
              help="Delete observations older than DAYS (default: COSTLINE_RETENTION_DAYS).")
@click.option("--store", "store_url", metavar="URL", help="Store URL (default: as for serve).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_cli
def purge_command(obj: CliContext, days: int | None, store_url: str | None, as_json: bool) -> None:
    """Delete observations, scores and empty traces older than the retention period."""
    settings = _settings(obj, store_url=store_url)
    days = days or settings.retention_days
    if not days:
        raise click.UsageError("give --older-than DAYS or set COSTLINE_RETENTION_DAYS")
    before = datetime.now(UTC) - timedelta(days=days)
    store = _open(settings)
    try:
        deleted = store.purge(before)
        store.add_audit("purge", {"before": before.isoformat(), "deleted": deleted}, datetime.now(UTC))
    finally:
        store.close()
    if as_json:
        emit_json({"before": before.isoformat(), "deleted": deleted})
    else:
        console().print(f"deleted {deleted} observation(s) that started before {before.isoformat()}")
