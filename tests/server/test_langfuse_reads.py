"""Langfuse's read API (trace, observation and session lists) on a real ``costline serve``, over raw HTTP and
through the unmodified Langfuse SDKs: Python 3.x (``langfuse.api``) and npm ``langfuse`` 3.x in Node.

Prices (bundled catalog): gpt-4o-mini $0.15 / 1M input tokens, $0.60 / 1M output tokens, so one call with
1,000 input and 500 output tokens costs 1000 × 0.15 / 1M + 500 × 0.60 / 1M = 0.00015 + 0.0003 = $0.00045.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server.harness import Server, create_project, drop_postgres_schema, make_server, postgres_url
from tests.server.test_langfuse_sdk import CLIENTS, _langfuse3_python

PER_CALL = D("0.00045")  # 1,000 in + 500 out on gpt-4o-mini (module docstring)
FROM = "2026-11-01T00:00:00Z"
TO = "2026-11-03T00:00:00Z"


def envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "type": kind, "timestamp": "2026-11-01T00:00:00Z", "body": body}


def trace_events(trace_id: str, at: str, *, user: str, calls: list[tuple[int, int]], model: str = "gpt-4o-mini",
                 name: str = "chat", session: str | None = None, tags: list[str] | None = None,
                 environment: str = "production") -> list[dict[str, Any]]:
    """A trace at ``at`` with a 10 s root span and one generation per (input, output) call, 2 s apart, 1.5 s
    long."""
    t0 = datetime.fromisoformat(at.replace("Z", "+00:00"))

    def iso(seconds: float) -> str:
        return (t0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    span_id = f"{trace_id}-span"
    events = [
        envelope("trace-create", {"id": trace_id, "timestamp": at, "name": name, "userId": user, "sessionId": session,
                                  "tags": tags or [], "environment": environment, "release": "r1", "version": "v1"}),
        envelope("span-create", {"id": span_id, "traceId": trace_id, "name": "root", "startTime": at,
                                 "endTime": iso(10), "environment": environment}),
    ]
    for i, (inp, out) in enumerate(calls):
        events.append(envelope("generation-create", {
            "id": f"{trace_id}-gen{i}", "traceId": trace_id, "parentObservationId": span_id, "name": "llm",
            "startTime": iso(2 * i), "endTime": iso(2 * i + 1.5), "model": model, "environment": environment,
            "usageDetails": {"input": inp, "output": out}}))
    return events


#: (trace id, time, user, calls, keyword arguments)
DATASET: list[tuple[str, str, str, list[tuple[int, int]], dict[str, Any]]] = [
    # exactly at FROM: inside (from is inclusive); two calls: 2 × 0.00045 = 0.0009; latency 0 s → 10 s (the span)
    ("t1", "2026-11-01T00:00:00.000Z", "alice", [(1000, 500), (1000, 500)],
     {"session": "s1", "tags": ["a", "b"]}),
    ("t2", "2026-11-02T10:00:00.000Z", "alice", [(1000, 500)],
     {"session": "s1", "tags": ["a"], "environment": "staging", "name": "summarize"}),
    # 1 ms before FROM: outside
    ("t3", "2026-10-31T23:59:59.000Z", "alice", [(1000, 500)], {"tags": ["a", "b"]}),
    # 2,000 in + 1,000 out = 0.0003 + 0.0006 = 0.0009
    ("t4", "2026-11-01T12:00:00.000Z", "bob", [(2000, 1000)], {"session": "s2", "tags": ["b"]}),
    # exactly at TO: outside (to is exclusive)
    ("t5", "2026-11-03T00:00:00.000Z", "bob", [(1000, 500)], {"tags": ["a", "b"], "environment": "dev"}),
    # a model without a price: listed, costs nothing, calculatedTotalCost null
    ("t6", "2026-11-02T00:00:00.000Z", "carol", [(1000, 500)], {"model": "my-private-model"}),
]


@dataclass
class Deployment:
    server: Server
    other: tuple[str, str]


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp(f"reads-{request.param}")
    server, schema = make_server(request.param, tmp)
    other = create_project(server.store_url, tmp, server.env, name="other")
    server.start()
    try:
        batch = [e for tid, at, user, calls, kw in DATASET for e in trace_events(tid, at, user=user, calls=calls, **kw)]
        other_auth = (other["public_key"], other["secret_key"])
        # the other project: the same trace id and user, thirty calls (30 × 0.00045 = 0.0135)
        other_batch = trace_events("t1", "2026-11-01T01:00:00.000Z", user="alice", calls=[(1000, 500)] * 30,
                                   session="s1", tags=["a", "b"])
        for auth, events in (((server.public_key, server.secret_key), batch), (other_auth, other_batch)):
            r = httpx.post(f"{server.url}/api/public/ingestion", json={"batch": events}, auth=auth, timeout=30)
            assert r.status_code == 207 and not r.json()["errors"], r.text
        yield Deployment(server, other_auth)
    finally:
        server.stop()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)


def get(deployment: Deployment, path: str, params: Any = None, auth: tuple[str, str] | None = None) -> Any:
    server = deployment.server
    r = httpx.get(f"{server.url}{path}", params=params, auth=auth or (server.public_key, server.secret_key),
                  timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def total(traces: list[dict[str, Any]]) -> D:
    return sum((D(str(t["totalCost"])) for t in traces), D(0))


def test_budget_read_back_sums_a_users_month(deployment: Deployment) -> None:
    body = get(deployment, "/api/public/traces", {"userId": "alice", "fromTimestamp": FROM})
    assert [t["id"] for t in body["data"]] == ["t2", "t1"]  # newest first
    # t1: 2 × 0.00045 = 0.0009, t2: 0.00045 (t3 is 1 s before FROM)
    assert total(body["data"]) == D("0.00135")
    assert body["meta"] == {"page": 1, "limit": 50, "totalItems": 2, "totalPages": 1}
    t1 = body["data"][1]
    assert t1["userId"] == "alice" and t1["sessionId"] == "s1" and t1["tags"] == ["a", "b"]
    assert t1["environment"] == "production" and t1["release"] == "r1" and t1["version"] == "v1"
    assert sorted(t1["observations"]) == ["t1-gen0", "t1-gen1", "t1-span"] and t1["scores"] == []
    assert D(str(t1["latency"])) == 10  # the root span: 00:00:00 → 00:00:10
    assert t1["htmlPath"] == f"/project/{deployment.server.project_id}/traces/t1"
    assert t1["projectId"] == deployment.server.project_id and t1["bookmarked"] is False
    # the JSON number carries the exact digits
    raw = httpx.get(f"{deployment.server.url}/api/public/traces", params={"userId": "alice", "toTimestamp": FROM},
                    auth=(deployment.server.public_key, deployment.server.secret_key)).text
    assert '"totalCost":0.00045' in raw


def test_from_inclusive_to_exclusive_and_filters(deployment: Deployment) -> None:
    def ids(**params: Any) -> list[str]:
        return sorted(t["id"] for t in get(deployment, "/api/public/traces", params)["data"])

    assert ids(fromTimestamp=FROM, toTimestamp=TO) == ["t1", "t2", "t4", "t6"]
    assert ids(toTimestamp=FROM) == ["t3"]
    assert ids(fromTimestamp=TO) == ["t5"]
    assert ids(fromTimestamp="2026-11-01T00:00:00.001Z") == ["t2", "t4", "t5", "t6"]
    assert ids(tags=["a", "b"]) == ["t1", "t3", "t5"]  # all of them
    assert ids(tags="b") == ["t1", "t3", "t4", "t5"]
    assert ids(environment=["staging", "dev"]) == ["t2", "t5"]  # any of them
    assert ids(name="summarize") == ["t2"]
    assert ids(sessionId="s1") == ["t1", "t2"]
    assert ids(userId="bob", environment="production") == ["t4"]
    assert ids(version="v1", release="r1", userId="carol") == ["t6"]
    assert ids(release="r2") == []


def test_paging_and_order(deployment: Deployment) -> None:
    seen: list[str] = []
    for page in (1, 2, 3, 4):
        body = get(deployment, "/api/public/traces", {"page": page, "limit": 2, "orderBy": "timestamp.asc"})
        assert body["meta"] == {"page": page, "limit": 2, "totalItems": 6, "totalPages": 3}
        seen += [t["id"] for t in body["data"]]
    assert seen == ["t3", "t1", "t4", "t6", "t2", "t5"]
    by_user = [t["id"] for t in get(deployment, "/api/public/traces", {"orderBy": "userId.desc"})["data"]]
    assert by_user == ["t6", "t5", "t4", "t2", "t1", "t3"]  # carol, bob (newest first), alice (newest first)
    by_name = [t["id"] for t in get(deployment, "/api/public/traces", {"orderBy": "name.asc"})["data"]]
    assert by_name == ["t5", "t6", "t4", "t1", "t3", "t2"]  # chat ×5 newest first, then summarize


def test_fields_groups(deployment: Deployment) -> None:
    (trace,) = get(deployment, "/api/public/traces", {"userId": "bob", "environment": "production",
                                                      "fields": "core"})["data"]
    assert trace["observations"] == [] and trace["scores"] == []
    assert trace["totalCost"] == -1 and trace["latency"] == -1 and "metadata" not in trace
    (trace,) = get(deployment, "/api/public/traces", {"userId": "bob", "environment": "production",
                                                      "fields": "core,metrics"})["data"]
    assert D(str(trace["totalCost"])) == D("0.0009") and trace["observations"] == []
    full = get(deployment, "/api/public/traces/t4", {"fields": "core,observations"})
    assert full["totalCost"] == -1 and len(full["observations"]) == 2


def test_project_isolation(deployment: Deployment) -> None:
    mine = get(deployment, "/api/public/traces", {"userId": "alice", "fromTimestamp": FROM})
    theirs = get(deployment, "/api/public/traces", {"userId": "alice", "fromTimestamp": FROM},
                 auth=deployment.other)
    assert [t["id"] for t in theirs["data"]] == ["t1"]
    assert total(theirs["data"]) == 30 * PER_CALL == D("0.0135")
    assert total(mine["data"]) == D("0.00135")
    assert theirs["meta"]["totalItems"] == 1
    other_obs = get(deployment, "/api/public/observations", {"limit": 100}, auth=deployment.other)
    assert other_obs["meta"]["totalItems"] == 31 and all(o["traceId"] == "t1" for o in other_obs["data"])
    assert len(get(deployment, "/api/public/sessions", auth=deployment.other)["data"]) == 1
    assert len(get(deployment, "/api/public/sessions/s1")["traces"]) == 2
    assert len(get(deployment, "/api/public/sessions/s1", auth=deployment.other)["traces"]) == 1
    with httpx.Client(auth=deployment.other, base_url=deployment.server.url) as c:
        assert c.get("/api/public/observations/t2-gen0").status_code == 404
        assert c.get("/api/public/sessions/s2").status_code == 404
        assert c.get("/api/public/traces/t2").status_code == 404


def test_observations(deployment: Deployment) -> None:
    body = get(deployment, "/api/public/observations", {"userId": "alice", "type": "GENERATION",
                                                        "fromStartTime": FROM})
    assert [o["id"] for o in body["data"]] == ["t2-gen0", "t1-gen1", "t1-gen0"]  # newest first
    assert body["meta"]["totalItems"] == 3
    gen = body["data"][0]
    assert gen["type"] == "GENERATION" and gen["model"] == "gpt-4o-mini" and gen["traceId"] == "t2"
    # 1,000 in × 0.15 / 1M = 0.00015; 500 out × 0.60 / 1M = 0.0003
    assert D(str(gen["calculatedInputCost"])) == D("0.00015")
    assert D(str(gen["calculatedOutputCost"])) == D("0.0003")
    assert D(str(gen["calculatedTotalCost"])) == PER_CALL
    assert gen["usageDetails"] == {"input": 1000, "output": 500, "total": 1500}
    assert gen["usage"]["input"] == 1000 and gen["usage"]["output"] == 500
    assert D(str(gen["costDetails"]["total"])) == PER_CALL
    assert gen["parentObservationId"] == "t2-span" and gen["environment"] == "staging"

    def ids(**params: Any) -> list[str]:
        return sorted(o["id"] for o in get(deployment, "/api/public/observations", params)["data"])

    assert ids(traceId="t1") == ["t1-gen0", "t1-gen1", "t1-span"]
    assert ids(traceId="t1", type="SPAN") == ["t1-span"]
    assert ids(parentObservationId="t1-span") == ["t1-gen0", "t1-gen1"]
    assert ids(name="root", environment="dev") == ["t5-span"]
    assert ids(fromStartTime="2026-11-02T10:00:00Z", toStartTime=TO) == ["t2-gen0", "t2-span"]
    # t1-gen1 starts at 00:00:02: from inclusive, to exclusive
    assert ids(fromStartTime="2026-11-01T00:00:02Z", toStartTime="2026-11-01T00:00:02.001Z") == ["t1-gen1"]
    assert ids(fromStartTime="2026-11-01T00:00:01Z", toStartTime="2026-11-01T00:00:02Z") == []
    assert ids(level="ERROR") == []
    assert len(ids(level="DEFAULT", limit=100)) == 13
    unpriced = get(deployment, "/api/public/observations/t6-gen0")
    assert unpriced["calculatedTotalCost"] is None and unpriced["costDetails"] == {}
    assert unpriced["model"] == "my-private-model"
    assert get(deployment, "/api/public/traces/t6")["totalCost"] == 0


def test_sessions(deployment: Deployment) -> None:
    body = get(deployment, "/api/public/sessions")
    assert [s["id"] for s in body["data"]] == ["s2", "s1"]  # newest first
    assert body["meta"] == {"page": 1, "limit": 50, "totalItems": 2, "totalPages": 1}
    s1 = body["data"][1]
    assert s1["createdAt"] == "2026-11-01T00:00:00.000Z" and s1["environment"] == "production"
    assert s1["projectId"] == deployment.server.project_id
    assert [s["id"] for s in get(deployment, "/api/public/sessions", {"environment": "staging"})["data"]] == ["s1"]
    later = get(deployment, "/api/public/sessions", {"fromTimestamp": "2026-11-01T06:00:00Z"})
    # a session is listed when one of its traces is in range, created at the first of those (t2 for s1)
    assert [(s["id"], s["createdAt"]) for s in later["data"]] == [("s1", "2026-11-02T10:00:00.000Z"),
                                                                  ("s2", "2026-11-01T12:00:00.000Z")]
    assert [s["id"] for s in get(deployment, "/api/public/sessions", {"toTimestamp": "2026-11-01T06:00:00Z"})[
        "data"]] == ["s1"]
    page2 = get(deployment, "/api/public/sessions", {"page": 2, "limit": 1})
    assert [s["id"] for s in page2["data"]] == ["s1"] and page2["meta"]["totalPages"] == 2
    session = get(deployment, "/api/public/sessions/s1")
    assert [t["id"] for t in session["traces"]] == ["t1", "t2"]
    assert session["traces"][1]["environment"] == "staging" and "totalCost" not in session["traces"][0]


@pytest.mark.parametrize(("path", "params", "named"), [
    ("/api/public/traces", {"page": "0"}, "page"),
    ("/api/public/traces", {"page": "-1"}, "page"),
    ("/api/public/traces", {"page": str(10**12)}, "page"),
    ("/api/public/traces", {"limit": str(10**9)}, "limit"),
    ("/api/public/traces", {"limit": "0"}, "limit"),
    ("/api/public/traces", {"limit": "ten"}, "limit"),
    ("/api/public/traces", {"fromTimestamp": "yesterday"}, "fromTimestamp"),
    ("/api/public/traces", {"toTimestamp": "2026-13-45"}, "toTimestamp"),
    ("/api/public/traces", {"fromTimestamp": TO, "toTimestamp": FROM}, "fromTimestamp"),
    ("/api/public/traces", {"orderBy": "timestamp"}, "orderBy"),
    ("/api/public/traces", {"orderBy": "timestamp.sideways"}, "orderBy"),
    ("/api/public/traces", {"orderBy": "'; DROP TABLE traces; --.asc"}, "orderBy"),
    ("/api/public/traces", {"orderBy": "bookmarked.desc"}, "orderBy"),
    ("/api/public/traces", {"fields": "core,everything"}, "fields"),
    ("/api/public/traces", {"filter": "[]"}, "filter"),
    ("/api/public/traces", [("userId", "a"), ("userId", "b")], "userId"),
    ("/api/public/traces/t1", {"fields": "nope"}, "fields"),
    ("/api/public/observations", {"type": "BOGUS"}, "type"),
    ("/api/public/observations", {"level": "LOUD"}, "level"),
    ("/api/public/observations", {"fromStartTime": "soon"}, "fromStartTime"),
    ("/api/public/observations", {"limit": "101"}, "limit"),
    ("/api/public/sessions", {"page": "0"}, "page"),
    ("/api/public/sessions", {"toTimestamp": "x"}, "toTimestamp"),
])
def test_bad_parameters_are_400_naming_them(deployment: Deployment, path: str, params: Any, named: str) -> None:
    server = deployment.server
    r = httpx.get(f"{server.url}{path}", params=params, auth=(server.public_key, server.secret_key), timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(f"{named}:"), r.text


def test_python_sdk_3x_reads(deployment: Deployment) -> None:
    python = _langfuse3_python()
    if python is None:
        pytest.skip("no Python with langfuse 3.x: set COSTLINE_TEST_LANGFUSE3_PYTHON or create .venv-langfuse3")
    server = deployment.server
    env = {**os.environ, "LANGFUSE_HOST": server.url, "LANGFUSE_PUBLIC_KEY": server.public_key,
           "LANGFUSE_SECRET_KEY": server.secret_key}
    env.pop("LANGFUSE_BASE_URL", None)
    spec = {"user": "alice", "from": "2026-11-01T00:00:00+00:00", "trace": "t1", "observation": "t2-gen0",
            "session": "s1"}
    proc = subprocess.run([python, str(CLIENTS / "langfuse_v3_reads.py"), json.dumps(spec)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    budget = out["budget"]
    assert [t["id"] for t in budget["data"]] == ["t2", "t1"]
    assert total(budget["data"]) == D("0.00135")  # 0.0009 + 0.00045 (parsed by the SDK as floats)
    assert budget["meta"] == {"page": 1, "limit": 50, "totalItems": 2, "totalPages": 1}
    assert [t["id"] for t in out["page"]["data"]] == ["t4", "t6"]
    assert sorted(t["id"] for t in out["tagged"]["data"]) == ["t1", "t3"]
    assert D(str(out["trace"]["totalCost"])) == D("0.0009") and len(out["trace"]["observations"]) == 3
    assert [o["id"] for o in out["generations"]["data"]] == ["t2-gen0", "t1-gen1", "t1-gen0"]
    observation = out["observation"]
    assert D(str(observation["calculatedTotalCost"])) == PER_CALL and observation["model"] == "gpt-4o-mini"
    assert [s["id"] for s in out["sessions"]["data"]] == ["s2", "s1"]
    assert [t["id"] for t in out["session"]["traces"]] == ["t1", "t2"]
    assert out["bad_limit"]["status"] == 400 and "limit" in json.dumps(out["bad_limit"]["body"])


def test_python_sdk_5_reads_observations_by_cursor(deployment: Deployment) -> None:
    """SDK 5's ``observations.get_many`` (``/api/public/v2/observations``): cursor pages, field groups."""
    server = deployment.server
    env = {**os.environ, "LANGFUSE_HOST": server.url, "LANGFUSE_PUBLIC_KEY": server.public_key,
           "LANGFUSE_SECRET_KEY": server.secret_key, "LANGFUSE_TRACING_ENABLED": "false"}
    env.pop("LANGFUSE_BASE_URL", None)
    spec = {"user": "alice", "from": "2026-11-01T00:00:00+00:00"}
    proc = subprocess.run([sys.executable, str(CLIENTS / "langfuse_v5_reads.py"), json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pages = json.loads(proc.stdout)["pages"]
    assert [len(p["data"]) for p in pages] == [2, 1]  # limit 2: a cursor to the second page, none after it
    items = [o for p in pages for o in p["data"]]
    assert [o["id"] for o in items] == ["t2-gen0", "t1-gen1", "t1-gen0"]
    # three gpt-4o-mini calls of the seeded budget, each PER_CALL (worked out at the top of this module)
    assert sum((D(str(o["totalCost"])) for o in items), D(0)) == 3 * PER_CALL
    assert all(o.get("input") is None and o["usageDetails"] for o in items)  # io not asked for; usage was


NODE_DIR = CLIENTS / "node"


def _node_client() -> Path:
    """``npm ci`` of the pinned lock into a cache directory outside the repository (once per lock)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: the npm langfuse SDK test needs them")
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "costline-tests" / (
        "node-langfuse-" + hashlib.sha256(lock).hexdigest()[:16])
    cache.parent.mkdir(parents=True, exist_ok=True)
    if not (cache / "node_modules" / "langfuse").is_dir():
        staging = cache.with_name(f"{cache.name}.{os.getpid()}")  # installed aside, then moved into place
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(NODE_DIR / name, staging / name)
        proc = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=staging,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 and any(code in proc.stderr for code in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED",
                                                                         "ETIMEDOUT", "ENETUNREACH")):
            pytest.skip(f"npm cannot reach its registry to install langfuse 3.x: {proc.stderr.strip()[-300:]}")
        assert proc.returncode == 0, proc.stderr
        try:
            staging.rename(cache)
        except OSError:  # another run installed it first
            shutil.rmtree(staging, ignore_errors=True)
    shutil.copyfile(NODE_DIR / "budget_check.cjs", cache / "budget_check.cjs")
    return cache


def test_node_sdk_budget_check(deployment: Deployment) -> None:
    cache = _node_client()
    server = deployment.server
    user = f"node-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "LANGFUSE_BASEURL": server.url, "LANGFUSE_PUBLIC_KEY": server.public_key,
           "LANGFUSE_SECRET_KEY": server.secret_key}
    proc = subprocess.run(["node", "budget_check.cjs", user], cwd=cache, capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # three calls of 1,000 in + 500 out on gpt-4o-mini: 3 × 0.00045 = 0.00135
    assert [D(str(c)) for c in out["costs"]] == [PER_CALL] * 3
    assert sum((D(str(c)) for c in out["costs"]), D(0)) == D("0.00135")
    assert abs(D(str(out["spent"])) - D("0.00135")) < D("1e-15")  # the seed's float sum
    assert out["users"] == [user] * 3 and out["meta"]["totalItems"] == 3
    assert [D(str(c)) for c in out["observationCosts"]] == [PER_CALL] * 3
