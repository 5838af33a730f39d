"""The output flags every data command shares: ``--format table|json|csv`` (``--json`` is ``--format json``).

``table`` is for reading (a rich table; on a pipe or in a file it is as wide as its values, never cut to 80
columns), ``json`` is the command's JSON document (money as exact decimal strings), ``csv`` is the table's rows
with exact values (a header row; NULL as an empty field; lists and objects as JSON text).
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import click

from costline.core.money import decimal_str
from costline.export.records import csv_cell

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "json", "csv")


def _output_options(flag: str, dest: str) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> Any:
            chosen = kwargs.pop(dest)
            if as_json and chosen not in (None, "json"):
                raise click.UsageError(f"--json is {flag} json; it cannot be combined with {flag} {chosen}")
            return f(*args, **{dest: "json" if as_json else chosen or "table"}, **kwargs)

        wrapper = click.option("--json", "as_json", is_flag=True, help=f"Same as {flag} json.")(wrapper)
        wrapper = click.option(flag, dest, type=click.Choice(FORMATS),
                               help="table (default; for reading), json or csv (exact values).")(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


#: ``--format`` and its alias ``--json``; the command receives ``fmt`` (table, json or csv)
format_options = _output_options("--format", "fmt")
#: the same as ``--output-format`` for commands whose ``--format`` names a file format (``prices import``)
output_format_options = _output_options("--output-format", "output")


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, Mapping | list | tuple):
        return csv_cell(json.dumps(value, ensure_ascii=False, default=str))
    if isinstance(value, int | float):
        return str(value)
    return csv_cell(str(value))  # a spreadsheet runs a cell starting with = + - @: neutralised


def emit_csv_rows(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_value(row.get(c)) for c in columns])
    click.echo(buffer.getvalue(), nl=False)


def print_rows(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], *, title: str | None = None,
               right: Sequence[str] = ()) -> None:
    """A rich table of ``rows``; ``right``: the columns aligned right (numbers)."""
    from rich.table import Table

    from costline.cli.render import console

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*(cell_text(row.get(c)) for c in columns))
    console().print(table)


def cell_text(value: Any) -> str:
    """A value in a table cell: ``-`` for none, ``k=v, ...`` for a mapping, ``a, b`` for a list."""
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def emit(fmt: str, *, data: Any, columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
         title: str | None = None, right: Sequence[str] = ()) -> None:
    """Print ``data`` (json), or ``rows`` as csv or a table."""
    from costline.cli.render import emit_json

    if fmt == "json":
        emit_json(data)
    elif fmt == "csv":
        emit_csv_rows(columns, rows)
    else:
        print_rows(columns, rows, title=title, right=right)


def emit_data(fmt: str, data: Any, *, rows: Sequence[Mapping[str, Any]] | None = None) -> None:
    """``data`` as json, or as csv: ``rows`` when given, else a list's items or a single object as one row
    (columns: the keys in first-seen order; nested values as JSON text)."""
    from costline.cli.render import emit_json

    if fmt == "json":
        emit_json(data)
        return
    if rows is None:
        rows = list(data) if isinstance(data, list) else [data]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if columns:  # no rows of unknown shape: no output at all
        emit_csv_rows(columns, rows)
