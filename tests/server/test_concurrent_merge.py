"""Nothing acknowledged is lost by concurrency: Langfuse creates and partial updates of one id, each sent in its
own request and all in flight together, end as one row holding every field any of them sent.

Per pair ``i`` four requests go out at once (as the npm ``langfuse`` SDK with ``flushAt: 1`` sends them):
``trace-create`` with ``userId``; ``trace-create`` with ``sessionId``, tags and metadata; ``generation-create``
with the trace, start time, name and metadata; ``generation-update`` with model, usage, end time and more
metadata. Afterwards every field is there and the generation is priced from the merged model + usage.
Run over DuckDB, PostgreSQL, and two servers sharing one PostgreSQL database (requests alternating).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server.harness import Server, drop_postgres_schema, free_port, make_server, postgres_url

PAIRS = 200
WORKERS = 32
T0 = "2026-11-01T12:00:00.000Z"
T_END = "2026-11-01T12:00:03.000Z"
# gpt-4o-mini list price (OpenAI, and the bundled catalog): $0.15 per 1M input tokens, $0.60 per 1M output
INPUT_PER_TOKEN = D("0.15") / 1_000_000
OUTPUT_PER_TOKEN = D("0.60") / 1_000_000


def envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "type": kind, "timestamp": T0, "body": body}


def pair_requests(run: str, i: int) -> list[dict[str, Any]]:
    """The four single-event batches of pair ``i``."""
    trace_id, gen_id = f"{run}-t{i}", f"{run}-g{i}"
    return [
        {"batch": [envelope("trace-create", {"id": trace_id, "userId": f"user-{i}", "timestamp": T0})]},
        {"batch": [envelope("trace-create", {"id": trace_id, "sessionId": f"session-{i}", "tags": ["a", f"t{i}"],
                                             "metadata": {"from": "second", "i": i}})]},
        {"batch": [envelope("generation-create", {"id": gen_id, "traceId": trace_id, "name": "llm",
                                                  "startTime": T0, "metadata": {"created": True}})]},
        {"batch": [envelope("generation-update", {"id": gen_id, "traceId": trace_id, "model": "gpt-4o-mini",
                                                  "endTime": T_END, "metadata": {"updated": i},
                                                  "usageDetails": {"input": 1000 + i, "output": 100 + i}})]},
    ]


def expected_cost(i: int) -> D:
    return (1000 + i) * INPUT_PER_TOKEN + (100 + i) * OUTPUT_PER_TOKEN


def lost_fields(trace: dict[str, Any], i: int) -> list[str]:
    """The fields of pair ``i`` missing or wrong in its ``GET /api/public/traces/{id}`` reply."""
    lost = []
    if trace.get("userId") != f"user-{i}":
        lost.append("userId")
    if trace.get("sessionId") != f"session-{i}":
        lost.append("sessionId")
    if sorted(trace.get("tags") or []) != sorted(["a", f"t{i}"]):
        lost.append("tags")
    if trace.get("metadata") != {"from": "second", "i": i}:
        lost.append("trace.metadata")
    gens = trace.get("observations") or []
    if len(gens) != 1:
        return [*lost, f"{len(gens)} observations"]
    gen = gens[0]
    if gen["model"] != "gpt-4o-mini":
        lost.append("model")
    if gen["usageDetails"] != {"input": 1000 + i, "output": 100 + i, "total": 1100 + 2 * i}:
        lost.append("usage")
    if not (gen["endTime"] or "").startswith("2026-11-01T12:00:03"):
        lost.append("endTime")
    if gen["name"] != "llm" or not (gen["startTime"] or "").startswith("2026-11-01T12:00:00"):
        lost.append("name/startTime")
    if gen["metadata"] != {"created": True, "updated": i}:
        lost.append("observation.metadata")
    if gen["calculatedTotalCost"] is None or D(str(gen["calculatedTotalCost"])) != expected_cost(i):
        lost.append("cost")
    return lost


def send_concurrently(urls: list[str], headers: dict[str, str], run: str) -> None:
    """Every request of every pair from ``WORKERS`` threads, a pair's four in flight together; request ``k``
    goes to ``urls[k % len(urls)]``. Each reply must be a 207 without errors."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def client(url: str) -> httpx.Client:
        mine: dict[str, httpx.Client] = local.__dict__.setdefault("clients", {})
        if url not in mine:
            # a fresh connection per request: a kept-alive one idle past uvicorn's 5 s keep-alive timeout on
            # a loaded machine may be closed by the server just as the next request goes out (connection reset)
            mine[url] = httpx.Client(base_url=url, headers=headers, timeout=60,
                                     limits=httpx.Limits(max_keepalive_connections=0))
            with lock:
                clients.append(mine[url])
        return mine[url]

    def post(k: int, body: dict[str, Any]) -> None:
        r = client(urls[k % len(urls)]).post("/api/public/ingestion", json=body)
        assert r.status_code == 207, r.text
        assert r.json()["errors"] == [], r.text

    jobs = [body for i in range(PAIRS) for body in pair_requests(run, i)]
    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            for future in [pool.submit(post, k, body) for k, body in enumerate(jobs)]:
                future.result()
    finally:
        for c in clients:
            c.close()


