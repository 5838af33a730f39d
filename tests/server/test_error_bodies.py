"""A request the store fails answers 503 with a generic message and an error id, never the database's text, SQL or
a file path; the server's log has the id beside the real error, so an operator can find it.

PostgreSQL: a real ``costline serve`` whose tables are dropped under it. DuckDB: one process owns the file, so
the app runs in this process (uvicorn on a loopback port) over a real store that is then closed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from tests.server.harness import drop_postgres_schema, free_port, make_server, postgres_url

from costline.catalog.book import load_price_book
from costline.server.app import create_app
from costline.server.auth import create_project
from costline.settings import Settings
from costline.store.base import open_store

FORBIDDEN = ("observations", "does not exist", "relation", "postgresql://", "psycopg", "duckdb", "DuckDB",
             "SELECT", "closed", ".duckdb", "Traceback")
# an average by a metadata key: answered from raw observation rows (no rollup holds averages), which the test
# then breaks
QUERY = json.dumps({"dimensions": ["metadata.feature"], "metrics": ["avg:cost"], "from": "2026-11-01",
                    "to": "2026-12-01"})


def _check(answer: httpx.Response, where: Path) -> str:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    body = answer.json()
    assert set(body) == {"error", "error_id", "message"}
    assert body["error"] == "the store is unavailable; try again"
    assert len(body["error_id"]) == 32 and body["error_id"] in body["message"]
    for text in (*FORBIDDEN, str(where)):
        assert text not in answer.text, text
    error_id: str = body["error_id"]
    return error_id


def test_postgres_error_body_has_an_id_and_no_database_text(tmp_path: Path) -> None:
    srv, schema = make_server("postgres", tmp_path)
    srv.start()
    try:
        with srv.client() as client:
            assert client.get("/v1/metrics", params={"query": QUERY}).status_code == 200
            base = postgres_url()
            assert base and schema
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"DROP TABLE {schema}.observations CASCADE")
            error_id = _check(client.get("/v1/metrics", params={"query": QUERY}), tmp_path)
        assert srv.log is not None
        logged = srv.log.read_text("utf-8")
        assert error_id in logged and "does not exist" in logged  # the operator sees what happened
    finally:
        srv.stop()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)


@pytest.fixture
def duckdb_app(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], object]]:
    settings = Settings.from_env({}, data_dir=tmp_path, store_url=f"duckdb:///{tmp_path / 'store.duckdb'}")
    store = open_store(settings.resolved_store_url)
    keys = create_project(store, "t", datetime.now(UTC))
    app = create_app(settings, store, load_price_book(settings))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    headers = {"Authorization": f"Bearer {keys.secret_key}"}
    try:
        yield f"http://127.0.0.1:{port}", headers, store
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()


def test_duckdb_error_body_has_an_id_and_no_database_text(duckdb_app: tuple[str, dict[str, str], object],
                                                          tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url, headers, store = duckdb_app
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        assert client.get("/v1/metrics", params={"query": QUERY}).status_code == 200
        store.close()  # type: ignore[attr-defined]
        with caplog.at_level(logging.ERROR, logger="costline.server.app"):
            error_id = _check(client.get("/v1/metrics", params={"query": QUERY}), tmp_path)
    assert any(error_id in r.getMessage() and r.exc_info for r in caplog.records)
