"""Query results as a rich table (with a total line and footnotes), CSV or JSON.

Values stay exact until they are shown: CSV and JSON carry decimal strings (``0.000123456789``) and nulls;
the table rounds money per column to enough places for the smallest amount in it to keep 4 significant
digits (at least 2 places, at most 12), half-even, and groups thousands. An unpriced cost is never shown as
0: a group whose observations are all unpriced shows ``unpriced`` in its cost cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import click
from rich.table import Table

from costline.cli.render import console, emit_json
from costline.core.money import decimal_str
from costline.core.query import MONEY_MEASURES, Metric, Query, QueryResult
from costline.export.records import CsvLines, csv_cell

#: aggregations whose total over disjoint groups is computed from the groups' values
_ADDITIVE = ("sum", "min", "max")
_COUNTS = ("count", "unpriced", "calls")


def is_money(metric: Metric) -> bool:
    return metric.measure in MONEY_MEASURES


def double_counts(query: Query) -> bool:
    """True when an observation can fall in several groups (grouping by tag), so rows must not be added."""
    return any(d.name == "tag" for d in query.dimensions)


def total_from_rows(result: QueryResult) -> dict[str, Any] | None:
    """The total line computed exactly from the rows, or None when the rows cannot give it (a metric that does
    not add up, like a distinct count or a percentile, or rows cut by the limit)."""
    query = result.query
    if result.truncated or double_counts(query):
        return None
    total: dict[str, Any] = {}
    for metric in query.metrics:
        values = [r[metric.label] for r in result.rows if r[metric.label] is not None]
        if metric.measure in _COUNTS:
            total[metric.label] = sum(values)
        elif metric.measure in ("traces", "users", "sessions") or metric.aggregation not in _ADDITIVE:
            return None
        elif not values:
            total[metric.label] = None
        elif metric.aggregation == "sum":
            total[metric.label] = sum(values[1:], values[0])
        else:
            total[metric.label] = (min if metric.aggregation == "min" else max)(values)
    return total


def plain(value: Any) -> Any:
    """A result value for JSON: decimals as exact strings."""
    return decimal_str(value) if isinstance(value, Decimal) else value


def emit_csv(result: QueryResult) -> None:
    lines = CsvLines()
    out = [lines.line(csv_cell(c) for c in result.columns)]
    out.extend(lines.line("" if row[c] is None else _cell(plain(row[c])) for c in result.columns)
               for row in result.rows)
    click.echo("".join(out), nl=False)


def _cell(value: Any) -> Any:
    """Text neutralised against spreadsheet formulas (``csv_cell``); numbers as they are."""
    return csv_cell(value) if isinstance(value, str) else value


def emit_result_json(result: QueryResult, total: dict[str, Any] | None, extra: dict[str, Any]) -> None:
    emit_json({
        "query": {**result.query.describe(), "project": result.query.project_id, **extra},
        "columns": list(result.columns),
        "rows": [{k: plain(v) for k, v in row.items()} for row in result.rows],
        "truncated": result.truncated,
        "total": None if total is None else {k: plain(v) for k, v in total.items()},
    })


def heading(label: str) -> str:
    """``sum_cost`` → ``cost``, ``sum_input_tokens`` → ``input tokens``, ``p95_latency`` → ``p95 latency``."""
    text = label.removeprefix("sum_") if label.startswith("sum_") else label.replace("_", " ", 1)
    return text.replace("_", " ")


def places(values: Iterable[Any], *, minimum: int, significant: int = 4, maximum: int = 12) -> int:
    """Decimal places that show every value's own digits up to ``significant`` significant digits."""
    found = minimum
    for value in values:
        if not isinstance(value, Decimal) or not value:
            continue
        exponent = value.normalize().as_tuple().exponent
        own = max(0, -exponent) if isinstance(exponent, int) else 0
        found = max(found, min(own, max(0, significant - 1 - value.adjusted())))
    return min(found, maximum)


def number_text(value: Any, digits: int) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return format(value, f",.{digits}f")
    return str(value)


def _time_text(value: str, granularity: str | None) -> str:
    moment = datetime.fromisoformat(value)
    return moment.strftime("%Y-%m-%d" if granularity in ("day", "week", "month") else "%Y-%m-%d %H:%M")


def print_table(result: QueryResult, total: dict[str, Any] | None, *, title: str, notes: Sequence[str]) -> None:
    query = result.query
    out = console()
    if not result.rows:
        out.print(f"{title}\nnothing matched")
        for note in notes:
            out.print(note)
        return
    table = Table(title=title, title_justify="left")
    dims = [c for c in result.columns if c not in {m.label for m in query.metrics}]
    for label in dims:
        table.add_column(label, overflow="fold")
    digits: dict[str, int] = {}
    for metric in query.metrics:
        table.add_column(heading(metric.label), justify="right")
        values = [r[metric.label] for r in result.rows] + ([total[metric.label]] if total else [])
        digits[metric.label] = places(values, minimum=2 if is_money(metric) else 0)
    unpriced_label = next((m.label for m in query.metrics if m.measure == "unpriced"), None)
    for row in result.rows:
        cells = [_time_text(row[d], query.granularity) if d == "time" else _dim_text(row[d]) for d in dims]
        cells += [_metric_text(m, row, digits[m.label], unpriced_label) for m in query.metrics]
        table.add_row(*cells)
    if total is not None:
        table.add_section()
        cells = ["total", *([""] * (len(dims) - 1))] if dims else []
        table.add_row(*cells, *(_metric_text(m, total, digits[m.label], unpriced_label) for m in query.metrics))
    out.print(table)
    for note in notes:
        out.print(note)


def _dim_text(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _metric_text(metric: Metric, row: dict[str, Any], digits: int, unpriced_label: str | None) -> str:
    value = row[metric.label]
    if value is None:
        if is_money(metric) and unpriced_label and row.get(unpriced_label):
            return "unpriced"
        return "—"
    return number_text(value, digits)
