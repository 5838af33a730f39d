"""Operating the server: first start, projects and key isolation, binding beyond loopback, body limits,
reprice and purge."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.server.harness import Server, create_project, drop_postgres_schema, free_port, make_server, postgres_url

from costline.store import open_store


@pytest.fixture(params=["duckdb", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    srv, schema = make_server(request.param, tmp_path)
    yield srv, tmp_path
    srv.stop()
    base = postgres_url()
    if schema and base:
        drop_postgres_schema(base, schema)


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "costline", "--data-dir", str(server.data_dir), *args, "--store", server.store_url],
        capture_output=True, text=True, env=server.env, timeout=120,
    )


def test_first_start_creates_a_project_and_prints_keys_once(tmp_path: Path) -> None:
    port = free_port()
    env = {"COSTLINE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "costline", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        text = "".join(lines)
        assert "Created project 'default'" in text
        public = next(line.split(": ")[1].strip() for line in lines if "public key" in line)
        secret = next(line.split(": ")[1].strip() for line in lines if "secret key" in line)
        for _ in range(100):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/public/projects", auth=(public, secret))
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["data"][0]["name"] == "default"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()
    assert (tmp_path / "costline.duckdb").exists()
    # the secret is stored hashed only
    store = open_store(f"duckdb:///{tmp_path / 'costline.duckdb'}")
    try:
        key = store.find_key_by_public(public)
        assert key is not None and secret not in key.secret_hash
    finally:
        store.close()


def test_keys_reach_only_their_own_project(fresh: tuple[Server, Path]) -> None:
    server, tmp = fresh
    other = create_project(server.store_url, tmp, server.env, name="other")
    server.start()
    trace_id = uuid.uuid4().hex
    with server.client() as c:
        c.post("/v1/ingest", json={"events": [{"id": "shared-id", "trace_id": trace_id, "model": "gpt-4o",
                                                "usage": {"input_tokens": 10}}]})
    other_auth = (other["public_key"], other["secret_key"])
    r = httpx.get(f"{server.url}/api/public/traces/{trace_id}", auth=other_auth)
    assert r.status_code == 404
    r = httpx.get(f"{server.url}/api/public/projects", auth=other_auth)
    assert r.json()["data"][0]["id"] == other["project_id"]
    # the same observation id in the other project is a different row
    r = httpx.post(f"{server.url}/v1/ingest", auth=other_auth,
                   json={"events": [{"id": "shared-id", "trace_id": trace_id, "model": "gpt-4o",
                                     "usage": {"input_tokens": 20}}]})
    assert r.status_code == 200
    with server.client() as c:
        mine = c.get(f"/api/public/traces/{trace_id}").json()["observations"]
    assert len(mine) == 1 and mine[0]["usageDetails"]["input"] == 10
    r = httpx.get(f"{server.url}/api/public/traces/{trace_id}", auth=(server.public_key, other["secret_key"]))
    assert r.status_code == 401


def test_non_loopback_bind_requires_auth_everywhere(fresh: tuple[Server, Path]) -> None:
    server, _ = fresh
    server.extra_args = ["--host", "0.0.0.0"]
    server.start()
    assert httpx.get(f"{server.url}/api/public/health").status_code == 401
    assert httpx.get(f"{server.url}/docs").status_code == 401
    assert httpx.get(f"{server.url}/api/public/health", headers=server.headers).status_code == 200


def test_body_limits(tmp_path: Path) -> None:
    server, _ = make_server("duckdb", tmp_path, {"COSTLINE_MAX_BODY_BYTES": "2000"})
    server.start()
    try:
        events = [{"id": f"e{i}", "model": "gpt-4o", "usage": {"input_tokens": i}} for i in range(100)]
        with server.client() as c:
            r = c.post("/v1/ingest", json={"events": events})
            assert r.status_code == 413 and "2000 byte limit" in r.json()["message"]
            bomb = gzip.compress(json.dumps({"events": [], "pad": "x" * 1_000_000}).encode())
            assert len(bomb) < 2000
            r = c.post("/v1/ingest", content=bomb, headers={"Content-Encoding": "gzip"})
            assert r.status_code == 413 and "decompressed" in r.json()["message"]
    finally:
        server.stop()


def test_reprice_and_purge(fresh: tuple[Server, Path]) -> None:
    server, tmp = fresh
    server.start()
    events = [
        {"id": "old", "model": "house-x", "start_time": "2020-01-01T00:00:00Z",
         "usage": {"input_tokens": 1_000_000, "output_tokens": 0}},
        {"id": "new", "model": "house-x", "start_time": "2026-11-01T00:00:00Z",
         "usage": {"input_tokens": 1_000_000, "output_tokens": 0}},
        {"id": "gpt", "model": "gpt-4o", "start_time": "2026-11-01T00:00:00Z",
         "usage": {"input_tokens": 1_000_000, "output_tokens": 0}},
    ]
    with server.client() as c:
        costs = {x["id"]: x for x in c.post("/v1/ingest", json={"events": events}).json()["costs"]}
    assert costs["new"]["status"] == "unpriced"
    server.stop()
    prices = tmp / "prices.yaml"
    prices.write_text("prices:\n  - model: house-x\n    rates: {input_tokens: 2, output_tokens: 4}\n", "utf-8")
    dry = cli(server, "--prices", str(prices), "reprice", "--from", "2026-10-01", "--to", "2026-12-01",
              "--model", "house-*", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    # only "new" is in range and matches: unpriced (0) → 1M × $2 / 1M = 2
    assert json.loads(dry.stdout) == {"from": "2026-10-01T00:00:00+00:00", "to": "2026-12-01T00:00:00+00:00",
                                      "model": "house-*", "dry_run": True, "scanned": 1, "changed": 1,
                                      "old_total": "0", "new_total": "2"}
    real = cli(server, "--prices", str(prices), "reprice", "--from", "2026-10-01", "--to", "2026-12-01",
               "--model", "house-*", "--json")
    assert json.loads(real.stdout)["changed"] == 1
    store = open_store(server.store_url)
    try:
        rows = store.get_observations(server.project_id, ["old", "new", "gpt"])
        assert rows["new"].total_cost == 2 and rows["new"].pricing_status == "priced"
        assert rows["old"].pricing_status == "unpriced"  # outside the range: untouched
        assert [a.kind for a in store.list_audit()] == ["reprice"]
    finally:
        store.close()
    purged = cli(server, "purge", "--older-than", "365", "--json")
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout)["deleted"] == 1
    store = open_store(server.store_url)
    try:
        assert set(store.get_observations(server.project_id, ["old", "new", "gpt"])) == {"new", "gpt"}
    finally:
        store.close()
    assert "give --older-than" in cli(server, "purge").stderr
