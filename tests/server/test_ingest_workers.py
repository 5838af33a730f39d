"""Large native batches through worker processes (server/ingest_workers.py) give what the server's own process
gives: two real ``costline serve`` on DuckDB, one with ``COSTLINE_INGEST_WORKERS=2`` and one with 0, get the same
batches; their replies, stored rows, rollup answers and Prometheus counters must be equal, and the first must
have written batches from its workers' rows (``costline_ingest_worker_batches_total``). Costs worked by hand
from published prices: gpt-4o input 2.5, cached input 1.25, output 10 USD per 1M tokens."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.server.harness import Server, make_server

T0 = "2026-11-01T12:00:00Z"
WORKER_BATCHES = "costline_ingest_worker_batches_total"


def gen(i: int, prefix: str, **fields: Any) -> dict[str, Any]:
    models = [("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("no-such-model-xyz", None),
              ("claude-sonnet-4-5", "anthropic")]
    model, provider = models[i % len(models)]
    event: dict[str, Any] = {
        "type": "generation", "id": f"{prefix}-{i}", "trace_id": f"{prefix}-t{i % 7}",
        "start_time": f"2026-11-01T{10 + i % 3}:0{i % 6}:00Z", "model": model,
        "usage": {"input_tokens": 1000 + i, "cache_read_tokens": i % 50, "output_tokens": 100 + i % 13},
        "user_id": f"user-{i % 5}", "session_id": f"s-{i % 3}", "tags": ["bench", f"t{i % 4}"],
        "metadata": {"feature": f"f{i % 3}", "n": i, "nested": {"k": [1, 2.5, None]}},
    }
    if provider:
        event["provider"] = provider
    if i % 11 == 0:
        event["cost"] = {"total": "0.5"}
    return {**event, **fields}


def batch(prefix: str, n: int = 150) -> dict[str, Any]:
    return {"events": [gen(i, prefix) for i in range(n)]}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    made = []
    for workers in ("2", "0"):
        tmp: Path = tmp_path_factory.mktemp(f"workers-{workers}")
        srv, _ = make_server("duckdb", tmp, {"COSTLINE_INGEST_WORKERS": workers,
                                             "COSTLINE_METRICS_METADATA_LABELS": "feature"})
        srv.start()
        made.append(srv)
    yield made[0], made[1]
    for srv in made:
        srv.stop()


def worker_pids(parent: int) -> list[int]:
    """The spawned worker processes of the server ``parent`` (not multiprocessing's resource tracker)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and "spawn_main" in cmdline:
            found.append(int(proc.name))
    return found


def post(server: Server, body: dict[str, Any]) -> httpx.Response:
    with server.client() as c:
        return c.post("/v1/ingest", json=body)


def samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{server.url}/metrics", auth=(server.public_key, server.secret_key), timeout=30)
    assert r.status_code == 200, r.text
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "project"))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def metrics(server: Server, query: dict[str, Any]) -> list[dict[str, Any]]:
    with server.client() as c:
        r = c.get("/v1/metrics", params={"query": json.dumps(query)})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def same_hourly_answers(servers: tuple[Server, Server], dimensions: list[str]) -> None:
    """Both servers answer cost and count per hour by ``dimensions`` alike, and not with nothing (by model, user,
    provider, environment, type or one metadata key the rollups answer; by others, raw rows)."""
    query = {"view": "observations", "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z",
             "granularity": "hour", "dimensions": dimensions, "metrics": ["sum:cost", "count"]}
    answers = [metrics(srv, query) for srv in servers]
    assert answers[0] == answers[1] and answers[0], dimensions


def worker_batches(server: Server) -> float:
    return sum(v for (name, _), v in samples(server).items() if name == WORKER_BATCHES)


def until_workers_take(server: Server, body: Any, batches: int = 1) -> None:
    """Send ``body(n)`` batches until the server's workers have prepared ``batches`` of them (their pool starts
    with the first large batch, in the background: the batches before go in process)."""
    deadline = time.monotonic() + 90
    n = 0
    while worker_batches(server) < batches:
        assert time.monotonic() < deadline, "the worker processes never took a batch"
        assert post(server, body(n)).status_code == 200
        n += 1


