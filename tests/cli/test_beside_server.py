"""`costline projects|export|reprice|purge` while `costline serve` owns the DuckDB file: they go through the
server (its control file, `server.json`) and give what the same commands give on the store itself.

Two copies of one store: A is owned by a running server, B is opened by the commands. Costs worked out from
published prices: gpt-4o input 2.50, cached input 1.25, output 10 USD per 1M tokens; the user price file sets
my-model at 1 USD per 1M input tokens and 2 USD per 1M output tokens.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from tests.server.harness import Server, make_server

from costline.server.local_admin import FILE_NAME

# 1000 input of which 400 cached, 200 output: 600 × 2.5/M + 400 × 1.25/M + 200 × 10/M
GPT4O_COST = "0.004"
# 1,000,000 input × 1/M + 500,000 output × 2/M
MY_MODEL_COST = "2"
PRICE_FILE = """version: 1
prices:
  - model: my-model
    rates: {input_tokens: 1, output_tokens: 2}
"""
EVENTS = [
    {"id": "g1", "trace_id": "t1", "model": "gpt-4o", "provider": "openai", "start_time": "2026-11-20T10:00:00Z",
     "usage": {"input_tokens": 1000, "cache_read_tokens": 400, "output_tokens": 200}},
    {"id": "g2", "trace_id": "t2", "model": "my-model", "start_time": "2026-11-20T11:00:00Z",
     "usage": {"input_tokens": 1_000_000, "output_tokens": 500_000}},
    {"id": "g3", "trace_id": "t3", "model": "no-such-model", "provider": "acme",
     "start_time": "2026-11-20T12:00:00Z", "usage": {"input_tokens": 10}},
    {"id": "old", "trace_id": "t0", "model": "gpt-4o", "start_time": "2020-01-01T00:00:00Z",
     "usage": {"input_tokens": 5}},
    {"type": "trace", "id": "t1", "user_id": "alice"},
]
RANGE = ("--from", "2026-11-01", "--to", "2026-12-01")


def _cli(env: dict[str, str], data_dir: Path, store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "costline", "--data-dir", str(data_dir), *args,
                           "--store", store_url], env={**env, "TZ": "UTC"}, capture_output=True, text=True,
                          timeout=180, check=False)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def _two_stores(tmp_path: Path) -> tuple[Server, Path, str]:
    """A server over store A holding ``EVENTS`` (unpriced my-model), and B: a copy of A for direct commands."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    server, _ = make_server("duckdb", a)
    server.start()
    try:
        with server.client() as client:
            assert client.post("/v1/ingest", json={"events": EVENTS}).status_code == 200
    finally:
        server.stop()
    b.mkdir()
    shutil.copyfile(a / "store.duckdb", b / "store.duckdb")
    for folder in (a, b):  # my-model gets a price only now: reprice has something to change
        (folder / "prices" / "user").mkdir(parents=True)
        (folder / "prices" / "user" / "mine.yaml").write_text(PRICE_FILE)
    server.start()
    assert (a / FILE_NAME).exists() and not (b / FILE_NAME).exists()
    return server, b, f"duckdb:///{b / 'store.duckdb'}"


def test_export_reprice_purge_projects_beside_the_server_match_the_store(tmp_path: Path) -> None:
    server, b, b_url = _two_stores(tmp_path)
    try:
        a_run = lambda *args: _ok(_cli(server.env, server.data_dir, server.store_url, *args))  # noqa: E731
        b_run = lambda *args: _ok(_cli(server.env, b, b_url, *args))  # noqa: E731

        # export: the same bytes either way, in every format with a text container
        for fmt, name in (("csv", "x.csv"), ("jsonl", "x.jsonl"), ("focus", "x.focus.csv")):
            via = _cli(server.env, server.data_dir, server.store_url, "export", *RANGE, "--format", fmt,
                       "--out", str(tmp_path / f"a-{name}"))
            here = _cli(server.env, b, b_url, "export", *RANGE, "--format", fmt, "--out", str(tmp_path / f"b-{name}"))
            assert via.returncode == 0 and here.returncode == 0, via.stderr + here.stderr
            assert (tmp_path / f"a-{name}").read_bytes() == (tmp_path / f"b-{name}").read_bytes()
            assert via.stderr.replace("a-", "b-") == here.stderr
        rows = list(csv.DictReader(io.StringIO((tmp_path / "a-x.csv").read_text())))
        assert {r["id"]: r["total_cost"] for r in rows} == {"g1": GPT4O_COST, "g2": "", "g3": ""}
        focus_note = _cli(server.env, server.data_dir, server.store_url, "export", *RANGE, "--format", "focus",
                          "--out", str(tmp_path / "f.csv")).stderr
        assert "left out 1 unpriced observation(s) of model 'my-model'" in focus_note
        assert "of model 'no-such-model'" in focus_note
        # a parquet export arrives whole
        _ok(_cli(server.env, server.data_dir, server.store_url, "export", *RANGE, "--format", "parquet",
                 "--out", str(tmp_path / "a.parquet")))
        assert (tmp_path / "a.parquet").read_bytes()[:4] == b"PAR1"
        assert not list(tmp_path.glob(".*.partial"))

        # reprice: my-model is priced now (0 → 2 USD); dry run first, then for real, same summary both ways
        for extra in (("--dry-run",), ()):
            via, here = (json.loads(run("reprice", *RANGE, *extra, "--format", "json")) for run in (a_run, b_run))
            assert via == here
            assert (via["scanned"], via["changed"], via["old_total"], via["new_total"]) == (
                3, 1, GPT4O_COST, "2.004")
        with server.client() as client:
            trace = client.get("/v1/traces/t2").json()
        assert trace["observations"][0]["total_cost"] == MY_MODEL_COST

        # purge: the 2020 observation goes, either way
        via, here = (json.loads(run("purge", "--older-than", "365", "--json")) for run in (a_run, b_run))
        assert via["deleted"] == here["deleted"] == 1

        # projects: listed alike; a project created through the server can ingest at once
        listed = [json.loads(run("projects", "list", "--format", "json")) for run in (a_run, b_run)]
        assert listed[0] == listed[1] and [p["name"] for p in listed[0]] == ["test"]
        new = json.loads(a_run("projects", "create", "second", "--format", "json"))
        assert set(new) == {"project_id", "name", "created_at", "public_key", "secret_key"}
        other = json.loads(b_run("projects", "create", "second", "--format", "json"))
        assert set(other) == set(new) and other["name"] == new["name"] == "second"
        reply = httpx.post(f"{server.url}/v1/ingest", auth=(new["public_key"], new["secret_key"]),
                           json={"events": [EVENTS[0]]})
        assert reply.status_code == 200, reply.text
        table = a_run("projects", "list", "--format", "csv")
        assert table.splitlines()[0] == "id,name,created_at"
        assert sorted(line.split(",")[1] for line in table.splitlines()[1:]) == ["second", "test"]

        # an export with a project: only its rows (the new project has g1 only)
        only = _cli(server.env, server.data_dir, server.store_url, "export", *RANGE, "--format", "csv",
                    "--project", new["project_id"], "--out", str(tmp_path / "p.csv"))
        assert only.returncode == 0, only.stderr
        assert [r["id"] for r in csv.DictReader(io.StringIO((tmp_path / "p.csv").read_text()))] == ["g1"]
        unknown = _cli(server.env, server.data_dir, server.store_url, "export", *RANGE, "--format", "csv",
                       "--project", "nope", "--out", str(tmp_path / "n.csv"))
        assert unknown.returncode == 1 and "--project" in unknown.stderr
    finally:
        server.stop()


