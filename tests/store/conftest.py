"""Real engines for the store tests: a DuckDB file in ``tmp_path``, a fresh PostgreSQL schema per test.

PostgreSQL runs when ``COSTLINE_TEST_POSTGRES_URL`` names a reachable server (e.g.
``postgresql://postgres@127.0.0.1:5432/test``); otherwise its cases are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from costline.store.base import Store, open_store

POSTGRES_ENV = "COSTLINE_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The server URL from the environment, or a skip naming the variable."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}, e.g. postgresql://postgres@127.0.0.1:5432/test")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV}={url} is unreachable: {exc}")
    return url


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store_url(backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL for an empty store of ``backend``; the PostgreSQL schema is dropped afterwards."""
    if backend == "duckdb":
        yield f"duckdb://{tmp_path_factory.mktemp('duckdb') / 'costline.duckdb'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    schema = f"costline_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(server, schema)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()
