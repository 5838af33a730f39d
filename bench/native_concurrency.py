"""Native batches through the server's pipeline from several threads at once, in process: events/s, the
process's CPU and how long the store's lock is waited for and held per batch.

    python bench/native_concurrency.py [--threads 2] [--batches 100] [--warm 10]

Each thread decodes a ``bench/ingest.py`` native body and calls ``Pipeline.ingest`` (with the server's
listeners) on a DuckDB store in a temporary directory, as the server's event loop and thread pool do without
HTTP. The lock is the store's own, wrapped to time it. Under contention a DuckDB call made under the lock
waits for the GIL between its tasks, so the lock is held much longer than the same write alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import native_bodies  # noqa: E402

STATS: dict[str, float] = defaultdict(float)


class TimedLock:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = 0.0

    def __enter__(self) -> None:
        started = time.perf_counter()
        self.lock.acquire()
        self.taken = time.perf_counter()
        STATS["waited"] += self.taken - started

    def __exit__(self, *exc: object) -> None:
        STATS["held"] += time.perf_counter() - self.taken
        self.lock.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--warm", type=int, default=10)
    args = parser.parse_args()

    from costline.catalog.book import load_price_book
    from costline.ingest.native import decode_native
    from costline.server.app import create_app
    from costline.server.auth import create_project
    from costline.server.body import parse_json
    from costline.settings import Settings
    from costline.store.base import open_store

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({}, data_dir=Path(tmp), store_url=f"duckdb:///{tmp}/store.duckdb")
        store: Any = open_store(settings.resolved_store_url)
        project_id = create_project(store, "bench", datetime.now(UTC)).project.id
        pipe = create_app(settings, store, load_price_book(settings)).state.costline.pipeline
        bodies = native_bodies(args.warm + args.batches)
        for body in bodies[:args.warm]:
            pipe.ingest(project_id, decode_native(parse_json(body)), "native")
        store._lock = TimedLock()
        queue = iter(bodies[args.warm:])
        take = threading.Lock()

        def work() -> None:
            while True:
                with take:
                    body = next(queue, None)
                if body is None:
                    return
                pipe.ingest(project_id, decode_native(parse_json(body)), "native")

        cpu, started = time.process_time(), time.perf_counter()
        threads = [threading.Thread(target=work) for _ in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        per = {k: round(v / args.batches * 1000, 1) for k, v in STATS.items()}
        print(f"{args.threads} threads, {args.batches} batches of 1,000, load {os.getloadavg()[0]:.2f}: "
              f"{args.batches * 1000 / wall:,.0f} events/s, {cpu / wall:.2f} cores; store lock per batch: "
              f"waited {per['waited']} ms, held {per['held']} ms")
        store.close()


if __name__ == "__main__":
    main()
