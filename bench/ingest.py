"""Drive a running ``costline serve`` over real HTTP and report sustained events/s and the server's memory.

    python bench/ingest.py [--events 200000] [--backend duckdb|postgres|both] [--clients 2] [--native-only]
                           [--ceiling | --no-ceiling]

For each backend it starts ``costline serve`` on a free loopback port (DuckDB file in a temporary
directory, or a fresh schema in ``COSTLINE_TEST_POSTGRES_URL``), then sends (1) native ``/v1/ingest``
batches of 1,000 generations and (2) OTLP protobuf batches of 1,000 GenAI spans, from ``--clients``
concurrent connections. Bodies are built before the clock starts, and ``WARM`` native batches go first (the
server's worker processes start with the first large batch: COSTLINE_INGEST_WORKERS, 0 to compare without).
Events/s = events acknowledged / wall time; RSS is the server's process and its worker processes summed,
sampled from /proc every 0.2 s (peak = the highest sample, or the server's VmHWM when it has no workers).

The ceiling (DuckDB runs, unless ``--no-ceiling``): the least a server could do with the same native bodies
on this machine, served the same way (one uvicorn process, the body parsed on the event loop, the write in
a thread under one lock): parse with orjson, append the events to a DuckDB table (no key, no index) through
an Arrow table, reply with the count. Nothing is validated, priced or indexed. costline's native
throughput is reported as a share of it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from tests.server.harness import (  # noqa: E402 - the same harness the tests use
    drop_postgres_schema,
    make_server,
    postgres_url,
)

BATCH = 1000
MODELS = [("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic"),
          ("gemini-2.5-flash", "google"), ("o3", "openai")]


def native_bodies(n_batches: int) -> list[bytes]:
    bodies = []
    for b in range(n_batches):
        events = []
        for i in range(BATCH):
            model, provider = MODELS[i % len(MODELS)]
            events.append({
                "id": uuid.uuid4().hex, "trace_id": f"t{b}-{i // 10}", "model": model, "provider": provider,
                "start_time": "2026-11-01T12:00:00Z", "user_id": f"user-{i % 97}", "session_id": f"s-{i % 31}",
                "usage": {"input_tokens": 1000 + i, "cache_read_tokens": i % 500, "output_tokens": 100 + i % 50},
                "metadata": {"feature": "chat"},
            })
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def otlp_bodies(n_batches: int, split: bool = False) -> list[bytes]:
    """``n_batches`` exports of ``BATCH`` GenAI spans, each span its own trace; with ``split``, traces of 4 spans
    whose spans arrive in 4 consecutive exports (the root first), ``user.id`` on every span as the Langfuse SDK's
    propagated attributes put it: from the second export on, 3 in 4 of an export's traces are stored already."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def kv(key: str, value: object) -> KeyValue:
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=str(value)))

    def key(text: str, size: int) -> bytes:
        return hashlib.blake2b(text.encode(), digest_size=size).digest()

    bodies = []
    t0 = 1_761_998_400_000_000_000
    for b in range(n_batches):
        req = ExportTraceServiceRequest()
        scope = req.resource_spans.add().scope_spans.add()
        scope.scope.name = "opentelemetry.instrumentation.openai"
        for i in range(BATCH):
            model, provider = MODELS[i % len(MODELS)]
            span = scope.spans.add()
            if split:  # span k (= i % 4) of trace (b - k, i // 4)
                trace = f"{b - i % 4}-{i // 4}"
                span.trace_id, span.span_id = key(trace, 16), key(f"{trace}-{i % 4}", 8)
                if i % 4:
                    span.parent_span_id = key(f"{trace}-0", 8)
            else:
                span.trace_id = os.urandom(16)
                span.span_id = os.urandom(8)
            span.name = f"chat {model}"
            span.kind = 3
            span.start_time_unix_nano = t0 + i
            span.end_time_unix_nano = t0 + i + 1_500_000_000
            span.attributes.extend([
                kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", provider),
                kv("gen_ai.request.model", model), kv("gen_ai.usage.input_tokens", 1000 + i),
                kv("gen_ai.usage.cache_read.input_tokens", i % 500), kv("gen_ai.usage.output_tokens", 100),
                kv("user.id", f"user-{(i // 4 if split else i) % 97}"),  # split: one user per trace
            ])
        bodies.append(req.SerializeToString())
    return bodies


class RssSampler:
    """RSS of the server's process and its worker processes (server/ingest_workers.py), summed."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self) -> list[int]:
        pids = [self.pid]
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    stat = (proc / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.pid and \
                        b"spawn_main" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
        return pids

    def _read(self, field: str) -> int:
        total = 0
        for pid in self._pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.samples.append(self._read("VmRSS"))
            except OSError:
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self) -> int:
        """The most the processes held at once: the highest summed sample, or the server's own high-water mark
        (the workers' are summed only when they ran: a sum of high-water marks over-counts)."""
        return max([*self.samples, self._read("VmHWM") if len(self._pids()) == 1 else 0])


def drive(url: str, path: str, bodies: list[bytes], headers: dict[str, str], clients: int) -> float:
    def send(body: bytes, client: httpx.Client) -> None:
        r = client.post(path, content=body, headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")

    local = threading.local()

    def client_for() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=120)
        c: httpx.Client = local.client
        return c

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda b: send(b, client_for()), bodies))
    return time.perf_counter() - start


