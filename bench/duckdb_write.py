"""DuckDB batch writes: the store's JSON batch against an Arrow table, 1,000 observation rows per statement.

    python bench/duckdb_write.py [--rounds 12] [--rows 1000]

Both ways insert the same shape of rows (the ``bench/ingest.py`` generations, as ``rows.observation_row`` gives
them) into the real ``observations`` table of a fresh store file, primary key included, one transaction per
batch, the two ways interleaved. "json" is what ``DuckDBStore.write`` does (one JSON text of column lists,
``INSERT ... SELECT unnest(...)``); "arrow" builds a ``pyarrow`` table from the same column lists (money as
``decimal128(38, 12)``), registers it and runs ``INSERT ... SELECT`` from it. Needs ``pyarrow`` (a dev
dependency; the server does not use it). Timed: from the row tuples to the statement's return.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

import pyarrow as pa

from costline.store import rows
from costline.store.duckdb import _INSERTS, DuckDBStore, _batch_json

COLUMNS = rows.OBSERVATION_COLUMNS
ARROW_TYPES = {
    "text": pa.string(), "time": pa.timestamp("us", tz="UTC"), "json": pa.string(), "money": pa.decimal128(38, 12),
    "tags": pa.list_(pa.string()), "bool": pa.bool_(),
}
SCHEMA = pa.schema([(c.name, ARROW_TYPES[c.kind]) for c in COLUMNS])
NAMES = ", ".join(f'"{c.name}"' for c in COLUMNS)


def batch(n: int) -> list[tuple[Any, ...]]:
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    return [
        ("bench", uuid.uuid4().hex, f"t{i // 10}", None, "generation", "chat", start + timedelta(seconds=i), None,
         None, "gpt-4o", "gpt-4o", "openai", '{"input_tokens":1000,"output_tokens":100}',
         '{"input_tokens":"0.0025","output_tokens":"0.001","total":"0.0035"}', "0.003500000000", "USD", "priced",
         "openai/gpt-4o", None, None, None, f"user-{i % 97}", f"s-{i % 31}", [], '{"feature":"chat"}', "default",
         None, None, "DEFAULT", None, None)
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(f"duckdb:///{tmp}/bench.duckdb")
        store.migrate()
        conn = store._connection()

        def as_json(values: list[tuple[Any, ...]]) -> None:
            conn.execute(_INSERTS["observations"], [_batch_json(COLUMNS, values)])

        def as_arrow(values: list[tuple[Any, ...]]) -> None:
            arrays = []
            for column, items in zip(COLUMNS, zip(*values, strict=True), strict=True):
                if column.kind == "money":
                    items = tuple(None if v is None else Decimal(v) for v in items)
                arrays.append(pa.array(items, type=ARROW_TYPES[column.kind]))
            conn.register("arrow_batch", pa.Table.from_arrays(arrays, schema=SCHEMA))
            conn.execute(f"INSERT INTO observations ({NAMES}) SELECT {NAMES} FROM arrow_batch")
            conn.unregister("arrow_batch")

        ways: dict[str, Callable[[list[tuple[Any, ...]]], None]] = {"json": as_json, "arrow": as_arrow}
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                values = batch(args.rows)
                conn.execute("BEGIN")
                started = time.perf_counter()
                way(values)
                times[name].append((time.perf_counter() - started) * 1000)
                conn.execute("COMMIT")
        stored = conn.execute("SELECT count(*) FROM observations").fetchall()[0][0]
        store.close()
    assert stored == 2 * args.rounds * args.rows, stored
    for name, found in times.items():
        print(f"{name:6} {args.rows} rows: median {statistics.median(found):.2f} ms, best {min(found):.2f} ms")


if __name__ == "__main__":
    main()
