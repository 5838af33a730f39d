"""Starting a real ``costline serve`` process on a free loopback port, over DuckDB or PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

PG_ENV = "COSTLINE_TEST_POSTGRES_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    store_url: str
    data_dir: Path
    public_key: str
    secret_key: str
    project_id: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.basic}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def start(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.log = self.data_dir / f"serve-{port}.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "costline", "serve", "--port", str(port), "--store", self.store_url,
                 "--data-dir", str(self.data_dir), *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"costline serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/public/health", timeout=1).status_code in (200, 401):
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"costline serve did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


def create_project(store_url: str, data_dir: Path, env: dict[str, str], name: str = "test") -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "costline", "--data-dir", str(data_dir), "projects", "create", name,
         "--store", store_url, "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    created: dict[str, str] = json.loads(proc.stdout)
    return created


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV)


def fresh_postgres_schema(base_url: str) -> tuple[str, str]:
    """A new schema in the test database and a URL whose connections use it."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base_url else "?"
    return schema, f"{base_url}{sep}options=-csearch_path%3D{schema}"


def drop_postgres_schema(base_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def make_server(backend: str, tmp: Path, extra_env: dict[str, str] | None = None) -> tuple[Server, str | None]:
    env = {**os.environ, "COSTLINE_DATA_DIR": str(tmp), **(extra_env or {})}
    env.pop("COSTLINE_PRICE_FILES", None)
    schema = None
    if backend == "duckdb":
        store_url = f"duckdb:///{tmp / 'store.duckdb'}"
    else:
        base = postgres_url()
        if not base:
            pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)")
        try:
            schema, store_url = fresh_postgres_schema(base)
        except Exception as exc:  # server not reachable
            pytest.skip(f"PostgreSQL at {PG_ENV}={base} is not reachable: {exc}")
    keys = create_project(store_url, tmp, env)
    server = Server(
        url=f"http://127.0.0.1:{free_port()}", store_url=store_url, data_dir=tmp,
        public_key=keys["public_key"], secret_key=keys["secret_key"], project_id=keys["project_id"], env=env,
    )
    return server, schema




def second_server(first: Server, data_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    """Another ``costline serve`` on ``first``'s store (PostgreSQL), with its own data directory and port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return Server(url=f"http://127.0.0.1:{free_port()}", store_url=first.store_url, data_dir=data_dir,
                  public_key=first.public_key, secret_key=first.secret_key, project_id=first.project_id,
                  env={**first.env, "COSTLINE_DATA_DIR": str(data_dir), **(extra_env or {})})


@contextmanager
def served(backend: str, tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """A started server on a new store of ``backend``; stopped (and its PostgreSQL schema dropped) after."""
    srv, schema = make_server(backend, tmp, extra_env)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)
