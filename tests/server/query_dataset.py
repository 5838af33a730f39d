"""A synthetic dataset for the read routes, sent through ``POST /v1/ingest``, and the servers it lives on.

Prices are the bundled published ones (``costline prices explain gpt-4o`` / ``gpt-4o-mini``, effective
2026-10-14): gpt-4o $2.50 input, $1.25 cached input, $10 output per 1M tokens; gpt-4o-mini $0.15, $0.075,
$0.60. Every expected amount below is computed in this file from those rates and the quantities
(``expected_cost``), with the arithmetic written out next to each event.

Three traces and an orphan observation over 2026-11-10 .. 2026-11-12 (UTC). In America/New_York (UTC-5 in
November 2026) the same events fall on two local days: 11-10 (o1..o5) and 11-11 (o6..o8).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
from tests.server.harness import Server, create_project, drop_postgres_schema, make_server, postgres_url

#: USD per 1M tokens
RATES: Mapping[str, Mapping[str, D]] = {
    "gpt-4o": {"input_tokens": D("2.5"), "cache_read_tokens": D("1.25"), "output_tokens": D("10")},
    "gpt-4o-mini": {"input_tokens": D("0.15"), "cache_read_tokens": D("0.075"), "output_tokens": D("0.6")},
}


def expected_cost(model: str | None, usage: Mapping[str, int]) -> D | None:
    """Uncached input × input rate + cached × cached rate + output × output rate, per 1M; None: unpriced."""
    rates = RATES.get(model or "")
    if rates is None:
        return None
    cached = usage.get("cache_read_tokens", 0)
    uncached = usage.get("input_tokens", 0) - cached
    return (uncached * rates["input_tokens"] + cached * rates["cache_read_tokens"]
            + usage.get("output_tokens", 0) * rates["output_tokens"]) / 1_000_000


def gen(obs_id: str, trace_id: str, name: str, model: str | None, start: str, end: str,
        usage: Mapping[str, int] | None = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "generation", "id": obs_id, "trace_id": trace_id, "name": name,
                             "start_time": start, "end_time": end, **extra}
    if model is not None:
        event["model"] = model
        event["provider"] = "openai" if model.startswith("gpt") else "house"
    if usage is not None:
        event["usage"] = dict(usage)
    return event


T1, T2, T3, ORPHAN = "t-chat-1", "t-chat-2", "t-sum-1", "t-orphan"

OBSERVATIONS: list[dict[str, Any]] = [
    # 600 × 2.5 + 400 × 1.25 + 200 × 10 = 1500 + 500 + 2000 = 4000 / 1M = 0.004
    gen("o1", T1, "answer", "gpt-4o", "2026-11-10T15:00:00Z", "2026-11-10T15:00:01.5Z",
        {"input_tokens": 1000, "cache_read_tokens": 400, "output_tokens": 200}),
    {"type": "span", "id": "o2", "trace_id": T1, "parent_id": "o1", "name": "retrieve",
     "start_time": "2026-11-10T15:00:00.2Z", "end_time": "2026-11-10T15:00:00.7Z"},
    # 2000 × 0.15 + 500 × 0.6 = 300 + 300 = 600 / 1M = 0.0006
    gen("o3", T1, "rerank", "gpt-4o-mini", "2026-11-10T15:00:02Z", "2026-11-10T15:00:02.5Z",
        {"input_tokens": 2000, "output_tokens": 500}),
    # T2's observations name user "anon"; its trace event, sent later, says "bob" (the trace wins at query time)
    # 10000 × 2.5 + 1000 × 10 = 25000 + 10000 = 35000 / 1M = 0.035
    gen("o4", T2, "answer", "gpt-4o", "2026-11-11T03:00:00Z", "2026-11-11T03:00:04Z",
        {"input_tokens": 10000, "output_tokens": 1000}, user_id="anon"),
    # no price for this model: unpriced (null), never 0
    gen("o5", T2, "answer", "house-model-x", "2026-11-11T03:00:05Z", "2026-11-11T03:00:06Z",
        {"input_tokens": 500, "output_tokens": 50}, user_id="anon"),
    # 80000 × 0.15 + 20000 × 0.075 + 10000 × 0.6 = 12000 + 1500 + 6000 = 19500 / 1M = 0.0195
    gen("o6", T3, "summarize", "gpt-4o-mini", "2026-11-11T16:00:00Z", "2026-11-11T16:00:10Z",
        {"input_tokens": 100000, "cache_read_tokens": 20000, "output_tokens": 10000}),
    # same start as o6 (the events cursor breaks the tie by id); 3000 × 2.5 + 300 × 10 = 10500 / 1M = 0.0105
    gen("o7", T3, "summarize", "gpt-4o", "2026-11-11T16:00:00Z", "2026-11-11T16:00:02Z",
        {"input_tokens": 3000, "output_tokens": 300}),
    # no trace row at all: user and session come from the observation; 400 × 2.5 + 40 × 10 = 1400 / 1M = 0.0014
    gen("o8", ORPHAN, "classify", "gpt-4o", "2026-11-12T01:00:00Z", "2026-11-12T01:00:00.5Z",
        {"input_tokens": 400, "output_tokens": 40}, user_id="carol", session_id="s4"),
]
TRACES_FIRST: list[dict[str, Any]] = [
    {"type": "trace", "id": T1, "name": "chat", "user_id": "alice", "session_id": "s1", "tags": ["prod", "web"],
     "metadata": {"feature": "cart"}, "release": "1.0", "environment": "production"},
    {"type": "trace", "id": T3, "name": "summarize", "user_id": "alice", "session_id": "s3", "tags": ["batch"]},
]
#: sent in a second request, after its observations are stored
TRACE_LATER: dict[str, Any] = {"type": "trace", "id": T2, "name": "chat", "user_id": "bob", "session_id": "s2",
                               "tags": ["prod"]}

#: the other project: the same trace id and observation id, a very different amount (1M × 2.5 / 1M = 2.5)
OTHER_PROJECT: list[dict[str, Any]] = [
    gen("o1", T1, "answer", "gpt-4o", "2026-11-10T15:30:00Z", "2026-11-10T15:30:01Z",
        {"input_tokens": 1_000_000, "output_tokens": 0}, user_id="alice"),
]


def by_id() -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in OBSERVATIONS}


def cost_of(obs_id: str) -> D | None:
    event = by_id()[obs_id]
    if event["type"] == "span":
        return None
    return expected_cost(event.get("model"), event.get("usage", {}))


def total_of(ids: list[str]) -> D:
    """The exact sum of the priced observations among ``ids``."""
    return sum((c for c in map(cost_of, ids) if c is not None), D(0))


def usage_sum(ids: list[str], unit: str) -> int:
    return sum(int(by_id()[i].get("usage", {}).get(unit, 0)) for i in ids)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def latency_s(ids: list[str]) -> D:
    """Last end − first start, in seconds."""
    events = [by_id()[i] for i in ids]
    span = max(at(e["end_time"]) for e in events) - min(at(e["start_time"]) for e in events)
    return D(span // timedelta(microseconds=1)) / 1_000_000


@dataclass
class Deployment:
    server: Server
    other: tuple[str, str]  # the second project's (public, secret) key
    live: tuple[str, str]  # a third project holding events near the wall clock (for /v1/stats defaults)
    live_now: datetime


def _ingest(server: Server, auth: tuple[str, str], events: list[dict[str, Any]]) -> None:
    r = httpx.post(f"{server.url}/v1/ingest", json={"events": events}, auth=auth, timeout=30)
    assert r.status_code == 200, r.text


def deploy(backend: str, tmp: Path) -> Iterator[Deployment]:
    """A served store with three projects: the dataset, the other project, and the live one."""
    server, schema = make_server(backend, tmp)
    other = create_project(server.store_url, tmp, server.env, name="other")
    live = create_project(server.store_url, tmp, server.env, name="live")
    server.start()
    try:
        mine = (server.public_key, server.secret_key)
        _ingest(server, mine, OBSERVATIONS + TRACES_FIRST)
        _ingest(server, mine, [TRACE_LATER])
        other_auth = (other["public_key"], other["secret_key"])
        _ingest(server, other_auth, OTHER_PROJECT)
        live_auth = (live["public_key"], live["secret_key"])
        now = datetime.now(UTC)
        # 1000 × 2.5 / 1M = 0.0025 half an hour ago; 2000 × 2.5 / 1M = 0.005 two days ago
        _ingest(server, live_auth, [
            gen("recent", uuid.uuid4().hex, "answer", "gpt-4o", (now - timedelta(minutes=30)).isoformat(),
                (now - timedelta(minutes=29)).isoformat(), {"input_tokens": 1000}),
            gen("older", uuid.uuid4().hex, "answer", "gpt-4o", (now - timedelta(days=2)).isoformat(),
                (now - timedelta(days=2) + timedelta(seconds=1)).isoformat(), {"input_tokens": 2000}),
        ])
        yield Deployment(server, other_auth, live_auth, now)
    finally:
        server.stop()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)
