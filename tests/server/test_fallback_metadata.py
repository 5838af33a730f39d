"""The fallback router's flags (sdk/fallback.py: ``metadata.fallback.{primary, attempt, reason}``) group and
filter through a real ``costline serve`` (DuckDB and PostgreSQL): ``/v1/metrics``, ``costline report --by``
and a budget's scope all take the nested path ``metadata.fallback.<key>``.

The real ``openai`` client talks to the local OpenAI-protocol server, which reports 2006 prompt tokens (1920
cached) and 300 completion tokens. List prices (USD per 1M): gpt-4o 2.50 / cached 1.25 / output 10 →
86 × 2.50 + 1920 × 1.25 + 300 × 10 = 215 + 2400 + 3000 = 5615 → 0.005615; gpt-4o-mini 0.15 / 0.075 / 0.60 →
86 × 0.15 + 1920 × 0.075 + 300 × 0.60 = 12.9 + 144 + 180 = 336.9 → 0.0003369. A failed attempt (HTTP 429,
no usage) was billed nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal as D
from typing import Any

import openai
from tests.providers.openai_server import OpenAIFake
from tests.server.harness import Server

from costline.sdk import Tracker
from costline.sdk.fallback import FallbackRouter, Route

GPT_4O, MINI = D("0.005615"), D("0.0003369")


def test_primary_vs_fallback_cost(server: Server) -> None:
    tag = f"fb-{server.store_url[:8]}-{id(server)}"
    with OpenAIFake({"prompt_tokens": 2006, "completion_tokens": 300, "cached_tokens": 1920}).running() as fake, \
            openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as client:
        routes: list[Route[Any]] = [
            Route("gpt-4o", lambda **kw: client.chat.completions.create(model="gpt-4o", **kw), provider="openai"),
            Route("gpt-4o-mini", lambda **kw: client.chat.completions.create(model="gpt-4o-mini", **kw),
                  provider="openai"),
        ]
        tracker = Tracker(host=server.url, public_key=server.public_key, secret_key=server.secret_key,
                          flush_interval=0.05)
        try:
            router = FallbackRouter(routes, tracker=tracker)
            messages = [{"role": "user", "content": "hi"}]
            with tracker.trace(name="primary-ok", tags=[tag]):
                router(messages=messages)  # attempt 1 answers
            fake.fail_next("429")
            with tracker.trace(name="fell-back", tags=[tag]):
                router(messages=messages)  # attempt 1 rate limited, attempt 2 answers
            assert tracker.flush(timeout=30)
        finally:
            tracker.shutdown(timeout=30)
    query = {"view": "observations", "dimensions": ["metadata.fallback.primary"],
             "metrics": ["sum:cost", "count"], "filters": [{"field": "tag", "operator": "any of", "value": [tag]}],
             "from": "2000-01-01T00:00:00Z"}
    with server.client() as c:
        r = c.get("/v1/metrics", params={"query": json.dumps(query)})
        assert r.status_code == 200, r.text
        by_primary = {row["metadata.fallback.primary"]: row for row in r.json()["data"]}
        assert set(by_primary) == {"true", "false"}
        # primary: the gpt-4o call that answered and the one rate limited (0)
        assert D(by_primary["true"]["sum_cost"]) == GPT_4O and by_primary["true"]["count"] == 2
        assert D(by_primary["false"]["sum_cost"]) == MINI and by_primary["false"]["count"] == 1
        query = {**query, "dimensions": ["metadata.fallback.reason"],
                 "filters": [*query["filters"], {"field": "metadata.fallback.attempt", "operator": "=",
                                                 "value": "2"}]}
        r = c.get("/v1/metrics", params={"query": json.dumps(query)})
        assert r.status_code == 200, r.text
        [row] = r.json()["data"]
        assert row["metadata.fallback.reason"] == "rate_limited" and D(row["sum_cost"]) == MINI
        bad = c.get("/v1/metrics", params={"query": json.dumps({**query, "dimensions": ["metadata.a.'b"]})})
        assert bad.status_code == 400 and "metadata key" in bad.json()["message"]
    report = subprocess.run(
        [sys.executable, "-m", "costline", "report", "--store", server.store_url, "--from", "2000-01-01",
         "--by", "metadata.fallback.attempt", "--filter", f"tag={tag}", "--format", "json"],
        capture_output=True, text=True, env=server.env, timeout=120)
    assert report.returncode == 0, report.stderr
    rows = {r["metadata.fallback.attempt"]: D(r["sum_cost"]) for r in json.loads(report.stdout)["rows"]}
    assert rows == {"1": GPT_4O, "2": MINI}
    budget = {"name": f"fallbacks-{tag}", "window": "lifetime", "limit": "1",
              "scope": {"metadata.fallback.primary": "false", "tag": tag}}
    with server.client() as c:
        made = c.post("/v1/budgets", json=budget)
        assert made.status_code == 201, made.text
        shown = c.get(f"/v1/budgets/{made.json()['id']}").json()
    assert D(shown["status"]["used"]) == MINI, shown
