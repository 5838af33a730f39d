"""Time the dashboard's questions through costline's query model on a large generated store.

    python bench/query.py [--duckdb-events 10000000] [--postgres-events 2000000] [--backend duckdb|postgres|both]
                          [--rounds 5] [--keep DIR]

"costline" answers through the hourly rollups where the question allows it (store/rollup_sql.py: sums per hour,
per trace and hour, per metadata key value and hour; the first query by a metadata key registers it), "raw only"
is the same store with ``use_rollups = False``; "same rows" compares the two answers.

Data: N generations over 30 days (2026-10-01 .. 2026-10-31 UTC), four per trace (32-hex trace ids and 16-hex
observation ids, as OpenTelemetry and Langfuse send them), 20 models of 5 providers,
10,000 users and sessions set on the *trace rows* (observations carry no user: attribution goes through the
trace, as with the Langfuse SDK), a `feature` metadata key with 30 values, one tag each, 2 % unpriced. Rows
are generated inside the database with SQL (``range``/``generate_series``) into the schema costline's
migrations create, so generation takes about a minute instead of the hours HTTP ingestion would.

Questions (each through ``Store.query`` exactly as ``/v1/metrics`` runs it), with "plain SQL" beside each:
the statement one would write by hand on the same tables (time zone conversion per row, the join on traces),
run on the same connection so the ratio shows what costline's compilation wins or loses:

1. cost by day x model over 30 days, days in Europe/Berlin
2. top 10 users by cost
3. p95 cost per trace
4. cost by one metadata key (feature)

Each is run ``--rounds`` times after one warm-up; the median is reported. DuckDB runs with costline's
default memory limit (1 GB) and all cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from costline.core.query import parse_query  # noqa: E402
from costline.store import open_store  # noqa: E402
from costline.store.base import Store  # noqa: E402

NOW = datetime(2026, 11, 1, tzinfo=UTC)
RANGE = {"from": "2026-10-01T00:00:00Z", "to": "2026-10-31T00:00:00Z"}
QUESTIONS: dict[str, dict[str, Any]] = {
    "cost by day x model (30 days, Europe/Berlin)": {
        **RANGE, "granularity": "day", "timezone": "Europe/Berlin", "dimensions": ["model"],
        "metrics": ["sum:cost", "count"], "limit": 10_000},
    "top 10 users by cost": {**RANGE, "dimensions": ["user"], "metrics": ["sum:cost"], "limit": 10},
    "p95 cost per trace": {**RANGE, "view": "traces", "metrics": ["p95:cost"]},
    "cost by metadata.feature": {**RANGE, "dimensions": ["metadata.feature"], "metrics": ["sum:cost"]},
}
WHERE = "o.project_id = 'p1' AND o.start_time >= '2026-10-01 00:00:00+00' AND o.start_time < '2026-10-31 00:00:00+00'"
JOIN = "LEFT JOIN traces t ON t.project_id = o.project_id AND t.id = o.trace_id"
PLAIN_SQL: dict[str, dict[str, str]] = {
    "duckdb": {
        "cost by day x model (30 days, Europe/Berlin)":
            "SELECT CAST(date_trunc('day', o.start_time AT TIME ZONE 'Europe/Berlin') AS VARCHAR), o.model, "
            f"sum(o.total_cost), count(*) FROM observations o WHERE {WHERE} GROUP BY 1, 2",
        "top 10 users by cost": f"SELECT COALESCE(t.user_id, o.user_id) u, sum(o.total_cost) c FROM observations o "
                                f"{JOIN} WHERE {WHERE} GROUP BY 1 ORDER BY c DESC NULLS LAST LIMIT 10",
        "p95 cost per trace": "SELECT quantile_disc(c, 0.95) FROM (SELECT o.trace_id, sum(o.total_cost) c "
                              f"FROM observations o WHERE {WHERE} GROUP BY 1)",
        "cost by metadata.feature": "SELECT COALESCE(o.metadata->>'$.feature', t.metadata->>'$.feature'), "
                                    f"sum(o.total_cost) FROM observations o {JOIN} WHERE {WHERE} GROUP BY 1",
    },
    "postgres": {
        "cost by day x model (30 days, Europe/Berlin)":
            "SELECT date_trunc('day', o.start_time AT TIME ZONE 'Europe/Berlin')::text, o.model, "
            f"sum(o.total_cost), count(*) FROM observations o WHERE {WHERE} GROUP BY 1, 2",
        "top 10 users by cost": f"SELECT COALESCE(t.user_id, o.user_id) u, sum(o.total_cost) c FROM observations o "
                                f"{JOIN} WHERE {WHERE} GROUP BY 1 ORDER BY c DESC NULLS LAST LIMIT 10",
        "p95 cost per trace": "SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY c) FROM (SELECT o.trace_id, "
                              f"sum(o.total_cost) c FROM observations o WHERE {WHERE} GROUP BY 1) x",
        "cost by metadata.feature": "SELECT COALESCE(o.metadata->>'feature', t.metadata->>'feature'), "
                                    f"sum(o.total_cost) FROM observations o {JOIN} WHERE {WHERE} GROUP BY 1",
    },
}

# the generated rows, written once per dialect: {n} events, 30 days, 4 observations per trace
_SPAN_US = 30 * 86_400 * 1_000_000
DUCKDB_OBSERVATIONS = """
INSERT INTO observations (project_id, id, trace_id, type, name, start_time, end_time, model, resolved_model,
    provider, usage, cost, total_cost, currency, pricing_status, tags, metadata, environment, level)
