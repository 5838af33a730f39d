"""`costline budgets|alerts|channels|apply` as a user runs them: on a DuckDB file directly (click's runner), and
through a real `costline serve` (child processes, which find the server through its `server.json`). Bad input
prints the flag or file field it is about and exits 2.

Prices: gpt-4o is $2.50 per 1M input tokens and $10 per 1M output tokens (OpenAI's list price).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from tests.server.harness import Server, served

from costline.cli import cli
from costline.control.webhook import verify

SECRET = "cli-test-webhook-secret-0123"


class Receiver:
    """A webhook receiver on a loopback port that keeps what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


CONTROL = """\
version: 1
channels:
  hook: {{webhook: "{url}", secret: "${{CLI_TEST_SECRET}}"}}
tiers:
  free:
    - {{window: day, limit: 0.50, action: block, notify: [hook]}}
budgets:
  - name: app-daily
    window: day
    limit: {{dev: 10, prod: 50}}
    notify: [hook]
alerts:
  - {{name: big-call, kind: request_cost, threshold: 2, channels: [hook]}}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = invoke(*args)
    assert code == 0, err
    return out


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


@pytest.fixture
def project(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COSTLINE_CHANNEL_ALLOW_HOSTS", "127.0.0.1")  # the receivers listen on loopback
    created: dict[str, str] = json.loads(ok("projects", "create", "default", "--json"))
    return created["project_id"]


# directly on the store ------------------------------------------------------------------------------------------------
def test_budgets_create_list_show_delete(project: str) -> None:
    saved = ok_json("budgets", "create", "--name", "daily", "--window", "day", "--limit", "0.50", "--scope",
                    "environment=prod", "--thresholds", "80,50", "--action", "block", "--timezone", "Europe/Berlin")
    assert saved["limit"] == "0.50" and saved["thresholds"] == [50, 80] and saved["scope"] == {"environment": "prod"}
    assert (saved["action"], saved["source"], saved["window"], saved["timezone"]) == ("block", "cli", "day",
                                                                                     "Europe/Berlin")
    ok("budgets", "create", "--name", "Free monthly", "--id", "free-month", "--window", "month", "--limit", "5",
       "--tier", "free", "--max-requests", "100", "--notify", "ops")
    listed = ok_json("budgets", "list")
    assert [b["id"] for b in listed] == ["daily", "free-month"]
    assert listed[1]["per"] == "user" and listed[1]["max_requests"] == 100 and listed[1]["notify"] == ["ops"]
    assert "free-month" in ok("budgets", "list")
    shown = ok_json("budgets", "show", "daily")
    assert D(shown["status"]["used"]) == 0 and D(shown["status"]["limit"]) == D("0.50")
    assert D(shown["usage"]["day"]["limit"]) == D("0.50") and "forecast" not in shown
    per_user = ok_json("budgets", "show", "free-month")
    assert "status" not in per_user  # one counter per user: which one?
    assert "give --user" in ok("budgets", "show", "free-month")
    alice = ok_json("budgets", "show", "free-month", "--user", "alice")
    assert alice["status"]["subject"] == "alice" and alice["status"]["requests_remaining"] == 100
    assert D(alice["forecast"]["spent"]) == 0 and D(alice["forecast"]["limit"]) == 5
    assert "deleted budget 'daily'" in ok("budgets", "delete", "daily")
    code, _, err = invoke("budgets", "delete", "daily")
    assert code == 1 and "no budget 'daily'" in err
    code, _, err = invoke("budgets", "show", "daily")
    assert code == 1 and "no budget 'daily'" in err


def test_alerts_create_test_and_history(project: str, receiver: Receiver, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLI_TEST_SECRET", SECRET)
    control = tmp_path / "costline.yaml"
    control.write_text(CONTROL.format(url=receiver.url), "utf-8")
    ok("apply", str(control), "--environment", "prod")
    saved = ok_json("alerts", "create", "--name", "prod cost", "--id", "prod-cost", "--kind", "window_cost",
                    "--window", "day", "--threshold", "50", "--filter", "environment=prod", "--channel", "hook",
                    "--cooldown-minutes", "30")
    assert saved["threshold"] == "50" and saved["filters"] == {"environment": "prod"} and saved["source"] == "cli"
    assert saved["cooldown_minutes"] == 30 and saved["channels"] == ["hook"]
    assert [r["id"] for r in ok_json("alerts", "list")] == ["big-call", "prod-cost"]
    sent = ok_json("alerts", "test", "prod-cost")
    assert sent == [{"channel": "hook", "status": "sent"}]
    headers, body = receiver.received[0]
    assert verify(SECRET, headers, body, now=time.time())  # the secret came from this process's environment
    assert json.loads(body)["event"] == "test"
    history = ok_json("alerts", "history", "--rule", "prod-cost")
    assert [(h["rule_id"], h["event"], h["status"], h["channel"]) for h in history] == [
        ("prod-cost", "test", "sent", "hook")]
    assert ok_json("alerts", "history", "--rule", "big-call") == []
    code, _, err = invoke("alerts", "test", "nope")
    assert code == 1 and "no alert rule 'nope'" in err
    channels = ok_json("channels", "list")
    assert channels == [{"name": "hook", "webhook": receiver.url, "secret": "***"}]
    shown = ok("channels", "list")
    assert "webhook" in shown and SECRET not in shown
    assert "deleted alert rule 'prod-cost'" in ok("alerts", "delete", "prod-cost")


def test_an_unreachable_channel_fails_the_test(project: str, tmp_path: Path) -> None:
    control = tmp_path / "costline.yaml"
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    control.write_text("version: 1\nchannels:\n  dead: {webhook: 'http://127.0.0.1:9/x', secret: '" + SECRET +
                       "'}\nalerts:\n  - {name: u, kind: unpriced, channels: [dead]}\n", "utf-8")
    ok("apply", str(control))
    code, out, err = invoke("alerts", "test", "u")
    assert code == 1 and "dead: failed" in out and "did not reach dead" in err
    assert ok_json("alerts", "history")[0]["status"] == "failed"


def test_apply_dry_run_environments_and_removal(project: str, receiver: Receiver, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLI_TEST_SECRET", SECRET)
    monkeypatch.delenv("COSTLINE_ENVIRONMENT", raising=False)
    control = tmp_path / "costline.yaml"
    control.write_text(CONTROL.format(url=receiver.url), "utf-8")
    ok("budgets", "create", "--name", "by-hand", "--window", "week", "--limit", "3")
    planned = ok_json("apply", str(control), "--dry-run")
    assert planned["dry_run"] is True and planned["result"] is None and planned["environment"] is None
    assert [(p["kind"], p["id"], p["action"]) for p in planned["plan"]] == [
        ("channel", "hook", "create"), ("budget", "tier-free-day", "create"), ("budget", "app-daily@dev", "create"),
        ("budget", "app-daily@prod", "create"), ("alert", "big-call", "create")]
    assert [b["id"] for b in ok_json("budgets", "list")] == ["by-hand"]  # a dry run changes nothing
    applied = ok_json("apply", str(control))
    assert applied["result"]["applied"] == {"channel": 1, "budget": 3, "alert": 1}
    assert applied["result"]["source"] == f"file:{control.resolve()}"
    budgets = {b["id"]: b for b in ok_json("budgets", "list")}
    assert budgets["app-daily@prod"]["limit"] == "50" and budgets["app-daily@prod"]["scope"] == {"environment": "prod"}
    assert budgets["tier-free-day"]["tier"] == "free" and budgets["by-hand"]["source"] == "cli"
    # the same file again: nothing changes; then for one environment: the per-environment versions go
    again = ok_json("apply", str(control), "--dry-run")
    assert {p["action"] for p in again["plan"] if p["kind"] != "channel"} == {"unchanged"}
    monkeypatch.setenv("COSTLINE_ENVIRONMENT", "dev")
    switched = ok_json("apply", str(control))
    assert switched["environment"] == "dev"
    assert [(p["id"], p["action"]) for p in switched["plan"] if p["kind"] == "budget"] == [
        ("tier-free-day", "unchanged"), ("app-daily", "create"), ("app-daily@dev", "remove"),
        ("app-daily@prod", "remove")]
    assert switched["result"]["removed"] == 2
    budgets = {b["id"]: b for b in ok_json("budgets", "list")}
    assert sorted(budgets) == ["app-daily", "by-hand", "tier-free-day"]  # what the CLI made stays
    assert budgets["app-daily"]["limit"] == "10" and budgets["app-daily"]["scope"] == {}
    out = ok("apply", str(control), "--environment", "prod", "--dry-run")
    assert "is valid (environment prod)" in out and "dry run, nothing changed" in out


def test_several_projects_need_project(project: str) -> None:
    other = json.loads(ok("projects", "create", "other", "--json"))["project_id"]
    code, _, err = invoke("budgets", "list")
    assert code == 2 and "--project" in err and other in err
    ok("budgets", "create", "--name", "b", "--window", "day", "--limit", "1", "--project", other)
    assert [b["id"] for b in ok_json("budgets", "list", "--project", other)] == ["b"]
    assert ok_json("budgets", "list", "--project", project) == []
    code, _, err = invoke("budgets", "list", "--project", "nope")
    assert code == 1 and "no project 'nope'" in err


# bad input ------------------------------------------------------------------------------------------------------------
BAD_FILES = {
    "yaml": ("version: 1\nbudgets:\n  - name: a\n    window: [day\n", "costline.yaml:5:1: expected ',' or ']'"),
    "window": ("version: 1\nbudgets:\n  - {name: a, window: fortnight, limit: 1}\n",
               "budgets[0].window: unknown window 'fortnight'"),
    "limit": ("version: 1\nbudgets:\n  - {name: a, window: day, limit: lots}\n", "budgets[0].limit: 'lots'"),
    "reference": ("version: 1\nbudgets:\n  - {name: a, window: day, limit: 1, notify: [pager]}\n",
                  "budgets[0].notify[0]: no channel 'pager' in this file"),
    "forecast": ("version: 1\nalerts:\n  - {name: f, kind: forecast, budget: monthly}\n",
                 "alerts[0].budget: no budget 'monthly'"),
    "variable": ("version: 1\nchannels:\n  h: {webhook: 'https://h.example.com', secret: '${CLI_TEST_UNSET_VAR}'}\n",
                 "channels.h.secret: the environment variable CLI_TEST_UNSET_VAR is not set"),
    "section": ("version: 1\nbudget: []\n", "budget: unknown section"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_names_the_field_and_exits_2(project: str, tmp_path: Path, case: str) -> None:
    text, expected = BAD_FILES[case]
    path = tmp_path / "costline.yaml"
    path.write_text(text, "utf-8")
    for extra in ((), ("--dry-run",)):
        code, out, err = invoke("apply", str(path), *extra)
        assert code == 2 and expected in err and out == "", err
    assert ok_json("budgets", "list") == []


def test_a_missing_file_exits_2(project: str, tmp_path: Path) -> None:
    code, _, err = invoke("apply", str(tmp_path / "nope.yaml"))
    assert code == 2 and f"{tmp_path / 'nope.yaml'}: no such file" in err


@pytest.mark.parametrize(("args", "expected"), [
    (("budgets", "create", "--name", "x", "--window", "fortnight", "--limit", "1"), "--window: unknown window"),
    (("budgets", "create", "--name", "x", "--window", "day", "--limit", "abc"), "--limit: 'abc' is not a number"),
    (("budgets", "create", "--name", "x", "--window", "day", "--limit", "-1"), "--limit: expected an amount"),
    (("budgets", "create", "--name", "x", "--window", "day"), "--limit: a budget needs a cost limit"),
    (("budgets", "create", "--name", "x", "--window", "day", "--max-requests", "-3"), "--max-requests: "),
    (("budgets", "create", "--name", "x", "--window", "day", "--limit", "1", "--scope", "colour=red"),
     "--scope colour: unknown scope key"),
    (("budgets", "create", "--name", "x", "--window", "day", "--limit", "1", "--scope", "colour"), "--scope"),
    (("budgets", "create", "--name", "x", "--window", "day", "--limit", "1", "--thresholds", "50,lots"),
     "--thresholds"),
    (("budgets", "create", "--name", "x", "--window", "day", "--limit", "1", "--action", "downgrade"),
     "--downgrade-to: the downgrade action needs"),
    (("budgets", "create", "--name", "x", "--window", "day", "--limit", "1", "--timezone", "Mars/Base"),
     "--timezone: "),
    (("budgets", "create", "--name", "x", "--id", "x'; DROP TABLE x; --", "--window", "day", "--limit", "1"),
     "--id: "),
    (("alerts", "create", "--name", "a", "--kind", "sometimes"), "--kind: unknown kind 'sometimes'"),
    (("alerts", "create", "--name", "a", "--kind", "spike", "--threshold", "1"), "--minutes: "),
    (("alerts", "create", "--name", "a", "--kind", "window_cost", "--window", "day"), "--threshold: "),
    (("alerts", "create", "--name", "a", "--kind", "unpriced", "--group-by", "colour"), "--group-by: "),
    (("alerts", "history", "--limit", "0"), "limit: expected a whole number from 1 to 1000"),
])
def test_bad_flags_name_the_flag_and_exit_2(project: str, args: tuple[str, ...], expected: str) -> None:
    code, _, err = invoke(*args)
    assert code == 2 and expected in err, err
    assert ok_json("budgets", "list") == [] and ok_json("alerts", "list") == []


# through a running server ---------------------------------------------------------------------------------------------
@pytest.fixture(params=["duckdb", "postgres"])
def srv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    with served(request.param, tmp_path, {"COSTLINE_CHANNEL_ALLOW_HOSTS": "127.0.0.1"}) as server:
        yield server


def run(srv: Server, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``costline`` command in a child process, next to the server (its data directory and store)."""
    return subprocess.run([sys.executable, "-m", "costline", *args, "--store", srv.store_url], capture_output=True,
                          text=True, timeout=120, env={**srv.env, **(env or {})}, check=False)


