"""Alert rules through a real `costline serve` (alert pass every second) and a real webhook receiver.

Prices (OpenAI list, per 1M tokens): gpt-4o $2.50 input / $10 output. 100,000 input + 100,000 output tokens of
gpt-4o cost 0.25 + 1.00 = $1.25.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from tests.server.harness import Server, drop_postgres_schema, free_port, make_server, postgres_url

from costline.control.webhook import verify

SECRET = "alerts-api-secret-0123456789"


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                assert verify(SECRET, dict(self.headers.items()), body, now=time.time())
                receiver.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate: Any, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.received if predicate(r)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no matching webhook in {timeout} s; got {self.received}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server,
                                                                                                      Receiver]]:
    receiver = Receiver()
    srv, schema = make_server(request.param, tmp_path_factory.mktemp(f"alerts-{request.param}"),
                              {"COSTLINE_ALERT_INTERVAL": "1", "COSTLINE_CHANNEL_ALLOW_HOSTS": "127.0.0.1"})
    srv.start()
    with srv.client() as client:
        assert client.put("/v1/channels/hook", json={"webhook": receiver.url, "secret": SECRET}).status_code == 200
        down = f"http://127.0.0.1:{free_port()}/nobody"
        assert client.put("/v1/channels/down", json={"webhook": down, "secret": SECRET}).status_code == 200
        mail = {"apprise": "mailto://ops:hunter2-password@relay.example.com:2525?mode=insecure"
                           "&from=costline@example.com&to=ops@example.com"}
        assert client.put("/v1/channels/mail", json=mail).status_code == 200
    yield srv, receiver
    srv.stop()
    receiver.close()
    base = postgres_url()
    if schema and base:
        drop_postgres_schema(base, schema)


def _generation(client: httpx.Client, model: str, tokens: int, **extra: Any) -> None:
    answer = client.post("/v1/ingest", json={"events": [{
        "type": "generation", "id": uuid.uuid4().hex, "trace_id": uuid.uuid4().hex, "model": model,
        "start_time": datetime.now(UTC).isoformat(), "usage": {"input_tokens": tokens, "output_tokens": tokens},
        **extra,
    }]})
    assert answer.status_code == 200, answer.text


def test_channels_hide_their_secrets(setup: tuple[Server, Receiver]) -> None:
    srv, _ = setup
    with srv.client() as client:
        listed = {c["name"]: c for c in client.get("/v1/channels").json()["data"]}
    assert listed["hook"]["secret"] == "***"
    assert "hunter2" not in json.dumps(listed) and SECRET not in json.dumps(listed)
    with srv.client() as client:
        bad = client.put("/v1/channels/x", json={"webhook": "ftp://example.com", "secret": SECRET})
        assert bad.status_code == 400 and bad.json()["message"].startswith("channels.x")


def test_request_cost_and_unpriced_rules_fire_on_ingest(setup: tuple[Server, Receiver]) -> None:
    srv, receiver = setup
    with srv.client() as client:
        assert client.post("/v1/alerts", json={"name": "big-call", "kind": "request_cost", "threshold": "1",
                                               "channels": ["hook"], "filters": {"environment": "big"}}
                           ).status_code == 201
        assert client.post("/v1/alerts", json={"name": "no-price", "kind": "unpriced", "channels": ["hook"]}
                           ).status_code == 201
        _generation(client, "gpt-4o", 100_000, environment="big")  # $1.25 > $1
        _generation(client, "gpt-4o", 10_000, environment="big")   # $0.125: quiet
        _generation(client, "acme-unknown-model-9", 10)
    big = receiver.wait_for(lambda r: r["rule"] == "big-call")
    assert big[0]["details"]["cost"] == "1.25" and big[0]["event"] == "firing"
    unpriced = receiver.wait_for(lambda r: r["rule"] == "no-price")
    assert unpriced[0]["details"]["model"] == "acme-unknown-model-9"
    time.sleep(1.5)
    assert len([r for r in receiver.received if r["rule"] == "big-call"]) == 1
    with srv.client() as client:
        _generation(client, "acme-unknown-model-9", 10)  # the same model within the cooldown: not again
        time.sleep(1.5)
        history = client.get("/v1/alerts/history", params={"rule": "no-price"}).json()["data"]
    assert len([r for r in receiver.received if r["rule"] == "no-price"]) == 1
    assert history[0]["status"] == "sent" and history[0]["channel"] == "hook"


def test_window_rule_fires_and_recovers(setup: tuple[Server, Receiver]) -> None:
    srv, receiver = setup
    env = f"win-{uuid.uuid4().hex[:6]}"
    with srv.client() as client:
        rule = {"name": f"daily-{env}", "kind": "window_cost", "window": "24h", "threshold": "2",
                "filters": {"environment": env}, "channels": ["hook"], "cooldown_minutes": 0}
        assert client.post("/v1/alerts", json=rule).status_code == 201
        _generation(client, "gpt-4o", 100_000, environment=env)
        _generation(client, "gpt-4o", 100_000, environment=env)  # 2.50 > 2
    fired = receiver.wait_for(lambda r: r["rule"] == f"daily-{env}" and r["event"] == "firing")
    assert fired[0]["details"]["cost"] == "2.5" and fired[0]["details"]["threshold"] == "2"
    with srv.client() as client:
        state = client.get(f"/v1/alerts/daily-{env}").json()["states"]
        assert state[0]["status"] == "firing"
        # raising the threshold ends the condition: a recovery message follows
        assert client.post("/v1/alerts", json={**rule, "threshold": "10"}).status_code == 201
    receiver.wait_for(lambda r: r["rule"] == f"daily-{env}" and r["event"] == "resolved")


def test_test_sends_and_bad_rules(setup: tuple[Server, Receiver]) -> None:
    srv, receiver = setup
    with srv.client() as client:
        assert client.post("/v1/alerts", json={"name": "t-ok", "kind": "unpriced", "channels": ["hook"]}
                           ).status_code == 201
        ok = client.post("/v1/alerts/t-ok/test")
        assert ok.status_code == 200 and ok.json()["deliveries"][0]["status"] == "sent"
        assert client.post("/v1/alerts", json={"name": "t-down", "kind": "unpriced", "channels": ["down"]}
                           ).status_code == 201
        down = client.post("/v1/alerts/t-down/test", timeout=120)
        assert down.status_code == 502 and down.json() == {"deliveries": [{"channel": "down", "status": "failed"}]}
        assert SECRET not in down.text
        [logged] = client.get("/v1/alerts/history", params={"rule": "t-down"}).json()["data"]
        # refused, reset or timed out: one message (which one would tell a closed port from a filtered one)
        assert logged["error"] == "channel 'down': no connection to the receiver, or no answer within 10 s"
        assert client.post("/v1/alerts/nope/test").status_code == 404
        for body, field in [
            ({"kind": "spike"}, "alert.name"),
            ({"name": "x", "kind": "boom"}, "alert.kind"),
            ({"name": "x", "kind": "spike", "threshold": 1}, "alert.minutes"),
            ({"name": "x", "kind": "window_cost", "window": "day"}, "alert.threshold"),
            ({"name": "x", "kind": "forecast"}, "alert.threshold"),
            ({"name": "x", "kind": "unpriced", "channels": "hook", "cooldown_minutes": -1}, "alert.cooldown_minutes"),
            ({"name": "x", "kind": "unpriced", "filters": {"nope": 1}}, "alert.filters.nope"),
        ]:
            answer = client.post("/v1/alerts", json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert answer.json()["message"].startswith(field), answer.json()
    assert any(r["event"] == "test" for r in receiver.received)


def test_missing_channels_are_refused_and_used_channels_are_kept(setup: tuple[Server, Receiver]) -> None:
    srv, receiver = setup
    with srv.client() as client:
        bad = client.post("/v1/budgets", json={"name": "b-missing", "window": "day", "limit": "1",
                                               "notify": ["nowhere"]})
        assert bad.status_code == 400 and "budget.notify[0]: no channel 'nowhere'" in bad.json()["message"]
        assert client.put("/v1/channels/spare", json={"webhook": receiver.url, "secret": SECRET}).status_code == 200
        made = client.post("/v1/budgets", json={"name": "b-spare", "window": "day", "limit": "1",
                                                "notify": ["spare"]})
        assert made.status_code == 201, made.text
        kept = client.delete("/v1/channels/spare")
        assert kept.status_code == 409 and "budget 'b-spare'" in kept.json()["message"]
        assert client.delete("/v1/budgets/b-spare").status_code == 200
        assert client.delete("/v1/channels/spare").status_code == 200