def ceiling_app(db_path: str) -> Callable[..., Any]:
    """The ceiling server (an ASGI app): orjson, one Arrow table per body, a plain append, the count back."""
    import asyncio

    import duckdb
    import pyarrow as pa

    conn = duckdb.connect(db_path, config={"memory_limit": "1GB"})
    lock = threading.Lock()
    created = False

    def append(events: list[dict[str, Any]]) -> None:
        nonlocal created
        batch = pa.Table.from_pylist(events)
        with lock:
            conn.register("batch", batch)
            try:
                if not created:
                    conn.execute("CREATE TABLE events AS SELECT * FROM batch LIMIT 0")
                    created = True
                conn.execute("BEGIN TRANSACTION")
                conn.execute("INSERT INTO events SELECT * FROM batch")
                conn.execute("COMMIT")
            finally:
                conn.unregister("batch")

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        events = orjson.loads(b"".join(chunks))["events"]
        if events:
            await asyncio.to_thread(append, events)
        reply = orjson.dumps({"accepted": len(events)})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": reply})

    return app


def serve_ceiling(port: int, db_path: str) -> None:
    import uvicorn

    uvicorn.run(ceiling_app(db_path), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def run_ceiling(events: int, clients: int, report: Callable[[str], None]) -> float:
    """Start the ceiling server in its own process, send it the native bodies, return its events/s."""
    import socket
    import subprocess

    tmp = Path(tempfile.mkdtemp(prefix="costline-bench-ceiling-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--serve-ceiling", str(port), str(tmp / "ceiling.duckdb")])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url, content=b'{"events": []}', timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the ceiling server did not start") from None
                time.sleep(0.1)
        n = max(1, events // BATCH)
        bodies = native_bodies(n)
        with RssSampler(proc.pid) as rss:
            seconds = drive(url, "/", bodies, {"Content-Type": "application/json"}, clients)
            peak = rss.peak()
        rate = n * BATCH / seconds
        report(f"ceiling   native {n * BATCH:>9,} events in {seconds:6.1f} s = {rate:>8,.0f}/s   (orjson + Arrow "
               f"append to DuckDB, nothing else; RSS peak {peak / 1024 / 1024:.0f} MiB)")
        return rate
    finally:
        proc.terminate()
        proc.wait(timeout=30)


#: batches sent before the timed ones, then a pause for the worker processes to come up
WARM = 10
WARM_PAUSE = 3.0


def run_backend(backend: str, events: int, clients: int, report: Callable[[str], None],
                native_only: bool = False, split: bool = False) -> float:
    tmp = Path(tempfile.mkdtemp(prefix=f"costline-bench-{backend}-"))
    server, schema = make_server(backend, tmp)
    server.start()
    assert server.process is not None
    auth = "Basic " + base64.b64encode(f"{server.public_key}:{server.secret_key}".encode()).decode()
    n = max(1, events // BATCH)
    try:
        with RssSampler(server.process.pid) as rss:
            start_rss = rss._read("VmRSS")
            # a few batches before the clock: the server's worker processes start with the first large one
            drive(server.url, "/v1/ingest", native_bodies(WARM), {"Authorization": auth,
                                                                  "Content-Type": "application/json"}, clients)
            time.sleep(WARM_PAUSE)
            bodies = native_bodies(n)
            native_s = drive(server.url, "/v1/ingest", bodies, {"Authorization": auth,
                                                               "Content-Type": "application/json"}, clients)
            del bodies
            mid_rss = rss._read("VmRSS")
            otlp_s = 0.0
            if not native_only:
                bodies = otlp_bodies(n, split)
                otlp_s = drive(server.url, "/v1/traces", bodies, {"Authorization": auth,
                                                                  "Content-Type": "application/x-protobuf"}, clients)
            end_rss = rss._read("VmRSS")
            peak = rss.peak()
        mib = 1024 * 1024
        shape = " (split)" if split else ""
        otlp = (f"OTLP protobuf{shape} {n * BATCH:>9,} spans in {otlp_s:6.1f} s = {n * BATCH / otlp_s:>8,.0f}/s   "
                if otlp_s else "")
        report(f"{backend:<9} native {n * BATCH:>9,} events in {native_s:6.1f} s = {n * BATCH / native_s:>8,.0f}/s   "
               f"{otlp}RSS start {start_rss / mib:.0f} MiB, after native {mid_rss / mib:.0f}, "
               + ("" if native_only else f"after OTLP {end_rss / mib:.0f}, ") + f"peak {peak / mib:.0f} MiB")
        return n * BATCH / native_s
    finally:
        server.stop()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-ceiling":  # the ceiling server's own process
        serve_ceiling(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backend", choices=["duckdb", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--native-only", action="store_true", help="skip the OTLP run")
    parser.add_argument("--otlp-split", action="store_true",
                        help="OTLP traces of 4 spans spread over 4 consecutive exports (see otlp_bodies)")
    parser.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=True,
                        help="time the ceiling server too (DuckDB runs; default on)")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"batches of {BATCH}, {args.clients} concurrent clients, {os.cpu_count()} cores, "
          f"python {sys.version.split()[0]}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    backends = ["duckdb", "postgres"] if args.backend == "both" else [args.backend]
    ceiling = run_ceiling(args.events, args.clients, print) if args.ceiling and "duckdb" in backends else None
    for backend in backends:
        rate = run_backend(backend, args.events, args.clients, print, args.native_only, args.otlp_split)
        if ceiling:
            print(f"{backend:<9} native = {100 * rate / ceiling:.0f} % of the ceiling")


if __name__ == "__main__":
    main()
