"""A burst of one-event Langfuse requests, all in flight at once, against a fresh ``costline serve``: what the
Langfuse SDKs send with ``flushAt: 1`` (the npm SDK's setting for serverless functions).

    python bench/burst.py [--pairs 200] [--backend duckdb|postgres|both] [--runs 3] [--sdk]

Per pair four single-event batches: ``trace-create`` with the user, ``generation-create``, ``generation-update``
with model and usage, ``trace-create`` with the session (tests/server/test_concurrent_merge.py). The first
run meets a server that has seen neither the key nor the traces. Reported per run: wall time from the first
request to the last reply, requests/s, reply latency p50 / p99 / max, how many replies took longer than the
SDKs' 5 s request timeout (the npm SDK drops such an event with a warning), the server's CPU seconds, and
whether every pair landed whole. ``--sdk`` sends with the real npm SDK instead (``COSTLINE_TEST_LANGFUSE_JS``
naming a folder with ``node_modules/langfuse``; its own wall time and dropped requests).

To compare trees, run the server from another checkout: ``COSTLINE_BENCH_SRC=/path/to/old/src``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from tests.server.harness import Server, served  # noqa: E402
from tests.server.test_concurrent_merge import JS_APP, pair_requests  # noqa: E402

SDK_TIMEOUT_S = 5.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def burst(server: Server, run: str, pairs: int) -> list[float]:
    """Every request at once, one connection each (as the npm SDK's fetch opens them); reply latencies."""
    bodies = [body for i in range(pairs) for body in pair_requests(run, i)]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=120, limits=limits) as c:

        async def post(body: dict[str, Any]) -> float:
            started = time.perf_counter()
            r = await c.post("/api/public/ingestion", json=body)
            assert r.status_code == 207 and not r.json()["errors"], r.text
            return time.perf_counter() - started

        return list(await asyncio.gather(*(post(b) for b in bodies)))


def sdk_burst(server: Server, run: str, pairs: int, folder: str, tmp: Path) -> tuple[float, str]:
    script = tmp / "app.js"
    script.write_text(JS_APP)
    started = time.perf_counter()
    done = subprocess.run(["node", str(script), server.url, server.public_key, server.secret_key, run, str(pairs)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NODE_PATH": str(Path(folder) / "node_modules")})
    dropped = done.stderr.count("langfuse dropped a request")
    return time.perf_counter() - started, f"{dropped} dropped" if dropped else "none dropped"


def landed(server: Server, run: str, pairs: int) -> int:
    whole = 0
    with server.client() as c:
        for i in range(pairs):
            trace = c.get(f"/api/public/traces/{run}-t{i}").json()
            gens = trace.get("observations") or []
            if trace.get("userId") == f"user-{i}" and trace.get("sessionId") == f"session-{i}" and len(gens) == 1 \
                    and gens[0].get("calculatedTotalCost") is not None:
                whole += 1
    return whole


def bench(backend: str, pairs: int, runs: int, sdk: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        extra = {"PYTHONPATH": os.environ["COSTLINE_BENCH_SRC"]} if os.environ.get("COSTLINE_BENCH_SRC") else {}
        with served(backend, tmp, extra) as server:
            assert server.process is not None
            for k in range(runs):
                run = uuid.uuid4().hex[:8]
                cpu = cpu_seconds(server.process.pid)
                if sdk:
                    wall, note = sdk_burst(server, run, pairs, sdk, tmp)
                    cpu = cpu_seconds(server.process.pid) - cpu
                    print(f"{backend} run {k + 1} (npm SDK): {4 * pairs} requests in {wall:.2f} s, {note}; "
                          f"server CPU {cpu:.2f} s; {landed(server, run, pairs)}/{pairs} pairs whole")
                    continue
                started = time.perf_counter()
                latencies = asyncio.run(burst(server, run, pairs))
                wall = time.perf_counter() - started
                cpu = cpu_seconds(server.process.pid) - cpu
                q = statistics.quantiles(latencies, n=100)
                late = sum(s > SDK_TIMEOUT_S for s in latencies)
                n = len(latencies)
                print(f"{backend} run {k + 1}: {n} requests in {wall:.2f} s ({n / wall:.0f}/s); latency p50 "
                      f"{q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
                      f"{late} past {SDK_TIMEOUT_S:.0f} s; server CPU {cpu:.2f} s; "
                      f"{landed(server, run, pairs)}/{pairs} pairs whole")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--backend", choices=["duckdb", "postgres", "both"], default="duckdb")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sdk", action="store_true", help="send with the npm Langfuse SDK (node)")
    args = parser.parse_args()
    sdk = os.environ.get("COSTLINE_TEST_LANGFUSE_JS") if args.sdk else None
    if args.sdk and not sdk:
        parser.error("--sdk needs COSTLINE_TEST_LANGFUSE_JS naming a folder with node_modules/langfuse")
    print(f"load {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    for backend in (["duckdb", "postgres"] if args.backend == "both" else [args.backend]):
        bench(backend, args.pairs, args.runs, sdk)


if __name__ == "__main__":
    main()