def check_all(server: Server, run: str) -> None:
    losses: dict[int, list[str]] = {}
    with server.client() as c:
        for i in range(PAIRS):
            r = c.get(f"/api/public/traces/{run}-t{i}")
            assert r.status_code == 200, r.text
            lost = lost_fields(r.json(), i)
            if lost:
                losses[i] = lost
    sample = dict(list(losses.items())[:5])
    assert not losses, f"{len(losses)}/{PAIRS} pairs lost fields, e.g. {sample}"


def test_concurrent_creates_and_updates_lose_nothing(fresh_server: Server) -> None:
    run = uuid.uuid4().hex[:8]
    send_concurrently([fresh_server.url], fresh_server.headers, run)
    check_all(fresh_server, run)


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two ``costline serve`` processes on one PostgreSQL schema."""
    (tmp_path / "one").mkdir()
    first, schema = make_server("postgres", tmp_path / "one")
    second = Server(url=f"http://127.0.0.1:{free_port()}", store_url=first.store_url, data_dir=tmp_path / "two",
                    public_key=first.public_key, secret_key=first.secret_key, project_id=first.project_id,
                    env={**first.env, "COSTLINE_DATA_DIR": str(tmp_path / "two")})
    second.data_dir.mkdir()
    stops: list[Callable[[], None]] = []
    try:
        for srv in (first, second):
            srv.start()
            stops.append(srv.stop)
        yield first, second
    finally:
        for stop in stops:
            stop()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)


def test_two_servers_on_one_postgres_lose_nothing(two_servers: tuple[Server, Server]) -> None:
    first, second = two_servers
    run = uuid.uuid4().hex[:8]
    # request k goes to server k % 2: each pair's two trace-creates, and its create and update, are split
    send_concurrently([first.url, second.url, second.url, first.url], first.headers, run)
    check_all(first, run)


JS_ENV = "COSTLINE_TEST_LANGFUSE_JS"
JS_APP = """
const { Langfuse } = require("langfuse");
const [baseUrl, publicKey, secretKey, run, pairs] = process.argv.slice(2);
// flushAt: 1 sends every event in its own request, without waiting for the one before
const langfuse = new Langfuse({ publicKey, secretKey, baseUrl, flushAt: 1, fetchRetryCount: 0 });
langfuse.on("error", (error) => { console.error("langfuse error", error); process.exitCode = 1; });
// a request the SDK gave up on (its 5 s timeout, a refused connection, an error in the 207) is only a warning
// to it: the event is dropped. Here it fails the run
langfuse.on("warning", (warning) => {
  console.error("langfuse dropped a request:", String(warning), warning && warning.error ? String(warning.error) : "");
  process.exitCode = 1;
});
(async () => {
  for (let i = 0; i < Number(pairs); i++) {
    const trace = langfuse.trace({ id: `${run}-t${i}`, name: "chat", userId: `user-${i}` });
    const generation = trace.generation({ id: `${run}-g${i}`, name: "llm", model: "gpt-4o-mini",
                                          startTime: new Date("2026-11-01T12:00:00Z") });
    generation.end({ usage: { input: 1000 + i, output: 100 + i }, endTime: new Date("2026-11-01T12:00:03Z") });
    trace.update({ sessionId: `session-${i}` });
  }
  await langfuse.shutdownAsync();
})();
"""


def test_langfuse_js_sdk_with_flush_at_1_loses_nothing(fresh_server: Server, tmp_path: Path) -> None:
    """The unmodified npm ``langfuse`` (v3) SDK with ``flushAt: 1`` and its defaults (a 5 s request timeout, no
    retry here): trace, generation, generation end with usage and trace update go out as four parallel
    requests per pair, all 800 at once. None may time out: the SDK drops such an event with only a warning."""
    folder = os.environ.get(JS_ENV)
    if not folder or shutil.which("node") is None:
        pytest.skip(f"needs node and {JS_ENV} naming a folder with node_modules/langfuse (npm install langfuse@3)")
    script = tmp_path / "app.js"
    script.write_text(JS_APP)
    run = uuid.uuid4().hex[:8]
    done = subprocess.run(
        ["node", str(script), fresh_server.url, fresh_server.public_key, fresh_server.secret_key, run, str(PAIRS)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "NODE_PATH": str(Path(folder) / "node_modules")},
    )
    assert done.returncode == 0, done.stderr
    losses: dict[int, list[str]] = {}
    with fresh_server.client() as c:
        for i in range(PAIRS):
            trace = c.get(f"/api/public/traces/{run}-t{i}").json()
            lost = [name for name, ok in (("userId", trace.get("userId") == f"user-{i}"),
                                          ("sessionId", trace.get("sessionId") == f"session-{i}")) if not ok]
            gens = trace.get("observations") or [{}]
            gen = gens[0]
            if gen.get("model") != "gpt-4o-mini":
                lost.append("model")
            if gen.get("usageDetails") != {"input": 1000 + i, "output": 100 + i, "total": 1100 + 2 * i}:
                lost.append("usage")
            cost = gen.get("calculatedTotalCost")
            if cost is None or D(str(cost)) != expected_cost(i):
                lost.append("cost")
            if lost or len(gens) != 1:
                losses[i] = lost
    assert not losses, f"{len(losses)}/{PAIRS} pairs lost fields, e.g. {dict(list(losses.items())[:5])}"
