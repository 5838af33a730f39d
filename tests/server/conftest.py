"""Fixtures: a real ``costline serve`` per test module, over DuckDB and over PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.server.harness import Server, drop_postgres_schema, make_server, postgres_url


def running_server(backend: str, tmp: Path) -> Iterator[Server]:
    """A started server on a new store of ``backend``; stopped (and its PostgreSQL schema dropped) after."""
    srv, schema = make_server(backend, tmp)
    srv.start()
    yield srv
    srv.stop()
    base = postgres_url()
    if schema and base:
        drop_postgres_schema(base, schema)


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(request.param, tmp_path_factory.mktemp(f"serve-{request.param}"))


@pytest.fixture(params=["duckdb", "postgres"])
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A server of its own for one test, over each store."""
    yield from running_server(request.param, tmp_path)