def both(servers: tuple[Server, Server], body: dict[str, Any]) -> dict[str, Any]:
    """Send ``body`` to both servers; the replies must be equal. Returns the reply."""
    replies = [post(s, body) for s in servers]
    assert [r.status_code for r in replies] == [replies[1].status_code] * 2, [r.text[:300] for r in replies]
    assert replies[0].json() == replies[1].json()
    data: dict[str, Any] = replies[0].json()
    return data


def test_workers_give_what_the_server_process_gives(servers: tuple[Server, Server]) -> None:
    with_workers, without = servers
    # the pool starts with the first large batch, in the background: batches go in-process until it is up
    deadline = time.monotonic() + 90
    n = 0
    while worker_batches(with_workers) < 2:  # each batch to both servers, so their stores stay equal
        assert time.monotonic() < deadline, "the worker processes never took a batch"
        both(servers, batch(f"warm{n}"))
        n += 1
    assert worker_batches(without) == 0

    reply = both(servers, batch("main"))
    assert reply["accepted"] == 150 and reply["rejected"] == 0
    costs = {c["id"]: c for c in reply["costs"]}
    # main-0: gpt-4o, 1000 input, 100 output (1000 × 2.5 + 100 × 10 = 3500 / 1M), but it carries a provided
    # cost (i % 11 == 0), which is what it cost
    assert D(costs["main-0"]["total"]) == D("0.5")
    # main-4: gpt-4o, 1004 input of which 4 cached, 104 output: 1000 × 2.5 + 4 × 1.25 + 104 × 10 = 3545 / 1M
    assert D(costs["main-4"]["total"]) == D("0.003545") and costs["main-4"]["status"] == "priced"
    assert costs["main-2"]["status"] == "unpriced" and costs["main-2"]["total"] is None

    # a batch re-sent (its ids stored: an upsert), one with a bad item, one with a trace event, a small one: all
    # go the in-process way on both servers
    both(servers, batch("main"))
    bad = batch("bad")
    bad["events"][3]["usage"] = {"input_tokens": -1}
    assert both(servers, bad)["rejected"] == 1
    with_trace = batch("tr")
    with_trace["events"].append({"type": "trace", "id": "tr-t0", "name": "chat", "user_id": "trace-user"})
    both(servers, with_trace)
    both(servers, {"events": [gen(0, "small")]})

    # a wrapper and its child reporting one call (core/duplicates.py): the outer one is marked on both
    dup = batch("dup")
    outer = gen(1, "dup", id="dup-outer", trace_id="dup-tw", model="gpt-4o", provider="openai",
                start_time="2026-11-01T10:00:00Z", end_time="2026-11-01T10:00:05Z",
                usage={"input_tokens": 10, "output_tokens": 5})
    inner = {**outer, "id": "dup-inner", "parent_id": "dup-outer", "start_time": "2026-11-01T10:00:01Z",
             "end_time": "2026-11-01T10:00:02Z"}
    dup["events"] += [outer, inner]
    before = worker_batches(with_workers)
    dup_costs = {c["id"]: c for c in both(servers, dup)["costs"]}
    assert dup_costs["dup-outer"]["status"] == "duplicate" and dup_costs["dup-inner"]["status"] == "priced"
    assert worker_batches(with_workers) == before  # read back as objects, not summarised

    both(servers, batch("last"))
    assert worker_batches(with_workers) > before

    # the rollups answer the same on both
    same_hourly_answers(servers, ["model", "user", "metadata.feature"])

    # every Prometheus counter equal, but the one that says which way the batches went
    a, b = ({k: v for k, v in samples(s).items() if k[0] != WORKER_BATCHES} for s in servers)
    assert a == b


# OTLP exports ----------------------------------------------------------------------------------------------------
OTLP_T0 = 1_793_534_400 * 10**9  # 2026-11-01T12:00:00Z in nanoseconds


