"""Where one OTLP batch spends its time in the server's pipeline, in process: per step, and a profile.

    python bench/otlp_pipeline.py [--backend duckdb|postgres] [--batches 12] [--warm 10] [--profile]

Builds ``bench/ingest.py``'s OTLP protobuf batches (1,000 GenAI spans, each its own trace) and, for
comparison, its native batches; opens a store (a DuckDB file in a temporary directory, or a fresh schema in
``COSTLINE_TEST_POSTGRES_URL``), makes the server's app on it (so the pipeline has the server's listeners:
Prometheus counters, budgets), writes ``--warm`` batches first, then times each further batch: decode, then
``Pipeline.ingest`` split into its steps by wrapping the store's and pipeline's methods with timers. Prints the
median ms per batch of each step. Nothing here changes what is stored.
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import native_bodies, otlp_bodies  # noqa: E402

PB = "application/x-protobuf"
TIMES: dict[str, float] = defaultdict(float)


def timed(owner: Any, name: str, label: str) -> None:
    """Wrap ``owner.name`` (a method on a class or an instance) so its time adds to ``TIMES[label]``."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - started

    static = isinstance(inspect.getattr_static(owner, name), staticmethod)
    setattr(owner, name, staticmethod(wrapper) if static else wrapper)


@contextmanager
def store_for(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "duckdb":
        yield f"duckdb:///{tmp / 'store.duckdb'}"
        return
    from tests.server.harness import drop_postgres_schema, fresh_postgres_schema, postgres_url

    base = postgres_url()
    if not base:
        raise SystemExit("set COSTLINE_TEST_POSTGRES_URL for --backend postgres")
    schema, url = fresh_postgres_schema(base)
    try:
        yield url
    finally:
        drop_postgres_schema(base, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--warm", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--native", action="store_true", help="time native batches instead of OTLP")
    parser.add_argument("--every", type=int, default=0,
                        help="print the medians of the last N timed batches every N (how steps grow with the table)")
    args = parser.parse_args()

    from costline.catalog.book import load_price_book
    from costline.ingest import native, otlp, pipeline
    from costline.ingest.batch import parse_json_body
    from costline.server.app import create_app
    from costline.server.auth import create_project
    from costline.settings import Settings
    from costline.store import duckdb as duckdb_store
    from costline.store import rollup_sql
    from costline.store.base import open_store

    total = args.warm + args.batches
    if args.native:
        bodies = native_bodies(total)

        def decode(body: bytes) -> Any:
            return native.decode_native(parse_json_body(body))
    else:
        bodies = otlp_bodies(total)

        def decode(body: bytes) -> Any:
            return otlp.decode_otlp(body, PB)

    with tempfile.TemporaryDirectory() as tmp, store_for(args.backend, Path(tmp)) as url:
        settings = Settings.from_env({}, data_dir=Path(tmp), store_url=url)
        store = open_store(settings.resolved_store_url)
        keys = create_project(store, "bench", datetime.now(UTC))
        app = create_app(settings, store, load_price_book(settings))
        pipe = app.state.costline.pipeline
        project_id = keys.project.id
        cls = type(store)
        steps: list[tuple[Any, str, str]] = [
            (pipeline.Pipeline, "merge_and_price", "merge + price"),
            (pipeline.Pipeline, "_traces", "merge traces"),
            (pipeline.Pipeline, "_count_once", "duplicate check"),
            (cls, "_lock_ids", "store: lock ids"),
            (cls, "_read_traces", "store: read traces"),
            (cls, "_read_observations", "store: read observations"),
            (rollup_sql, "dirty_marks", "store: dirty marks"),
            (duckdb_store, "batch_payloads", "store: rows -> JSON (upserts)"),
            (duckdb_store, "_insert_payloads", "store: rows -> JSON (inserts)"),
            (cls, "_write_rows", "store: write rows"),
            (cls, "_stored_hours", "store: stored hours"),
            (cls, "write", "store: write()"),
            (cls, "write_linked", "store: write_linked() (write + linked read)"),
            (cls, "merge_write", "store: merge_write() total"),
        ]
        for owner, name, label in steps:
            if hasattr(owner, name):
                timed(owner, name, label)
        for index, listener in enumerate(list(pipe.listeners)):
            label = f"listener {getattr(listener, '__qualname__', index)}"

            def wrapped(*a: Any, _listener: Callable[..., Any] = listener, _label: str = label) -> None:
                started = time.perf_counter()
                try:
                    _listener(*a)
                finally:
                    TIMES[_label] += time.perf_counter() - started

            pipe.listeners[index] = wrapped
        for body in bodies[:args.warm]:
            pipe.ingest(project_id, decode(body), "otlp")
        per_batch: dict[str, list[float]] = defaultdict(list)
        profiler = cProfile.Profile() if args.profile else None
        for body in bodies[args.warm:]:
            TIMES.clear()
            started = time.perf_counter()
            decoded = decode(body)
            TIMES["decode"] = time.perf_counter() - started
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            result = pipe.ingest(project_id, decoded, "otlp")
            TIMES["pipeline.ingest total"] = time.perf_counter() - started
            if profiler:
                profiler.disable()
            assert len(result.observations) == 1000 and not decoded.errors, decoded.errors[:3]
            for label, seconds in TIMES.items():
                per_batch[label].append(seconds * 1000)
            done = len(per_batch["pipeline.ingest total"])
            if args.every and done % args.every == 0:
                window = {label: statistics.median(v[-args.every:]) for label, v in per_batch.items()}
                print(f"after {(args.warm + done) * 1000:>9,} rows: "
                      + ", ".join(f"{label} {ms:.1f}" for label, ms in window.items() if ms >= 0.5), flush=True)
        load = os.getloadavg()[0]
        print(f"{args.backend}, {'native' if args.native else 'OTLP'}, {args.batches} batches after {args.warm}, "
              f"load {load:.2f}; median ms per batch of 1,000:")
        for label, values in per_batch.items():
            print(f"  {label:34s} {statistics.median(values):8.1f}   (min {min(values):.1f})")
        store.close()
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
