"""The rollups stay exact under what real clients send over HTTP, on DuckDB and PostgreSQL: every answer of
/v1/metrics is compared with the figures worked out by hand from the events sent (never from the code)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from tests.server.harness import Server

#: a whole past day: its hours are rolled up by the first query (only the current hour never is)
DAY = {"from": "2026-10-24T00:00:00Z", "to": "2026-10-25T00:00:00Z"}


def nanos(hour: int, minute: int) -> str:
    """2026-10-24T<hour>:<minute>Z as OTLP unix nanoseconds (2026-10-24T00:00Z is 20,750 days of 86,400 s after
    the epoch: 1,792,800,000 s)."""
    return str((1_792_800_000 + hour * 3600 + minute * 60) * 1_000_000_000)


def otlp_span(trace_id: str, span_id: str, hour: int, cost: str) -> dict[str, Any]:
    """One root GenAI span (a trace of its own) with a provided cost, as OTLP/JSON."""
    return {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "test"}, "spans": [{
        "traceId": trace_id, "spanId": span_id, "name": "chat",
        "startTimeUnixNano": nanos(hour, 5), "endTimeUnixNano": nanos(hour, 6),
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "house-model"}},
            {"key": "gen_ai.usage.cost", "value": {"stringValue": cost}},
        ]}]}]}]}


def metrics(server: Server, query: dict[str, Any]) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/v1/metrics", params={"query": json.dumps(query)}, headers=server.headers,
                  timeout=30)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def test_a_span_sent_again_in_another_hour_leaves_no_stale_rollup(fresh_server: Server) -> None:
    """An OTLP exporter sends a span at 10:05 with cost 1, the hour is rolled up, then the same span id comes
    again at 13:05 with cost 2.5 (a re-export after a clock fix): the day holds one call of 2.5, in hour 13."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    first = httpx.post(f"{fresh_server.url}/v1/traces", json=otlp_span(trace_id, span_id, 10, "1"),
                       headers=fresh_server.headers, timeout=30)
    assert first.status_code == 200, first.text
    per_day = {**DAY, "metrics": ["sum:cost", "count"]}
    per_trace = {**DAY, "view": "traces", "metrics": ["sum:cost", "max:cost", "count"]}
    assert metrics(fresh_server, per_day) == [{"sum_cost": "1", "count": 1}]
    assert metrics(fresh_server, per_trace) == [{"sum_cost": "1", "max_cost": "1", "count": 1}]
    again = httpx.post(f"{fresh_server.url}/v1/traces", json=otlp_span(trace_id, span_id, 13, "2.5"),
                       headers=fresh_server.headers, timeout=30)
    assert again.status_code == 200, again.text
    assert metrics(fresh_server, per_day) == [{"sum_cost": "2.5", "count": 1}]
    assert metrics(fresh_server, per_trace) == [{"sum_cost": "2.5", "max_cost": "2.5", "count": 1}]
    hourly = metrics(fresh_server, {**per_day, "granularity": "hour"})
    assert [(r["time"], r["sum_cost"], r["count"]) for r in hourly if r["count"]] == [
        ("2026-10-24T13:00:00+00:00", "2.5", 1)]
