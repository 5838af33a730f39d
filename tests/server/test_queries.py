"""The native read routes over real HTTP, on DuckDB and PostgreSQL: /v1/metrics, /v1/traces, /v1/traces/{id},
/v1/users/{id}/costs, /v1/stats and /v1/events. Expected amounts come from query_dataset (published rates ×
quantities, by hand), never from the code under test."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from tests.server.query_dataset import (
    OBSERVATIONS,
    ORPHAN,
    T1,
    T2,
    T3,
    Deployment,
    cost_of,
    deploy,
    latency_s,
    total_of,
    usage_sum,
)

ALL = [e["id"] for e in OBSERVATIONS]
NOVEMBER = {"from": "2026-11-01", "to": "2026-12-01"}


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    yield from deploy(request.param, tmp_path_factory.mktemp(f"queries-{request.param}"))


def get(env: Deployment, path: str, auth: tuple[str, str] | None = None, **params: Any) -> httpx.Response:
    credentials = auth or (env.server.public_key, env.server.secret_key)
    return httpx.get(f"{env.server.url}{path}", params=params, auth=credentials, timeout=30)


def ok(env: Deployment, path: str, auth: tuple[str, str] | None = None, **params: Any) -> Any:
    r = get(env, path, auth, **params)
    assert r.status_code == 200, r.text
    return r.json()


def bad(env: Deployment, path: str, **params: Any) -> str:
    r = get(env, path, **params)
    assert r.status_code == 400, r.text
    message: str = r.json()["message"]
    return message


def metrics(env: Deployment, query: dict[str, Any], auth: tuple[str, str] | None = None) -> Any:
    return ok(env, "/v1/metrics", auth, query=json.dumps(query))


def raw_status(env: Deployment, target: str) -> int:
    """The status of a request line too long for an HTTP client library, sent over a plain socket."""
    host, port = env.server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {env.server.basic}\r\n"
                     "Connection: close\r\n\r\n".encode())
        head = sock.recv(64).decode("latin-1")
    return int(head.split()[1])


# /v1/metrics ---------------------------------------------------------------------------------------------------

def test_metrics_by_model(env: Deployment) -> None:
    body = metrics(env, {"dimensions": ["model"], "metrics": ["sum:cost", "count", "unpriced"], "all_time": True})
    assert body["columns"] == ["model", "sum_cost", "count", "unpriced"]
    assert body["truncated"] is False and body["query"]["range_defaulted"] is False
    rows = {r["model"]: r for r in body["data"]}
    # gpt-4o: o1 0.004 + o4 0.035 + o7 0.0105 + o8 0.0014 = 0.0509
    assert D(rows["gpt-4o"]["sum_cost"]) == total_of(["o1", "o4", "o7", "o8"]) == D("0.0509")
    assert rows["gpt-4o"]["count"] == 4
    # gpt-4o-mini: o3 0.0006 + o6 0.0195 = 0.0201
    assert D(rows["gpt-4o-mini"]["sum_cost"]) == total_of(["o3", "o6"]) == D("0.0201")
    assert rows["house-model-x"] == {"model": "house-model-x", "sum_cost": None, "count": 1, "unpriced": 1}
    assert isinstance(rows["gpt-4o"]["sum_cost"], str)  # money is a decimal string


def test_metrics_days_in_a_non_utc_zone(env: Deployment) -> None:
    body = metrics(env, {"granularity": "day", "timezone": "America/New_York", "from": "2026-11-10",
                         "to": "2026-11-12", "metrics": ["sum:cost", "count", "unpriced"]})
    # local midnight in New York (UTC-5 in November) is 05:00 UTC
    assert body["query"]["from"] == "2026-11-10T05:00:00+00:00" and body["query"]["to"] == "2026-11-12T05:00:00+00:00"
    assert body["data"] == [
        {"time": "2026-11-10T00:00:00-05:00", "sum_cost": str(total_of(["o1", "o2", "o3", "o4", "o5"])),
         "count": 5, "unpriced": 1},
        {"time": "2026-11-11T00:00:00-05:00", "sum_cost": str(total_of(["o6", "o7", "o8"])), "count": 3,
         "unpriced": 0},
    ]
    assert D(body["data"][0]["sum_cost"]) == D("0.0396") and D(body["data"][1]["sum_cost"]) == D("0.0314")
    utc = metrics(env, {"granularity": "day", "from": "2026-11-10", "to": "2026-11-13"})
    assert [(r["time"][:10], D(r["sum_cost"])) for r in utc["data"]] == [
        ("2026-11-10", D("0.0046")), ("2026-11-11", D("0.065")), ("2026-11-12", D("0.0014"))]


def test_metrics_trace_attribution_and_latency(env: Deployment) -> None:
    # T2's trace event came after its observations (which say "anon"): the trace's user wins
    body = metrics(env, {"dimensions": ["user"], "metrics": ["sum:cost", "count", "unpriced"], **NOVEMBER})
    rows = {r["user"]: r for r in body["data"]}
    assert set(rows) == {"alice", "bob", "carol"}
    assert D(rows["bob"]["sum_cost"]) == cost_of("o4") and rows["bob"]["unpriced"] == 1
    assert D(rows["alice"]["sum_cost"]) == total_of(["o1", "o2", "o3", "o6", "o7"]) == D("0.0346")
    lat = metrics(env, {"metrics": ["max:latency", "sum:latency"], "all_time": True,
                        "filters": [{"field": "type", "operator": "=", "value": "generation"}]})["data"][0]
    # seconds, as decimal strings: o6 ran 10 s; the 7 generations ran 1.5+0.5+4+1+10+2+0.5 = 19.5 s
    assert lat == {"max_latency": "10", "sum_latency": "19.5"}


def test_metrics_defaults_and_errors(env: Deployment) -> None:
    body = metrics(env, {})
    assert body["query"]["range_defaulted"] is True and body["query"]["view"] == "observations"
    assert bad(env, "/v1/metrics").startswith("query: required")
    assert bad(env, "/v1/metrics", query="not json").startswith("query: not valid JSON")
    assert bad(env, "/v1/metrics", query="[1, 2]").startswith("query: expected a JSON object")
    assert bad(env, "/v1/metrics", query=json.dumps({"dimensions": ["colour"]})).startswith(
        "dimensions[0]: unknown dimension 'colour'")
    assert bad(env, "/v1/metrics", query=json.dumps({"metrics": ["median:cost"]})).startswith(
        "metrics[0]: unknown aggregation 'median'")
    assert bad(env, "/v1/metrics", query=json.dumps({"filters": [{"field": "model", "operator": "~",
                                                                  "value": "x"}]})).startswith(
        "filters[0].operator: unknown operator '~'")
    assert bad(env, "/v1/metrics", query=json.dumps({"from": "2026-12-01", "to": "2026-11-01"})).startswith("from:")
    assert bad(env, "/v1/metrics", query="{}", extra="1").startswith("extra: unknown query parameter")


def test_metrics_hostile_input(env: Deployment) -> None:
    # SQL in a metadata key is refused by name; SQL in a value is only ever a bound parameter
    key = "x') OR 1=1; DROP TABLE observations; --"
    message = bad(env, "/v1/metrics", query=json.dumps({"filters": [{"field": f"metadata.{key}", "operator": "=",
                                                                     "value": "1"}]}))
    assert message.startswith("filters[0].field: metadata key")
    body = metrics(env, {"all_time": True, "metrics": ["count"],
                         "filters": [{"field": "model", "operator": "=", "value": "x' OR '1'='1"}]})
    assert body["data"] == [{"count": 0}]
    # a long query is refused by name; a huge one is refused by the HTTP layer; the server is still there
    long_query = json.dumps({"filters": [{"field": "model", "operator": "in", "value": ["m" * 50] * 200}]})
    assert bad(env, "/v1/metrics", query=long_query).startswith("query: ")
    assert raw_status(env, "/v1/metrics?query=" + "%7B" * 100_000) in (400, 413, 414, 431)
    deep = "[" * 5000 + "]" * 5000
    assert bad(env, "/v1/metrics", query=deep).startswith("query: ")
    assert metrics(env, {"all_time": True, "metrics": ["count"]})["data"] == [{"count": len(OBSERVATIONS)}]


# /v1/traces ----------------------------------------------------------------------------------------------------

def test_traces_ordered_by_cost(env: Deployment) -> None:
    body = ok(env, "/v1/traces", **NOVEMBER)
    assert [t["id"] for t in body["data"]] == [T2, T3, T1, ORPHAN]  # 0.035, 0.03, 0.0046, 0.0014
    t2, t3, t1, orphan = body["data"]
    assert t2 == {
        "id": T2, "name": "chat", "user_id": "bob", "session_id": "s2", "total_cost": str(cost_of("o4")),
        "observations": 2, "unpriced": 1, "input_tokens": usage_sum(["o4", "o5"], "input_tokens"),
        "output_tokens": usage_sum(["o4", "o5"], "output_tokens"),
        "total_tokens": usage_sum(["o4", "o5"], "input_tokens") + usage_sum(["o4", "o5"], "output_tokens"),
        "latency": str(latency_s(["o4", "o5"])), "start_time": "2026-11-11T03:00:00+00:00",
    }
    assert D(t3["total_cost"]) == total_of(["o6", "o7"]) == D("0.03") and t3["input_tokens"] == 103000
    assert D(t1["total_cost"]) == total_of(["o1", "o2", "o3"]) and t1["observations"] == 3
    assert D(t1["latency"]) == D("2.5")  # 15:00:00 → 15:00:02.5
    assert orphan["name"] is None and orphan["user_id"] == "carol" and orphan["session_id"] == "s4"


def test_traces_other_orders_and_limits(env: Deployment) -> None:
    ids = {order: [t["id"] for t in ok(env, "/v1/traces", order_by=order, **NOVEMBER)["data"]]
           for order in ("latency", "observations", "tokens")}
    assert ids["latency"] == [T3, T2, T1, ORPHAN]  # 10 s, 6 s, 2.5 s, 0.5 s
    assert ids["observations"] == [T1, T2, T3, ORPHAN]  # 3, 2, 2 (id order), 1
    assert ids["tokens"] == [T3, T2, T1, ORPHAN]  # 113300, 11550, 3700, 440
    two = ok(env, "/v1/traces", limit="2", **NOVEMBER)
    assert len(two["data"]) == 2 and two["truncated"] is True
    assert ok(env, "/v1/traces", **{"from": "2026-11-12", "to": "2026-11-13"})["data"][0]["id"] == ORPHAN
    assert bad(env, "/v1/traces", order_by="price").startswith("order_by: unknown value 'price'")
    assert bad(env, "/v1/traces", limit="0").startswith("limit: expected an integer from 1 to 1000")
    assert bad(env, "/v1/traces", limit="5000").startswith("limit:")
    assert bad(env, "/v1/traces", **{"from": "yesterday"}).startswith("from: 'yesterday' is not an ISO 8601")


def test_trace_detail(env: Deployment) -> None:
    t2 = ok(env, f"/v1/traces/{T2}")
    assert t2["user_id"] == "bob" and t2["name"] == "chat" and t2["tags"] == ["prod"]
    assert D(t2["total_cost"]) == cost_of("o4") and t2["total_is_partial"] is True
    assert t2["priced_count"] == 1 and t2["unpriced_count"] == 1 and t2["observation_count"] == 2
    assert t2["usage"] == {"input_tokens": 10500, "output_tokens": 1050}
    o4, o5 = t2["observations"]
    # components: 10000 × 2.5 / 1M = 0.025 input, 1000 × 10 / 1M = 0.01 output
    assert o4["cost"] == {"input_tokens": "0.025", "output_tokens": "0.01"} and o4["total_cost"] == "0.035"
    assert o4["price_id"].startswith("openai:gpt-4o") and o4["pricing_status"] == "priced"
    assert o4["user_id"] == "anon"  # the row as stored; the trace's user is bob
    assert o5["total_cost"] is None and o5["pricing_status"] == "unpriced" and o5["cost"] == {}
    t1 = ok(env, f"/v1/traces/{T1}")
    assert t1["total_is_partial"] is False and D(t1["total_cost"]) == D("0.0046")
    assert t1["metadata"] == {"feature": "cart"} and t1["release"] == "1.0" and t1["environment"] == "production"
    # o1: 600 × 2.5 = 0.0015 uncached input, 400 × 1.25 = 0.0005 cached, 200 × 10 = 0.002 output
    o1 = t1["observations"][0]
    assert {k: D(v) for k, v in o1["cost"].items()} == {
        "input_tokens": D("0.0015"), "cache_read_tokens": D("0.0005"), "output_tokens": D("0.002")}
    assert t1["usage"] == {"cache_read_tokens": 400, "input_tokens": 3000, "output_tokens": 700}
    assert [o["type"] for o in t1["observations"]] == ["generation", "span", "generation"]
    orphan = ok(env, f"/v1/traces/{ORPHAN}")
    assert orphan["user_id"] == "carol" and orphan["session_id"] == "s4" and orphan["timestamp"] is None
    r = get(env, "/v1/traces/no-such-trace")
    assert r.status_code == 404 and "no-such-trace" in r.json()["message"]


# users and stats -----------------------------------------------------------------------------------------------

def test_user_costs(env: Deployment) -> None:
    alice = ok(env, "/v1/users/alice/costs", **NOVEMBER)
    assert D(alice["total_cost"]) == total_of(["o1", "o2", "o3", "o6", "o7"]) == D("0.0346")
    assert alice["count"] == 5 and alice["unpriced"] == 0
    models = {m["model"]: m for m in alice["by_model"]}
    assert D(models["gpt-4o"]["total_cost"]) == total_of(["o1", "o7"]) and models["gpt-4o"]["count"] == 2
    assert models["gpt-4o-mini"]["input_tokens"] == usage_sum(["o3", "o6"], "input_tokens") == 102000
    assert models[None]["total_cost"] == "0" and models[None]["count"] == 1  # the span costs nothing
    ops = {o["name"]: D(o["total_cost"]) for o in alice["by_operation"]}
    assert ops == {"answer": cost_of("o1"), "retrieve": 0, "rerank": cost_of("o3"), "summarize": D("0.03")}
    # one local day in New York: 11-11 holds o6 and o7 (o8 is carol's)
    day = ok(env, "/v1/users/alice/costs", date="2026-11-11", timezone="America/New_York")
    assert D(day["total_cost"]) == total_of(["o6", "o7"]) and day["count"] == 2
    assert day["query"]["from"] == "2026-11-11T05:00:00+00:00"
    bob = ok(env, "/v1/users/bob/costs", **NOVEMBER)
    assert D(bob["total_cost"]) == cost_of("o4") and bob["unpriced"] == 1 and bob["count"] == 2
    unpriced = next(m for m in bob["by_model"] if m["model"] == "house-model-x")
    assert unpriced["total_cost"] is None and unpriced["unpriced"] == 1
    slashed = ok(env, "/v1/users/org%2Fdave/costs", **NOVEMBER)  # ids may hold a slash
    assert slashed["user_id"] == "org/dave" and slashed["count"] == 0
    anon = ok(env, "/v1/users/anon/costs", **NOVEMBER)  # the trace's user replaced the observations' one
    assert anon["count"] == 0 and anon["total_cost"] == "0" and anon["by_model"] == []
    assert bad(env, "/v1/users/alice/costs", date="11/11/2026").startswith("date: '11/11/2026' is not a date")
    assert bad(env, "/v1/users/alice/costs", date="2026-11-11", **{"from": "2026-11-01"}).startswith("date:")
    assert bad(env, "/v1/users/alice/costs", timezone="Mars/Olympus").startswith("timezone: unknown time zone")


def test_stats_window_ending_at_to(env: Deployment) -> None:
    body = ok(env, "/v1/stats", timeframe="day", to="2026-11-11T04:00:00Z")
    assert body["from"] == "2026-11-10T04:00:00+00:00" and body["to"] == "2026-11-11T04:00:00+00:00"
    # model calls in the window: o1, o3, o4, o5 (o2 is a span)
    assert body["requests"] == 4 and body["unpriced"] == 1
    priced = total_of(["o1", "o3", "o4"])
    assert D(body["total_cost"]) == priced == D("0.0396")
    assert D(body["average_cost"]) == priced / 3  # over the 3 priced calls
    assert body["input_tokens"] == usage_sum(["o1", "o3", "o4", "o5"], "input_tokens") == 13500
    assert body["total_tokens"] == 13500 + usage_sum(["o1", "o3", "o4", "o5"], "output_tokens")
    models = {m["model"]: m for m in body["by_model"]}
    assert D(models["gpt-4o"]["total_cost"]) == total_of(["o1", "o4"]) and models["gpt-4o"]["requests"] == 2
    assert models["house-model-x"]["total_cost"] is None
    everything = ok(env, "/v1/stats", timeframe="all")
    assert everything["from"] is None and everything["requests"] == 7
    assert D(everything["total_cost"]) == total_of(ALL) == D("0.071")
    assert bad(env, "/v1/stats", timeframe="week").startswith("timeframe: unknown value 'week'")
    assert bad(env, "/v1/stats", timeframe="all", to="2026-11-11").startswith("to:")


def test_stats_default_window_is_the_last_day(env: Deployment) -> None:
    # the live project: one call half an hour ago (0.0025), one two days ago (0.005)
    day = ok(env, "/v1/stats", env.live)
    assert day["timeframe"] == "day" and day["requests"] == 1 and D(day["total_cost"]) == D("0.0025")
    assert ok(env, "/v1/stats", env.live, timeframe="hour")["requests"] == 1
    assert ok(env, "/v1/stats", env.live, timeframe="minute")["requests"] == 0
    assert ok(env, "/v1/stats", env.live, timeframe="minute")["total_cost"] == "0"
    assert D(ok(env, "/v1/stats", env.live, timeframe="all")["total_cost"]) == D("0.0075")


# /v1/events ----------------------------------------------------------------------------------------------------

def test_events_pages_newest_first(env: Deployment) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        body = ok(env, "/v1/events", **params)
        seen.extend(e["id"] for e in body["data"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # o6 and o7 start at the same instant: the id breaks the tie (descending), across a page boundary
    assert seen == ["o8", "o7", "o6", "o5", "o4", "o3", "o2", "o1"] and pages == 4
    first = ok(env, "/v1/events", limit="1")["data"][0]
    assert first["id"] == "o8" and first["total_cost"] == str(cost_of("o8")) and first["user_id"] == "carol"
    assert first["usage"] == {"input_tokens": 400, "output_tokens": 40} and first["pricing_status"] == "priced"
    assert set(first) >= {"type", "trace_id", "start_time", "model", "provider", "tags", "metadata", "cost",
                          "price_id", "session_id", "environment", "level"}


def test_events_filters(env: Deployment) -> None:
    def ids(**params: str) -> list[str]:
        return [e["id"] for e in ok(env, "/v1/events", **params)["data"]]

    assert ids(model="gpt-4o") == ["o8", "o7", "o4", "o1"]
    assert ids(status="unpriced") == ["o5"]
    assert ids(type="span") == ["o2"]
    assert ids(trace_id=T1) == ["o3", "o2", "o1"]
    assert ids(user="anon") == ["o5", "o4"]  # the row's own user, not the trace's
    assert ids(user="bob") == []
    assert ids(**{"from": "2026-11-11T00:00:00Z", "to": "2026-11-11T12:00:00Z"}) == ["o5", "o4"]
    assert ids(name="summarize", model="gpt-4o-mini") == ["o6"]
    assert bad(env, "/v1/events", cursor="garbage!").startswith("cursor: not a cursor")
    assert bad(env, "/v1/events", limit="1001").startswith("limit:")
    assert bad(env, "/v1/events", users="alice").startswith("users: unknown query parameter")


# auth and isolation --------------------------------------------------------------------------------------------

ROUTES = ["/v1/metrics?query=%7B%7D", "/v1/traces", f"/v1/traces/{T1}", "/v1/users/alice/costs", "/v1/stats",
          "/v1/events"]


def test_every_route_needs_a_key(env: Deployment) -> None:
    for route in ROUTES:
        r = httpx.get(f"{env.server.url}{route}", timeout=30)
        assert r.status_code == 401, route
        r = httpx.get(f"{env.server.url}{route}", headers={"Authorization": "Bearer sk-cl-wrong"}, timeout=30)
        assert r.status_code == 401, route


def test_another_project_sees_nothing_of_this_one(env: Deployment) -> None:
    other = env.other
    # the other project's one call: 1M × 2.5 / 1M = 2.5, same trace and observation ids as this project's
    everything = metrics(env, {"all_time": True, "metrics": ["sum:cost", "count"]}, auth=other)
    assert everything["data"] == [{"sum_cost": "2.5", "count": 1}]
    assert [t["id"] for t in ok(env, "/v1/traces", other, **NOVEMBER)["data"]] == [T1]
    t1 = ok(env, f"/v1/traces/{T1}", other)
    assert t1["total_cost"] == "2.5" and t1["observation_count"] == 1 and t1["tags"] == []
    assert get(env, f"/v1/traces/{T2}", other).status_code == 404
    alice = ok(env, "/v1/users/alice/costs", other, **NOVEMBER)
    assert alice["total_cost"] == "2.5" and alice["count"] == 1
    assert ok(env, "/v1/users/bob/costs", other, **NOVEMBER)["count"] == 0
    assert ok(env, "/v1/stats", other, timeframe="all")["requests"] == 1
    assert [e["total_cost"] for e in ok(env, "/v1/events", other)["data"]] == ["2.5"]
    # and this project's numbers hold none of the other's
    mine = metrics(env, {"all_time": True, "metrics": ["sum:cost", "count"]})["data"][0]
    assert D(mine["sum_cost"]) == total_of(ALL) and mine["count"] == len(OBSERVATIONS)
    # a filter on the project dimension cannot reach across
    leak = metrics(env, {"all_time": True, "metrics": ["count"],
                         "filters": [{"field": "project", "operator": "!=", "value": "nothing"}]}, auth=other)
    assert leak["data"] == [{"count": 1}]
