"""``costline keys`` on a store no server runs for, the modes of what costline creates, and store URLs with
passwords kept out of what ``costline serve`` prints."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server.harness import drop_postgres_schema, free_port, fresh_postgres_schema, postgres_url


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "costline", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def ok(*args: str) -> Any:
    proc = run(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_on_the_store_directly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    base = ("--data-dir", str(data))
    project = ok(*base, "projects", "create", "app")
    made = ok(*base, "keys", "create", "--project", project["project_id"])
    assert made["secret_key"].startswith("sk-cl-") and made["project_id"] == project["project_id"]
    listed = ok(*base, "keys", "list")
    assert [k["public_key"] for k in listed] == [project["public_key"], made["public_key"]]
    assert all(k["last_used_at"] is None and k["active"] for k in listed)
    revoked = ok(*base, "keys", "revoke", made["public_key"])
    assert revoked["active"] is False and revoked["revoked_at"]
    rotated = ok(*base, "keys", "rotate", project["public_key"], "--grace", "30m")
    assert rotated["old"]["active"] is True and rotated["new"]["secret_key"].startswith("sk-cl-")
    listed = {k["public_key"]: k for k in ok(*base, "keys", "list", "--project", project["project_id"])}
    assert set(listed) == {project["public_key"], made["public_key"], rotated["new"]["public_key"]}
    assert not listed[made["public_key"]]["active"]

    missing = run(*base, "keys", "revoke", "pk-cl-none")
    assert missing.returncode == 1 and "no key 'pk-cl-none'" in missing.stderr
    bad = run(*base, "keys", "rotate", project["public_key"], "--grace", "a while")
    assert bad.returncode == 2 and "--grace" in bad.stderr
    again = run(*base, "keys", "rotate", made["public_key"])
    assert again.returncode == 1 and "was revoked" in again.stderr
    text = run(*base, "keys", "list", env={"COLUMNS": "250"})
    assert text.returncode == 0 and project["public_key"] in text.stdout and made["secret_key"] not in text.stdout


def test_data_dir_and_store_are_private(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    ok("--data-dir", str(data), "projects", "create", "app")
    assert mode(data) == 0o700
    assert mode(data / "costline.duckdb") == 0o600


def test_server_json_is_private_and_the_banner_redacts_the_password(tmp_path: Path) -> None:
    base = postgres_url()
    if not base or "@" not in base or "://" not in base:
        pytest.skip("needs COSTLINE_TEST_POSTGRES_URL (postgresql://user@host/db)")
    import psycopg

    schema, url = fresh_postgres_schema(base)
    # the test server trusts loopback connections, so a password in the URL is sent and ignored
    user, _, rest = url.partition("://")[2].partition("@")
    with_password = f"postgresql://{user.split(':')[0]}:s3cret-pw@{rest}"
    psycopg.connect(with_password).close()
    data = tmp_path / "data"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "costline", "--data-dir", str(data), "serve", "--port", str(port),
                             "--store", with_password], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/public/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        assert mode(data) == 0o700 and mode(data / "server.json") == 0o600
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        drop_postgres_schema(base, schema)
    assert "costline serving postgresql://" in out and ":***@" in out
    assert "s3cret-pw" not in out


@pytest.mark.parametrize("url", ["postgresql://app:s3cret-pw@127.0.0.1:1/costline",
                                 "postgresql://127.0.0.1:1/costline?user=app&password=s3cret-pw",
                                 "mysql://app:s3cret-pw@127.0.0.1/costline"])
def test_serve_errors_redact_the_password(tmp_path: Path, url: str) -> None:
    proc = run("--data-dir", str(tmp_path), "serve", "--port", str(free_port()), "--store", url)
    assert proc.returncode == 1
    assert "s3cret-pw" not in proc.stderr + proc.stdout and "***" in proc.stderr


def test_server_json_left_readable_by_an_old_server_is_narrowed(tmp_path: Path) -> None:
    from costline.server import local_admin

    old = tmp_path / local_admin.FILE_NAME
    old.write_text("{}")
    old.chmod(0o644)
    written = local_admin.write_runtime_file(tmp_path, local_admin.RunningServer("http://127.0.0.1:1", 1, "x", "t"))
    assert written == old and mode(old) == 0o600
