"""The Langfuse-compatible REST routes over real HTTP (the SDK tests cover the OTLP path)."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

from tests.server.harness import Server

T0 = "2026-11-01T12:00:00.000Z"


def envelope(kind: str, body: dict[str, object]) -> dict[str, object]:
    return {"id": uuid.uuid4().hex, "type": kind, "timestamp": T0, "body": body}


def test_ingestion_create_then_update_prices_once(server: Server) -> None:
    trace_id, gen_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    batch = [
        envelope("trace-create", {"id": trace_id, "name": "chat", "userId": "u9", "sessionId": "s9",
                                  "tags": ["x"], "timestamp": T0}),
        envelope("generation-create", {"id": gen_id, "traceId": trace_id, "name": "llm", "startTime": T0,
                                       "model": "gpt-4o"}),
        envelope("generation-update", {"id": gen_id, "traceId": trace_id, "endTime": "2026-11-01T12:00:02Z",
                                       "usageDetails": {"input": 600, "input_cached_tokens": 400, "output": 200}}),
        envelope("sdk-log", {"log": "hello"}),
        envelope("bogus-create", {}),
        envelope("generation-create", {"id": "g-bad", "traceId": trace_id, "usageDetails": {"input": -5}}),
    ]
    with server.client() as c:
        r = c.post("/api/public/ingestion", json={"batch": batch, "metadata": {"sdk_name": "python"}})
        assert r.status_code == 207
        body = r.json()
        assert {s["id"] for s in body["successes"]} == {e["id"] for e in batch[:4]}
        errors = {e["id"]: e for e in body["errors"]}
        assert set(errors) == {batch[4]["id"], batch[5]["id"]}
        assert "type" in errors[batch[4]["id"]]["message"]
        assert "input" in errors[batch[5]["id"]]["message"]
        trace = c.get(f"/api/public/traces/{trace_id}").json()
    assert trace["userId"] == "u9" and trace["name"] == "chat"
    (gen,) = trace["observations"]
    # 600 uncached + 400 cached + 200 output on gpt-4o: 1500 + 500 + 2000 = 4000 / 1M
    assert D(str(gen["calculatedTotalCost"])) == D("0.004")
    assert gen["endTime"].startswith("2026-11-01T12:00:02")


def test_trace_attributes_after_observations(server: Server) -> None:
    trace_id = uuid.uuid4().hex
    with server.client() as c:
        c.post("/api/public/ingestion", json={"batch": [
            envelope("generation-create", {"id": uuid.uuid4().hex[:16], "traceId": trace_id, "model": "gpt-4o",
                                           "startTime": T0, "usageDetails": {"input": 10, "output": 1}})]})
        c.post("/api/public/ingestion", json={"batch": [
            envelope("trace-create", {"id": trace_id, "userId": "late-user", "sessionId": "late-session"})]})
        trace = c.get(f"/api/public/traces/{trace_id}").json()
    assert trace["userId"] == "late-user" and trace["sessionId"] == "late-session"


def test_scores_object_and_array(server: Server) -> None:
    with server.client() as c:
        r = c.post("/api/public/scores", json={"name": "quality", "value": 0.9, "traceId": "t"})
        assert r.status_code == 200 and r.json()["id"]
        r = c.post("/api/public/scores", json=[{"name": "a", "value": 1, "traceId": "t"},
                                               {"name": "b", "value": "good", "traceId": "t"}])
        assert r.status_code == 202 and r.json() == {"message": "Accepted"}
        r = c.post("/api/public/scores", json=[{"name": "a", "value": 1}, {"value": 2}])
        assert r.status_code == 207 and r.json()["rejected"] == 1


def test_projects_and_health(server: Server) -> None:
    with server.client() as c:
        data = c.get("/api/public/projects").json()["data"]
    assert data[0]["id"] == server.project_id
    assert data[0]["metadata"] == {} and data[0]["organization"]["id"]


def test_models_api_prices_the_project(server: Server) -> None:
    body = {"modelName": "house-llm", "matchPattern": "(?i)^house-llm$", "unit": "TOKENS",
            "inputPrice": 0.000001, "outputPrice": 0.000002}
    with server.client() as c:
        r = c.post("/api/public/models", json=body)
        assert r.status_code == 200, r.text
        model = r.json()
        assert model["modelName"] == "house-llm" and model["matchPattern"] == "(?i)^house-llm$"
        assert model["isLangfuseManaged"] is False
        model_id = model["id"]
        assert c.get(f"/api/public/models/{model_id}").json()["id"] == model_id
        assert any(m["id"] == model_id for m in c.get("/api/public/models").json()["data"])
        event = {"type": "generation", "id": uuid.uuid4().hex, "model": "HOUSE-LLM", "start_time": T0,
                 "usage": {"input_tokens": 1_000_000, "output_tokens": 1_000_000}}
        cost = c.post("/v1/ingest", json={"events": [event]}).json()["costs"][0]
        # $0.000001 per input token and $0.000002 per output token: 1M × 1e-6 + 1M × 2e-6 = 3
        assert cost["total"] == "3" and cost["status"] == "priced"
        bad = c.post("/api/public/models", json={"modelName": "x", "matchPattern": "(", "unit": "TOKENS"})
        assert bad.status_code == 400 and "matchPattern" in bad.json()["message"]
        assert c.delete(f"/api/public/models/{model_id}").status_code == 200
        assert c.get(f"/api/public/models/{model_id}").status_code == 404
        cost = c.post("/v1/ingest", json={"events": [{**event, "id": uuid.uuid4().hex}]}).json()["costs"][0]
        assert cost["status"] == "unpriced"
