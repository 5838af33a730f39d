"""``costline cloud import|report|lint``: billing files into the ledger, cloud spend reports, filter checks."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from costline.cli.context import CliContext, pass_cli
from costline.cli.output import emit, format_options
from costline.cli.serve import _settings as serve_settings
from costline.cloud.report import BY_KEYS, by_keys, cloud_report, lint_context, lint_filter
from costline.core.limits import iso_utc
from costline.errors import CostlineError
from costline.server import local_admin
from costline.settings import Settings
from costline.store.base import Store, StoreError, open_store


@click.group("cloud")
def cloud_group() -> None:
    """Cloud billing: import FOCUS/CUR files, report cloud spend, check Cost Explorer filters."""


def _settings(obj: CliContext, store_url: str | None) -> Settings:
    return serve_settings(obj, store_url=store_url)  # None keeps the default store


def _project(store: Store, project_id: str | None) -> str:
    if project_id:
        if store.get_project(project_id) is None:
            raise CostlineError(f"no project {project_id!r}; see `costline projects list`")
        return project_id
    projects = store.list_projects()
    if len(projects) != 1:
        raise CostlineError("name the project with --project (projects: "
                            f"{', '.join(p.id for p in projects) or 'none'})")
    return projects[0].id


def _post_file(server: local_admin.RunningServer, path: Path, fmt: str | None, project: str | None) -> Any:
    params = {"filename": path.name, **({"format": fmt} if fmt else {})}
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/octet-stream"}
    if project:
        headers[local_admin.PROJECT_HEADER] = project
    request = urllib.request.Request(f"{server.url}/v1/cloud/imports?{urllib.parse.urlencode(params)}",
                                     data=path.read_bytes(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = {"message": str(exc)}
        errors = "\n".join(body.get("errors", []))
        raise CostlineError(f"{path}: {body.get('message', exc)}" + (f"\n{errors}" if errors else "")) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CostlineError(f"cannot reach the running server at {server.url}: {exc}") from None


@cloud_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["focus", "cur"]), help="Default: detected from the header.")
@click.option("--project", "project_id", help="Project id (default: the only project).")
@click.option("--store", "store_url", help="Store URL (default: the data directory's DuckDB file).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_cli
def import_command(obj: CliContext, paths: tuple[Path, ...], fmt: str | None, project_id: str | None,
                   store_url: str | None, as_json: bool) -> None:
    """Import FOCUS 1.0-1.3 or AWS CUR files (CSV, CSV.gz, Parquet). Importing a billing period again
    replaces it; give all files of one period in one import."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from costline.cloud.importer import import_billing

    settings = _settings(obj, store_url)
    try:
        store = open_store(settings.resolved_store_url)
    except StoreError:
        server = local_admin.read_runtime_file(settings.data_dir)
        if server is None or server.store_url != settings.resolved_store_url:
            raise
        results = [_post_file(server, path, fmt, project_id) for path in paths]
        if as_json:
            click.echo(json.dumps(results if len(results) > 1 else results[0], indent=2))
        else:
            for result in results:
                _print_summary(result)
        return
    try:
        project = _project(store, project_id)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} rows"),
                      transient=True, disable=as_json) as progress:
            task = progress.add_task("reading", total=None)

            def advance(name: str, rows: int) -> None:
                progress.update(task, description=f"reading {name}", advance=rows)

            summary = import_billing(store, project, list(paths), fmt, now=datetime.now(UTC), progress=advance)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(summary.as_json(), indent=2))
    else:
        _print_summary(summary.as_json())


def _print_summary(data: dict[str, Any]) -> None:
    click.echo(f"imported {data['lines']} lines ({data['format']}) from {', '.join(data['files'])}: "
               f"{data['billed_cost']} USD billed; {data['replaced']} earlier lines replaced"
               + (f"; {data['converted_lines']} converted to USD at ECB rates" if data["converted_lines"] else ""))
    for period in data["billing_periods"]:
        click.echo(f"  {period['provider']:<6} account {period['billing_account_id']}  period "
                   f"{period['billing_period_start'][:10]}  {period['lines']:>7} lines  {period['billed_cost']} USD")


