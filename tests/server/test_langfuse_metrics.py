"""Langfuse-compatible metrics over real HTTP, on DuckDB and PostgreSQL: v1 and v2 metrics queries (v2 through
the real ``langfuse`` client, whose ``api.metrics.metrics`` calls /api/public/v2/metrics) and the daily
metrics. Expected amounts come from query_dataset (published rates × quantities, by hand)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api.commons.errors import Error as LangfuseError
from tests.server.query_dataset import OBSERVATIONS, Deployment, cost_of, deploy, latency_s, total_of, usage_sum

NOVEMBER = {"fromTimestamp": "2026-11-01T00:00:00Z", "toTimestamp": "2026-12-01T00:00:00Z"}


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    yield from deploy(request.param, tmp_path_factory.mktemp(f"lf-metrics-{request.param}"))


def get(env: Deployment, path: str, auth: tuple[str, str] | None = None, **params: Any) -> httpx.Response:
    credentials = auth or (env.server.public_key, env.server.secret_key)
    return httpx.get(f"{env.server.url}{path}", params=params, auth=credentials, timeout=30)


def v1(env: Deployment, query: dict[str, Any], auth: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    r = get(env, "/api/public/metrics", auth, query=json.dumps(query))
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json(parse_float=D)["data"]
    return data


def refused(env: Deployment, query: Any, version: str = "") -> str:
    text = query if isinstance(query, str) else json.dumps(query)
    r = get(env, f"/api/public/{version}metrics", query=text)
    assert r.status_code == 400, r.text
    message: str = r.json()["message"]
    return message


def client(env: Deployment) -> Langfuse:
    return Langfuse(public_key=env.server.public_key, secret_key=env.server.secret_key, host=env.server.url,
                    tracing_enabled=False)


def v2(env: Deployment, query: dict[str, Any]) -> list[dict[str, Any]]:
    """Through the real Langfuse client."""
    lf = client(env)
    try:
        return list(lf.api.metrics.metrics(query=json.dumps(query)).data)
    finally:
        lf.shutdown()


# v1 -----------------------------------------------------------------------------------------------------------

def test_v1_cost_by_model(env: Deployment) -> None:
    rows = v1(env, {"view": "observations", "dimensions": [{"field": "providedModelName"}],
                    "metrics": [{"measure": "totalCost", "aggregation": "sum"},
                                {"measure": "count", "aggregation": "count"},
                                {"measure": "inputTokens", "aggregation": "sum"}], **NOVEMBER})
    by_model = {r["providedModelName"]: r for r in rows}
    assert by_model["gpt-4o"] == {"providedModelName": "gpt-4o", "sum_totalCost": D("0.0509"), "count_count": 4,
                                  "sum_inputTokens": usage_sum(["o1", "o4", "o7", "o8"], "input_tokens")}
    assert by_model["gpt-4o"]["sum_totalCost"] == total_of(["o1", "o4", "o7", "o8"])
    assert by_model["gpt-4o-mini"]["sum_totalCost"] == total_of(["o3", "o6"])
    assert by_model["house-model-x"]["sum_totalCost"] is None  # unpriced: null, never 0
    # ordered by the first metric, descending, nulls last
    assert [r["providedModelName"] for r in rows][:2] == ["gpt-4o", "gpt-4o-mini"]


def test_v1_traces_view_by_user(env: Deployment) -> None:
    rows = v1(env, {"view": "traces", "dimensions": [{"field": "userId"}],
                    "metrics": [{"measure": "totalCost", "aggregation": "sum"},
                                {"measure": "count", "aggregation": "count"},
                                {"measure": "latency", "aggregation": "max"}], **NOVEMBER})
    users = {r["userId"]: r for r in rows}
    assert users["bob"]["sum_totalCost"] == cost_of("o4") and users["bob"]["count_count"] == 1
    assert users["alice"]["sum_totalCost"] == total_of(["o1", "o2", "o3", "o6", "o7"])
    assert users["alice"]["count_count"] == 2
    # Langfuse latency is in milliseconds: alice's slowest trace (T3) ran 10 s
    assert users["alice"]["max_latency"] == latency_s(["o6", "o7"]) * 1000 == 10000
    assert [r["userId"] for r in rows] == ["bob", "alice", "carol"]


def test_v1_time_series_latency_and_filters(env: Deployment) -> None:
    rows = v1(env, {"view": "observations", "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
                    "timeDimension": {"granularity": "day"}, **NOVEMBER})
    assert rows == [{"time_dimension": "2026-11-10T00:00:00.000Z", "sum_totalCost": total_of(["o1", "o3"])},
                    {"time_dimension": "2026-11-11T00:00:00.000Z", "sum_totalCost": total_of(["o4", "o6", "o7"])},
                    {"time_dimension": "2026-11-12T00:00:00.000Z", "sum_totalCost": cost_of("o8")}]
    generations = {"column": "type", "operator": "=", "value": "GENERATION", "type": "string"}
    (lat,) = v1(env, {"view": "observations", "filters": [generations], **NOVEMBER,
                      "metrics": [{"measure": "latency", "aggregation": a} for a in ("sum", "max", "min")]})
    # 1.5 + 0.5 + 4 + 1 + 10 + 2 + 0.5 = 19.5 s over the 7 generations
    assert lat == {"sum_latency": 19500, "max_latency": 10000, "min_latency": 500}
    by_type = v1(env, {"view": "observations", "dimensions": [{"field": "type"}],
                       "metrics": [{"measure": "count", "aggregation": "count"}], **NOVEMBER})
    assert {r["type"]: r["count_count"] for r in by_type} == {"GENERATION": 7, "SPAN": 1}

    def cost(*filters: dict[str, Any]) -> Any:
        (row,) = v1(env, {"view": "observations", "filters": list(filters), **NOVEMBER,
                          "metrics": [{"measure": "totalCost", "aggregation": "sum"},
                                      {"measure": "count", "aggregation": "count"}]})
        return row["sum_totalCost"], row["count_count"]

    # metadata is the observation's, else its trace's: T1's trace says feature=cart for o1, o2, o3
    assert cost({"column": "metadata", "type": "stringObject", "key": "feature", "operator": "=",
                 "value": "cart"}) == (total_of(["o1", "o2", "o3"]), 3)
    assert cost({"column": "tags", "type": "arrayOptions", "operator": "any of", "value": ["batch"]}) == (
        total_of(["o6", "o7"]), 2)
    assert cost({"column": "userId", "type": "string", "operator": "=", "value": "bob"}) == (cost_of("o4"), 2)
    assert cost({"column": "providedModelName", "type": "stringOptions", "operator": "none of",
                 "value": ["gpt-4o", "gpt-4o-mini"]}) == (None, 2)
    assert cost({"column": "startTime", "type": "datetime", "operator": ">=", "value": "2026-11-11T00:00:00Z"},
                {"column": "name", "type": "string", "operator": "starts with", "value": "summ"}) == (
        total_of(["o6", "o7"]), 2)


def test_v1_order_and_row_limit(env: Deployment) -> None:
    rows = v1(env, {"view": "observations", "dimensions": [{"field": "name"}],
                    "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
                    "orderBy": [{"field": "name", "direction": "asc"}], "config": {"row_limit": 2}, **NOVEMBER})
    assert [r["name"] for r in rows] == ["answer", "classify"]
    assert rows[0]["sum_totalCost"] == total_of(["o1", "o4"])


def test_v1_refusals_name_the_bad_part(env: Deployment) -> None:
    base: dict[str, Any] = {"view": "observations", "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
                            **NOVEMBER}
    assert refused(env, "{not json").startswith("query: not valid JSON")
    assert refused(env, {**base, "view": "scores-numeric"}).startswith("view: scores-numeric is not supported yet")
    assert refused(env, {**base, "view": "sessions"}).startswith("view: unknown view 'sessions'")
    assert refused(env, {**base, "dimensions": [{"field": "colour"}]}).startswith(
        "dimensions[0].field: unknown dimension 'colour'")
    assert refused(env, {**base, "dimensions": [{"field": "promptName"}]}).startswith(
        "dimensions[0].field: 'promptName' is not supported")
    assert refused(env, {**base, "metrics": [{"measure": "totalCost", "aggregation": "histogram"}]}).startswith(
        "metrics[0].aggregation: histogram is not supported yet")
    assert refused(env, {**base, "metrics": [{"measure": "totalCost", "aggregation": "uniq"}]}).startswith(
        "metrics[0].aggregation: uniq applies to")
    assert refused(env, {**base, "metrics": [{"measure": "joy", "aggregation": "sum"}]}).startswith(
        "metrics[0].measure: unknown measure 'joy'")
    assert refused(env, {k: v for k, v in base.items() if k != "fromTimestamp"}).startswith("fromTimestamp: required")
    assert refused(env, {**base, "fromTimestamp": "2026-12-02T00:00:00Z"}).startswith(
        "fromTimestamp: must be before toTimestamp")
    assert refused(env, {**base, "orderBy": [{"field": "sum_joy", "direction": "desc"}]}).startswith(
        "orderBy[0].field: cannot order by 'sum_joy'")
    assert refused(env, {**base, "config": {"row_limit": 5000}}).startswith("config.row_limit:")
    sql_key = {"column": "metadata", "type": "stringObject", "key": "a'); DROP TABLE traces; --",
               "operator": "=", "value": "x"}
    assert refused(env, {**base, "filters": [sql_key]}).startswith("filters[0].field: metadata key")
    assert refused(env, {**base, "filters": [{"column": "name", "type": "string", "operator": "ends with",
                                              "value": "x"}]}).startswith("filters[0].operator: ends with")
    assert refused(env, {**base, "timeDimension": {"granularity": "fortnight"}}).startswith(
        "timeDimension.granularity: unknown granularity 'fortnight'")
    assert refused(env, {**base, "extra": 1}).startswith("extra: unknown query field")
    for route in ("metrics", "v2/metrics", "metrics/daily"):
        r = httpx.get(f"{env.server.url}/api/public/{route}", params={"query": json.dumps(base)}, timeout=30)
        assert r.status_code == 401, route


# v2, through the Langfuse client --------------------------------------------------------------------------------

def test_v2_with_the_langfuse_client(env: Deployment) -> None:
    rows = v2(env, {"view": "observations", "dimensions": [{"field": "providedModelName"}],
                    "metrics": [{"measure": "totalCost", "aggregation": "sum"},
                                {"measure": "uniqueUserIds", "aggregation": "uniq"},
                                {"measure": "traceId", "aggregation": "uniq"}], **NOVEMBER})
    by_model = {r["providedModelName"]: r for r in rows}
    assert D(str(by_model["gpt-4o"]["sum_totalCost"])) == total_of(["o1", "o4", "o7", "o8"])
    # gpt-4o ran for alice (T1, T3), bob (T2) and carol (orphan): 3 users in 4 traces
    assert by_model["gpt-4o"]["uniq_uniqueUserIds"] == 3 and by_model["gpt-4o"]["uniq_traceId"] == 4
    (everything,) = v2(env, {"view": "observations", "metrics": [{"measure": "count", "aggregation": "count"}],
                             **NOVEMBER})
    assert everything == {"count_count": len(OBSERVATIONS)}


def test_v2_high_cardinality_rule(env: Deployment) -> None:
    query: dict[str, Any] = {"view": "observations", "dimensions": [{"field": "userId"}],
                             "metrics": [{"measure": "totalCost", "aggregation": "sum"}], **NOVEMBER}
    lf = client(env)
    try:
        with pytest.raises(LangfuseError) as refused_v2:
            lf.api.metrics.metrics(query=json.dumps(query))
        assert refused_v2.value.status_code == 400
        assert "userId" in refused_v2.value.body["message"] and "row_limit" in refused_v2.value.body["message"]
        top = lf.api.metrics.metrics(query=json.dumps({
            **query, "config": {"row_limit": 2}, "orderBy": [{"field": "sum_totalCost", "direction": "desc"}]}))
    finally:
        lf.shutdown()
    assert [r["userId"] for r in top.data] == ["bob", "alice"]
    assert D(str(top.data[1]["sum_totalCost"])) == total_of(["o1", "o2", "o3", "o6", "o7"])
    assert refused(env, {**query, "config": {"row_limit": 2}, "timeDimension": {"granularity": "day"},
                         "orderBy": [{"field": "sum_totalCost", "direction": "desc"}]}, "v2/").startswith(
        "dimensions: high cardinality")
    assert refused(env, {**query, "view": "traces"}, "v2/").startswith("view: the v2 metrics API has no traces view")
    # v1 groups by userId without conditions
    assert len(v1(env, query)) == 3


# daily ---------------------------------------------------------------------------------------------------------

def daily(env: Deployment, auth: tuple[str, str] | None = None, **params: Any) -> dict[str, Any]:
    r = get(env, "/api/public/metrics/daily", auth, **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json(parse_float=D)
    return body


def test_daily_metrics(env: Deployment) -> None:
    body = daily(env)
    assert body["meta"] == {"page": 1, "limit": 50, "totalItems": 3, "totalPages": 1}
    assert [d["date"] for d in body["data"]] == ["2026-11-12", "2026-11-11", "2026-11-10"]
    nov11 = body["data"][1]
    # T2 and T3; o4, o5, o6, o7
    assert nov11["countTraces"] == 2 and nov11["countObservations"] == 4
    assert nov11["totalCost"] == total_of(["o4", "o5", "o6", "o7"]) == D("0.065")
    usage = {u["model"]: u for u in nov11["usage"]}
    assert usage["gpt-4o"] == {"model": "gpt-4o", "inputUsage": 13000, "outputUsage": 1300, "totalUsage": 14300,
                               "countObservations": 2, "countTraces": 2, "totalCost": total_of(["o4", "o7"])}
    # inputUsage is the inclusive input (cached tokens are part of it, counted once): 100000 for o6
    assert usage["gpt-4o-mini"]["inputUsage"] == usage_sum(["o6"], "input_tokens") == 100000
    assert usage["house-model-x"]["totalCost"] is None and usage["house-model-x"]["inputUsage"] == 500
    nov10 = body["data"][2]
    assert nov10["totalCost"] == total_of(["o1", "o2", "o3"]) and nov10["countTraces"] == 1
    assert {u["model"]: u["totalCost"] for u in nov10["usage"]} == {
        "gpt-4o": cost_of("o1"), "gpt-4o-mini": cost_of("o3"), None: 0}  # the span costs nothing


def test_daily_pages_and_filters(env: Deployment) -> None:
    first = daily(env, limit="2")
    assert [d["date"] for d in first["data"]] == ["2026-11-12", "2026-11-11"]
    assert first["meta"] == {"page": 1, "limit": 2, "totalItems": 3, "totalPages": 2}
    second = daily(env, limit="2", page="2")
    assert [d["date"] for d in second["data"]] == ["2026-11-10"] and second["data"][0]["usage"]
    assert daily(env, limit="2", page="3")["data"] == []
    alice = daily(env, userId="alice")
    assert [(d["date"], d["totalCost"]) for d in alice["data"]] == [
        ("2026-11-11", total_of(["o6", "o7"])), ("2026-11-10", total_of(["o1", "o2", "o3"]))]
    prod = daily(env, tags="prod")  # T1 (prod, web) and T2 (prod)
    assert [(d["date"], d["countTraces"]) for d in prod["data"]] == [("2026-11-11", 1), ("2026-11-10", 1)]
    assert daily(env, tags=["prod", "web"])["meta"]["totalItems"] == 1  # all of them: T1 only
    assert [d["date"] for d in daily(env, traceName="summarize")["data"]] == ["2026-11-11"]
    assert [d["date"] for d in daily(env, environment="production")["data"]] == []  # observations' environment
    ranged = daily(env, fromTimestamp="2026-11-11T00:00:00Z", toTimestamp="2026-11-12T00:00:00Z")
    assert [d["date"] for d in ranged["data"]] == ["2026-11-11"]
    r = get(env, "/api/public/metrics/daily", limit="500")
    assert r.status_code == 400 and r.json()["message"].startswith("limit:")
    r = get(env, "/api/public/metrics/daily", tag="prod")
    assert r.status_code == 400 and r.json()["message"].startswith("tag: unknown query parameter")
    r = get(env, "/api/public/metrics/daily", fromTimestamp="soon")
    assert r.status_code == 400 and r.json()["message"].startswith("fromTimestamp:")


def test_other_project_is_invisible(env: Deployment) -> None:
    other = env.other
    rows = v1(env, {"view": "observations", "metrics": [{"measure": "totalCost", "aggregation": "sum"},
                                                         {"measure": "count", "aggregation": "count"}], **NOVEMBER},
              auth=other)
    assert rows == [{"sum_totalCost": D("2.5"), "count_count": 1}]
    body = daily(env, other)
    assert [(d["date"], d["totalCost"]) for d in body["data"]] == [("2026-11-10", D("2.5"))]
    mine = v1(env, {"view": "observations", "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
                    **NOVEMBER})
    assert mine == [{"sum_totalCost": total_of([e["id"] for e in OBSERVATIONS])}]