SELECT 'p1', left(md5('o' || i), 16), md5('t' || (i // 4)), 'generation', 'step' || (i % 5),
    TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_microseconds(CAST(i::HUGEINT * {span} // {n} AS BIGINT)),
    TIMESTAMPTZ '2026-10-01 00:00:01+00' + to_microseconds(CAST(i::HUGEINT * {span} // {n} AS BIGINT)),
    'model-' || (hash(i) % 20), 'model-' || (hash(i) % 20), 'provider-' || (hash(i) % 20 % 5),
    '{{"input_tokens":' || (hash(i) % 5000) || ',"output_tokens":' || (hash(i * 7) % 800) || '}}',
    '{{"input_tokens":"' || CAST((hash(i) % 5000) * 0.0000025 AS DECIMAL(38, 12)) || '","output_tokens":"'
        || CAST((hash(i * 7) % 800) * 0.00001 AS DECIMAL(38, 12)) || '"}}',
    CASE WHEN hash(i) % 50 = 0 THEN NULL
         ELSE CAST((hash(i) % 5000) * 0.0000025 + (hash(i * 7) % 800) * 0.00001 AS DECIMAL(38, 12)) END,
    'USD', CASE WHEN hash(i) % 50 = 0 THEN 'unpriced' ELSE 'priced' END,
    ['tag-' || (hash(i) % 7)], '{{"feature":"f' || (hash(i * 3) % 30) || '"}}', 'production', 'DEFAULT'
FROM range({n}) r(i)
"""
DUCKDB_TRACES = """
INSERT INTO traces (project_id, id, timestamp, name, user_id, session_id, tags, metadata, environment, public)
SELECT 'p1', md5('t' || j), TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_microseconds(CAST(j::HUGEINT * 4 * {span} // {n}
    AS BIGINT)), 'trace-' || (j % 10), 'user-' || (hash(j) % 10000), 'session-' || (j // 3), [], '{{}}',
    'production', false
FROM range({n} // 4) r(j)
"""
POSTGRES_OBSERVATIONS = """
INSERT INTO observations (project_id, id, trace_id, type, name, start_time, end_time, model, resolved_model,
    provider, usage, cost, total_cost, currency, pricing_status, tags, metadata, environment, level)
SELECT 'p1', left(md5('o' || i), 16), md5('t' || (i / 4)), 'generation', 'step' || (i % 5),
    TIMESTAMPTZ '2026-10-01 00:00:00+00' + make_interval(secs => (i::numeric * {span} / {n}) / 1000000),
    TIMESTAMPTZ '2026-10-01 00:00:01+00' + make_interval(secs => (i::numeric * {span} / {n}) / 1000000),
    'model-' || h % 20, 'model-' || h % 20, 'provider-' || h % 20 % 5,
    jsonb_build_object('input_tokens', h % 5000, 'output_tokens', h7 % 800),
    jsonb_build_object('input_tokens', ((h % 5000) * 0.0000025)::numeric(38, 12)::text,
                       'output_tokens', ((h7 % 800) * 0.00001)::numeric(38, 12)::text),
    CASE WHEN h % 50 = 0 THEN NULL ELSE ((h % 5000) * 0.0000025 + (h7 % 800) * 0.00001)::numeric(38, 12) END,
    'USD', CASE WHEN h % 50 = 0 THEN 'unpriced' ELSE 'priced' END,
    ARRAY['tag-' || h % 7], jsonb_build_object('feature', 'f' || h3 % 30), 'production', 'DEFAULT'
FROM (SELECT i, abs(hashint8(i)) AS h, abs(hashint8(i * 7)) AS h7, abs(hashint8(i * 3)) AS h3
      FROM generate_series(0, {n} - 1) i) g
"""
POSTGRES_TRACES = """
INSERT INTO traces (project_id, id, timestamp, name, user_id, session_id, tags, metadata, environment, public)
SELECT 'p1', md5('t' || j), TIMESTAMPTZ '2026-10-01 00:00:00+00' + make_interval(secs => (j::numeric * 4 * {span} / {n})
    / 1000000), 'trace-' || (j % 10), 'user-' || abs(hashint8(j)) % 10000, 'session-' || (j / 3), '{{}}', '{{}}',
    'production', false
FROM generate_series(0, {n} / 4 - 1) j
"""
#: the hours of rows written behind costline's back are marked dirty, as a write through the store would
DUCKDB_DIRTY = ("INSERT INTO rollup_dirty SELECT DISTINCT project_id, to_timestamp((epoch_us(start_time) // "
                "3600000000) * 3600) FROM observations")
POSTGRES_DIRTY = ("INSERT INTO rollup_dirty SELECT DISTINCT project_id, date_trunc('hour', start_time AT TIME ZONE "
                  "'UTC') AT TIME ZONE 'UTC' FROM observations")


def timed(run: Callable[[], object], rounds: int) -> float:
    run()  # warm-up
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def generate_duckdb(path: Path, n: int) -> None:
    import duckdb

    open_store(f"duckdb:///{path}").close()  # the schema, through costline's migrations
    conn = duckdb.connect(str(path), config={"memory_limit": "8GB"})
    start = time.perf_counter()
    conn.execute(DUCKDB_OBSERVATIONS.format(n=n, span=_SPAN_US))
    conn.execute(DUCKDB_TRACES.format(n=n, span=_SPAN_US))
    conn.execute(DUCKDB_DIRTY)  # rows written behind costline's back: their hours are marked for the rollup
    conn.execute("CHECKPOINT")
    conn.close()
    size = path.stat().st_size / 2**20
    print(f"  generated {n:,} observations in {time.perf_counter() - start:.0f} s ({size:.0f} MiB)")


def generate_postgres(url: str, n: int) -> None:
    import psycopg

    open_store(url).close()
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(POSTGRES_OBSERVATIONS.format(n=n, span=_SPAN_US))  # type: ignore[arg-type]
        conn.execute(POSTGRES_TRACES.format(n=n, span=_SPAN_US))  # type: ignore[arg-type]
        conn.execute(POSTGRES_DIRTY)
        conn.execute("VACUUM ANALYZE observations")
        conn.execute("VACUUM ANALYZE traces")
    print(f"  generated {n:,} observations in {time.perf_counter() - start:.0f} s")


def run_questions(store: Store, plain: Callable[[str], object], dialect: str, rounds: int) -> None:
    first = parse_query(QUESTIONS["cost by day x model (30 days, Europe/Berlin)"], now=NOW, project_id="p1")
    began = time.perf_counter()
    store.query(first)  # the first rollup query recomputes every dirty hour (all of them, after generation)
    print(f"  first query (rolls up the dirty hours): {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    store.query(parse_query(QUESTIONS["cost by metadata.feature"], now=NOW, project_id="p1"))
    print(f"  first metadata.feature query (registers the key, rolls it up for every hour): "
          f"{time.perf_counter() - began:.1f} s")
    print(f"  {'question':46s} {'costline':>10s} {'raw only':>10s} {'plain SQL':>10s} {'same rows':>9s}")
    for name, raw in QUESTIONS.items():
        query = parse_query(raw, now=NOW, project_id="p1")
        ours = timed(lambda q=query: store.query(q), rounds)  # type: ignore[misc]
        store.use_rollups = False  # type: ignore[attr-defined]
        try:
            raw_only = timed(lambda q=query: store.query(q), rounds)  # type: ignore[misc]
            same = store.query(query).rows
        finally:
            store.use_rollups = True  # type: ignore[attr-defined]
        same_rows = store.query(query).rows == same
        theirs = timed(lambda s=PLAIN_SQL[dialect][name]: plain(s), rounds)  # type: ignore[misc]
        print(f"  {name:46s} {ours * 1000:8.0f} ms {raw_only * 1000:7.0f} ms {theirs * 1000:7.0f} ms "
              f"{'yes' if same_rows else 'NO':>9s}")


def bench_duckdb(n: int, rounds: int, keep: Path | None) -> None:
    folder = keep or Path(tempfile.mkdtemp(prefix="costline-bench-"))
    path = folder / f"query-{n}.duckdb"
    print(f"DuckDB, {n:,} observations ({path})")
    if not path.exists():
        generate_duckdb(path, n)
    store = open_store(f"duckdb:///{path}")
    conn = store._conn  # type: ignore[attr-defined]  # the store's own connection: same settings and cache
    try:
        run_questions(store, lambda sql: conn.execute(sql).fetchall(), "duckdb", rounds)
    finally:
        store.close()
        if keep is None:
            path.unlink()


def bench_postgres(n: int, rounds: int) -> None:
    import psycopg

    sys.path.insert(0, str(ROOT))
    from tests.server.harness import drop_postgres_schema, fresh_postgres_schema, postgres_url

    base = postgres_url()
    if not base:
        print("PostgreSQL: skipped (set COSTLINE_TEST_POSTGRES_URL)")
        return
    schema, url = fresh_postgres_schema(base)
    print(f"PostgreSQL, {n:,} observations (schema {schema})")
    try:
        generate_postgres(url, n)
        store = open_store(url)
        with psycopg.connect(url) as conn:
            run_questions(store, lambda sql: conn.execute(sql).fetchall(), "postgres", rounds)  # type: ignore[arg-type]
        store.close()
    finally:
        drop_postgres_schema(base, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duckdb-events", type=int, default=10_000_000)
    parser.add_argument("--postgres-events", type=int, default=2_000_000)
    parser.add_argument("--backend", choices=("duckdb", "postgres", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the generated DuckDB file in this folder")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    if args.backend in ("duckdb", "both"):
        bench_duckdb(args.duckdb_events, args.rounds, args.keep)
    if args.backend in ("postgres", "both"):
        bench_postgres(args.postgres_events, args.rounds)


if __name__ == "__main__":
    main()
