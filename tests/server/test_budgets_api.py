"""Budget routes through a real `costline serve`, on DuckDB and PostgreSQL.

Prices used (OpenAI list prices, per 1M tokens): gpt-4o $2.50 input / $10 output; gpt-4o-mini $0.15 input /
$0.60 output. `local-llama` is priced at $0 by a user price file (a model the team runs itself).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from tests.server.harness import Server, drop_postgres_schema, make_server, postgres_url

PRICES = """\
prices:
  - model: local-llama
    rates: {input_tokens: 0, output_tokens: 0}
"""


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"budgets-{request.param}")
    prices = tmp / "local.yaml"
    prices.write_text(PRICES, "utf-8")
    server, schema = make_server(request.param, tmp)
    server.env["COSTLINE_PRICE_FILES"] = str(prices)
    server.start()
    yield server
    server.stop()
    base = postgres_url()
    if schema and base:
        drop_postgres_schema(base, schema)


@pytest.fixture
def client(srv: Server) -> Iterator[httpx.Client]:
    with srv.client() as c:
        yield c
        for budget in c.get("/v1/budgets").json()["data"]:  # each test starts without budgets
            c.delete(f"/v1/budgets/{budget['id']}")


def _budget(client: httpx.Client, **spec: object) -> dict[str, object]:
    answer = client.post("/v1/budgets", json=spec)
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def _check(client: httpx.Client, **body: object) -> dict[str, object]:
    answer = client.post("/v1/budgets/check", json=body)
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


def _user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def test_budget_crud_and_validation(client: httpx.Client) -> None:
    created = _budget(client, name="crud-day", window="day", timezone="Europe/Berlin", limit="10.00",
                      scope={"environment": "prod"}, thresholds=[80, 50])
    assert created["limit"] == "10.00" and created["thresholds"] == [50, 80] and created["action"] == "alert"
    listed = client.get("/v1/budgets").json()["data"]
    assert any(b["id"] == "crud-day" for b in listed)
    shown = client.get("/v1/budgets/crud-day").json()
    assert shown["status"]["used"] == "0" and shown["status"]["limit"] == "10"
    berlin = ZoneInfo("Europe/Berlin")
    midnight = datetime.now(berlin).replace(hour=0, minute=0, second=0, microsecond=0)
    assert datetime.fromisoformat(shown["status"]["window_start"]) == midnight  # local midnight, shown in the zone
    assert client.delete("/v1/budgets/crud-day").status_code == 200
    assert client.get("/v1/budgets/crud-day").status_code == 404
    assert client.delete("/v1/budgets/crud-day").status_code == 404
    for body, field in [
        ({"window": "day", "limit": 1}, "budget.name"),
        ({"name": "x", "window": "fortnight", "limit": 1}, "budget.window"),
        ({"name": "x", "window": "day", "limit": "-1"}, "budget.limit"),
        ({"name": "x", "window": "day"}, "budget.limit"),
        ({"name": "x", "window": "day", "limit": 1, "timezone": "Mars/Olympus"}, "budget.timezone"),
        ({"name": "x", "window": "day", "limit": 1, "action": "downgrade"}, "budget.downgrade_to"),
        ({"name": "x", "window": "day", "limit": 1, "scope": {"colour": "red"}}, "budget.scope.colour"),
        ({"name": "x", "window": "day", "limit": 1, "limitt": 2}, "budget.limitt"),
        ({"id": "x'; DROP TABLE observations; --", "name": "x", "window": "day", "limit": 1}, "budget.id"),
    ]:
        answer = client.post("/v1/budgets", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["message"].startswith(field), answer.json()
    hostile = _budget(client, name="x'; DROP TABLE observations; --", window="day", limit=1)
    assert hostile["id"] == "x-DROP-TABLE-observations"  # an id made from the name, the name kept as written
    assert client.get(f"/v1/budgets/{hostile['id']}").json()["name"] == "x'; DROP TABLE observations; --"
    assert client.post("/v1/budgets", content=b"{not json").status_code == 400
    assert client.post("/v1/budgets", content=b"x" * (2 * 1024 * 1024)).status_code == 413


def test_check_reserve_settle_and_deny(client: httpx.Client) -> None:
    user = _user()
    _budget(client, id="per-user-day", name="per-user-day", window="day", per="user", limit="0.03", action="block")
    # 1,000 in + 1,000 out of gpt-4o: 0.0025 + 0.01 = 0.0125
    first = _check(client, model="gpt-4o", user=user, usage={"input_tokens": 1000, "output_tokens": 1000})
    assert first["decision"] == "allow" and first["estimate"] == "0.0125"
    assert first["usage"]["day"]["used"] == "0.0125" and first["remaining"] == "0.0175"
    second = _check(client, model="gpt-4o", user=user, usage={"input_tokens": 1000, "output_tokens": 1000})
    assert second["decision"] == "allow" and Decimal(second["usage"]["day"]["used"]) == Decimal("0.025")
    # a third would reach 0.0375 > 0.03: denied while the two holds stand
    third = _check(client, model="gpt-4o", user=user, usage={"input_tokens": 1000, "output_tokens": 1000})
    assert third["decision"] == "deny" and third["allowed"] is False and third["reservation_id"] is None
    assert "per-user-day" in third["reason"] and third["resets_at"] is not None
    # the first call used 1,000 in + 200 out: 0.0025 + 0.002 = 0.0045, settled through ingestion
    ingested = client.post("/v1/ingest", json={"events": [{
        "type": "generation", "id": f"gen-{user}", "trace_id": f"t-{user}", "model": "gpt-4o", "user_id": user,
        "start_time": datetime.now(UTC).isoformat(), "usage": {"input_tokens": 1000, "output_tokens": 200},
        "metadata": {"costline_reservation": first["reservation_id"]},
    }]})
    assert ingested.status_code == 200, ingested.text
    # the second was never made
    assert client.delete(f"/v1/budgets/reservations/{second['reservation_id']}").status_code == 200
    assert client.delete(f"/v1/budgets/reservations/{second['reservation_id']}").status_code == 404
    status = client.get("/v1/budgets/per-user-day", params={"subject": user}).json()["status"]
    assert Decimal(status["used"]) == Decimal("0.0045") and status["requests_used"] == 1
    fourth = _check(client, model="gpt-4o", user=user, usage={"input_tokens": 1000, "output_tokens": 1000},
                    reserve=False)
    assert fourth["decision"] == "allow" and fourth["reservation_id"] is None
    assert Decimal(fourth["budgets"][0]["used"]) == Decimal("0.0045") + Decimal("0.0125")
    client.delete("/v1/budgets/per-user-day")


def test_settle_records_the_call(client: httpx.Client) -> None:
    user = _user()
    _budget(client, id="settle-day", name="settle-day", window="day", per="user", limit="1", action="block")
    held = _check(client, model="gpt-4o-mini", user=user, prompt="Say hello", max_output_tokens=100,
                  environment="prod", tags=["demo"], metadata={"feature": "chat"})
    assert held["decision"] == "allow"
    # "Say hello" is 2 o200k tokens: 2 × 0.15/1M + 100 × 0.60/1M = 0.0000003 + 0.00006 = 0.0000603
    assert Decimal(held["estimate"]) == Decimal("0.0000603")
    settled = client.post(f"/v1/budgets/reservations/{held['reservation_id']}/settle",
                          json={"usage": {"input_tokens": 2, "output_tokens": 40}})
    assert settled.status_code == 200, settled.text
    # 2 × 0.15/1M + 40 × 0.60/1M = 0.0000003 + 0.000024 = 0.0000243
    assert Decimal(settled.json()["cost"]) == Decimal("0.0000243")
    status = client.get("/v1/budgets/settle-day", params={"subject": user}).json()["status"]
    assert Decimal(status["used"]) == Decimal("0.0000243") and status["requests_used"] == 1
    again = client.post(f"/v1/budgets/reservations/{held['reservation_id']}/settle", json={"cost": "1"})
    assert again.status_code == 404
    trace = client.get("/v1/events", params={"user": user}).json()["data"]
    assert trace[0]["metadata"]["feature"] == "chat" and trace[0]["tags"] == ["demo"]
    client.delete("/v1/budgets/settle-day")


def test_zero_cost_models_are_exempt_and_unknown_costs_follow_the_policy(client: httpx.Client) -> None:
    user = _user()
    _budget(client, id="spent-out", name="spent-out", window="day", per="user", limit="0", action="block")
    local = _check(client, model="local-llama", user=user, usage={"input_tokens": 5000, "output_tokens": 5000})
    assert local["decision"] == "allow" and local["estimate"] == "0"
    paid = _check(client, model="gpt-4o", user=user, usage={"input_tokens": 1, "output_tokens": 0})
    assert paid["decision"] == "deny"
    unknown = _check(client, model="no-such-model-xyz", user=user, usage={"input_tokens": 1})
    assert unknown["decision"] == "deny" and "cannot be estimated" in unknown["reason"]
    assert unknown["estimate"] is None
    _budget(client, id="spent-out", name="spent-out", window="day", per="user", limit="0", action="block",
            on_unknown_cost="open")
    assert _check(client, model="no-such-model-xyz", user=user)["decision"] == "allow"
    client.delete("/v1/budgets/spent-out")


def test_downgrade_and_tiers_and_quotas(client: httpx.Client) -> None:
    user, other = _user(), _user()
    _budget(client, id="big-model", name="big-model", window="day", per="user", limit="0.01", action="downgrade",
            downgrade_to="gpt-4o-mini", scope={"model": "gpt-4o"})
    # gpt-4o at 1,000 + 1,000 = 0.0125 > 0.01: downgraded; gpt-4o-mini: 0.00015 + 0.0006 = 0.00075
    answer = _check(client, model="gpt-4o", user=user, usage={"input_tokens": 1000, "output_tokens": 1000})
    assert answer["decision"] == "downgrade" and answer["model"] == "gpt-4o-mini"
    assert answer["estimate"] == "0.00075" and "big-model" in answer["reason"]
    client.delete("/v1/budgets/big-model")
    _budget(client, id="free-requests", name="free-requests", window="day", tier="free", max_requests=2,
            action="block")
    assert client.put(f"/v1/users/{user}/tier", json={"tier": "free"}).status_code == 200
    for _ in range(2):
        assert _check(client, model="gpt-4o-mini", user=user, max_output_tokens=10)["decision"] == "allow"
    third = _check(client, model="gpt-4o-mini", user=user, max_output_tokens=10)
    assert third["decision"] == "deny" and "quota of 2" in third["reason"]
    assert third["usage"]["day"]["requests_used"] == 2 and third["usage"]["day"]["max_requests"] == 2
    # a user not on the tier is not counted; one named free in the request is
    assert _check(client, model="gpt-4o-mini", user=other, max_output_tokens=10)["budgets"] == []
    assert len(_check(client, model="gpt-4o-mini", user=other, tier="free", max_output_tokens=10)["budgets"]) == 1
    assert client.put(f"/v1/users/{user}/tier", json={"tier": None}).status_code == 200
    assert _check(client, model="gpt-4o-mini", user=user, max_output_tokens=10)["decision"] == "allow"
    client.delete("/v1/budgets/free-requests")


def test_bad_check_requests_name_the_field(client: httpx.Client) -> None:
    for body, field in [
        ({}, "model"),
        ({"model": 7}, "model"),
        ({"model": "gpt-4o", "user": ["a"]}, "user"),
        ({"model": "gpt-4o", "tags": "x"}, "tags"),
        ({"model": "gpt-4o", "metadata": {"a": {"b": 1}}}, "metadata.a"),
        ({"model": "gpt-4o", "estimated_cost": "NaN"}, "estimated_cost"),
        ({"model": "gpt-4o", "estimated_cost": -1}, "estimated_cost"),
        ({"model": "gpt-4o", "usage": {"input_tokens": -5}}, "usage"),
        ({"model": "gpt-4o", "max_output_tokens": 1.5}, "max_output_tokens"),
        ({"model": "gpt-4o", "ttl_seconds": 0}, "ttl_seconds"),
        ({"model": "gpt-4o", "modle": "x"}, "modle"),
        ({"model": "x" * 201}, "model"),
    ]:
        answer = client.post("/v1/budgets/check", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["message"].startswith(field), (body, answer.json())
    assert client.post("/v1/budgets/check", content=b"[1, 2]").status_code == 400
    assert client.put("/v1/users/u/tier", json={"tier": 5}).status_code == 400
    assert client.post("/v1/budgets/reservations/nope/settle", json={"cost": "1"}).status_code == 404


def test_budget_routes_need_a_key(srv: Server) -> None:
    for method, path in [("GET", "/v1/budgets"), ("POST", "/v1/budgets/check"), ("GET", "/v1/alerts"),
                         ("PUT", "/v1/users/u/tier"), ("GET", "/v1/forecast")]:
        assert httpx.request(method, f"{srv.url}{path}", timeout=10).status_code == 401


def test_forecast_and_month_budget_status(client: httpx.Client) -> None:
    env = f"fc-{uuid.uuid4().hex[:6]}"
    # 400,000 input tokens of gpt-4o at $2.50 per 1M: $1.00 spent today in this environment
    answer = client.post("/v1/ingest", json={"events": [{
        "type": "generation", "id": uuid.uuid4().hex, "trace_id": uuid.uuid4().hex, "model": "gpt-4o",
        "start_time": datetime.now(UTC).isoformat(), "usage": {"input_tokens": 400_000}, "environment": env,
    }]})
    assert answer.status_code == 200
    found = client.get("/v1/forecast", params={"environment": env, "limit": "1000"}).json()
    assert Decimal(found["spent"]) == Decimal(1)
    assert Decimal(found["spent"]) <= Decimal(found["low"]) <= Decimal(found["projected"]) <= Decimal(found["high"])
    assert found["limit"] == "1000" and found["projected_over_limit"] is False
    _budget(client, id="month", name="month", window="month", limit="100", scope={"environment": env})
    shown = client.get("/v1/budgets/month").json()
    assert Decimal(shown["status"]["used"]) == Decimal(1) and Decimal(shown["forecast"]["spent"]) == Decimal(1)
    bad = client.get("/v1/forecast", params={"colour": "red"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("colour")
    assert client.get("/v1/forecast", params={"timezone": "Nowhere/Land"}).status_code == 400


def test_a_langfuse_generation_settles_its_reservation(client: httpx.Client) -> None:
    """Apps on the Langfuse SDK put the reservation id in the generation's metadata; nothing else changes."""
    user = _user()
    _budget(client, id="lf-day", name="lf-day", window="day", per="user", limit="1", action="block")
    held = _check(client, model="gpt-4o", user=user, usage={"input_tokens": 1000, "output_tokens": 1000})
    now = datetime.now(UTC).isoformat()
    generation = {"id": uuid.uuid4().hex, "traceId": uuid.uuid4().hex, "name": "chat", "startTime": now,
                  "model": "gpt-4o", "usage": {"input": 1000, "output": 100},
                  "metadata": {"costline_reservation": held["reservation_id"]}}
    trace = {"id": generation["traceId"], "timestamp": now, "userId": user}
    answer = client.post("/api/public/ingestion", json={"batch": [
        {"id": uuid.uuid4().hex, "type": "trace-create", "timestamp": now, "body": trace},
        {"id": uuid.uuid4().hex, "type": "generation-create", "timestamp": now, "body": generation},
    ]})
    assert answer.status_code == 207, answer.text
    assert client.delete(f"/v1/budgets/reservations/{held['reservation_id']}").status_code == 404  # released
    status = client.get("/v1/budgets/lf-day", params={"subject": user}).json()["status"]
    # 1,000 × 2.50/1M + 100 × 10/1M = 0.0025 + 0.001 = 0.0035, attributed to the user through the trace
    assert Decimal(status["used"]) == Decimal("0.0035") and status["requests_used"] == 1


