"""``costline reprice`` and ``costline purge``: the library's ``ingest.maintenance`` on the store, or the same
through ``POST /v1/reprice`` / ``POST /v1/purge`` while ``costline serve`` owns the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from costline.cli.context import CliContext, parse_when, pass_cli
from costline.cli.output import emit, format_options
from costline.cli.render import console
from costline.cli.serve import _open, _settings

SERVER_NOTE = "While `costline serve` runs for the store, the command goes through the server."


def _now() -> datetime:
    return datetime.now(UTC)


@click.command("reprice")
@click.option("--from", "from_text", required=True, metavar="DATE", help="First day (inclusive), ISO 8601.")
@click.option("--to", "to_text", required=True, metavar="DATE", help="End (exclusive), ISO 8601.")
@click.option("--model", "model_glob", metavar="PATTERN", help="Only models matching this glob, e.g. 'gpt-4o*'.")
@click.option("--store", "store_url", metavar="URL", help=f"Store URL (default: as for serve). {SERVER_NOTE}")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@format_options
@pass_cli
def reprice_command(obj: CliContext, from_text: str, to_text: str, model_glob: str | None,
                    store_url: str | None, dry_run: bool, fmt: str) -> None:
    """Recompute stored costs with today's price book and record an audit entry.

    Through a running server, the server's price book is used (the one it loaded at start, with its --prices
    files); --prices given to this command is then refused.
    """
    from costline.cli.remote import call, running_server

    start, end = parse_when(from_text, "--from"), parse_when(to_text, "--to")
    if end <= start:
        raise click.BadParameter("must be after --from", param_hint="--to")
    settings = _settings(obj, store_url=store_url)
    server = running_server(settings)
    if server is not None:
        if obj.price_files:
            raise click.UsageError("--prices cannot apply while `costline serve` owns the store: the server "
                                   "reprices with its own price book (start it with --prices)")
        body = {"from": start.isoformat(), "to": end.isoformat(), "model": model_glob, "dry_run": dry_run}
        summary: dict[str, Any] = call(server, "POST", "/v1/reprice", body=body)
    else:
        from costline.ingest.maintenance import reprice_range
        from costline.ingest.pipeline import Pipeline

        store = _open(settings)
        try:
            pipeline = Pipeline(store, obj.book, _now)
            summary = reprice_range(store, pipeline, start=start, end=end, model_glob=model_glob, dry_run=dry_run,
                                    now=_now()).to_json()
        finally:
            store.close()
    if fmt != "table":
        emit(fmt, data=summary, columns=list(summary), rows=[summary])
        return
    out = console()
    verb = "would change" if dry_run else "changed"
    out.print(f"{summary['scanned']} observation(s) scanned, {summary['changed']} {verb}")
    out.print(f"total before: {summary['old_total']}  after: {summary['new_total']}")
    if dry_run:
        out.print("dry run: nothing written")


@click.command("purge")
@click.option("--older-than", "days", type=click.IntRange(min=1), metavar="DAYS",
              help="Delete observations older than DAYS (default: COSTLINE_RETENTION_DAYS).")
@click.option("--store", "store_url", metavar="URL", help=f"Store URL (default: as for serve). {SERVER_NOTE}")
@format_options
@pass_cli
def purge_command(obj: CliContext, days: int | None, store_url: str | None, fmt: str) -> None:
    """Delete observations, scores and empty traces older than the retention period."""
    from costline.cli.remote import call, running_server

    settings = _settings(obj, store_url=store_url)
    days = days or settings.retention_days
    if not days:
        raise click.UsageError("give --older-than DAYS or set COSTLINE_RETENTION_DAYS")
    before = _now() - timedelta(days=days)
    server = running_server(settings)
    if server is not None:
        summary: dict[str, Any] = call(server, "POST", "/v1/purge", body={"before": before.isoformat()})
    else:
        from costline.ingest.maintenance import purge_before

        store = _open(settings)
        try:
            summary = purge_before(store, before, now=_now()).to_json()
        finally:
            store.close()
    if fmt != "table":
        emit(fmt, data=summary, columns=list(summary), rows=[summary])
    else:
        console().print(f"deleted {summary['deleted']} observation(s) that started before {summary['before']}")
