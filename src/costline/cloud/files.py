"""Rows of a billing file: CSV, gzip-compressed CSV (``.csv.gz``, several gzip members too) and Parquet.

Each row comes with its line number (CSV: the physical line where the row ends, header = line 1; Parquet: the
row number + 1) so errors can name the file, line and column. CSV cells are text; Parquet cells are read by
DuckDB's built-in parquet reader and turned to text exactly (decimals and timestamps keep every digit).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from costline.errors import CostlineError

#: A CSV cell longer than this is refused (the csv module's default limit is 128 KiB).
MAX_CELL = 1 << 20


class BillingFileError(CostlineError):
    """A billing file that cannot be read; the message names the file (and line, column where known)."""


@dataclass(frozen=True, slots=True)
class FileRows:
    path: Path
    header: list[str]
    rows: Iterator[tuple[int, dict[str, Any]]]
    size: int


def kind_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".gz") or name.endswith(".gzip"):
        return "csv.gz"
    return "csv"


def open_rows(path: Path) -> FileRows:
    """The header and an iterator of ``(line, row)`` of ``path``; raises ``BillingFileError`` naming it."""
    if not path.is_file():
        raise BillingFileError(f"{path}: no such file")
    kind = kind_of(path)
    size = path.stat().st_size
    if kind == "parquet":
        return _parquet(path, size)
    try:
        raw = gzip.open(path, "rb") if kind == "csv.gz" else path.open("rb")  # noqa: SIM115 - closed by the row iterator
        stream = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        csv.field_size_limit(MAX_CELL)
        reader = csv.reader(stream)
        header = next(reader, None)
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise BillingFileError(f"{path}: cannot read as {kind.upper()}: {exc}") from None
    if not header:
        raise BillingFileError(f"{path}: empty file (no header line)")
    header = [h.strip() for h in header]
    return FileRows(path, header, _csv_rows(path, reader, stream, header), size)


def _csv_rows(path: Path, reader: Any, stream: io.TextIOWrapper,
              header: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
                raise BillingFileError(f"{path}:{reader.line_num}: {exc}") from None
            if not cells or cells == [""]:
                continue
            if len(cells) != len(header):
                raise BillingFileError(f"{path}:{reader.line_num}: {len(cells)} cells, the header has {len(header)}")
            yield reader.line_num, dict(zip(header, cells, strict=True))
    finally:
        stream.close()


def _cell_text(value: Any) -> Any:
    if value is None or isinstance(value, str | dict):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):  # a MAP read as a list of key/value structs
        return {str(item.get("key")): item.get("value") for item in value if isinstance(item, dict)}
    return str(value)


def _parquet(path: Path, size: int) -> FileRows:
    import duckdb

    conn = duckdb.connect(":memory:")
    try:
        cursor = conn.execute("SELECT * FROM read_parquet(?)", [str(path)])
    except duckdb.Error as exc:
        conn.close()
        raise BillingFileError(f"{path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from None
    header = [d[0] for d in cursor.description or []]

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        line = 1
        try:
            while True:
                batch = cursor.fetchmany(10_000)
                if not batch:
                    return
                for values in batch:
                    line += 1
                    yield line, {name: _cell_text(v) for name, v in zip(header, values, strict=True)}
        finally:
            conn.close()

    return FileRows(path, header, rows(), size)
