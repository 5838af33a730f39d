"""`costline report` / `top` while `costline serve` owns the DuckDB file: they ask the server (through the
control file it writes, `server.json`), with the same numbers as opening the store. A stopped server removes
the file. Costs worked out from the published gpt-4o price: input 2.50, cached input 1.25, output 10 USD per
1M tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.server.harness import make_server

from costline.server.local_admin import FILE_NAME

# 1000 input of which 400 cached, 200 output: 600 × 2.5/M + 400 × 1.25/M + 200 × 10/M = 0.0015 + 0.0005 + 0.002
GPT4O_COST = "0.004"


def _cli(server_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**server_env, "TZ": "UTC"}
    return subprocess.run([sys.executable, "-m", "costline", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_report_and_top_ask_the_running_server(tmp_path: Path) -> None:
    server, _ = make_server("duckdb", tmp_path)
    server.start()
    try:
        control = tmp_path / FILE_NAME
        assert control.exists() and (control.stat().st_mode & 0o777) == 0o600
        events = [
            {"id": "g1", "trace_id": "t1", "model": "gpt-4o", "start_time": "2026-11-20T10:00:00Z",
             "usage": {"input_tokens": 1000, "cache_read_tokens": 400, "output_tokens": 200}},
            {"id": "g2", "trace_id": "t2", "model": "no-such-model", "start_time": "2026-11-20T11:00:00Z",
             "usage": {"input_tokens": 10}},
            {"type": "trace", "id": "t1", "user_id": "alice"},
        ]
        with server.client() as client:
            assert client.post("/v1/ingest", json={"events": events}).status_code == 200
        args = ("--from", "2026-11-20", "--to", "2026-11-21", "--store", server.store_url)
        done = _cli(server.env, "report", "--by", "model,user", "--format", "json", *args)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        rows = {row["model"]: row for row in report["rows"]}
        assert rows["gpt-4o"]["sum_cost"] == GPT4O_COST and rows["gpt-4o"]["user"] == "alice"
        assert rows["no-such-model"]["sum_cost"] is None and rows["no-such-model"]["unpriced"] == 1
        top = _cli(server.env, "top", "traces", "--format", "json", *args)
        assert top.returncode == 0, top.stderr
        assert [r["id"] for r in json.loads(top.stdout)["rows"]] == ["t1", "t2"]
        # the token reaches the server only with the control file's value
        token = json.loads(control.read_text())["token"]
        bad = httpx.get(f"{server.url}/v1/stats", headers={"Authorization": f"Bearer {token}x"})
        assert bad.status_code == 401
        good = httpx.get(f"{server.url}/v1/stats", headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200
        unknown = httpx.get(f"{server.url}/v1/stats", headers={"Authorization": f"Bearer {token}",
                                                             "X-Costline-Project": "nope"})
        assert unknown.status_code == 400 and "X-Costline-Project".lower() in unknown.json()["message"]
    finally:
        server.stop()
    assert not (tmp_path / FILE_NAME).exists()


@pytest.mark.skipif(os.name != "posix", reason="process ids")
def test_a_stale_control_file_is_ignored(tmp_path: Path) -> None:
    """A control file left by a dead process is not used: the command opens the store itself."""
    (tmp_path / FILE_NAME).write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 2**22 + 12345,
                                                  "store_url": "x", "token": "t"}))
    env = {**os.environ, "COSTLINE_DATA_DIR": str(tmp_path)}
    env.pop("COSTLINE_STORE_URL", None)
    done = _cli(env, "report", "--from", "2026-11-20", "--to", "2026-11-21", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [
        {"sum_cost": None, "count": 0, "unpriced": 0, "sum_input_tokens": None, "sum_output_tokens": None}]
    assert (tmp_path / "costline.duckdb").exists()  # it opened (created) the store itself
