"""POST /v1/ingest over real HTTP, on DuckDB and PostgreSQL. Costs from published prices, by hand."""

from __future__ import annotations

import gzip
import json
import uuid
from decimal import Decimal as D

import httpx
from tests.server.harness import Server

T0 = "2026-11-01T12:00:00Z"


def gen(**fields: object) -> dict[str, object]:
    return {"type": "generation", "id": uuid.uuid4().hex, "trace_id": uuid.uuid4().hex, "start_time": T0, **fields}


def trace_of(server: Server, trace_id: str) -> dict[str, object]:
    with server.client() as c:
        r = c.get(f"/api/public/traces/{trace_id}")
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


def test_ingest_prices_and_stores(server: Server) -> None:
    trace_id = uuid.uuid4().hex
    events = [
        # gpt-4o: 600 uncached × 2.5 + 400 cached × 1.25 + 200 × 10 = 1500 + 500 + 2000 = 4000 / 1M = 0.004
        gen(id="g1", trace_id=trace_id, model="gpt-4o", provider="openai",
            usage={"input_tokens": 1000, "cache_read_tokens": 400, "output_tokens": 200}),
        # the raw Anthropic usage object: input_tokens excludes the cache → 100 + 2000 + 500 = 2600 input
        # claude-sonnet-4-5: 100 × 3 + 2000 × 3.75 + 500 × 0.3 + 300 × 15 = 300 + 7500 + 150 + 4500 = 12450
        gen(id="g2", trace_id=trace_id, model="claude-sonnet-4-5", provider="anthropic", usage_format="anthropic",
            usage={"input_tokens": 100, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 500,
                   "output_tokens": 300}),
        {"type": "trace", "id": trace_id, "name": "chat", "user_id": "u1", "session_id": "s1", "tags": ["a"]},
    ]
    with server.client() as c:
        r = c.post("/v1/ingest", json={"events": events})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 3 and body["rejected"] == 0
    costs = {x["id"]: x for x in body["costs"]}
    assert costs["g1"]["total"] == "0.004" and costs["g1"]["status"] == "priced"
    assert costs["g2"]["total"] == "0.01245"
    trace = trace_of(server, trace_id)
    assert D(str(trace["totalCost"])) == D("0.01645")
    assert trace["userId"] == "u1" and trace["sessionId"] == "s1" and trace["tags"] == ["a"]
    obs = {o["id"]: o for o in trace["observations"]}  # type: ignore[attr-defined]
    assert D(str(obs["g1"]["calculatedTotalCost"])) == D("0.004")
    assert obs["g2"]["model"] == "claude-sonnet-4-5"


def test_same_id_twice_is_stored_once(server: Server) -> None:
    event = gen(model="gpt-4o", usage={"input_tokens": 1000, "output_tokens": 0})
    with server.client() as c:
        for _ in range(3):
            assert c.post("/v1/ingest", json={"events": [event]}).status_code == 200
    trace = trace_of(server, str(event["trace_id"]))
    assert len(trace["observations"]) == 1  # type: ignore[arg-type]
    # 1000 × 2.5 / 1M
    assert D(str(trace["totalCost"])) == D("0.0025")


def test_unknown_model_is_unpriced_not_zero(server: Server) -> None:
    event = gen(model="house-model-9", usage={"input_tokens": 10, "output_tokens": 5})
    with server.client() as c:
        r = c.post("/v1/ingest", json={"events": [event]})
    cost = r.json()["costs"][0]
    assert cost["status"] == "unpriced" and cost["total"] is None
    obs = trace_of(server, str(event["trace_id"]))["observations"][0]  # type: ignore[index]
    assert obs["calculatedTotalCost"] is None


def test_provided_cost_wins(server: Server) -> None:
    event = gen(model="gpt-4o", usage={"input_tokens": 1000, "output_tokens": 100}, cost={"total": "0.5"})
    with server.client() as c:
        cost = c.post("/v1/ingest", json={"events": [event]}).json()["costs"][0]
    assert cost["total"] == "0.5" and cost["status"] == "provided"


