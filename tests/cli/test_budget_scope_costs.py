"""Budgets count every cost in their scope, service costs with no model included (``add_cost`` from the SDK,
sent to a real ``costline serve``), so ``costline budgets show`` never shows ``used`` below what the forecast
beside it says was spent; request quotas count model calls only. An alert rule naming a channel the project
does not have is refused with the channel's name, over the API, the CLI and ``costline apply``.

Prices: gpt-4o is $2.50 per 1M input tokens and $10 per 1M output tokens (OpenAI's list price).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from tests.server.harness import Server, served

from costline.sdk.request_costs import add_cost
from costline.sdk.tracker import Tracker


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"budget-scope-{request.param}")
    with served(request.param, tmp, {"COSTLINE_CHANNEL_ALLOW_HOSTS": "127.0.0.1"}) as server:
        yield server


def run(srv: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "costline", *args, "--store", srv.store_url], capture_output=True,
                          text=True, timeout=120, env=srv.env, check=False)


def run_json(srv: Server, *args: str) -> Any:
    done = run(srv, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_budget_used_counts_service_costs_like_the_forecast(srv: Server) -> None:
    run_json(srv, "budgets", "create", "--name", "monthly", "--window", "month", "--limit", "10",
             "--max-requests", "100")
    tracker = Tracker(host=srv.url, public_key=srv.public_key, secret_key=srv.secret_key, flush_interval=0.05)
    try:
        with tracker.trace(name="request"):
            # 1,000 input + 200 output tokens of gpt-4o: 1000 × 2.5/1M + 200 × 10/1M = 0.0025 + 0.002 = 0.0045
            with tracker.generation(name="chat", model="gpt-4o", provider="openai") as g:
                g.update(usage={"input_tokens": 1000, "output_tokens": 200})
            # a Lambda invocation and a DynamoDB write: costs with no model
            assert add_cost("lambda", "execution", "gb-seconds", 2, amount="0.0000334", tracker=tracker) is not None
            assert add_cost("dynamodb", "write", "request-units", 3, amount="0.00000375",
                            tracker=tracker) is not None
        assert tracker.flush(timeout=30)
    finally:
        tracker.shutdown(timeout=30)
    shown = run_json(srv, "budgets", "show", "monthly")
    # 0.0045 + 0.0000334 + 0.00000375 = 0.00453715
    assert D(shown["status"]["used"]) == D("0.00453715"), shown
    assert D(shown["forecast"]["spent"]) == D("0.00453715"), shown
    assert shown["status"]["requests_used"] == 1  # the model call; service costs are not requests
    table = run(srv, "budgets", "show", "monthly")
    assert table.returncode == 0 and "0.00453715" in table.stdout, table.stdout


def test_alert_rule_naming_a_missing_channel_is_refused(srv: Server, tmp_path: Path) -> None:
    with srv.client() as c:
        r = c.post("/v1/alerts", json={"name": "big", "kind": "request_cost", "threshold": "1",
                                       "channels": ["nowhere"]})
        assert r.status_code == 400, r.text
        assert "alert.channels[0]: no channel 'nowhere'" in r.json()["message"]
        assert c.get("/v1/alerts").json()["data"] == []
        put = c.put("/v1/channels/ops", json={"webhook": "http://127.0.0.1:9/hook", "secret": "s" * 20})
        assert put.status_code in (200, 201), put.text
        ok = c.post("/v1/alerts", json={"name": "big", "kind": "request_cost", "threshold": "1",
                                        "channels": ["ops"]})
        assert ok.status_code == 201, ok.text
    cli = run(srv, "alerts", "create", "--name", "big2", "--kind", "request_cost", "--threshold", "1",
              "--channel", "ops", "--channel", "pager")
    assert cli.returncode != 0
    assert "no channel 'pager'" in cli.stderr, cli.stderr
    assert [r["id"] for r in run_json(srv, "alerts", "list")] == ["big"]
    control = tmp_path / "costline.yaml"
    control.write_text("version: 1\nalerts:\n  - {name: c, kind: request_cost, threshold: 1, channels: [pager]}\n")
    applied = run(srv, "apply", str(control))
    assert applied.returncode == 2 and "no channel 'pager'" in applied.stderr, applied.stderr


def test_alert_rule_on_the_store_directly_is_refused(srv: Server, tmp_path: Path) -> None:
    # the CLI without a server: a fresh DuckDB file and project
    env = {**srv.env, "COSTLINE_DATA_DIR": str(tmp_path)}
    store = f"duckdb:///{tmp_path / 'direct.duckdb'}"
    made = subprocess.run([sys.executable, "-m", "costline", "projects", "create", "p", "--store", store, "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([sys.executable, "-m", "costline", "alerts", "create", "--name", "x", "--kind",
                           "request_cost", "--threshold", "1", "--channel", "pager", "--store", store],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "--channel" in done.stderr and "no channel 'pager'" in done.stderr, done.stderr
