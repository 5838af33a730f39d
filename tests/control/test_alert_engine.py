"""The alert engine's window rules and budget thresholds, in-process over a real DuckDB file, with a clock the
test moves and a real webhook receiver on loopback.

Amounts: 400,000 input tokens of gpt-4o at $2.50 per 1M cost exactly $1.00; 4,000,000 tokens of gpt-4o-mini
input at $0.15 per 1M cost $0.60.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from costline.control.alerts import AlertEngine
from costline.control.budgets import BudgetService
from costline.control.destinations import DestinationPolicy
from costline.core.alerts import parse_rule
from costline.core.budgets import parse_budget
from costline.core.events import ObservationEvent
from costline.core.resolve import PriceBook
from costline.core.usage import Usage
from costline.ingest.batch import Decoded
from costline.ingest.pipeline import Pipeline
from costline.store import open_store
from costline.store.base import ApiKey, ControlObject, Project, Store

LOOPBACK = DestinationPolicy(("127.0.0.1",))  # the receivers here listen on loopback

SECRET = "engine-test-secret-0123456789"
START = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Receiver:
    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        payloads = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payloads.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Engine:
    def __init__(self, store: Store, engine: AlertEngine, clock: Clock, pipeline: Pipeline, hook: Receiver):
        self.store, self.engine, self.clock, self.pipeline, self.hook = store, engine, clock, pipeline, hook

    def spend(self, at: datetime, model: str, tokens: int, **extra: Any) -> None:
        event = ObservationEvent(id=uuid.uuid4().hex, trace_id=uuid.uuid4().hex, type="generation", model=model,
                                 start_time=at, usage=Usage({"input_tokens": tokens}), **extra)
        self.pipeline.ingest("p", Decoded(observations=[event], merge=False))

    def put(self, kind: str, spec: dict[str, Any]) -> None:
        parsed = parse_rule(spec) if kind == "alert" else parse_budget(spec)
        now = self.clock()
        self.store.put_control(ControlObject("p", kind, parsed.id, parsed.to_json(), "api", now, now))
        self.engine.changed("p")

    def evaluate(self) -> list[dict[str, Any]]:
        """One pass; the notices it sent (delivered before this returns)."""
        before = len(self.hook.payloads)
        self.engine.evaluate()
        assert self.engine.dispatcher.flush(30)
        return self.hook.payloads[before:]


@pytest.fixture
def env(tmp_path: Path, bundled_book: PriceBook) -> Iterator[Engine]:
    store = open_store(f"duckdb:///{tmp_path / 'engine.duckdb'}")
    store.create_project(Project("p", "p", START), ApiKey("p", "pk", "hash", START))
    clock = Clock()
    pipeline = Pipeline(store, bundled_book, clock)
    budgets = BudgetService(store, pipeline, clock)
    engine = AlertEngine(store, budgets, clock, notifier_options={"attempts": 1},
                         destinations=LOOPBACK)
    hook = Receiver()
    store.put_control(ControlObject("p", "channel", "hook", {"webhook": hook.url, "secret": SECRET}, "api", START,
                                    START))
    yield Engine(store, engine, clock, pipeline, hook)
    engine.stop()
    hook.server.shutdown()
    hook.server.server_close()
    store.close()


def test_spike_per_model(env: Engine) -> None:
    env.put("alert", {"name": "spike", "kind": "spike", "minutes": 15, "threshold": "2", "group_by": "model",
                      "channels": ["hook"]})
    env.spend(START - timedelta(minutes=10), "gpt-4o", 1_000_000)      # $2.50 in the last 15 minutes
    env.spend(START - timedelta(minutes=20), "gpt-4o", 4_000_000)      # $10, but before the window
    env.spend(START - timedelta(minutes=5), "gpt-4o-mini", 4_000_000)  # $0.60
    sent = env.evaluate()
    assert [(p["scope"], p["details"]["cost"]) for p in sent] == [("model=gpt-4o", "2.5")]
    assert env.evaluate() == []  # still firing: not again
    env.clock.now = START + timedelta(minutes=10)  # the $2.50 left the window
    resolved = env.evaluate()
    assert [(p["event"], p["scope"]) for p in resolved] == [("resolved", "model=gpt-4o")]


def test_anomaly_against_the_trailing_average(env: Engine) -> None:
    env.put("alert", {"name": "anomaly", "kind": "anomaly", "channels": ["hook"]})  # 24h vs 2 x 7-day average
    for day in range(1, 8):  # $1.00 in each of the 7 days before the last 24 hours
        env.spend(START - timedelta(days=day, hours=1), "gpt-4o", 400_000)
    env.spend(START - timedelta(hours=2), "gpt-4o", 800_000)  # $2.00: exactly 2 x $1.00, not above
    assert env.evaluate() == []
    env.spend(START - timedelta(hours=1), "gpt-4o", 4)  # $0.00001 more: above
    sent = env.evaluate()
    assert len(sent) == 1 and sent[0]["details"]["cost"] == "2.00001" and sent[0]["details"]["baseline"] == "1.000000"


def test_forecast_above_a_threshold(env: Engine) -> None:
    # $2.00 on each of 1-10 November, $1.00 today (the 11th) before noon: 20 + 1 + 0.5 x 2 + 19 x 2 = $60
    for day in range(1, 11):
        env.spend(datetime(2026, 11, day, 9, tzinfo=UTC), "gpt-4o", 800_000)
    env.spend(datetime(2026, 11, 11, 9, tzinfo=UTC), "gpt-4o", 400_000)
    env.put("alert", {"name": "month-60", "kind": "forecast", "threshold": "60", "channels": ["hook"]})
    env.put("alert", {"name": "month-50", "kind": "forecast", "threshold": "50", "channels": ["hook"]})
    sent = env.evaluate()
    assert [p["rule"] for p in sent] == ["month-50"]  # 60 is not above 60
    assert Decimal(sent[0]["details"]["projected"]) == Decimal(60)


def test_budget_thresholds_in_the_periodic_pass(env: Engine) -> None:
    env.put("budget", {"name": "team-day", "window": "day", "limit": "10", "thresholds": [50, 80, 100],
                       "scope": {"environment": "prod"}, "notify": ["hook"]})
    env.spend(START - timedelta(hours=1), "gpt-4o", 2_000_000, environment="prod")  # $5.00: 50 %
    env.spend(START - timedelta(hours=1), "gpt-4o", 4_000_000, environment="dev")   # another scope
    first = env.evaluate()
    assert [p["details"]["threshold"] for p in first] == [50] and first[0]["details"]["used"] == "5"
    env.spend(START - timedelta(minutes=30), "gpt-4o", 1_400_000, environment="prod")  # $8.50: 85 %
    second = env.evaluate()
    assert [p["details"]["threshold"] for p in second] == [80]
    assert env.evaluate() == []
    env.clock.now = START + timedelta(days=1)  # a new day: the budget is back to 0
    assert [p["event"] for p in env.evaluate()] == ["resolved"]
    history = env.store.list_deliveries("p")
    assert [d.entry["event"] for d in history] == ["resolved", "firing", "firing"]
    assert all(d.status == "sent" for d in history)


def test_one_server_of_several_runs_the_periodic_pass(env: Engine) -> None:
    env.put("alert", {"name": "spike", "kind": "spike", "minutes": 15, "threshold": "2", "channels": ["hook"]})
    env.spend(START - timedelta(minutes=10), "gpt-4o", 1_000_000)  # $2.50
    other = AlertEngine(env.store, env.engine.budgets, env.clock, notifier_options={"attempts": 1},
                        destinations=LOOPBACK)
    try:
        assert env.engine.tick() and not other.tick()  # the second server waits for the lease
        assert env.engine.dispatcher.flush(30) and other.dispatcher.flush(30)
        assert [p["rule"] for p in env.hook.payloads] == ["spike"]  # one notice, not one per server
        env.clock.now = START + timedelta(seconds=91)  # the first server went quiet for 3 intervals
        assert other.tick() and not env.engine.tick()
    finally:
        other.stop()