def test_bad_items_are_reported_and_good_ones_kept(server: Server) -> None:
    good = gen(model="gpt-4o", usage={"input_tokens": 10, "output_tokens": 1})
    events = [
        good,
        gen(model="gpt-4o", usage={"input_tokens": -5}),
        gen(model="gpt-4o", usage={"input_tokens": 10, "cache_read_tokens": 20}),
        {"type": "nonsense", "id": "x1"},
        gen(model="gpt-4o", start_time="yesterday"),
        {"type": "generation"},
        "not an object",
    ]
    with server.client() as c:
        r = c.post("/v1/ingest", json={"events": events})
    assert r.status_code == 207
    body = r.json()
    assert body["accepted"] == 1 and body["rejected"] == 6
    messages = [e["message"] for e in body["errors"]]
    assert "events[1].usage: input_tokens: quantity must not be negative, got -5" in messages
    assert any("cache_read_tokens (20) exceeds input_tokens (10)" in m for m in messages)
    assert any(m.startswith("events[3].type: unknown type 'nonsense'") for m in messages)
    assert any(m.startswith("events[4].start_time: 'yesterday' is not an ISO 8601") for m in messages)
    assert any(m.startswith("events[5].id: required") for m in messages)
    assert any(m.startswith("events[6]: expected an object") for m in messages)
    assert len(trace_of(server, str(good["trace_id"]))["observations"]) == 1  # type: ignore[arg-type]


def test_malformed_bodies(server: Server) -> None:
    with server.client() as c:
        r = c.post("/v1/ingest", content=b'{"events": [', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
        r = c.post("/v1/ingest", json=[1, 2])
        assert r.status_code == 400 and "events" in r.json()["message"]
        r = c.post("/v1/ingest", content=b"\x1f\x8b garbage", headers={"Content-Encoding": "gzip"})
        assert r.status_code == 400 and "gzip" in r.json()["message"]
        packed = gzip.compress(json.dumps({"events": [gen(model="gpt-4o")]}).encode())
        r = c.post("/v1/ingest", content=packed, headers={"Content-Encoding": "gzip",
                                                         "Content-Type": "application/json"})
        assert r.status_code == 200, r.text


def test_auth_is_required_and_scoped(server: Server) -> None:
    event = gen(model="gpt-4o", usage={"input_tokens": 1})
    r = httpx.post(f"{server.url}/v1/ingest", json={"events": [event]})
    assert r.status_code == 401
    r = httpx.post(f"{server.url}/v1/ingest", json={"events": [event]},
                   headers={"Authorization": f"Bearer {server.secret_key}x"})
    assert r.status_code == 401
    r = httpx.post(f"{server.url}/v1/ingest", json={"events": [event]},
                   headers={"Authorization": f"Bearer {server.secret_key}"})
    assert r.status_code == 200
    assert httpx.get(f"{server.url}/api/public/health").status_code == 200  # open on loopback


def test_a_call_reported_again_in_a_later_batch_is_counted_once(server: Server) -> None:
    """The inner report arrives first (its parent not yet stored), a span between them next, and the outer
    report last, in a batch of its own with no parent link: the outer one is still found to duplicate it."""
    trace_id = uuid.uuid4().hex
    usage = {"input_tokens": 1000, "output_tokens": 200}  # gpt-4o: 1000 × 2.5 + 200 × 10 = 4500 / 1M = 0.0045
    inner = gen(id=f"{trace_id}-inner", trace_id=trace_id, parent_id=f"{trace_id}-span", model="gpt-4o-2024-08-06",
                provider="openai", usage=usage, start_time="2026-11-01T12:00:00.5Z", end_time="2026-11-01T12:00:02Z")
    span = {"type": "span", "id": f"{trace_id}-span", "trace_id": trace_id, "parent_id": f"{trace_id}-outer",
            "start_time": T0}
    outer = gen(id=f"{trace_id}-outer", trace_id=trace_id, model="gpt-4o", provider="openai", usage=usage,
                start_time=T0, end_time="2026-11-01T12:00:03Z")
    with server.client() as c:
        replies = [c.post("/v1/ingest", json={"events": [event]}) for event in (inner, span, outer)]
        assert [r.status_code for r in replies] == [200, 200, 200], [r.text for r in replies]
        [cost] = replies[2].json()["costs"]
        assert (cost["id"], cost["total"], cost["status"]) == (outer["id"], None, "duplicate")
        stored = c.get(f"/v1/traces/{trace_id}").json()["observations"]
    by_id = {o["id"]: o for o in stored}
    assert by_id[inner["id"]]["pricing_status"] == "priced" and D(by_id[inner["id"]]["total_cost"]) == D("0.0045")
    assert by_id[outer["id"]]["pricing_status"] == "duplicate" and by_id[outer["id"]]["total_cost"] is None
