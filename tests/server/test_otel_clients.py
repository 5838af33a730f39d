"""Real OpenTelemetry clients report to costline: the SDK's OTLP/HTTP exporter (protobuf, plain and gzip),
an OTLP/JSON body, and OpenLLMetry around the official openai client talking to a local OpenAI-protocol
server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal as D
from pathlib import Path

import httpx
import pytest
from tests.server.harness import Server

CLIENTS = Path(__file__).parent / "clients"


def run_client(script: str, server: Server, path: str = "/v1/traces", **env: str) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, str(CLIENTS / script)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{server.url}{path}",
             "COSTLINE_AUTH": server.basic, **env},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Failed to export" not in proc.stderr, proc.stderr
    ids: dict[str, str] = json.loads(proc.stdout)
    return ids


def get_trace(server: Server, trace_id: str) -> dict[str, object]:
    with server.client() as c:
        r = c.get(f"/api/public/traces/{trace_id}")
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


@pytest.mark.parametrize(("path", "gzip"), [("/v1/traces", ""), ("/api/public/otel/v1/traces", "1")])
def test_otel_sdk_exporter_protobuf(server: Server, path: str, gzip: str) -> None:
    ids = run_client("otel_genai_app.py", server, path, GZIP=gzip)
    trace = get_trace(server, ids["trace_id"])
    (obs,) = trace["observations"]  # type: ignore[misc]
    assert obs["type"] == "GENERATION" and obs["model"] == "gpt-4o-mini-2024-07-18"
    # gpt-4o-mini: 86 uncached × 0.15 + 1920 cached × 0.075 + 300 × 0.60 = 12.9 + 144 + 180 = 336.9 / 1M
    assert D(str(obs["calculatedTotalCost"])) == D("0.0003369")
    assert trace["sessionId"] == "conv-1" and trace["userId"] == "otel-user"


def test_otlp_json_body(server: Server) -> None:
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"scope": {"name": "openinference.instrumentation.openai"}, "spans": [{
            "traceId": trace_id.upper(), "spanId": span_id, "name": "ChatCompletion", "kind": 3,
            "startTimeUnixNano": "1761998400000000000", "endTimeUnixNano": 1761998401500000000,
            "attributes": [
                {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                {"key": "llm.model_name", "value": {"stringValue": "gpt-4o-2024-08-06"}},
                {"key": "llm.token_count.prompt", "value": {"intValue": "100"}},
                {"key": "llm.token_count.completion", "value": {"intValue": 20}},
                {"key": "llm.token_count.prompt_details.cache_read", "value": {"intValue": "40"}},
                {"key": "llm.token_count.completion_details.reasoning", "value": {"intValue": "5"}},
            ]}]}]}]}
    r = httpx.post(f"{server.url}/v1/traces", json=body, headers=server.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {}
    obs = get_trace(server, trace_id)["observations"][0]  # type: ignore[index]
    # gpt-4o: 60 × 2.5 + 40 × 1.25 + 20 × 10 (reasoning billed as output) = 150 + 50 + 200 = 400 / 1M
    assert D(str(obs["calculatedTotalCost"])) == D("0.0004")


def test_otlp_bad_input(server: Server) -> None:
    url = f"{server.url}/v1/traces"
    r = httpx.post(url, content=b"\x00\x01garbage", headers={**server.headers,
                                                             "Content-Type": "application/x-protobuf"})
    assert r.status_code == 400
    r = httpx.post(url, content=b"{}", headers={**server.headers, "Content-Type": "text/plain"})
    assert r.status_code == 415
    good, bad = uuid.uuid4().hex, "xyz"
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": good, "spanId": good[:16], "name": "ok", "startTimeUnixNano": "1761998400000000000",
         "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}]},
        {"traceId": good, "spanId": bad, "name": "bad", "startTimeUnixNano": "1761998400000000000"},
    ]}]}]}
    r = httpx.post(url, json=body, headers=server.headers)
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] in ("1", 1) and "spanId" in partial["errorMessage"]
    assert len(get_trace(server, good)["observations"]) == 1  # type: ignore[arg-type]


def test_openllmetry_openai_instrumentation(server: Server) -> None:
    ids = run_client("openllmetry_app.py", server)
    trace = get_trace(server, ids["trace_id"])
    obs = next(o for o in trace["observations"] if o["id"] == ids["span_id"])  # type: ignore[attr-defined]
    assert obs["model"] == "gpt-4o-2024-08-06"
    assert obs["usageDetails"]["input"] + obs["usageDetails"].get("input_cached_tokens", 0) == 100
    # the fake OpenAI reply: 100 prompt (40 cached), 20 completion (5 reasoning) at gpt-4o prices
    # 60 × 2.5 + 40 × 1.25 + 20 × 10 = 150 + 50 + 200 = 400 / 1M = 0.0004
    assert D(str(obs["calculatedTotalCost"])) == D("0.0004")
