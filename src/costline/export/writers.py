"""File writers for export records: CSV, JSON Lines and Parquet, all taking batches of dict records.

Every writer writes to a hidden ``.partial`` file beside the target and renames it into place on ``close()``,
so an interrupted export never leaves a truncated file under the requested name; ``abort()`` removes it.

- CSV: a header row; money and decimals as exact plain decimal strings (``0.0045``, never ``4.5E-3``), times
  as UTC ``YYYY-MM-DDTHH:MM:SSZ``, JSON fields and tags as JSON text. A NULL is an empty unquoted field;
  costline never writes an empty string for a value, so an empty field always means NULL. A text cell a
  spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) starts with ``'``; plain
  numbers such as ``-1.50`` are left as they are (``records.csv_cell``).
- JSON Lines: one object per line; money and decimals as exact decimal strings, NULL as ``null``, tags as an
  array, JSON fields nested.
- Parquet: written through DuckDB (already a dependency; no pyarrow): batches go into a scratch DuckDB
  database in a temporary directory (so a large export spills to disk, not to memory) and one
  ``COPY ... (FORMAT parquet)`` writes the file. Money and decimals are DECIMAL(38,12) (what the stores keep),
  times TIMESTAMPTZ (UTC), ints BIGINT, tags VARCHAR[], JSON fields VARCHAR holding JSON text.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from costline.core.money import decimal_str
from costline.export.records import CsvLines, Field, csv_cell, iso_z, json_bytes, json_field, json_text, json_value
from costline.store.sqltext import duckdb_literal

PARQUET_TYPES = {
    "text": "VARCHAR", "time": "TIMESTAMPTZ", "money": "DECIMAL(38, 12)", "decimal": "DECIMAL(38, 12)",
    "int": "BIGINT", "json": "VARCHAR", "tags": "VARCHAR[]",
}
#: how each kind travels inside the JSON batch before DuckDB casts it to its column type
_BATCH_TYPES = {
    "text": "VARCHAR", "time": "VARCHAR", "money": "VARCHAR", "decimal": "VARCHAR", "int": "BIGINT",
    "json": "VARCHAR", "tags": "VARCHAR[]",
}


class Writer(Protocol):
    """Takes record batches; ``close()`` puts the finished file in place, ``abort()`` discards it."""

    def write(self, records: Sequence[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def text_value(field: Field, value: Any) -> str | None:
    """A value as the text CSV holds (None stays None)."""
    kind = field.kind
    if value is None:
        return None
    if kind == "text":
        return str(value)
    if kind == "time":
        return iso_z(value)
    if kind == "json":
        return json_field(field.name, value)
    if kind == "tags":
        return json_text(list(value))
    return decimal_str(value) if isinstance(value, Decimal | int) else str(value)


class _Partial:
    """The hidden file a writer fills before it is renamed to ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.partial = target.with_name(f".{target.name}.{os.getpid()}.partial")

    def commit(self) -> None:
        os.replace(self.partial, self.target)

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)


class _HandleWriter:
    """A writer over one open file handle on a ``.partial`` file: renamed into place on close."""

    _file: _Partial
    _handle: IO[Any]

    def close(self) -> None:
        self._handle.close()
        self._file.commit()

    def abort(self) -> None:
        self._handle.close()
        self._file.discard()


class CsvWriter(_HandleWriter):
    def __init__(self, target: Path, fields: Sequence[Field]) -> None:
        self.fields = tuple(fields)
        self._file = _Partial(target)
        self._handle: IO[str] = self._file.partial.open("w", encoding="utf-8", newline="")
        self._csv = CsvLines()
        self._handle.write(self._csv.line(csv_cell(f.name) for f in self.fields))

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        self._handle.writelines(self._csv.line(_cell(text_value(f, r.get(f.name))) for f in self.fields)
                                for r in records)


def _cell(text: str | None) -> str | None:
    return None if text is None else csv_cell(text)



class JsonlWriter(_HandleWriter):
    def __init__(self, target: Path, fields: Sequence[Field]) -> None:
        self.fields = tuple(fields)
        self._file = _Partial(target)
        self._handle: IO[bytes] = self._file.partial.open("wb")

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        self._handle.writelines(json_bytes(self._plain(r)) for r in records)

    def _plain(self, record: dict[str, Any]) -> dict[str, Any]:
        plain: dict[str, Any] = {}
        for f in self.fields:
            value = record.get(f.name)
            if value is None or f.kind in ("text", "int"):
                plain[f.name] = value
            elif f.kind == "json":
                plain[f.name] = json_value(f.name, value)
            elif f.kind == "tags":
                plain[f.name] = list(value)
            else:
                plain[f.name] = text_value(f, value)
        return plain



class ParquetWriter:
    def __init__(self, target: Path, fields: Sequence[Field]) -> None:
        import duckdb

        self.fields = tuple(fields)
        self._file = _Partial(target)
        self._scratch = tempfile.TemporaryDirectory(prefix="costline-export-")
        self._conn = duckdb.connect(str(Path(self._scratch.name) / "export.duckdb"))
        self._conn.execute("SET TimeZone = 'UTC'")
        columns = ", ".join(f'"{f.name}" {PARQUET_TYPES[f.kind]}' for f in self.fields)
        self._conn.execute(f"CREATE TABLE export ({columns})")
        struct = ", ".join(f'"{f.name}" {_BATCH_TYPES[f.kind]}[]' for f in self.fields)
        values = ", ".join(
            f'unnest(batch."{f.name}")' + (f"::{PARQUET_TYPES[f.kind]}" if f.kind in ("time", "money", "decimal")
                                           else "")
            for f in self.fields
        )
        self._insert = f"INSERT INTO export SELECT {values} FROM (SELECT ?::JSON::STRUCT({struct}) AS batch)"

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        batch: dict[str, list[Any]] = {}
        for f in self.fields:
            if f.kind in ("int", "tags"):
                batch[f.name] = [None if r.get(f.name) is None else _plain(f, r[f.name]) for r in records]
            else:
                batch[f.name] = [text_value(f, r.get(f.name)) for r in records]
        self._conn.execute(self._insert, [orjson.dumps(batch).decode()])

    def close(self) -> None:
        path = duckdb_literal(str(self._file.partial))
        try:
            self._conn.execute(f"COPY export TO {path} (FORMAT parquet, COMPRESSION zstd)")
        finally:
            self._conn.close()
            self._scratch.cleanup()
        self._file.commit()

    def abort(self) -> None:
        self._conn.close()
        self._scratch.cleanup()
        self._file.discard()


def _plain(field: Field, value: Any) -> Any:
    if field.kind == "tags":
        return [str(v) for v in value]
    return int(value)


WRITERS: dict[str, type[CsvWriter] | type[JsonlWriter] | type[ParquetWriter]] = {
    "csv": CsvWriter, "jsonl": JsonlWriter, "parquet": ParquetWriter,
}


def open_writer(fmt: str, target: Path, fields: Sequence[Field]) -> Writer:
    """A writer of ``fmt`` (csv, jsonl or parquet) for ``target``."""
    return WRITERS[fmt](target, fields)
