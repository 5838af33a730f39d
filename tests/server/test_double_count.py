"""One model call reported by two instrumentations is counted once (core/duplicates.py): OpenLLMetry's
LangChain and OpenAI instrumentations both on, a real ``ChatOpenAI`` against a local server speaking OpenAI's
protocol, spans exported over OTLP to a real ``costline serve`` (DuckDB and PostgreSQL). Langfuse users report
these totals doubled (langfuse/langfuse issues #14754, #16409).

The fake reports 2006 prompt tokens (1920 cached) and 300 completion tokens; gpt-4o list prices (USD per 1M):
input 2.50, cached input 1.25, output 10 → 86 × 2.50 + 1920 × 1.25 + 300 × 10 = 215 + 2400 + 3000 = 5615
per 1M = 0.005615 for the call, however many spans report it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest
from tests.providers.openai_server import OpenAIFake
from tests.server.harness import Server

CLIENTS = Path(__file__).parent / "clients"
ONE_CALL = D("0.005615")


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[OpenAIFake]:
    with OpenAIFake({"prompt_tokens": 2006, "completion_tokens": 300, "cached_tokens": 1920}).running() as fake:
        yield fake


def test_langchain_and_openai_instrumentations_count_the_call_once(server: Server, openai_fake: OpenAIFake) -> None:
    proc = subprocess.run(
        [sys.executable, str(CLIENTS / "openllmetry_langchain_app.py")], capture_output=True, text=True,
        timeout=180, env={**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{server.url}/v1/traces",
                          "COSTLINE_AUTH": server.basic, "OPENAI_BASE_URL": openai_fake.base_url},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Failed to export" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    with server.client() as c:
        trace = c.get(f"/v1/traces/{out['trace_id']}").json()
    generations = [o for o in trace["observations"] if o["type"] == "generation"]
    counted = [g for g in generations if g["pricing_status"] == "priced"]
    marked = [g for g in generations if g["pricing_status"] == "duplicate"]
    # opentelemetry-instrumentation-langchain 0.62 suppresses the OpenAI instrumentation under its own LLM
    # span (SUPPRESS_LANGUAGE_MODEL_INSTRUMENTATION_KEY), older ones did not: either way one is counted, and
    # a second report, if any, is the marked outer one (the Langfuse pair in test_langfuse_migration.py
    # always reports both)
    assert len(counted) == 1 and len(marked) == len(generations) - 1, generations
    by_id = {o["id"]: o for o in trace["observations"]}
    for outer in marked:
        parent = counted[0]["parent_id"]
        while parent is not None and parent != outer["id"]:
            parent = by_id[parent]["parent_id"]
        assert parent == outer["id"], generations
        assert outer["total_cost"] is None and counted[0]["id"] in outer["pricing_reason"]
    assert counted[0]["usage"] == {"input_tokens": 2006, "cache_read_tokens": 1920, "output_tokens": 300}
    assert D(counted[0]["total_cost"]) == ONE_CALL
    assert D(trace["total_cost"]) == ONE_CALL
    with server.client() as c:
        query = {"view": "observations", "metrics": ["sum:cost", "calls"],
                 "filters": [{"field": "trace_id", "operator": "=", "value": out["trace_id"]}],
                 "from": "2000-01-01T00:00:00Z"}
        r = c.get("/v1/metrics", params={"query": json.dumps(query)})
    assert r.status_code == 200, r.text
    [row] = r.json()["data"]
    assert D(row["sum_cost"]) == ONE_CALL and row["calls"] == 1