def test_budgets_as_prometheus_gauges(client: httpx.Client) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    env = f"prom-{uuid.uuid4().hex[:6]}"
    _budget(client, id="prom-day", name="prom-day", window="day", limit="10", max_requests=100,
            scope={"environment": env})
    _budget(client, id="prom-per-user", name="prom-per-user", window="day", per="user", limit="1")
    # 400,000 input tokens of gpt-4o at $2.50 per 1M: $1.00
    client.post("/v1/ingest", json={"events": [{
        "type": "generation", "id": uuid.uuid4().hex, "trace_id": uuid.uuid4().hex, "model": "gpt-4o",
        "start_time": datetime.now(UTC).isoformat(), "usage": {"input_tokens": 400_000}, "environment": env,
    }]}).raise_for_status()
    text = client.get("/metrics").text
    samples = {(s.name, s.labels.get("budget")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples
               if s.name.startswith("costline_budget")}
    assert samples[("costline_budget_used", "prom-day")] == 1.0
    assert samples[("costline_budget_limit", "prom-day")] == 10.0
    assert samples[("costline_budget_remaining", "prom-day")] == 9.0
    assert samples[("costline_budget_requests_used", "prom-day")] == 1
    assert samples[("costline_budget_max_requests", "prom-day")] == 100
    assert not any(budget == "prom-per-user" for _, budget in samples)  # no series per user
