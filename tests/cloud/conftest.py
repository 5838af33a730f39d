"""The store fixtures (a DuckDB file, a fresh PostgreSQL schema) of the store suite, for the cloud tests."""

from tests.store.conftest import backend, postgres_url, store, store_url

__all__ = ["backend", "postgres_url", "store", "store_url"]