def run_json(srv: Server, *args: str, env: dict[str, str] | None = None) -> Any:
    done = run(srv, *args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_commands_go_through_the_running_server(srv: Server, receiver: Receiver, tmp_path: Path) -> None:
    # a per-user lifetime cap of $0.01: the server must see it at once (its budget cache is refreshed)
    saved = run_json(srv, "budgets", "create", "--name", "cap", "--window", "lifetime", "--per", "user", "--limit",
                     "0.01", "--action", "block")
    assert saved["per"] == "user"
    with srv.client() as client:
        assert [b["id"] for b in client.get("/v1/budgets").json()["data"]] == ["cap"]
        # 1,000 input + 200 output tokens of gpt-4o: 1000 × 2.5/1M + 200 × 10/1M = 0.0025 + 0.002 = 0.0045
        ingested = client.post("/v1/ingest", json={"events": [{
            "id": "g1", "trace_id": "t1", "model": "gpt-4o", "user_id": "alice",
            "start_time": datetime.now(UTC).isoformat(), "usage": {"input_tokens": 1000, "output_tokens": 200}}]})
        assert ingested.status_code == 200, ingested.text
        # 0.0045 spent + 0.006 estimated = 0.0105 > 0.01
        check = client.post("/v1/budgets/check", json={"model": "gpt-4o", "user": "alice", "estimated_cost": "0.006"})
        assert check.json()["decision"] == "deny", check.json()
    shown = run_json(srv, "budgets", "show", "cap", "--user", "alice")
    assert D(shown["status"]["used"]) == D("0.0045") and shown["status"]["requests_used"] == 1
    assert D(shown["status"]["remaining"]) == D("0.0055")
    bad = run(srv, "budgets", "create", "--name", "x", "--window", "day", "--limit", "-1")
    assert bad.returncode == 2 and "--limit: expected an amount" in bad.stderr, bad.stderr

    # the control file's ${VAR} comes from the command's environment, not the server's
    control = tmp_path / "costline.yaml"
    control.write_text(CONTROL.format(url=receiver.url), "utf-8")
    missing = run(srv, "apply", str(control))
    assert missing.returncode == 2 and "CLI_TEST_SECRET is not set" in missing.stderr
    env = {"CLI_TEST_SECRET": SECRET}
    planned = run_json(srv, "apply", str(control), "--environment", "prod", "--dry-run", env=env)
    assert [(p["id"], p["action"]) for p in planned["plan"]] == [
        ("hook", "create"), ("tier-free-day", "create"), ("app-daily", "create"), ("big-call", "create")]
    applied = run_json(srv, "apply", str(control), "--environment", "prod", env=env)
    assert applied["result"] == {"applied": {"channel": 1, "budget": 2, "alert": 1}, "removed": 0,
                                 "source": f"file:{control.resolve()}"}
    with srv.client() as client:
        assert client.get("/v1/channels").json()["data"] == [{"name": "hook", "webhook": receiver.url,
                                                              "secret": "***"}]
        assert sorted(b["id"] for b in client.get("/v1/budgets").json()["data"]) == ["app-daily", "cap",
                                                                                      "tier-free-day"]
    assert [r["id"] for r in run_json(srv, "alerts", "list")] == ["big-call"]
    sent = run_json(srv, "alerts", "test", "big-call")
    assert [(d["channel"], d["status"]) for d in sent] == [("hook", "sent")]
    headers, body = receiver.received[-1]
    assert verify(SECRET, headers, body, now=time.time())
    history = run_json(srv, "alerts", "history")
    assert (history[0]["rule_id"], history[0]["event"], history[0]["status"]) == ("big-call", "test", "sent")
    deleted = run(srv, "budgets", "delete", "cap")
    assert deleted.returncode == 0, deleted.stderr
    gone = run(srv, "budgets", "delete", "cap")
    assert gone.returncode == 1 and "no budget 'cap'" in gone.stderr
    with httpx.Client(base_url=srv.url, headers=srv.headers) as client:
        assert "cap" not in [b["id"] for b in client.get("/v1/budgets").json()["data"]]