def _range(today: bool, week: bool, month: bool, start: str | None, end: str | None,
           now: datetime) -> tuple[datetime, datetime]:
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if today:
        return day, day + timedelta(days=1)
    if week:
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    if month:
        first = day.replace(day=1)
        return first, (first + timedelta(days=32)).replace(day=1)
    if start is None or end is None:
        raise click.UsageError("give --today, --week, --month or both --from and --to")
    try:  # naive = UTC, an offset is honoured, years 1000..9000 (core/limits.py)
        low, high = iso_utc(start), iso_utc(end)
    except ValueError:
        raise click.BadParameter(f"{start!r}, {end!r}: ISO 8601 dates or date-times from the year 1000 to 9000",
                                 param_hint="--from/--to") from None
    if low >= high:
        raise click.BadParameter("--from must be before --to (the end is exclusive)")
    return low, high


def _load_filter(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from costline.cloud.expression import ValidationException, validate

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CostlineError(f"{path}: not JSON: {exc}") from None
    expr = data.get("Filter", data) if isinstance(data, dict) else data
    try:
        validate(expr)
    except ValidationException as exc:
        raise CostlineError(f"{path}: {exc}") from None
    return expr  # type: ignore[no-any-return]


def _remote(obj: CliContext, store_url: str | None) -> local_admin.RunningServer | None:
    """The running server that owns the store (when the store cannot be opened directly), else None."""
    from costline.cli.remote import running_server

    return running_server(_settings(obj, store_url))


def _server_call(server: local_admin.RunningServer, method: str, path: str, project_id: str | None, *,
                 params: dict[str, str] | None = None, body: Any = None) -> Any:
    from costline.cli.remote import call

    return call(server, method, path, params=params, body=body, project_id=project_id)


@cloud_group.command("report")
@click.option("--today", is_flag=True)
@click.option("--week", is_flag=True, help="This ISO week (UTC).")
@click.option("--month", is_flag=True, help="This calendar month (UTC).")
@click.option("--from", "start", help="Start date (inclusive).")
@click.option("--to", "end", help="End date (exclusive, as in Cost Explorer).")
@click.option("--filter", "filter_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A Cost Explorer Expression in JSON (a file with a Filter member also works).")
@click.option("--by", default="service", show_default=True,
              help=f"Comma-separated: {', '.join(BY_KEYS)} or tag:<Key>.")
@format_options
@click.option("--project", "project_id", help="Project id (default: the only project).")
@click.option("--store", "store_url", help="Store URL (default: the data directory's DuckDB file). While "
              "`costline serve` runs for it, the report comes from the server.")
@pass_cli
def report_command(obj: CliContext, today: bool, week: bool, month: bool, start: str | None, end: str | None,
                   filter_file: Path | None, by: str, fmt: str, project_id: str | None, store_url: str | None) -> None:
    """Cloud spend of every provider in the imported bills, by service (or other keys)."""
    try:
        keys = by_keys(by)
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("by: "), param_hint="--by") from None
    low, high = _range(today, week, month, start, end, datetime.now(UTC))
    expr = _load_filter(filter_file)
    try:
        store = open_store(_settings(obj, store_url).resolved_store_url)
    except StoreError:
        server = _remote(obj, store_url)
        if server is None:
            raise
        params = {"from": low.isoformat(), "to": high.isoformat(), "by": ",".join(keys)}
        if expr is not None:
            params["filter"] = json.dumps(expr)
        report = _server_call(server, "GET", "/v1/cloud/report", project_id, params=params)
    else:
        try:
            project = _project(store, project_id)
            lines = list(store.iter_observations(start=low, end=high, project_id=project, type_is="cloud"))
        finally:
            store.close()
        report = cloud_report(lines, keys, expr)
        report["from"], report["to"] = low.isoformat(), high.isoformat()
    _print_report(report, keys, fmt, low, high)


def _report_rows(report: dict[str, Any], keys: list[str]) -> list[dict[str, Any]]:
    """The report's lines in one list: totals by key (charge category empty), then credits and refunds."""
    rows = [{**{k: row[k] for k in keys}, "charge_category": "", "cost": row["cost"]} for row in report["rows"]]
    rows += [{**{k: row[k] for k in keys}, "charge_category": row["charge_category"], "cost": row["cost"]}
             for row in report["credits_and_refunds"]]
    return rows


