"""Keys over real ``costline serve`` processes: revocation reaches a second server sharing the PostgreSQL store
within a bounded wait, rotation keeps ingestion working with the new key, and the list shows creation and last
use. The CLI goes through each server's admin token (server.json) as a user's would."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tests.server.harness import (
    Server,
    create_project,
    drop_postgres_schema,
    make_server,
    postgres_url,
    second_server,
)

#: how long the test waits for a revocation to reach the other server (the setting under test is 1 s)
DEADLINE_S = 60.0


def cli(server: Server, *args: str) -> Any:
    """``costline keys ...`` for this server's data directory and store: it goes through the running server."""
    proc = subprocess.run([sys.executable, "-m", "costline", "--data-dir", str(server.data_dir), *args,
                           "--store", server.store_url, "--json"],
                          capture_output=True, text=True, env=server.env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def basic(public: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()}


#: public key → ids of the events it had accepted
SENT: dict[str, list[str]] = {}


def ingest(url: str, headers: dict[str, str]) -> int:
    event = {"type": "generation", "id": uuid.uuid4().hex, "trace_id": "t", "model": "gpt-4o",
             "start_time": datetime.now(UTC).isoformat(), "usage": {"input_tokens": 1000, "output_tokens": 100}}
    status = httpx.post(f"{url}/v1/ingest", json={"events": [event]}, headers=headers, timeout=30).status_code
    if status == 200:
        public = base64.b64decode(headers["Authorization"].split()[1]).decode().split(":")[0]
        SENT.setdefault(public, []).append(event["id"])
    return status


def wait_for_status(url: str, headers: dict[str, str], wanted: int) -> int:
    deadline = time.monotonic() + DEADLINE_S
    status = ingest(url, headers)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        status = ingest(url, headers)
    return status


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two servers on one PostgreSQL database, each with its own data directory (and admin token)."""
    if not postgres_url():
        pytest.skip("needs COSTLINE_TEST_POSTGRES_URL")
    tmp_path = tmp_path_factory.mktemp("keys")
    env = {"COSTLINE_KEY_CACHE_TTL": "1"}
    first, schema = make_server("postgres", tmp_path / "a", env)
    second = second_server(first, tmp_path / "b")
    first.start()
    second.start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)


def fresh_key(server: Server) -> dict[str, Any]:
    made: dict[str, Any] = cli(server, "keys", "create", "--project", server.project_id)
    return made


def test_revocation_on_one_server_reaches_the_other(pair: tuple[Server, Server]) -> None:
    a, b = pair
    key = fresh_key(a)
    headers = basic(key["public_key"], key["secret_key"])
    assert ingest(a.url, headers) == 200
    assert ingest(b.url, headers) == 200  # b has the key in its cache now

    revoked = cli(a, "keys", "revoke", key["public_key"])
    assert revoked["public_key"] == key["public_key"] and revoked["active"] is False
    assert ingest(a.url, headers) == 401  # the server that revoked it: at once
    assert wait_for_status(b.url, headers, 401) == 401  # the other: within its cache TTL
    bearer = {"Authorization": f"Bearer {key['secret_key']}"}
    assert ingest(b.url, bearer) == 401 and ingest(a.url, bearer) == 401


def test_rotation_keeps_ingestion_working_with_the_new_key(pair: tuple[Server, Server]) -> None:
    a, b = pair
    key = fresh_key(a)
    old = basic(key["public_key"], key["secret_key"])
    assert ingest(b.url, old) == 200
    rotated = cli(a, "keys", "rotate", key["public_key"], "--grace", "1h")
    new = rotated["new"]
    assert new["project_id"] == a.project_id and new["secret_key"].startswith("sk-cl-")
    assert rotated["old"]["active"] is True and rotated["old"]["revoked_at"] is not None
    fresh = basic(new["public_key"], new["secret_key"])
    for server in (a, b):  # the new pair works everywhere at once, the old one during its grace period
        assert ingest(server.url, fresh) == 200
        assert ingest(server.url, old) == 200
    # rotate again without grace: the first new key stops, the newest works
    again = cli(b, "keys", "rotate", new["public_key"])
    newest = basic(again["new"]["public_key"], again["new"]["secret_key"])
    assert ingest(b.url, fresh) == 401
    assert wait_for_status(a.url, fresh, 401) == 401
    assert ingest(a.url, newest) == 200 and ingest(b.url, newest) == 200
    with httpx.Client(base_url=a.url, headers=newest) as client:
        events = client.get("/v1/events", params={"limit": 1000}).json()["data"]
    assert {e["id"] for e in events} >= set(SENT[key["public_key"]])  # what the old key sent, in the project


def test_list_shows_creation_and_last_use(pair: tuple[Server, Server]) -> None:
    a, _ = pair
    project = create_project(a.store_url, a.data_dir, a.env, "listed")  # straight into the shared store
    listed = cli(a, "keys", "list", "--project", project["project_id"])
    assert [k["public_key"] for k in listed] == [project["public_key"]]
    assert listed[0]["created_at"] and listed[0]["last_used_at"] is None and listed[0]["active"] is True
    made = cli(a, "keys", "create", "--project", project["project_id"])
    assert ingest(a.url, basic(made["public_key"], made["secret_key"])) == 200
    listed = {k["public_key"]: k for k in cli(a, "keys", "list") if k["project_id"] == project["project_id"]}
    assert set(listed) == {project["public_key"], made["public_key"]}
    used = datetime.fromisoformat(listed[made["public_key"]]["last_used_at"])
    assert used >= datetime.fromisoformat(listed[made["public_key"]]["created_at"])
    assert listed[project["public_key"]]["last_used_at"] is None
    assert all("secret_key" not in k for k in listed.values())


def test_admin_routes_need_the_admin_token(pair: tuple[Server, Server]) -> None:
    a, _ = pair
    with a.client() as client:
        assert client.get("/v1/admin/keys").status_code == 403
        assert client.post(f"/v1/admin/keys/{a.public_key}/revoke").status_code == 403
    token = json.loads((a.data_dir / "server.json").read_text())["token"]
    admin = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{a.url}/v1/admin/keys/pk-cl-none/revoke", headers=admin).status_code == 404
    assert httpx.post(f"{a.url}/v1/admin/projects/none/keys", headers=admin).status_code == 404
    bad = httpx.post(f"{a.url}/v1/admin/keys/{a.public_key}/rotate", headers=admin, json={"grace_seconds": "1w"})
    assert bad.status_code == 400 and "grace_seconds" in bad.json()["message"]
    assert ingest(a.url, basic(a.public_key, a.secret_key)) == 200  # nothing was revoked by the refusals
