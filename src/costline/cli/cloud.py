"""``costline cloud import|report|lint``: billing files into the ledger, cloud spend reports, filter checks."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from costline.cli.context import CliContext, pass_cli
from costline.errors import CostlineError
from costline.server import local_admin
from costline.settings import Settings
from costline.store.base import Store, StoreError, open_store

#: what ``--by`` accepts → how a line's value is read (docs/cloud.md)
BY_KEYS = ("service", "provider", "account", "billing_account", "region", "category", "service_category",
           "charge_category", "day", "month")
#: short names people write → the SERVICE values Cost Explorer uses
SHORT_SERVICE_NAMES = {
    "ECS": "Amazon Elastic Container Service", "Amazon ECS": "Amazon Elastic Container Service",
    "EC2": "Amazon Elastic Compute Cloud - Compute", "Amazon EC2": "Amazon Elastic Compute Cloud - Compute",
    "RDS": "Amazon Relational Database Service", "Amazon RDS": "Amazon Relational Database Service",
    "S3": "Amazon Simple Storage Service", "Amazon S3": "Amazon Simple Storage Service",
    "ELB": "Amazon Elastic Load Balancing", "EFS": "Amazon Elastic File System", "Lambda": "AWS Lambda",
    "DynamoDB": "Amazon DynamoDB", "CloudWatch": "AmazonCloudWatch", "Amazon CloudWatch": "AmazonCloudWatch",
    "ElastiCache": "Amazon ElastiCache", "Bedrock": "Amazon Bedrock", "ECR": "Amazon EC2 Container Registry (ECR)",
}


@click.group("cloud")
def cloud_group() -> None:
    """Cloud billing: import FOCUS/CUR files, report cloud spend, check Cost Explorer filters."""


def _settings(obj: CliContext, store_url: str | None) -> Settings:
    settings = obj.settings
    if store_url:
        from dataclasses import replace

        settings = replace(settings, store_url=store_url)
    return settings


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
    try:
        low = datetime.fromisoformat(start).replace(tzinfo=UTC)
        high = datetime.fromisoformat(end).replace(tzinfo=UTC)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--from/--to") from None
    if low >= high:
        raise click.BadParameter("--from must be before --to (the end is exclusive)")
    return low, high


def _value(obs: Any, key: str) -> str:
    meta = obs.metadata
    if key.startswith("tag:"):
        tags = meta.get("tags") or {}
        return f"{key[4:]}${tags.get(key[4:], '')}"
    if key == "service":
        return str(meta.get("service", obs.name or ""))
    if key == "provider":
        return str(obs.provider or "")
    if key == "account":
        return str(meta.get("sub_account_id") or meta.get("billing_account_id") or "")
    if key == "billing_account":
        return str(meta.get("billing_account_id", ""))
    if key == "region":
        return str(meta.get("region_id") or meta.get("region_name") or "")
    if key in ("category", "charge_category"):
        return str(meta.get("charge_category", ""))
    if key == "service_category":
        return str(meta.get("service_category", ""))
    if key == "day":
        return str(obs.start_time.date())
    return str(obs.start_time.strftime("%Y-%m"))


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


def cloud_report(observations: Sequence[Any], by: Sequence[str], expr: dict[str, Any] | None) -> dict[str, Any]:
    """Totals by the ``by`` keys, credits and refunds on their own lines, and the untagged share of each tag."""
    from costline.cloud.explorer import cost_line
    from costline.cloud.expression import matches

    groups: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    credits: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    untagged: dict[str, Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    for obs in observations:
        if expr is not None and not matches(expr, cost_line(obs).line):
            continue
        amount = obs.total_cost or Decimal(0)
        total += amount
        key = tuple(_value(obs, k) for k in by)
        category = str(obs.metadata.get("charge_category", ""))
        if category in ("Credit", "Adjustment") or (category != "Usage" and amount < 0):
            credits[(category or "Credit", *key)] += amount
        else:
            groups[key] += amount
        for k in by:
            if k.startswith("tag:") and not (obs.metadata.get("tags") or {}).get(k[4:]):
                untagged[k[4:]] += amount
    rows = [{**dict(zip(by, key, strict=True)), "cost": format(v, "f")}
            for key, v in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))]
    credit_rows = [{"charge_category": key[0], **dict(zip(by, key[1:], strict=True)), "cost": format(v, "f")}
                   for key, v in sorted(credits.items())]
    shares = {k: {"cost": format(v, "f"), "share": format((v / total * 100).quantize(Decimal("0.01")), "f")
                  if total else "0"} for k, v in untagged.items()}
    return {"total": format(total, "f"), "currency": "USD", "rows": rows, "credits_and_refunds": credit_rows,
            "untagged": shares}


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
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--project", "project_id")
@click.option("--store", "store_url")
@pass_cli
def report_command(obj: CliContext, today: bool, week: bool, month: bool, start: str | None, end: str | None,
                   filter_file: Path | None, by: str, fmt: str, project_id: str | None, store_url: str | None) -> None:
    """Cloud spend of every provider in the imported bills, by service (or other keys)."""
    keys = [k.strip() for k in by.split(",") if k.strip()]
    for key in keys:
        if key not in BY_KEYS and not (key.startswith("tag:") and len(key) > 4):
            raise click.BadParameter(f"{key!r}; use {', '.join(BY_KEYS)} or tag:<Key>", param_hint="--by")
    low, high = _range(today, week, month, start, end, datetime.now(UTC))
    expr = _load_filter(filter_file)
    store = open_store(_settings(obj, store_url).resolved_store_url)
    try:
        project = _project(store, project_id)
        lines = list(store.iter_observations(start=low, end=high, project_id=project, type_is="cloud"))
    finally:
        store.close()
    report = cloud_report(lines, keys, expr)
    report["from"], report["to"] = low.isoformat(), high.isoformat()
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    if fmt == "csv":
        import csv
        import sys

        writer = csv.writer(sys.stdout)
        writer.writerow([*keys, "cost"])
        for row in report["rows"]:
            writer.writerow([*(row[k] for k in keys), row["cost"]])
        for row in report["credits_and_refunds"]:
            writer.writerow([*(f"{row['charge_category']}: {row[k]}" for k in keys), row["cost"]])
        writer.writerow(["total", *([""] * (len(keys) - 1)), report["total"]])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cloud cost {low.date()} .. {high.date()} (end exclusive), USD")
    for key in keys:
        table.add_column(key)
    table.add_column("cost", justify="right")
    for row in report["rows"]:
        table.add_row(*(row[k] for k in keys), row["cost"])
    for row in report["credits_and_refunds"]:
        table.add_row(*(f"{row['charge_category']}: {row[k]}" for k in keys), row["cost"])
    table.add_row("total", *([""] * (len(keys) - 1)), report["total"])
    import sys

    Console(width=None if sys.stdout.isatty() else 200).print(table)
    for key, share in report["untagged"].items():
        click.echo(f"untagged ({key}): {share['cost']} USD, {share['share']} % of the total")


def lint_filter(expr: Any, services: set[str], tag_keys: set[str]) -> list[str]:
    """Warnings for a valid Expression that cannot mean what it seems."""
    warnings: list[str] = []

    def walk(node: Any, where: str) -> None:
        for op in ("And", "Or"):
            for i, child in enumerate(node.get(op) or []):
                walk(child, f"{where}.{op}[{i}]")
        if node.get("Not") is not None:
            walk(node["Not"], f"{where}.Not")
        for kind in ("Dimensions", "Tags", "CostCategories"):
            leaf = node.get(kind)
            if leaf is None:
                continue
            for value in leaf.get("Values") or []:
                if "*" in value or "?" in value:
                    warnings.append(f"{where}.{kind}: {value!r} is a literal in Cost Explorer (no wildcards): it "
                                    "matches only that exact text; list the values (costline cloud report "
                                    "--by tag:KEY shows them)")
            if kind == "Dimensions" and leaf.get("Key") == "SERVICE":
                for value in leaf.get("Values") or []:
                    if services and value not in services:
                        hint = SHORT_SERVICE_NAMES.get(value)
                        seen = ", ".join(sorted(services)[:12])
                        warnings.append(f"{where}.Dimensions: SERVICE {value!r} is not a SERVICE value in the "
                                        f"imported data" + (f" (did you mean {hint!r}?)" if hint else "") +
                                        f"; values seen: {seen}")
            if kind == "Tags" and leaf.get("Key") and tag_keys and leaf["Key"] not in tag_keys:
                warnings.append(f"{where}.Tags: no imported line carries the tag key {leaf['Key']!r} "
                                f"(keys seen: {', '.join(sorted(tag_keys)[:12])})")

    walk(expr, "Filter")
    return warnings


@cloud_group.command("lint")
@click.argument("filter_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", "project_id")
@click.option("--store", "store_url")
@pass_cli
def lint_command(obj: CliContext, filter_file: Path, project_id: str | None, store_url: str | None) -> None:
    """Check a Cost Explorer filter file: syntax as GetCostAndUsage checks it, then what cannot mean what it
    seems (wildcards, short service names, tags no imported line carries). Exit 1 when it warns."""
    expr = _load_filter(filter_file)
    services: set[str] = set()
    tag_keys: set[str] = set()
    try:
        store = open_store(_settings(obj, store_url).resolved_store_url)
    except StoreError:
        store = None
    if store is not None:
        try:
            project = _project(store, project_id)
            for obs in store.iter_observations(project_id=project, type_is="cloud"):
                if obs.provider == "aws":
                    services.add(str(obs.metadata.get("service", "")))
                tag_keys.update((obs.metadata.get("tags") or {}).keys())
        finally:
            store.close()
    warnings = lint_filter(expr, services, tag_keys)
    for warning in warnings:
        click.echo(f"warning: {warning}")
    if warnings:
        raise SystemExit(1)
    click.echo(f"{filter_file}: ok")


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
