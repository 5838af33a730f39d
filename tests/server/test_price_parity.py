"""Prices through a real ``costline serve`` (DuckDB and PostgreSQL) started with a user price file written the
LiteLLM way (``openai/gpt-4o-mini``, ``gemini/gemini-2.5-flash-lite: free``): the user's price wins at
ingestion; a call with no usage, or characters against a per-token price, is stored ``unpriced`` with its
reason and a NULL total. Figures by hand from published prices (USD per 1M units)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from tests.providers.openai_server import OpenAIFake
from tests.server.harness import Server, drop_postgres_schema, make_server, postgres_url

CLIENTS = Path(__file__).parent / "clients"
T0 = "2026-11-01T12:00:00Z"
USER_FILE = """\
prices:
  - model: openai/gpt-4o-mini
    rates: {input_tokens: 0.10, output_tokens: 0.40}
  - model: gemini/gemini-2.5-flash-lite
    free: true
"""


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def priced_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"parity-{request.param}")
    prices = tmp / "prices.yaml"
    prices.write_text(USER_FILE)
    srv, schema = make_server(request.param, tmp)
    srv.env = {**srv.env, "COSTLINE_PRICE_FILES": str(prices)}
    srv.start()
    yield srv
    srv.stop()
    base = postgres_url()
    if schema and base:
        drop_postgres_schema(base, schema)


def gen(trace_id: str, **fields: object) -> dict[str, object]:
    return {"type": "generation", "id": uuid.uuid4().hex, "trace_id": trace_id, "start_time": T0, **fields}


def observations(server: Server, trace_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    with server.client() as c:
        r = c.get(f"/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    trace = r.json()
    return trace, {o["name"]: o for o in trace["observations"]}


def test_user_prices_win_at_ingestion(priced_server: Server) -> None:
    trace_id = uuid.uuid4().hex
    usage = {"input_tokens": 1000, "output_tokens": 500}
    events = [
        gen(trace_id, name="routed", model="openai/gpt-4o-mini", usage=usage),
        gen(trace_id, name="bare", model="gpt-4o-mini", provider="openai", usage=usage),
        gen(trace_id, name="free", model="gemini/gemini-2.5-flash-lite", usage=usage),
        gen(trace_id, name="free-bare", model="gemini-2.5-flash-lite", usage=usage),
        gen(trace_id, name="embedding", model="text-embedding-3-small", usage={"input_tokens": 1000}),
    ]
    with priced_server.client() as c:
        r = c.post("/v1/ingest", json={"events": events})
    assert r.status_code == 200, r.text
    trace, obs = observations(priced_server, trace_id)
    for name in ("routed", "bare"):
        # user price: 1000 × 0.10 + 500 × 0.40 = 300 / 1M (bundled 0.15 / 0.60 would make 0.00045)
        assert obs[name]["pricing_status"] == "priced"
        assert D(obs[name]["total_cost"]) == D("0.0003")
        assert obs[name]["price_id"] == "user:prices.yaml:openai/gpt-4o-mini"
    for name in ("free", "free-bare"):
        assert obs[name]["pricing_status"] == "priced"
        assert D(obs[name]["total_cost"]) == 0
        assert obs[name]["price_id"] == "user:prices.yaml:gemini/gemini-2.5-flash-lite"
    # no provider given: OpenAI's own price, not Azure's listing of the same model; 1000 × 0.02 / 1M
    assert obs["embedding"]["price_id"] == "openai:text-embedding-3-small"
    assert obs["embedding"]["provider"] == "openai"
    assert D(obs["embedding"]["total_cost"]) == D("0.00002")
    # 0.0003 × 2 + 0 × 2 + 0.00002
    assert D(trace["total_cost"]) == D("0.00062")


def test_no_usage_and_unpriceable_characters_are_unpriced(priced_server: Server) -> None:
    trace_id = uuid.uuid4().hex
    events = [
        gen(trace_id, name="no-usage", model="gpt-4o"),
        gen(trace_id, name="tts", model="tts-1", usage={"input_characters": 1234}),
        gen(trace_id, name="chars", model="text-embedding-3-small", usage={"input_characters": 1234}),
        # a Langfuse client reporting characters (unit CHARACTERS) through the Langfuse usage shape
        gen(trace_id, name="lf-chars", model="tts-1", usage_format="langfuse",
            usage={"input": 1234, "output": 0, "total": 1234, "unit": "CHARACTERS"}),
    ]
    with priced_server.client() as c:
        r = c.post("/v1/ingest", json={"events": events})
    assert r.status_code == 200, r.text
    trace, obs = observations(priced_server, trace_id)
    assert obs["no-usage"]["pricing_status"] == "unpriced"
    assert obs["no-usage"]["pricing_reason"] == "no usage"
    assert obs["no-usage"]["total_cost"] is None
    # tts-1: 1234 characters × 15 / 1M = 0.01851
    for name in ("tts", "lf-chars"):
        assert obs[name]["pricing_status"] == "priced", obs[name]
        assert D(obs[name]["total_cost"]) == D("0.01851")
    assert obs["chars"]["pricing_status"] == "unpriced"
    assert obs["chars"]["total_cost"] is None
    assert "input_characters" in obs["chars"]["pricing_reason"]
    assert D(trace["total_cost"]) == D("0.03702")  # 2 × 0.01851; the unpriced ones add nothing


def test_langfuse_openai_stream_without_usage_is_unpriced(priced_server: Server) -> None:
    env = {**os.environ, "LANGFUSE_HOST": priced_server.url, "LANGFUSE_PUBLIC_KEY": priced_server.public_key,
           "LANGFUSE_SECRET_KEY": priced_server.secret_key, "OPENAI_API_KEY": "test"}
    env.pop("LANGFUSE_BASE_URL", None)
    with OpenAIFake({"prompt_tokens": 2006, "completion_tokens": 300}).running() as fake:
        env["OPENAI_BASE_URL"] = fake.base_url
        proc = subprocess.run([sys.executable, str(CLIENTS / "langfuse_stream_no_usage_app.py")],
                              capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    trace_id = json.loads(proc.stdout)["trace_id"]
    trace, _ = observations(priced_server, trace_id)
    [generation] = [o for o in trace["observations"] if o["type"] == "generation"]
    assert generation["model"].startswith("gpt-4o")
    assert generation["pricing_status"] == "unpriced", generation
    assert generation["pricing_reason"] == "no usage"
    assert generation["total_cost"] is None