def _print_report(report: dict[str, Any], keys: list[str], fmt: str, low: datetime, high: datetime) -> None:
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    rows = _report_rows(report, keys)
    if fmt == "csv":
        import csv
        import sys

        from costline.export.records import csv_cell

        writer = csv.writer(sys.stdout)
        writer.writerow([*keys, "charge_category", "cost"])
        for row in rows:
            writer.writerow([csv_cell(str(row[k])) for k in (*keys, "charge_category")] + [row["cost"]])
        writer.writerow(["total", *([""] * len(keys)), report["total"]])
        return
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cloud cost {low.date()} .. {high.date()} (end exclusive), USD; credits and refunds "
                        "on their own lines")
    for key in keys:
        table.add_column(key)
    table.add_column("charge category")
    table.add_column("cost", justify="right")
    for row in rows:
        table.add_row(*(str(row[k]) for k in keys), row["charge_category"], row["cost"])
    table.add_row("total", *([""] * len(keys)), report["total"])
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    for key, share in report["untagged"].items():
        click.echo(f"untagged ({key}): {share['cost']} USD, {share['share']} % of the total")


@cloud_group.command("lint")
@click.argument("filter_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@format_options
@click.option("--project", "project_id", help="Project id (default: the only project).")
@click.option("--store", "store_url", help="Store URL (default: the data directory's DuckDB file). While "
              "`costline serve` runs for it, the check runs on the server.")
@pass_cli
def lint_command(obj: CliContext, filter_file: Path, fmt: str, project_id: str | None,
                 store_url: str | None) -> None:
    """Check a Cost Explorer filter file: syntax as GetCostAndUsage checks it, then what cannot mean what it
    seems (wildcards, short service names, tags no imported AWS line carries). Exit 1 when it warns."""
    expr = _load_filter(filter_file)
    try:
        store = open_store(_settings(obj, store_url).resolved_store_url)
    except StoreError:
        server = _remote(obj, store_url)
        if server is None:
            raise
        warnings = list(_server_call(server, "POST", "/v1/cloud/lint", project_id, body=expr)["warnings"])
    else:
        try:
            project = _project(store, project_id)
            services, tag_keys = lint_context(store.iter_observations(project_id=project, type_is="cloud"))
        finally:
            store.close()
        warnings = lint_filter(expr, services, tag_keys)
    if fmt != "table":
        emit(fmt, data={"file": str(filter_file), "warnings": warnings}, columns=["warning"],
             rows=[{"warning": w} for w in warnings])
    else:
        for warning in warnings:
            click.echo(f"warning: {warning}")
        if not warnings:
            click.echo(f"{filter_file}: ok")
    if warnings:
        raise SystemExit(1)


@cloud_group.command("prices")
@click.option("--region", help="Only this region.")
@click.option("--file", "price_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A price table of your own (same YAML format as the bundled one).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def prices_command(region: str | None, price_file: Path | None, fmt: str) -> None:
    """The serverless price table used for per-request costing (docs/cloud.md), with each row's source."""
    from costline.cloud.serverless import load_table

    table = load_table(price_file)
    rows = [r for r in table.rows if region is None or r.region == region]
    if fmt == "json":
        click.echo(json.dumps({"version": table.version, "currency": table.currency, "prices": [
            {"id": r.id, "service": r.service, "operation": r.operation, "arch": r.arch, "unit": r.unit,
             "region": r.region, "price": format(r.price, "f"), "per": r.per, "minimum": None if r.minimum is None
             else format(r.minimum, "f"), "verified": r.verified, "source": r.source, "as_of": r.as_of}
            for r in rows]}, indent=2))
        return
    click.echo(f"price table version {table.version} ({table.currency}); * = not confirmed for that region")
    for r in rows:
        arch = f" ({r.arch})" if r.arch else ""
        click.echo(f"{r.region:<10} {r.service} {r.operation}{arch}: {format(r.price, 'f')} per {r.per} {r.unit}"
                   f"{'' if r.verified else ' *'}  [{r.as_of}; {r.source}]")