def _admin(server: Server) -> dict[str, str]:
    token = json.loads((server.data_dir / FILE_NAME).read_text())["token"]
    return {"Authorization": f"Bearer {token}"}


def test_admin_routes_need_the_admin_token(tmp_path: Path) -> None:
    server, _ = make_server("duckdb", tmp_path)
    server.start()
    try:
        admin = _admin(server)
        with server.client() as client:  # a project key
            assert client.post("/v1/ingest", json={"events": EVENTS}).status_code == 200
            for method, path, body in (("GET", "/v1/projects", None), ("POST", "/v1/projects", {"name": "x"}),
                                       ("POST", "/v1/reprice", {"from": "2026-11-01", "to": "2026-12-01"}),
                                       ("POST", "/v1/purge", {"older_than_days": 1})):
                reply = client.request(method, path, json=body)
                assert reply.status_code == 403 and "admin token" in reply.json()["message"], path
            # the export with a project key: its own project's rows, not another project's
            other = httpx.post(f"{server.url}/v1/projects", json={"name": "other"}, headers=admin)
            assert other.status_code == 201, other.text
            theirs = {**EVENTS[0], "id": "theirs"}
            assert httpx.post(f"{server.url}/v1/ingest", json={"events": [theirs]},
                              auth=(other.json()["public_key"], other.json()["secret_key"])).status_code == 200
            reply = client.get("/v1/export", params={"from": "2026-11-01", "to": "2026-12-01", "format": "jsonl"})
            assert reply.status_code == 200 and reply.headers["content-type"] == "application/x-ndjson"
            assert [json.loads(line)["id"] for line in reply.text.splitlines()] == ["g1", "g2", "g3"]
        assert httpx.get(f"{server.url}/v1/projects").status_code == 401
        bad: list[tuple[str, dict[str, Any], str]] = [
            ("/v1/projects", {"name": " "}, "name:"),
            ("/v1/projects", {"name": "x", "colour": "red"}, "colour: unknown field"),
            ("/v1/reprice", {"from": "2026-12-01", "to": "2026-11-01"}, "to: must be after from"),
            ("/v1/reprice", {"from": "yesterday", "to": "2026-11-01"}, "from:"),
            ("/v1/purge", {}, "exactly one of before"),
            ("/v1/purge", {"older_than_days": 0}, "older_than_days:"),
        ]
        for path, body, message in bad:
            reply = httpx.post(f"{server.url}{path}", json=body, headers=admin)
            assert reply.status_code == 400 and message in reply.json()["message"], (path, reply.text)
        for params, message in (({"from": "2026-11-01", "to": "2026-12-01", "format": "xml"}, "format:"),
                                ({"from": "2026-11-01", "format": "csv"}, "to:"),
                                ({"from": "2026-11-01", "to": "2026-12-01", "format": "csv", "container": "csv"},
                                 "container:")):
            reply = httpx.get(f"{server.url}/v1/export", params=params, headers=admin)
            assert reply.status_code == 400 and message in reply.json()["message"], reply.text
        # the admin token without a project: every project's rows
        reply = httpx.get(f"{server.url}/v1/export", headers=admin,
                          params={"from": "2026-11-01", "to": "2026-12-01", "format": "focus"})
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
        summary = json.loads(reply.headers["x-costline-export-summary"])
        assert summary["observations"] == 4  # g1, g2, g3 and the other project's one
        assert summary["unpriced_by_model"] == [{"model": "my-model", "count": 1},
                                                {"model": "no-such-model", "count": 1}]
    finally:
        server.stop()
