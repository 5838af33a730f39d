"""Late settles over two ``costline serve`` processes sharing one PostgreSQL store (and one over DuckDB): every
settle of an expired hold is recorded, and the budget's spend is the sum of the settled amounts.

Figures: 50 checks hold $0.01 each for 1 s; once every hold has expired the 50 calls are settled (half through
each server, concurrently) with actual costs $0.01, $0.02, $0.03, $0.04, $0.05 in turn:
10 × (0.01 + 0.02 + 0.03 + 0.04 + 0.05) = 10 × 0.15 = $1.50 on a $1.00 limit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from tests.server.harness import Server, drop_postgres_schema, make_server, postgres_url, second_server

DEADLINE_S = 60.0


@pytest.fixture(params=["duckdb", "postgres"])
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """One server over DuckDB; two over one PostgreSQL database."""
    tmp = tmp_path_factory.mktemp(f"late-{request.param}")
    first, schema = make_server(request.param, tmp / "a")
    found = [first] if request.param == "duckdb" else [first, second_server(first, tmp / "b")]
    for server in found:
        server.start()
    try:
        yield found
    finally:
        for server in found:
            server.stop()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)


def test_fifty_late_settles_are_all_recorded(servers: list[Server]) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    clients = [s.client() for s in servers]
    try:
        first = clients[0]
        made = first.post("/v1/budgets", json={"id": "late", "name": "late", "window": "day", "per": "user",
                                               "limit": "1.00", "action": "block"})
        assert made.status_code == 201, made.text
        held: list[dict[str, Any]] = []
        for i in range(50):
            answer = clients[i % len(clients)].post("/v1/budgets/check", json={
                "model": "gpt-4o", "user": user, "estimated_cost": "0.01", "ttl_seconds": 1})
            assert answer.status_code == 200 and answer.json()["decision"] == "allow", answer.text
            held.append(answer.json())

        def used() -> D:
            status = first.get("/v1/budgets/late", params={"subject": user}).json()["status"]
            return D(status["used"])

        deadline = time.monotonic() + DEADLINE_S  # wait (bounded) until every hold has expired
        while used() != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert used() == 0

        costs = [D("0.01") * (i % 5 + 1) for i in range(50)]

        def settle(i: int) -> httpx.Response:
            client = clients[i % len(clients)]
            return client.post(f"/v1/budgets/reservations/{held[i]['reservation_id']}/settle",
                               json={"cost": str(costs[i])})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(settle, range(50)))
        assert [a.status_code for a in answers] == [200] * 50, [a.text for a in answers if a.status_code != 200]
        assert all(a.json()["hold_expired"] is True for a in answers)
        assert [D(a.json()["cost"]) for a in answers] == costs

        for client in clients:  # every server sees the same recorded spend: the sum of the settled amounts
            status = client.get("/v1/budgets/late", params={"subject": user}).json()["status"]
            assert D(status["used"]) == D("1.50") and status["requests_used"] == 50 and status["over"] is True
        denied = clients[-1].post("/v1/budgets/check", json={"model": "gpt-4o", "user": user,
                                                             "estimated_cost": "0.01"})
        assert denied.json()["decision"] == "deny"
        again = first.post(f"/v1/budgets/reservations/{held[0]['reservation_id']}/settle", json={"cost": "0.01"})
        assert again.status_code == 404
    finally:
        for client in clients:
            client.close()
