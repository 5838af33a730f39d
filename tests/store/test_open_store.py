"""Opening stores by URL: scheme errors, DuckDB path forms, and failures that say what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from costline.store.base import StoreError, open_store
from costline.store.duckdb import DuckDBStore, database_path
from costline.store.postgres import redact


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(StoreError, match=r"unknown store URL scheme 'mysql'.*duckdb://.*postgresql://"):
        open_store("mysql://localhost/db")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("duckdb:///var/data/costline.duckdb", "/var/data/costline.duckdb"),
        ("duckdb:////var/data/costline.duckdb", "/var/data/costline.duckdb"),  # f"duckdb:///{absolute}"
        ("duckdb:/var/data/costline.duckdb", "/var/data/costline.duckdb"),
        ("duckdb:data/costline.duckdb", "data/costline.duckdb"),
        ("DuckDB:data/costline.duckdb", "data/costline.duckdb"),
    ],
)
def test_duckdb_url_forms(url: str, path: str) -> None:
    assert database_path(url) == Path(path)


@pytest.mark.parametrize("url", ["duckdb:", "duckdb://", "duckdb:///", "sqlite:///x.db"])
def test_duckdb_url_without_a_file_is_refused(url: str) -> None:
    with pytest.raises(StoreError, match="duckdb:///abs/path"):
        database_path(url)


def test_relative_duckdb_url_creates_parent_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("duckdb:nested/dir/costline.duckdb")
    try:
        assert isinstance(store, DuckDBStore)
        assert store.count_observations() == 0
    finally:
        store.close()
    assert (tmp_path / "nested" / "dir" / "costline.duckdb").is_file()


def test_absolute_duckdb_urls_with_three_or_four_slashes(tmp_path: Path) -> None:
    for url in (f"duckdb://{tmp_path}/a/one.duckdb", f"duckdb:///{tmp_path}/b/two.duckdb"):
        open_store(url).close()
    assert (tmp_path / "a" / "one.duckdb").is_file()
    assert (tmp_path / "b" / "two.duckdb").is_file()


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = open_store(f"duckdb://{tmp_path}/c.duckdb")
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.count_observations()


def test_a_duckdb_file_held_by_another_process_gives_advice(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path}/held.duckdb"
    holder = open_store(url)
    try:
        child = subprocess.run(
            [sys.executable, "-c", f"from costline.store.base import open_store; open_store({url!r})"],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        holder.close()
    assert child.returncode != 0
    assert "StoreError" in child.stderr and "One process owns a DuckDB file" in child.stderr


def test_unreachable_postgres_fails_at_open_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as caught:
        open_store("postgresql://costline:s3cret@127.0.0.1:1/costline?connect_timeout=2")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u@host/db?password=pw&sslmode=require", "postgresql://u@host/db?password=***&sslmode=require"),
        ("postgresql://host/db", "postgresql://host/db"),
    ],
)
def test_redact_hides_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_duckdb_url_settings(tmp_path: Path) -> None:
    from costline.store.duckdb import url_config

    assert url_config("duckdb:///x.duckdb") == {"memory_limit": "1GB", "checkpoint_threshold": "256MB"}
    assert url_config("duckdb:///x.duckdb?memory_limit=256MB&threads=2&checkpoint_threshold=64MB") == {
        "memory_limit": "256MB", "threads": "2", "checkpoint_threshold": "64MB"}
    with pytest.raises(StoreError, match="unknown or empty DuckDB URL setting 'colour'"):
        url_config("duckdb:///x.duckdb?colour=red")
    # a value DuckDB refuses names the settings, not the other-process hint of a locked file
    with pytest.raises(StoreError, match=r"a setting is not valid \(.*checkpoint_threshold=banana\)") as caught:
        open_store(f"duckdb:///{tmp_path / 'bad.duckdb'}?checkpoint_threshold=banana")
    assert "One process owns" not in str(caught.value)
    store = open_store(f"duckdb:///{tmp_path / 's.duckdb'}?memory_limit=256MB")
    try:
        assert store.count_observations() == 0
        assert (tmp_path / "s.duckdb").exists()
        # what the connection runs with (DuckDB reports the threshold in its own units)
        [(threshold,)] = store._fetch("SELECT current_setting('checkpoint_threshold')")
        assert threshold == "244.1 MiB", threshold  # 256 MB = 244.1 MiB
    finally:
        store.close()
