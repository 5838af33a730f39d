"""``costline report``, ``costline top`` and ``costline export``: answers and files from the query model.

The commands only translate flags into a native query (``costline.core.query.parse_query``) and hand it to
``Store.query``; exports go through ``costline.export``. Calendar ranges (``--today``, ``--week``,
``--month``) and dates without an offset are taken in ``--tz``, which defaults to the zone named by the
``TZ`` environment variable (``Europe/Berlin``, ``:Europe/Berlin`` or a ``.../zoneinfo/<name>`` path) and
to UTC when ``TZ`` is unset or not an IANA zone. Exports are always in UTC.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from costline.cli.context import CliContext, pass_cli
from costline.cli.output import format_options
from costline.cli.query_render import double_counts, emit_csv, emit_result_json, print_table, total_from_rows
from costline.cli.remote import remote_query
from costline.cli.serve import _open, _settings
from costline.control.forecasts import forecast_from_days
from costline.core import timebuckets
from costline.core.money import decimal_str
from costline.core.query import MAX_LIMIT, Query, QueryError, QueryResult, parse_query
from costline.errors import CostlineError
from costline.server import local_admin
from costline.settings import Settings
from costline.store.base import Store, StoreError

if TYPE_CHECKING:
    from costline.export import ExportSummary
    from costline.server.local_admin import RunningServer

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_METRICS = ("sum:cost", "count", "unpriced", "sum:input_tokens", "sum:output_tokens")
_FILTER = re.compile(r"^\s*([A-Za-z0-9_.:\-]+)\s*(!=|>=|<=|=|>|<)(.*)$")
_FLAGS = {"from": "--from", "to": "--to", "dimensions": "--by", "metrics": "--metric", "filters": "--filter",
          "timezone": "--tz", "granularity": "--granularity", "limit": "--limit", "view": "--view",
          "all_time": "--all-time"}


def _now() -> datetime:
    return datetime.now(UTC)


def default_zone() -> str:
    """The zone ``TZ`` names when it is an IANA zone, else ``UTC``."""
    name = os.environ.get("TZ", "").strip().removeprefix(":")
    if "zoneinfo/" in name:
        name = name.split("zoneinfo/", 1)[1]
    if not name:
        return "UTC"
    try:
        timebuckets.zone(name)
    except CostlineError:
        return "UTC"
    return name


def range_options(f: F) -> F:
    options = [
        click.option("--today", is_flag=True, help="The current calendar day in --tz, up to now."),
        click.option("--week", is_flag=True, help="The current ISO week (from Monday) in --tz, up to now."),
        click.option("--month", is_flag=True, help="The current calendar month in --tz, up to now."),
        click.option("--from", "from_text", metavar="DATE",
                     help="Start (inclusive), ISO 8601 date or time; without an offset it is in --tz."),
        click.option("--to", "to_text", metavar="DATE", help="End (exclusive), as --from. Default: now."),
        click.option("--all-time", is_flag=True, help="No time range."),
        click.option("--tz", "tz_name", metavar="ZONE",
                     help="IANA time zone for ranges, dates and time buckets (default: $TZ, else UTC)."),
        click.option("--project", "project_id", metavar="ID", help="Only this project (default: all)."),
        click.option("--store", "store_url", metavar="URL", help="Store URL (default: as for serve)."),
    ]
    for option in reversed(options):
        f = option(f)
    return format_options(f)


def range_fields(today: bool, week: bool, month: bool, from_text: str | None, to_text: str | None,
                 all_time: bool, tz_name: str) -> dict[str, Any]:
    """The range part of a native query for the flags; no flag: the query model's default (7 days to now)."""
    chosen = [name for name, on in (("--today", today), ("--week", week), ("--month", month),
                                    ("--from/--to", bool(from_text or to_text)), ("--all-time", all_time)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"give only one of --today, --week, --month, --from/--to, --all-time "
                               f"(got {' and '.join(chosen)})")
    if all_time:
        return {"all_time": True}
    if not (today or week or month):
        return {k: v for k, v in (("from", from_text), ("to", to_text)) if v is not None}
    try:
        tz = timebuckets.zone(tz_name)
    except CostlineError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from None
    now = _now().astimezone(tz)
    day = now.date()
    if week:
        day -= timedelta(days=day.weekday())
    elif month:
        day = day.replace(day=1)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = max(now, start + timedelta(microseconds=1))
    return {"from": start.isoformat(), "to": end.isoformat()}


def parse_filters(texts: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """``KEY=VALUE`` (repeat to match any of the values), ``KEY!=VALUE``, ``KEY>N`` ... as native filters, and
    the flag text each came from. ``tag=X`` matches observations with tag X; ``metadata.k=v`` a metadata value."""
    equal: dict[str, tuple[list[str], list[str]]] = {}
    filters: list[dict[str, Any]] = []
    sources: list[str] = []
    for text in texts:
        match = _FILTER.match(text)
        if not match or not match.group(3).strip():
            raise click.BadParameter(f"{text!r}: expected KEY=VALUE, KEY!=VALUE or KEY>=NUMBER (>, <, <= too), "
                                     "e.g. model=gpt-4o, tag=beta, metadata.team=search", param_hint="--filter")
        key, operator, value = match.group(1), match.group(2), match.group(3).strip()
        if operator == "=":
            values, texts_for = equal.setdefault(key, ([], []))
            values.append(value)
            texts_for.append(text)
            continue
        if key in ("tag", "tags"):
            if operator != "!=":
                raise click.BadParameter(f"{text!r}: tags take = or !=", param_hint="--filter")
            filters.append({"field": "tag", "operator": "none of", "value": [value]})
        else:
            filters.append({"field": key, "operator": operator, "value": value})
        sources.append(text)
    for key, (values, texts_for) in equal.items():
        if key in ("tag", "tags"):
            filters.append({"field": "tag", "operator": "any of", "value": values})
        elif len(values) == 1:
            filters.append({"field": key, "operator": "=", "value": values[0]})
        else:
            filters.append({"field": key, "operator": "in", "value": values})
        sources.append(" ".join(texts_for))
    return filters, sources


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def build_query(raw: dict[str, Any], project_id: str | None, filter_sources: Sequence[str] = ()) -> Query:
    """``parse_query`` with its errors spoken in flags: ``--by: unknown dimension ...``."""
    try:
        return parse_query(raw, now=_now(), project_id=project_id)
    except QueryError as exc:
        path, _, rest = str(exc).partition(": ")
        head, _, index = path.partition("[")
        flag = _FLAGS.get(head.split(".")[0], head)
        if head == "filters" and index:
            i = int(index.split("]")[0])
            flag = f"--filter {filter_sources[i]!r}" if i < len(filter_sources) else flag
        raise click.BadParameter(rest or str(exc), param_hint=flag) from None


def answer(obj: CliContext, raw: dict[str, Any], *, project_id: str | None, store_url: str | None, fmt: str,
           what: str, filter_sources: Sequence[str] = (), forecast: bool = False) -> None:
    """Run the query ``raw`` and print it as ``fmt``; while a local server owns the store, ask the server."""
    query = build_query(raw, project_id, filter_sources)
    settings = _settings(obj, store_url=store_url)
    store: Store | None = None
    try:
        opened = _open(settings)
    except StoreError:
        server = local_admin.read_runtime_file(settings.data_dir)
        if server is None or server.store_url != settings.resolved_store_url:
            raise

        def ask(raw_query: dict[str, Any]) -> QueryResult:
            return remote_query(server, {**raw_query, "limit": raw_query.get("limit", query.limit)},
                                build_query(raw_query, project_id, filter_sources))
    else:
        store = opened

        def ask(raw_query: dict[str, Any]) -> QueryResult:
            assert store is not None
            return store.query(build_query(raw_query, project_id, filter_sources))
    try:
        if store is not None:
            _check_project(store, project_id)
        result = ask(raw)
        total = None
        if result.rows and (query.dimensions or query.granularity) and not double_counts(query):
            total = total_from_rows(result)
            if total is None:  # rows cut by --limit or metrics that do not add up: ask the store
                whole = {k: v for k, v in raw.items() if k not in ("dimensions", "granularity", "order_by")}
                rows = ask(whole).rows
                total = rows[0] if rows else None
        projection = _month_forecast(raw, ask) if forecast else None
    finally:
        if store is not None:
            store.close()
    if fmt == "json":
        emit_result_json(result, total, {"what": what, **({"forecast": projection} if projection else {})})
    elif fmt == "csv":
        emit_csv(result)
    else:
        notes = _notes(result, total)
        if projection is not None:
            notes.append(f"month-end forecast: {projection['projected']} (range {projection['low']} to "
                         f"{projection['high']}, {projection['method']}; docs/forecast.md)")
        print_table(result, total, title=_title(result, what), notes=notes)


def _month_forecast(raw: dict[str, Any], ask: Callable[[dict[str, Any]], QueryResult]) -> dict[str, Any]:
    """The month-end projection of the report's scope (its filters) from this month's daily costs."""
    daily_query = {"view": "observations", "timezone": raw["timezone"], "from": raw["from"], "to": raw.get("to"),
                   "granularity": "day", "metrics": ["sum:cost"], "filters": raw.get("filters", []), "limit": 40}
    return forecast_from_days(ask(daily_query), _now(), timebuckets.zone(raw["timezone"])).to_json()


def _check_project(store: Store, project_id: str | None) -> None:
    if project_id is not None and store.get_project(project_id) is None:
        raise click.BadParameter(f"no project {project_id!r}; `costline projects list` shows them",
                                 param_hint="--project")


def _title(result: QueryResult, what: str) -> str:
    q = result.query
    if q.start is None or q.end is None:
        span = "all time"
    else:
        span = f"{q.start.astimezone(q.tz):%Y-%m-%d %H:%M} → {q.end.astimezone(q.tz):%Y-%m-%d %H:%M} {q.timezone}"
    project = f", project {q.project_id}" if q.project_id else ""
    return f"{what}: {span}{project}"


def _notes(result: QueryResult, total: dict[str, Any] | None) -> list[str]:
    q = result.query
    notes: list[str] = []
    if q.range_defaulted:
        notes.append("no start given: the 7 days before the end (use --today, --week, --month, --from or --all-time)")
    if result.truncated:
        notes.append(f"only the first {q.limit} rows are shown (--limit); the total covers every row")
    if double_counts(q):
        notes.append("an observation with several tags counts under each of them, so there is no total")
    unpriced = next((m.label for m in q.metrics if m.measure == "unpriced"), None)
    if unpriced:
        count = total[unpriced] if total else max((r[unpriced] for r in result.rows), default=0)
        if count:
            amount = f"{count}" if total else f"at least {count}"
            notes.append(f"{amount} observation(s) could not be priced: their cost is missing from the cost columns "
                         "(not counted as 0); `costline prices explain MODEL` shows why")
    return notes


@click.command("report")
@range_options
@click.option("--by", "by", multiple=True, metavar="DIMS",
              help="Group by these dimensions, comma-separated or repeated: model, provider, user, session, tag, "
                   "trace_name, name, environment, release, project, pricing_status, metadata.<key>, ...")
@click.option("--filter", "filter_texts", multiple=True, metavar="KEY=VALUE",
              help="Keep matching observations: KEY=VALUE (repeat a key to match any value), KEY!=VALUE, "
                   "KEY>=NUMBER (>, <, <=); tag=X, metadata.KEY=VALUE. Repeatable.")
@click.option("--metric", "metrics", multiple=True, metavar="AGG:MEASURE",
              help="Columns, comma-separated or repeated, e.g. sum:cost, p95:latency, users "
                   f"(default: {', '.join(DEFAULT_METRICS)}).")
@click.option("--view", type=click.Choice(("observations", "traces")), default="observations", show_default=True,
              help="Count observations, or traces (costs summed per trace).")
@click.option("--granularity", type=click.Choice(("auto", *timebuckets.GRANULARITIES)),
              help="Add a time column with buckets of this size in --tz.")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=100, show_default=True, help="Rows at most.")
@pass_cli
def report_command(obj: CliContext, today: bool, week: bool, month: bool, from_text: str | None,
                   to_text: str | None, all_time: bool, tz_name: str | None, project_id: str | None,
                   store_url: str | None, fmt: str, by: tuple[str, ...], filter_texts: tuple[str, ...],
                   metrics: tuple[str, ...], view: str, granularity: str | None, limit: int) -> None:
    """Cost and usage over a time range, grouped and filtered.

    Totals are exact; the table rounds for reading, csv and json carry exact decimal strings. Unpriced
    observations are counted in the "unpriced" column and never priced at 0.
    """
    tz_name = tz_name or default_zone()
    raw: dict[str, Any] = {"view": view, "timezone": tz_name, "limit": limit,
                           **range_fields(today, week, month, from_text, to_text, all_time, tz_name)}
    raw["dimensions"] = _split(by)
    raw["metrics"] = _split(metrics) or list(DEFAULT_METRICS)
    if fmt == "table" and "unpriced" not in raw["metrics"] and any("cost" in m for m in raw["metrics"]):
        raw["metrics"].append("unpriced")
    filters, sources = parse_filters(filter_texts)
    raw["filters"] = filters
    if granularity:
        raw["granularity"] = granularity
    answer(obj, raw, project_id=project_id, store_url=store_url, fmt=fmt, what=f"{view} report",
           filter_sources=sources, forecast=month and view == "observations")


TOP: dict[str, dict[str, Any]] = {
    "traces": {"view": "traces", "dimensions": ["id", "name", "user"],
               "metrics": ["sum:cost", "sum:observations", "unpriced"]},
    "users": {"view": "observations", "dimensions": ["user"],
              "metrics": ["sum:cost", "count", "traces", "unpriced", "sum:input_tokens", "sum:output_tokens"]},
    "models": {"view": "observations", "dimensions": ["model", "provider"],
               "metrics": ["sum:cost", "count", "unpriced", "sum:input_tokens", "sum:output_tokens"]},
}


@click.command("top")
@click.argument("what", type=click.Choice(tuple(TOP)))
@range_options
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=10, show_default=True, help="Rows at most.")
@pass_cli
def top_command(obj: CliContext, what: str, today: bool, week: bool, month: bool, from_text: str | None,
                to_text: str | None, all_time: bool, tz_name: str | None, project_id: str | None,
                store_url: str | None, fmt: str, limit: int) -> None:
    """The most expensive traces, users or models over a time range (default: the last 7 days)."""
    tz_name = tz_name or default_zone()
    raw = {**TOP[what], "timezone": tz_name, "limit": limit,
           **range_fields(today, week, month, from_text, to_text, all_time, tz_name)}
    answer(obj, raw, project_id=project_id, store_url=store_url, fmt=fmt, what=f"top {what}")