def _hex_id(text: str, size: int) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:size]


def otlp_export(prefix: str, n: int = 200, traces: int = 40, *, extra: list[dict[str, Any]] | None = None) -> bytes:
    """An OTLP protobuf export of ``n`` GenAI spans over ``traces`` traces: the first span of each is its root
    (user, session, tags, trace metadata), the others its children; gpt-4o, gpt-4o-mini, an unknown model and
    Claude in turn, every 11th with a provided cost. ``extra``: more spans, as keyword sets for ``add_span``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    models = [("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("no-such-model-xyz", "house"),
              ("claude-sonnet-4-5", "anthropic")]
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.openai"

    def add_span(span_key: str, trace_key: str, parent_key: str | None, attrs: dict[str, Any], second: int) -> None:
        span = scope.spans.add()
        span.trace_id, span.span_id = _hex_id(trace_key, 16), _hex_id(span_key, 8)
        if parent_key is not None:
            span.parent_span_id = _hex_id(parent_key, 8)
        span.name, span.kind = "chat", 3
        span.start_time_unix_nano = OTLP_T0 + second * 10**9
        span.end_time_unix_nano = span.start_time_unix_nano + 1_500_000_000
        for key, value in attrs.items():
            kv = span.attributes.add()
            kv.key = key
            if isinstance(value, int):
                kv.value.int_value = value
            elif isinstance(value, list):
                kv.value.array_value.values.add().string_value = value[0]
            else:
                kv.value.string_value = value

    for i in range(n):
        model, provider = models[i % len(models)]
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                                 "gen_ai.request.model": model, "gen_ai.usage.input_tokens": 1000 + i,
                                 "gen_ai.usage.cache_read.input_tokens": i % 50,
                                 "gen_ai.usage.output_tokens": 100 + i % 13}
        if i % 11 == 0:
            attrs["gen_ai.usage.cost"] = "0.5"
        root = i < traces
        if root:
            attrs.update({"user.id": f"user-{i % 5}", "session.id": f"s-{i % 3}", "langfuse.trace.tags": [f"t{i % 4}"],
                          "langfuse.trace.metadata.feature": f"f{i % 3}"})
        add_span(f"{prefix}-{i}", f"{prefix}-t{i % traces}", None if root else f"{prefix}-{i % traces}", attrs,
                 3600 * (i % 3) + i)
    for span in extra or []:
        add_span(**span)
    body = request.SerializeToString()
    assert len(body) >= 32 * 1024  # what the server sends to its workers (MIN_BODY)
    return body


def export(server: Server, body: bytes, content_type: str = "application/x-protobuf",
           **headers: str) -> httpx.Response:
    with server.client() as c:
        return c.post("/v1/traces", content=body, headers={"content-type": content_type, **headers})


def export_both(servers: tuple[Server, Server], body: bytes, content_type: str = "application/x-protobuf",
                **headers: str) -> bytes:
    """Send one export to both servers; the replies (status and body) must be equal."""
    replies = [export(s, body, content_type, **headers) for s in servers]
    assert [r.status_code for r in replies] == [replies[1].status_code] * 2, [r.content[:300] for r in replies]
    assert replies[0].content == replies[1].content
    return replies[0].content


def test_otlp_exports_through_workers_give_what_the_server_process_gives(servers: tuple[Server, Server]) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    with_workers, without = servers
    taken = worker_batches(with_workers)
    reply = ExportTraceServiceResponse.FromString(export_both(servers, otlp_export("o-main")))
    assert reply.partial_success.rejected_spans == 0
    assert worker_batches(with_workers) == taken + 1  # a clean export of new spans and traces: a worker's rows
    # gzip, and OTLP/JSON
    export_both(servers, gzip.compress(otlp_export("o-gz")), **{"content-encoding": "gzip"})
    assert worker_batches(with_workers) == taken + 2
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    as_json = MessageToJson(ExportTraceServiceRequest.FromString(otlp_export("o-json"))).encode()
    export_both(servers, as_json, "application/json")
    assert worker_batches(with_workers) == taken + 3

    # an export continuing stored traces (new spans, a root's attributes sent again with another user): a
    # worker's observations, its traces merged with the stored ones in the server
    later = [{"span_key": f"o-late-{i}", "trace_key": f"o-main-t{i}", "parent_key": None, "second": 7000 + i,
              "attrs": {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10,
                        "gen_ai.usage.output_tokens": 5, "user.id": "moved-user"}} for i in range(3)]
    export_both(servers, otlp_export("o-cont", extra=later))
    assert worker_batches(with_workers) == taken + 4
    # through the server's process on both: the export sent again (stored spans and traces: replaced), one
    # with a bad span (a partial success naming it), one reporting a call twice (a wrapper and its child: marked)
    export_both(servers, otlp_export("o-main"))
    assert worker_batches(with_workers) == taken + 4
    bad = [{"span_key": "o-bad-0", "trace_key": "o-bad-t", "parent_key": None, "second": 1,
            "attrs": {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": -5}}]
    rejected = ExportTraceServiceResponse.FromString(export_both(servers, otlp_export("o-bad", extra=bad)))
    assert rejected.partial_success.rejected_spans == 1, rejected
    usage = {"gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai",
             "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
    pair = [{"span_key": "o-dup-outer", "trace_key": "o-dup-t", "parent_key": None, "second": 0, "attrs": usage},
            {"span_key": "o-dup-inner", "trace_key": "o-dup-t", "parent_key": "o-dup-outer", "second": 0,
             "attrs": usage}]
    before = worker_batches(with_workers)
    export_both(servers, otlp_export("o-dup", extra=pair))
    assert worker_batches(with_workers) == before  # read back as objects and marked, not summarised
    assert worker_batches(without) == 0

    # a hand-worked cost: span o-main-4 is gpt-4o, 1004 input of which 4 cached, 104 output, a child of the
    # root of trace o-main-t4 (user-4): 1000 × 2.5 + 4 × 1.25 + 104 × 10 = 3545 / 1M
    query = {"view": "observations", "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z",
             "dimensions": ["user"], "metrics": ["sum:cost", "calls"],
             "filters": [{"field": "id", "operator": "=", "value": _hex_id("o-main-4", 8).hex()}]}
    for srv in servers:
        data = metrics(srv, query)
        assert len(data) == 1, data
        [row] = data
        assert D(row["sum_cost"]) == D("0.003545") and row["user"] == "user-4", row

    # children exported before their root (a root span ends last): their hours are rolled up without a user,
    # then the export holding the roots (new traces: a worker's rows) gives them one, on both servers
    by_user = {"view": "observations", "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z",
               "granularity": "hour", "dimensions": ["user"], "metrics": ["sum:cost", "count"]}
    children = [{"span_key": f"o-child-{k}", "trace_key": f"o-split-t{k}", "parent_key": f"o-root-{k}",
                 "second": 3600 * (4 + k), "attrs": usage} for k in range(3)]
    export_both(servers, otlp_export("o-split-a", extra=children))
    rolled = [metrics(srv, by_user) for srv in servers]
    assert rolled[0] == rolled[1] and not any(r["user"] == "late-root-user" for r in rolled[0])
    # (the children start in hours no other span of either export starts in, and the roots hours later: only the
    # trace's marks make the children's hours stale)
    roots = [{"span_key": f"o-root-{k}", "trace_key": f"o-split-t{k}", "parent_key": None, "second": 3600 * (8 + k),
              "attrs": {"gen_ai.operation.name": "chat", "user.id": "late-root-user"}} for k in range(3)]
    before = worker_batches(with_workers)
    export_both(servers, otlp_export("o-split-b", extra=roots))
    assert worker_batches(with_workers) == before + 1
    for srv in servers:
        late = [r for r in metrics(srv, by_user) if r["user"] == "late-root-user"]
        assert [(r["time"][11:13], r["count"]) for r in late] == [("16", 1), ("17", 1), ("18", 1), ("20", 1),
                                                                   ("21", 1), ("22", 1)], late

    # then a later child of each of those traces carries another user: the traces are stored, so they are
    # merged in the server (a worker's observations); again only the traces' marks make hours 16-18 stale
    moved = [{"span_key": f"o-moved-{k}", "trace_key": f"o-split-t{k}", "parent_key": f"o-root-{k}",
              "second": 3600 * (8 + k) + 60, "attrs": {**usage, "user.id": "moved-again"}} for k in range(3)]
    before = worker_batches(with_workers)
    export_both(servers, otlp_export("o-split-c", extra=moved))
    assert worker_batches(with_workers) == before + 1
    for srv in servers:
        users = {(r["time"][11:13], r["user"]): r["count"] for r in metrics(srv, by_user)
                 if r["user"] in ("late-root-user", "moved-again")}
        assert users == {(h, "moved-again"): n for h, n in
                         (("16", 1), ("17", 1), ("18", 1), ("20", 2), ("21", 2), ("22", 2))}, users

    # the rollups (hours, users and trace metadata, after traces moved users) and every counter are equal
    for dims in (["model", "user"], ["metadata.feature"], ["session", "tag"]):
        same_hourly_answers(servers, dims)
    a, b = ({k: v for k, v in samples(s).items() if k[0] != WORKER_BATCHES} for s in servers)
    assert a == b


# the native test's trace event carries no time (the server's clock gives it): its time is left out
TRACE_COLUMNS = ("id, CASE WHEN id = 'tr-t0' THEN NULL ELSE \"timestamp\" END, name, user_id, session_id, tags, "
                 "metadata, environment, release, version, public")


def test_stored_rows_are_equal(servers: tuple[Server, Server]) -> None:
    """After the batches above: every stored observation and trace column but the project and the times the
    server set, and the traces marked for the rollups."""
    for srv in servers:
        srv.stop()
    columns = ("id, trace_id, parent_id, type, name, start_time, end_time, model, resolved_model, provider, "
               "usage, cost, total_cost, currency, pricing_status, price_id, pricing_reason, provided_cost, "
               "user_id, session_id, tags, metadata, environment, level")
    found = []
    for srv in servers:
        with duckdb.connect(srv.store_url.removeprefix("duckdb:///"), read_only=True) as conn:
            found.append(conn.execute(f"SELECT {columns} FROM observations ORDER BY id").fetchall())
            found.append(conn.execute(f"SELECT {TRACE_COLUMNS} FROM traces ORDER BY id").fetchall())
            found.append(conn.execute("SELECT DISTINCT trace_id FROM rollup_dirty_traces ORDER BY ALL").fetchall())
    assert len(found[0]) > 1000 and found[0] == found[3]
    assert len(found[1]) > 100 and found[1] == found[4]  # the OTLP exports' traces
    assert found[2] == found[5]


def test_a_killed_worker_loses_no_batch(tmp_path: Path) -> None:
    srv, _ = make_server("duckdb", tmp_path, {"COSTLINE_INGEST_WORKERS": "1"})
    srv.start()
    try:
        until_workers_take(srv, lambda n: batch(f"w{n}"))
        assert srv.process is not None
        workers = worker_pids(srv.process.pid)
        assert workers
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        # the batches after the kill are all acknowledged and stored, through the server's process until a new
        # pool is up, then through it again
        for i in range(40):
            r = post(srv, batch(f"after{i}", 120))
            assert r.status_code == 200, r.text
        with srv.client() as c:
            for trace in ("after0-t0", "after39-t0"):
                r = c.get(f"/api/public/traces/{trace}")
                assert r.status_code == 200, r.text
                assert any(o["id"] == trace.split("-")[0] + "-0" for o in r.json()["observations"])
    finally:
        srv.stop()


def test_project_prices_reach_the_workers(tmp_path: Path) -> None:
    """A project's own price (Langfuse models API) applies to batches prepared by workers, and a change to it
    applies to the next batch: 1,000 input × $2 + 100 output × $4 per 1M = $0.0024, then × 10."""
    srv, _ = make_server("duckdb", tmp_path, {"COSTLINE_INGEST_WORKERS": "1"})
    srv.start()
    try:
        def model(price_in: float, price_out: float) -> dict[str, Any]:
            return {"modelName": "house-model", "matchPattern": "(?i)^house-model$", "unit": "TOKENS",
                    "inputPrice": price_in, "outputPrice": price_out}

        def house(prefix: str) -> dict[str, Any]:
            return {"events": [gen(i, prefix, model="house-model", provider="house", cost=None,
                                   usage={"input_tokens": 1000, "output_tokens": 100}) for i in range(150)]}

        with srv.client() as c:
            r = c.put("/api/public/models/house", json=model(0.000002, 0.000004))
            assert r.status_code == 200, r.text
        until_workers_take(srv, lambda n: house(f"h{n}"))
        taken = worker_batches(srv)
        reply = post(srv, house("h-priced")).json()
        assert worker_batches(srv) == taken + 1
        assert {c["total"] for c in reply["costs"]} == {"0.0024"}, reply["costs"][:2]
        with srv.client() as c:
            r = c.put("/api/public/models/house", json=model(0.00002, 0.00004))
            assert r.status_code == 200, r.text
        reply = post(srv, house("h-changed")).json()
        assert worker_batches(srv) == taken + 2
        assert {c["total"] for c in reply["costs"]} == {"0.024"}, reply["costs"][:2]
    finally:
        srv.stop()


def test_a_killed_server_leaves_no_worker(tmp_path: Path) -> None:
    """SIGKILL reaches no shutdown code: the workers notice their parent is gone and end."""
    srv, _ = make_server("duckdb", tmp_path, {"COSTLINE_INGEST_WORKERS": "2"})
    srv.start()
    assert srv.process is not None
    try:
        until_workers_take(srv, lambda n: batch(f"k{n}"))
        workers = worker_pids(srv.process.pid)
        assert workers
        srv.process.kill()
        srv.process.wait()
        deadline = time.monotonic() + 30
        while any(running(pid) for pid in workers):
            assert time.monotonic() < deadline, [pid for pid in workers if running(pid)]
            time.sleep(0.2)
    finally:
        srv.stop()


def running(pid: int) -> bool:
    """The process exists and is not a zombie (a worker orphaned and reaped by init disappears)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_projects_with_ingest_alert_rules_stay_in_process(tmp_path: Path) -> None:
    """A rule checked on each ingested call reads the observations: such a project's batches are written as
    objects, and the rule fires on a large batch as on a small one."""
    srv, _ = make_server("duckdb", tmp_path, {"COSTLINE_INGEST_WORKERS": "1"})
    srv.start()
    try:
        with srv.client() as c:
            r = c.post("/v1/alerts", json={"id": "no-price", "name": "no-price", "kind": "unpriced"})
            assert r.status_code == 201, r.text
        for n in range(8):
            assert post(srv, batch(f"al{n}")).status_code == 200  # each holds no-such-model-xyz calls
            time.sleep(0.3)
        assert worker_batches(srv) == 0
        with srv.client() as c:
            rule = c.get("/v1/alerts/no-price").json()
        # the rule met the unpriced calls of these batches: its state for the model exists, notified at a time
        [state] = rule["states"]
        assert state["subject"] == "model=no-such-model-xyz" and state["notified_at"], state
    finally:
        srv.stop()


def test_no_processes_means_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where processes cannot start (no /dev/shm for the queues' locks, a process limit) the workers turn
    themselves off and every batch goes through the server's process, instead of failing the request."""
    import asyncio

    from costline.core.resolve import PriceBook
    from costline.server import ingest_workers

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(ingest_workers, "ProcessPoolExecutor", refuse)
    workers = ingest_workers.IngestWorkers(PriceBook(()), 2)
    body = json.dumps(batch("x")).encode()
    for _ in range(2):
        assert asyncio.run(workers.prepare(None, "p", body, (0, ()))) is None
