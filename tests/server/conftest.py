"""Fixtures: a real ``costline serve`` per test module, over DuckDB and over PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.server.harness import Server, drop_postgres_schema, make_server, postgres_url


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"serve-{request.param}")
    srv, schema = make_server(request.param, tmp)
    srv.start()
    yield srv
    srv.stop()
    base = postgres_url()
    if schema and base:
        drop_postgres_schema(base, schema)
