"""The quoting helper (``store/sqltext.py``): any text is one literal on both databases, and a metadata key that
the API would refuse (quotes, comment marks, placeholders, SQL) is still stored and queried as that literal key,
returning exactly its rows, on DuckDB and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import duckdb
import psycopg
import pytest

from costline.core.events import Observation, Trace
from costline.core.query import Dimension, Filter, Metric, Query
from costline.store import sqltext
from costline.store.base import Store

HOSTILE_KEYS = (
    "a'b", 'a"b', "a\\b", "a\\'b", "'); DROP TABLE observations; --", "/* x */", "x' || 'y", "%s", "%", "?",
    "$1", "a.b", "a/b", "~0~1/", "$.a[0]", "é\u2028𝕏", " lead", "x\"') || CAST((SELECT string_agg(secret_hash, ',') "
    "FROM api_keys) AS INTEGER) || json_extract_string(o.metadata, '$.\"x", "x') || CAST((SELECT pg_read_file("
    "'/etc/passwd')) AS integer) || (o.metadata ->> 'x", "k" * 300,
)
START = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def test_literals_are_built_from_safe_characters() -> None:
    for text in HOSTILE_KEYS:
        duck = sqltext.duckdb_literal(text)
        assert duck.startswith("'") and duck.endswith("'") and "'" not in duck[1:-1].replace("''", "")
        pg = sqltext.postgres_literal(text)
        assert re.fullmatch(r"E'([A-Za-z0-9_\-:./ ]|\\U[0-9A-F]{8})*'", pg), pg
    assert sqltext.postgres_literal("a'b?%") == "E'a\\U00000027b\\U0000003F\\U00000025'"
    assert sqltext.json_pointer("a/b~c") == "/a~1b~0c"
    assert sqltext.json_pointer(("fallback", "attempt")) == "/fallback/attempt"
    for bad in ("a\x00b", "\ud800"):
        with pytest.raises(sqltext.SqlTextError, match="cannot be stored"):
            sqltext.duckdb_literal(bad)
        with pytest.raises(sqltext.SqlTextError):
            sqltext.postgres_literal(bad)


def test_literals_round_trip_through_the_databases(postgres_url: str) -> None:
    texts = (*HOSTILE_KEYS, "", "tab\there", "new\nline", "\\U00000041")
    with duckdb.connect() as duck:
        for text in texts:
            assert duck.execute(f"SELECT {sqltext.duckdb_literal(text)}").fetchone() == (text,)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for setting in ("on", "off"):  # an E'' literal means the same either way
            conn.execute(f"SET standard_conforming_strings = {setting}")
            for text in texts:
                # psycopg reads %s and ? in a statement: the literal must hold neither
                row = conn.execute(f"SELECT {sqltext.postgres_literal(text)}").fetchone()  # type: ignore[call-overload]
                assert row == (text,)


def _rows(store: Store, key: str, value: str, view: str = "observations") -> list[dict[str, object]]:
    query = Query(view=view, start=START - timedelta(days=1), end=START + timedelta(days=1),
                  dimensions=(Dimension("metadata", key),), metrics=(Metric("count", "count"),),
                  filters=(Filter("metadata", "=", value, key),), project_id="p1")
    return store.query(query).rows


def test_hostile_metadata_keys_are_literal_keys(store: Store) -> None:
    observations = [
        Observation(project_id="p1", id=f"o{i}", trace_id=f"t{i}", start_time=START,
                    metadata={key: f"v{i}", "x": "plain", "a": {"b": "nested"}})
        for i, key in enumerate(HOSTILE_KEYS)
    ]
    other = Observation(project_id="p2", id="secret", trace_id="ts", start_time=START, metadata={"x": "theirs"})
    traces = [Trace(project_id="p1", id="t-trace", timestamp=START, metadata={"a'b": "from-trace"})]
    store.write([*observations, other, Observation(project_id="p1", id="late", trace_id="t-trace",
                                                   start_time=START)], traces, [])
    for i, key in enumerate(HOSTILE_KEYS):
        if "." in key:  # a dot separates the keys of a nested path: each part is still one literal key
            assert _rows(store, key, f"v{i}") == [], key
            continue
        assert _rows(store, key, f"v{i}") == [{f"metadata.{key}": f"v{i}", "count": 1}], key
        assert _rows(store, key, f"v{i}", "traces") == [{f"metadata.{key}": f"v{i}", "count": 1}], key
        assert _rows(store, key, "x") == [], key
    # a dotted key is a path: "a.b" is the nested a → b of every observation
    assert _rows(store, "a.b", "nested") == [{"metadata.a.b": "nested", "count": len(HOSTILE_KEYS)}]
    # the trace's value applies to its observations (the same literal key on the traces table)
    assert _rows(store, "a'b", "from-trace") == [{"metadata.a'b": "from-trace", "count": 1}]
    # nothing was dropped or changed, in this project or the other
    assert store.count_observations() == len(HOSTILE_KEYS) + 2
    assert store.count_observations("p2") == 1
