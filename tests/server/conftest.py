"""Fixtures: a real ``costline serve`` per test module, over DuckDB and over PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.server.harness import Server, served


def running_server(backend: str, tmp: Path) -> Iterator[Server]:
    """A started server on a new store of ``backend``; stopped (and its PostgreSQL schema dropped) after."""
    with served(backend, tmp) as srv:
        yield srv


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(request.param, tmp_path_factory.mktemp(f"serve-{request.param}"))


@pytest.fixture(params=["duckdb", "postgres"])
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A server of its own for one test, over each store."""
    yield from running_server(request.param, tmp_path)