#: exports of at least this many observations get a progress bar (on a terminal, without --quiet)
PROGRESS_MIN_ROWS = 1000


@click.command("export")
@click.option("--from", "from_text", required=True, metavar="DATE",
              help="Start (inclusive), ISO 8601 date or time; UTC unless it carries an offset.")
@click.option("--to", "to_text", required=True, metavar="DATE", help="End (exclusive), as --from.")
@click.option("--format", "fmt", required=True, type=click.Choice(("csv", "jsonl", "parquet", "focus")),
              help="One row per observation (csv, jsonl, parquet), or FOCUS 1.2 cost rows per UTC day "
                   "(focus: Parquet when --out ends in .parquet, else CSV). See docs/exports.md.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="File to write (replaced when the export is complete).")
@click.option("--project", "project_id", metavar="ID", help="Only this project (default: all).")
@click.option("--store", "store_url", metavar="URL", help="Store URL (default: as for serve).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary (warnings still go to stderr).")
@pass_cli
def export_command(obj: CliContext, from_text: str, to_text: str, fmt: str, out: Path, project_id: str | None,
                   store_url: str | None, quiet: bool) -> None:
    """Write the observations of a time range, with their trace attributes, to a file.

    Money is exact (decimal strings in csv/jsonl, DECIMAL(38,12) in Parquet). In FOCUS, unpriced observations
    are left out of the cost rows (never charged as 0) and counted on stderr per model.
    """
    from rich.console import Console

    from costline.cli.remote import running_server

    # the query model validates the range (and the same query counts what the progress bar will cover)
    query = build_query({"from": from_text, "to": to_text, "metrics": ["count"], "timezone": "UTC"}, project_id)
    assert query.start is not None and query.end is not None  # both flags are required
    if not out.parent.exists():
        raise click.BadParameter(f"directory {str(out.parent)!r} does not exist", param_hint="--out")
    err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    settings = _settings(obj, store_url=store_url)
    server = running_server(settings)
    if server is not None:
        summary = _export_through(server, query, fmt, out, project_id)
    else:
        summary = _export_here(settings, query, fmt, out, project_id, progress=not quiet and err.is_terminal,
                               err=err)
    for model, n in sorted(summary.unpriced_by_model.items(), key=lambda item: (item[0] is None, item[0] or "")):
        name = "without a model name" if model is None else f"of model {model!r}"
        err.print(f"left out {n} unpriced observation(s) {name}: no price, so no cost row (not counted as 0)")
    for reason, (n, cost) in sorted(summary.left_out.items()):
        err.print(f"left out {n} observation(s) costing {decimal_str(cost)} in total: {reason} "
                  "(FOCUS rows need a model and a provider)")
    if quiet:
        return
    if fmt == "focus":
        err.print(f"wrote {summary.rows} FOCUS 1.2 row(s) ({summary.container}) from {summary.observations} "
                  f"observation(s) to {out}")
    else:
        err.print(f"wrote {summary.rows} observation(s) to {out}")


def _export_here(settings: Settings, query: Query, fmt: str, out: Path, project_id: str | None, *,
                 progress: bool, err: Any) -> ExportSummary:
    """The export on the store itself, with a progress bar on a terminal for large ones."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from costline.export import export_observations

    assert query.start is not None and query.end is not None
    run = functools.partial(export_observations, start=query.start, end=query.end, project_id=project_id)
    store = _open(settings)
    try:
        _check_project(store, project_id)
        count = int(store.query(query).rows[0]["count"])
        if progress and count >= PROGRESS_MIN_ROWS:
            columns = (TextColumn(f"exporting to {out.name}"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn())
            with Progress(*columns, console=err) as bar:
                task = bar.add_task("export", total=count)
                return run(store, out, fmt, progress=lambda n: bar.advance(task, n))
        return run(store, out, fmt)
    finally:
        store.close()


def _export_through(server: RunningServer, query: Query, fmt: str, out: Path,
                    project_id: str | None) -> ExportSummary:
    """``GET /v1/export`` on the running server, streamed into ``out``; the summary from its header."""
    from collections import Counter

    from costline.cli.remote import download
    from costline.export import ExportSummary, focus_container

    assert query.start is not None and query.end is not None
    params = {"from": query.start.isoformat(), "to": query.end.isoformat(), "format": fmt}
    if fmt == "focus":
        params["container"] = focus_container(out)
    headers = download(server, "/v1/export", params, out, project_id=project_id)
    told = json.loads(headers.get("x-costline-export-summary", "{}"))
    summary = ExportSummary(observations=int(told.get("observations", 0)), rows=int(told.get("rows", 0)),
                            container=str(told.get("container", "")))
    summary.unpriced_by_model = Counter({i["model"]: int(i["count"]) for i in told.get("unpriced_by_model", [])})
    summary.left_out = {i["reason"]: (int(i["count"]), Decimal(i["cost"])) for i in told.get("left_out", [])}
    if told.get("more"):
        click.echo(f"the server names the first 100 unpriced models and reasons only; {told['more']} more were "
                   "left out of the FOCUS rows", err=True)
    return summary
