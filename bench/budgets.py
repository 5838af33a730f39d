"""Budget enforcement under concurrency: costline's atomic reserve-then-settle vs check-then-record.

    python bench/budgets.py [--threads 16] [--attempts 40] [--history 200000] [--postgres URL]

For each store (DuckDB file; PostgreSQL when a URL is given or COSTLINE_TEST_POSTGRES_URL is set) it runs the same
load in-process, with ``--threads`` threads each making ``--attempts`` guarded "model calls" for ONE user whose
budget is $1.00 a day (gpt-4o, 1,000 input + 1,000 output tokens estimated = $0.0125; the actual output is
200-1,000 tokens), two ways:

- costline: ``BudgetService.check`` (locks the counter, reads spend + holds in one statement, reserves) then
  ``settle`` with the actual usage (records the observation, releases the hold);
- check-then-record (what LiteLLM's pre-call budget check does when reservation is off or skipped): read the
  user's spend with the same query, call if it is under the limit, record the observation afterwards.

It reports calls allowed, the spend recorded, the overshoot past the limit, and the check latency (median and
p95 of the check alone, ms) and throughput. ``--history`` observations of other users are written first into
the same day, so a check's spend query has a realistic table to read.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from costline.catalog.genai import load_genai_catalog  # noqa: E402
from costline.control.budgets import BudgetService  # noqa: E402
from costline.control.check import parse_check  # noqa: E402
from costline.core.budgets import parse_budget, spend_query  # noqa: E402
from costline.core.events import ObservationEvent  # noqa: E402
from costline.core.resolve import PriceBook  # noqa: E402
from costline.core.usage import Usage  # noqa: E402
from costline.ingest.batch import Decoded  # noqa: E402
from costline.ingest.pipeline import Pipeline  # noqa: E402
from costline.store import open_store  # noqa: E402
from costline.store.base import ApiKey, ControlObject, Project, Store  # noqa: E402

LIMIT = Decimal("1.00")
INPUT_PRICE, OUTPUT_PRICE = Decimal("2.5") / 10**6, Decimal(10) / 10**6


def seed(store: Store, pipeline: Pipeline, history: int, now: datetime) -> None:
    store.create_project(Project("bench", "bench", now), ApiKey("bench", f"pk-{uuid.uuid4().hex}", uuid.uuid4().hex,
                                                                 now))
    budget = parse_budget({"id": "user-day", "name": "user-day", "window": "day", "per": "user", "limit": "1.00",
                           "action": "block"})
    store.put_control(ControlObject("bench", "budget", budget.id, budget.to_json(), "bench", now, now))
    batch = 5000
    for start in range(0, history, batch):
        events = [ObservationEvent(id=f"h{i}", trace_id=f"ht{i}", type="generation", model="gpt-4o-mini",
                                   start_time=now - timedelta(minutes=i % 600), user_id=f"other-{i % 5000}",
                                   usage=Usage({"input_tokens": 100, "output_tokens": 50}))
                  for i in range(start, min(history, start + batch))]
        pipeline.ingest("bench", Decoded(observations=events, merge=False), "bench")


def run_costline(service: BudgetService, user: str, threads: int, attempts: int,
                 settles: list[float]) -> tuple[list[float], Decimal, int]:
    latencies: list[float] = []
    spent: list[Decimal] = []
    lock = threading.Lock()

    def worker(seed_: int) -> None:
        rng = random.Random(seed_)
        for _ in range(attempts):
            request = parse_check({"model": "gpt-4o", "user": user,
                                   "usage": {"input_tokens": 1000, "output_tokens": 1000}})
            began = time.perf_counter()
            result = service.check("bench", request)
            took = time.perf_counter() - began
            actual = None
            if result.decision.outcome == "allow":
                assert result.reservation is not None
                output = rng.randrange(200, 1001)
                began = time.perf_counter()
                service.settle("bench", result.reservation.id, usage={"input_tokens": 1000, "output_tokens": output})
                with lock:
                    settles.append(time.perf_counter() - began)
                actual = 1000 * INPUT_PRICE + output * OUTPUT_PRICE
            with lock:
                latencies.append(took)
                if actual is not None:
                    spent.append(actual)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return latencies, sum(spent, Decimal(0)), len(spent)


def run_naive(store: Store, pipeline: Pipeline, user: str, threads: int, attempts: int,
              now: datetime) -> tuple[list[float], Decimal, int]:
    budget = parse_budget({"id": "user-day", "name": "user-day", "window": "day", "per": "user", "limit": "1.00"})
    latencies: list[float] = []
    spent: list[Decimal] = []
    lock = threading.Lock()

    def worker(seed_: int) -> None:
        rng = random.Random(seed_)
        for n in range(attempts):
            began = time.perf_counter()
            row = store.query(spend_query(budget, user, "bench", datetime.now(UTC))).rows[0]
            used = Decimal(row.get("sum_cost") or 0)
            took = time.perf_counter() - began
            actual = None
            if used + Decimal("0.0125") <= LIMIT:
                time.sleep(0.002)  # the model call itself (a real one takes seconds: this is generous to it)
                output = rng.randrange(200, 1001)
                event = ObservationEvent(id=f"n-{seed_}-{n}-{uuid.uuid4().hex[:6]}", trace_id="naive",
                                         type="generation", model="gpt-4o", start_time=datetime.now(UTC),
                                         user_id=user, usage=Usage({"input_tokens": 1000, "output_tokens": output}))
                pipeline.ingest("bench", Decoded(observations=[event], merge=False), "bench")
                actual = 1000 * INPUT_PRICE + output * OUTPUT_PRICE
            with lock:
                latencies.append(took)
                if actual is not None:
                    spent.append(actual)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return latencies, sum(spent, Decimal(0)), len(spent)


def report(label: str, latencies: list[float], spent: Decimal, allowed: int, wall: float,
           settles: list[float] | None = None) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p95 = ordered[int(len(ordered) * 0.95)] * 1000
    overshoot = max(Decimal(0), spent - LIMIT)
    settle = f"  settle p50 {statistics.median(settles) * 1000:6.2f} ms" if settles else ""
    print(f"  {label:<22} allowed {allowed:4d}  spent {spent:>9}  overshoot {overshoot:>8}  "
          f"check p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  {len(latencies) / wall:7.0f} checks/s{settle}", flush=True)


def bench(url: str, args: argparse.Namespace) -> None:
    store = open_store(url)
    records, providers = load_genai_catalog()
    now = datetime.now(UTC)
    pipeline = Pipeline(store, PriceBook(records, providers), lambda: datetime.now(UTC))
    seed(store, pipeline, args.history, now)
    if url.startswith("postgres"):  # as autovacuum would after a load: the planner needs the tables' sizes
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
    service = BudgetService(store, pipeline, lambda: datetime.now(UTC))
    print(f"{url.split(':')[0]}: {args.threads} threads x {args.attempts} attempts, {args.history:,} other "
          "observations today", flush=True)
    began = time.perf_counter()
    settles: list[float] = []
    latencies, spent, allowed = run_costline(service, "alice", args.threads, args.attempts, settles)
    report("costline reserve", latencies, spent, allowed, time.perf_counter() - began, settles)
    began = time.perf_counter()
    latencies, spent, allowed = run_naive(store, pipeline, "bob", args.threads, args.attempts, now)
    report("check-then-record", latencies, spent, allowed, time.perf_counter() - began)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--attempts", type=int, default=40)
    parser.add_argument("--history", type=int, default=200_000)
    parser.add_argument("--postgres", default=os.environ.get("COSTLINE_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"duckdb:///{tmp}/bench.duckdb", args)
    if args.postgres:
        sys.path.insert(0, str(ROOT))
        from tests.server.harness import drop_postgres_schema, fresh_postgres_schema

        schema, url = fresh_postgres_schema(args.postgres)
        try:
            bench(url, args)
        finally:
            drop_postgres_schema(args.postgres, schema)


if __name__ == "__main__":
    main()
