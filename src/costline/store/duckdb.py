"""The embedded DuckDB backend: one file, owned by one process, written through one connection.

DuckDB lets one process write a database file, so the store owns a single connection and serialises every
call on a lock (the server calls it from a thread pool). Each ``write`` is one transaction; DuckDB's
write-ahead log makes it durable at COMMIT. A batch goes in as one JSON parameter holding a list per column,
cast to a STRUCT of lists and ``unnest``-ed into an ``INSERT ... ON CONFLICT DO UPDATE``: about 30 ms for
1,000 observations, where ``executemany`` takes seconds and a list parameter per column ~40 ms.

URLs: ``duckdb:///abs/path/file.duckdb`` (also ``duckdb:////abs/...``), ``duckdb:relative/path.duckdb``.
TIMESTAMPTZ values are read through ``timezone('UTC', col)``: fetching TIMESTAMPTZ directly would need pytz.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from costline.core.events import Observation, Score, Trace
from costline.store import rollup_sql, rows, sqltext
from costline.store.base import StoreError, ensure_private_dir
from costline.store.dialects import DuckDBDialect
from costline.store.duckdb_control import MemoryControl
from costline.store.holds import HoldBook, journal_path
from costline.store.merge_group import GroupedMerges, MergeQueue
from costline.store.migrations import SCHEMA_MIGRATIONS_DDL, load_migrations, pending_migrations
from costline.store.rows import Column
from costline.store.spend_cache import SpendCache
from costline.store.sql import NO_NEW_KEYS, NewKeys

log = logging.getLogger(__name__)

_TYPES: Mapping[str, str] = {
    "text": "VARCHAR", "time": "TIMESTAMPTZ", "json": "VARCHAR", "money": "VARCHAR", "tags": "VARCHAR[]",
    "bool": "BOOLEAN",
}


#: DuckDB settings a URL may carry as query parameters (``duckdb:///f.duckdb?memory_limit=2GB&threads=4``)
URL_SETTINGS = ("memory_limit", "threads", "checkpoint_threshold")
#: DuckDB caches data up to its memory limit (80 % of RAM by default); a server wants a flat footprint
DEFAULT_MEMORY_LIMIT = "1GB"
#: the write-ahead log's size that sets off a checkpoint (DuckDB's default: 16 MB). A checkpoint writes the
#: table's key index again, which grows with the table: at 16 MB a million native events took 58.6 s, at 256 MB
#: 48.8 s (docs/benchmarks.md, 2026-12-06 "late"). Every COMMIT still syncs the log; a crash replays at most
#: this much of it when the store opens again.
DEFAULT_CHECKPOINT_THRESHOLD = "256MB"


def url_config(url: str) -> dict[str, Any]:
    """DuckDB configuration from the URL's query string, with costline's default memory limit."""
    _, _, query = url.partition("?")
    config = {"memory_limit": DEFAULT_MEMORY_LIMIT, "checkpoint_threshold": DEFAULT_CHECKPOINT_THRESHOLD}
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        if key not in URL_SETTINGS or not value:
            raise StoreError(f"unknown or empty DuckDB URL setting {key!r}; allowed: {', '.join(URL_SETTINGS)}")
        config[key] = value
    return config


def database_path(url: str) -> Path:
    """The file a ``duckdb:`` URL names (relative paths are taken from the working directory)."""
    url = url.partition("?")[0]
    scheme, sep, rest = url.partition(":")
    if scheme.lower() != "duckdb" or not sep:
        raise StoreError(f"not a DuckDB URL: {url!r}; use duckdb:///abs/path/file.duckdb or duckdb:relative/path")
    if rest.startswith("//"):
        rest = "/" + rest.lstrip("/")
    if rest.strip("/") == "":
        raise StoreError(f"{url!r} names no file; use duckdb:///abs/path/file.duckdb or duckdb:relative/path")
    return Path(rest).expanduser()


def connect(url: str) -> DuckDBStore:
    return DuckDBStore(url)


def _select(columns: Sequence[Column], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(
        f'timezone(\'UTC\', {prefix}"{c.name}")' if c.kind == "time" else f'{prefix}"{c.name}"' for c in columns
    )


def _upsert_sql(table: str, columns: Sequence[Column]) -> str:
    """INSERT from one JSON parameter holding a list per column (unnested together); a row with the same key
    is replaced. One JSON text binds and parses faster than a list parameter per column."""
    struct = ", ".join(f'"{c.name}" {_TYPES[c.kind]}[]' for c in columns)
    values = ", ".join(
        f'unnest(batch."{c.name}")' + ("::DECIMAL(38, 12)" if c.kind == "money" else "") for c in columns
    )
    names = ", ".join(f'"{c.name}"' for c in columns)
    updates = ", ".join(f'"{c.name}" = excluded."{c.name}"' for c in columns if c.name not in ("project_id", "id"))
    return (
        f"INSERT INTO {table} ({names}) SELECT {values} FROM (SELECT ?::JSON::STRUCT({struct}) AS batch) "
        f"ON CONFLICT (project_id, id) DO UPDATE SET {updates}, ingested_at = now()"
    )


#: the observation columns a budget's spend query reads (``SpendCache`` reads new rows' values of these alone)
SPEND_COLUMNS = frozenset({"project_id", "trace_id", "type", "name", "start_time", "model", "provider", "total_cost",
                           "pricing_status", "user_id", "session_id", "tags", "metadata", "environment", "release"})


def _rows_sql(columns: Sequence[Column]) -> str:
    """A SELECT of the rows of a JSON batch (one ``?``) as the table's ``columns``, for ``SpendCache``;
    ``json_transform`` skips the batch's other columns (a STRUCT cast would refuse them)."""
    shape = rows.dumps_json({c.name: [_TYPES[c.kind].removesuffix("[]")] if c.kind != "tags" else [["VARCHAR"]]
                             for c in columns})
    values = ", ".join(
        f'unnest(batch."{c.name}")' + ("::DECIMAL(38, 12)" if c.kind == "money" else "") + f' AS "{c.name}"'
        for c in columns
    )
    return f"SELECT {values} FROM (SELECT json_transform(?, {sqltext.duckdb_literal(shape)}) AS batch)"


def _batch_json(columns: Sequence[Column], values: Sequence[tuple[Any, ...]]) -> str:
    return rows.dumps_json({c.name: column for c, column in zip(columns, zip(*values, strict=True), strict=True)})


_OBS = _select(rows.OBSERVATION_COLUMNS)
_TABLES: Mapping[str, tuple[Column, ...]] = {
    "observations": rows.OBSERVATION_COLUMNS, "traces": rows.TRACE_COLUMNS, "scores": rows.SCORE_COLUMNS,
}
_UPSERTS = {table: _upsert_sql(table, columns) for table, columns in _TABLES.items()}
#: the same rows as plain INSERTs: ~3x cheaper than the upsert (which probes and locks the key index per row)
#: but refused when a key is already stored; ``write`` tries them first (see there)
_INSERTS = {table: sql.partition(" ON CONFLICT ")[0] for table, sql in _UPSERTS.items()}
_BY_IDS = "WHERE project_id = ? AND id IN (SELECT unnest(?::VARCHAR[]))"
_DIRTY_TRACES = "INSERT INTO rollup_dirty_traces SELECT ?, unnest(?::VARCHAR[])"
_OBSERVATIONS_BY_ID = f"SELECT {_OBS} FROM observations {_BY_IDS}"
_TRACES_BY_ID = f"SELECT {_select(rows.TRACE_COLUMNS)} FROM traces {_BY_IDS}"


_STORED_HOURS = f"SELECT id, epoch_us(start_time) FROM observations {_BY_IDS}"

R = TypeVar("R", Observation, Trace)


def _split(records: Sequence[R], new: frozenset[tuple[str, str]]) -> tuple[Sequence[R], Sequence[R]]:
    """(the records whose key is in ``new``, the others)."""
    if not new:
        return (), records
    return ([r for r in records if (r.project_id, r.id) in new],
            [r for r in records if (r.project_id, r.id) not in new])


def batch_payloads(observations: Sequence[Observation], traces: Sequence[Trace],
              scores: Sequence[Score]) -> list[tuple[str, str]]:
    """(table, JSON batch) for each table with rows to upsert."""
    batches = [
        ("observations", [rows.observation_row(o) for o in rows.latest_by_key(observations)]),
        ("traces", [rows.trace_row(t) for t in rows.latest_by_key(traces)]),
        ("scores", [rows.score_row(s) for s in rows.latest_by_key(scores)]),
    ]
    return [(table, _batch_json(_TABLES[table], values)) for table, values in batches if values]


def _projects(observations: Sequence[Observation], traces: Sequence[Trace]) -> set[str]:
    return {o.project_id for o in observations} | {t.project_id for t in traces}


def _hour_marks(observations: Sequence[Observation]) -> str:
    """The dirty-hour rows of new observations (``rollup_sql.dirty_marks`` without stored versions and
    traces) as an INSERT statement with the values in its text (integer seconds, project ids through the one
    quoting helper), ending in ``;``; "" when there are none."""
    return _marks_sql(sorted(rollup_sql.observation_hours(observations)))


def _marks_sql(hours: Sequence[tuple[str, int]]) -> str:
    values = ", ".join(f"({sqltext.duckdb_literal(project)}, to_timestamp({seconds:d}))" for project, seconds in hours)
    return f"INSERT INTO rollup_dirty VALUES {values}; " if values else ""


def _prepared_marks(project_id: str, hours: Sequence[int]) -> str:
    """The dirty hours of a worker's batch: the statement's text is built here, from integers and the project id
    (no SQL crosses from the worker; its tables are looked up among the store's own, trace ids are parameters)."""
    return _marks_sql([(project_id, int(seconds)) for seconds in sorted(set(hours))])


class _StoredKeyError(Exception):
    """A plain INSERT met a key already stored (``DuckDBStore.write`` then upserts)."""


#: rows per statement when an import replaces billing periods
GROUP_CHUNK = 20_000


class DuckDBStore(MemoryControl, GroupedMerges):
    """``Store`` on a DuckDB file. Thread-safe: every call takes the store's lock. Budget holds and the kept
    spend of budget counters live in the process's memory (``MemoryControl``)."""

    DIALECT = DuckDBDialect()

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = database_path(url)
        try:
            ensure_private_dir(self.path.parent)
            new = not self.path.exists()
            self._conn = duckdb.connect(str(self.path), config=url_config(url))
            if new:  # a new store is readable by its owner only (it holds every key digest); DuckDB refuses an
                os.chmod(self.path, 0o600)  # empty file, so it is made first and narrowed at once
        except duckdb.ProgrammingError as exc:  # a value DuckDB refuses for a setting (memory_limit=banana)
            settings = ", ".join(f"{k}={v}" for k, v in url_config(url).items())
            raise StoreError(f"cannot open the DuckDB store {self.path}: a setting is not valid ({settings}): {exc}. "
                             f"The store URL may set {', '.join(URL_SETTINGS)}") from exc
        except (OSError, duckdb.Error) as exc:
            raise StoreError(
                f"cannot open the DuckDB store {self.path}: {exc}. One process owns a DuckDB file: stop the other "
                "costline process using it, or go through its server: send events to it and ask it over HTTP "
                "(/v1/metrics, /v1/traces, /v1/users/{id}/costs; docs/api.md)"
            ) from exc
        self._lock = threading.RLock()
        self._merges = MergeQueue()
        self._closed = False
        self._spend = SpendCache(self.DIALECT, _rows_sql(
            [c for c in rows.OBSERVATION_COLUMNS if c.name in SPEND_COLUMNS]))
        try:
            self._holds = HoldBook(journal_path(self.path))
        except StoreError:
            self._conn.close()
            raise

    # plumbing ----------------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN … COMMIT under the lock; on any error ROLLBACK and raise (``StoreError`` for database errors)."""
        with self._rolled_back(what) as conn:
            conn.execute("BEGIN TRANSACTION")
            yield conn
            conn.execute("COMMIT")

    @contextmanager
    def _rolled_back(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection under the lock, for statements that BEGIN and COMMIT themselves; on any error ROLLBACK
        and raise (``StoreError`` for database errors)."""
        with self._lock:
            conn = self._connection()
            try:
                yield conn
            except BaseException as exc:
                self._spend.abandon()
                with suppress(duckdb.Error):  # no transaction (a failed BEGIN or COMMIT): nothing to roll back
                    conn.execute("ROLLBACK")
                if isinstance(exc, duckdb.Error):
                    raise StoreError(f"{what} failed, nothing was stored: {exc}") from exc
                raise
            self._spend.committed(self._runner(conn))

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except duckdb.Error as exc:
                raise StoreError(f"query failed on {self.path}: {exc}") from exc

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        return self._conn

    def _columns(self, columns: Sequence[Column]) -> str:
        return _select(columns)

    def migrate(self) -> list[str]:
        applied: list[str] = []
        with self._lock:
            conn = self._connection()
            conn.execute(SCHEMA_MIGRATIONS_DDL)
            done = {name for (name,) in conn.execute("SELECT name FROM schema_migrations").fetchall()}
        for migration in pending_migrations(load_migrations("duckdb"), done):
            with self._transaction(f"migration {migration.name}") as conn:
                conn.execute(migration.sql)
                conn.execute("INSERT INTO schema_migrations VALUES (?, current_timestamp)", [migration.name])
            log.info("applied migration %s to %s", migration.name, self.path)
            applied.append(migration.name)
        self._adopt_table_holds()
        return applied

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
                self._holds.close()

    # writes ------------------------------------------------------------------------------------------------
    # ``merge_write`` (merge_group.py) needs no lock of its own here: the store's lock is held from BEGIN to
    # COMMIT, so every read-merge-write of this process (the only one writing the file) runs alone, or in the
    # one group of the calls queued behind it.
    def get_observations(self, project_id: str, ids: Sequence[str]) -> dict[str, Observation]:
        if not ids:
            return {}
        found = self._fetch(_OBSERVATIONS_BY_ID, [project_id, list(ids)])
        return {o.id: o for o in map(rows.observation_from_row, found)}

    def get_traces(self, project_id: str, ids: Sequence[str]) -> dict[str, Trace]:
        if not ids:
            return {}
        found = self._fetch(_TRACES_BY_ID, [project_id, list(ids)])
        return {t.id: t for t in map(rows.trace_from_row, found)}

    def _read_observations(self, conn: Any, project_id: str, ids: Sequence[str]) -> dict[str, Observation]:
        found = conn.execute(_OBSERVATIONS_BY_ID, [project_id, list(ids)]).fetchall()
        return {o.id: o for o in map(rows.observation_from_row, found)}

    def _read_traces(self, conn: Any, project_id: str, ids: Sequence[str]) -> dict[str, Trace]:
        found = conn.execute(_TRACES_BY_ID, [project_id, list(ids)]).fetchall()
        return {t.id: t for t in map(rows.trace_from_row, found)}

    def write(
        self,
        observations: Sequence[Observation] = (),
        traces: Sequence[Trace] = (),
        scores: Sequence[Score] = (),
    ) -> None:
        self._write(observations, traces, scores)

    def write_linked(self, observations: Sequence[Observation], scores: Sequence[Score], project_id: str,
                     trace_ids: Sequence[str]) -> list[str]:
        linked = self._write(observations, (), scores, (project_id, trace_ids) if trace_ids else None)
        return self._linked(project_id, trace_ids) if linked is None else linked  # None: upserted, read apart

    def _write(self, observations: Sequence[Observation], traces: Sequence[Trace], scores: Sequence[Score],
               linked: tuple[str, Sequence[str]] | None = None) -> list[str] | None:
        """``write``; with ``linked`` (project, trace ids), the ids ``write_linked`` returns, read in the COMMIT's
        call when the rows went in as plain INSERTs (None otherwise)."""
        payloads = batch_payloads(observations, traces, scores)  # built before taking the lock
        if not payloads:
            return None
        # Most writes carry new ids only (a complete record is sent once): first try plain INSERTs, with the
        # dirty hours of the new rows alone (no stored version to read). A key already stored makes DuckDB
        # refuse the INSERT; the transaction is rolled back whole and written again as upserts, marking the
        # stored rows' hours too. Both run under the store's lock, so nothing can be stored in between.
        try:
            return self._insert_new(observations, traces, payloads, linked)
        except _StoredKeyError:
            pass
        with self._transaction("write") as conn:
            self._spend.stale(_projects(observations, traces))
            rollup_sql.dirty_marks(self._runner(conn), self.DIALECT, observations, traces)
            for table, payload in payloads:
                conn.execute(_UPSERTS[table], [payload])
        return None

    def write_prepared(self, project_id: str, payloads: Sequence[tuple[str, str]], hours: Sequence[int],
                       trace_ids: Sequence[str], dirty_traces: Sequence[str] = ()) -> list[str] | None:
        marks = _prepared_marks(project_id, hours)
        ids = [str(t) for t in dirty_traces]

        def mark(conn: Any) -> None:
            conn.execute(_DIRTY_TRACES, [project_id, ids])

        try:
            return self._insert_payloads(payloads, marks, mark if ids else None,
                                         (project_id, trace_ids) if trace_ids else None, [project_id])
        except _StoredKeyError:
            return None

    def write_prepared_traces(self, project_id: str, payloads: Sequence[tuple[str, str]], hours: Sequence[int],
                              trace_ids: Sequence[str], traces_of: Sequence[str],
                              merge: Callable[[Mapping[str, Trace]], Sequence[Trace]]) -> list[str] | None:
        marks = _prepared_marks(project_id, hours)
        ids = list(dict.fromkeys(traces_of))
        if any(table != "observations" for table, _ in payloads):
            raise ValueError("write_prepared_traces takes observations' batches only")

        def write_traces(conn: Any) -> None:  # after the observations' INSERT, in its transaction
            stored = self._read_traces(conn, project_id, ids)
            # a trace the events leave as it was stored (spans repeating its attributes) is not written again
            traces = [t for t in merge(stored) if stored.get(t.id) != t]
            rollup_sql.dirty_marks(self._runner(conn), self.DIALECT, (), traces, {}, stored)
            self._write_rows(conn, (), traces, (), NewKeys(frozenset(), frozenset(
                (project_id, t.id) for t in traces if t.id not in stored)), stale=False)

        try:
            return self._insert_payloads(payloads, marks, write_traces, (project_id, trace_ids) if trace_ids else None,
                                         [project_id], traces=True)
        except _StoredKeyError:
            return None

    def _insert_new(self, observations: Sequence[Observation], traces: Sequence[Trace],
                    payloads: Sequence[tuple[str, str]], linked: tuple[str, Sequence[str]] | None) -> list[str]:
        """``write``'s first try, in as few calls into DuckDB as it takes: BEGIN rides with the first INSERT, the
        dirty hours (as literals) and the ``linked`` read with the COMMIT. A call into DuckDB takes the GIL back a
        few times before it returns, each time behind the other requests' Python (up to the 5 ms switch
        interval): with 2 requests in flight a call held the lock ~10-20 ms longer than its work
        (docs/benchmarks.md, "fewer calls into DuckDB under the store lock").
        ``_StoredKeyError`` when an INSERT meets a stored key (nothing was written)."""
        projects = _projects(observations, traces)
        if traces:  # a trace's user change takes a parameter: marked by statements of their own
            return self._insert_payloads(payloads, None, lambda conn: rollup_sql.dirty_marks(
                self._runner(conn), self.DIALECT, observations, traces, {}), linked, projects)
        return self._insert_payloads(payloads, _hour_marks(observations), None, linked, projects)

    def _insert_payloads(self, payloads: Sequence[tuple[str, str]], marks: str | None,
                         mark: Callable[[Any], None] | None, linked: tuple[str, Sequence[str]] | None,
                         projects: Collection[str], traces: bool = False) -> list[str]:
        """``_insert_new`` from the JSON batches: the dirty hours as literals (``marks``) or by ``mark`` (which
        may write more: ``traces`` when it writes trace rows); the budget counters kept for ``projects`` (the
        batch's) get what the new rows add."""
        with self._rolled_back("write") as conn:
            self._spend.touch(projects)  # forgotten if this fails once its COMMIT may have happened
            for index, (table, payload) in enumerate(payloads):
                try:
                    conn.execute(("BEGIN TRANSACTION; " if index == 0 else "") + _INSERTS[table], [payload])
                except duckdb.ConstraintException as exc:
                    raise _StoredKeyError from exc
            if mark is not None:
                mark(conn)
            if linked:
                found = conn.execute(f"{marks or ''}COMMIT; {self._linked_sql()}", [linked[0], list(linked[1])])
                ids = [t for (t,) in found.fetchall()]
            else:
                conn.execute(f"{marks or ''}COMMIT")
                ids = []
            self._account(conn, projects, payloads, traces)
            return ids

    def _account(self, conn: Any, projects: Collection[str], payloads: Sequence[tuple[str, str]],
                 traces: bool = False) -> None:
        """After a COMMIT of new rows, still under the lock: what they add to the kept budget spend (a write
        of trace rows makes the counters reading trace attributes stale)."""
        if len(self._spend):
            observations = next((payload for table, payload in payloads if table == "observations"), None)
            self._spend.account(self._runner(conn), projects, observations,
                                traces or any(table == "traces" for table, _ in payloads))

    def _write_rows(self, conn: Any, observations: Sequence[Observation], traces: Sequence[Trace],
                    scores: Sequence[Score], new: NewKeys = NO_NEW_KEYS, stale: bool = True) -> None:
        # under the store's lock nothing can be stored between the reads that found ``new`` absent and these
        # statements: those rows go in as plain INSERTs (a third of the upsert's cost), the rest upsert. A merge
        # changes stored rows: the kept budget spend of their projects is read again (``MemoryControl``), unless
        # the caller accounts the write itself (``stale=False``: new observations, and traces after which
        # ``SpendCache.account`` makes the counters reading trace attributes stale)
        if stale:
            self._spend.stale(_projects(observations, traces))
        new_obs, old_obs = _split(observations, new.observations)
        new_traces, old_traces = _split(traces, new.traces)
        for table, payload in batch_payloads(new_obs, new_traces, ()):
            conn.execute(_INSERTS[table], [payload])
        for table, payload in batch_payloads(old_obs, old_traces, scores):
            conn.execute(_UPSERTS[table], [payload])

    def _stored_hours(self, conn: Any, project_id: str, ids: Sequence[str]) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = conn.execute(_STORED_HOURS, [project_id, list(ids)]).fetchall()
        return found

    def delete_price(self, project_id: str, price_id: str) -> bool:
        with self._transaction(f"deleting price {price_id!r}") as conn:
            found = conn.execute(
                "DELETE FROM prices WHERE project_id = ? AND id = ? RETURNING id", [project_id, price_id]
            ).fetchall()
        return bool(found)

    def purge(self, before: datetime, project_id: str | None = None) -> int:
        params: list[Any] = [rows.utc_in(before, "before")]
        scope = ""
        if project_id is not None:
            scope = " AND project_id = ?"
            params.append(project_id)
        with self._transaction("purge") as conn:
            self._spend.stale(None if project_id is None else [project_id])
            rollup_sql.mark_rows(self._runner(conn), self.DIALECT, f"start_time < ?{scope}", params)
            deleted = conn.execute(f"DELETE FROM observations WHERE start_time < ?{scope}", params).fetchall()
            conn.execute(f"DELETE FROM scores WHERE \"timestamp\" < ?{scope}", params)
            conn.execute(
                f"DELETE FROM traces t WHERE t.\"timestamp\" < ?{scope} AND NOT EXISTS ("
                "SELECT 1 FROM observations o WHERE o.project_id = t.project_id AND o.trace_id = t.id)",
                params,
            )
        return int(deleted[0][0])

    def replace_groups(self, project_id: str, group_ids: Sequence[str], observations: Sequence[Observation]) -> int:
        values = [rows.observation_row(o) for o in observations]
        with self._transaction("replacing imported billing periods") as conn:
            self._spend.stale([project_id, *(o.project_id for o in observations)])
            run = self._runner(conn)
            rollup_sql.mark_rows(run, self.DIALECT, "project_id = ? AND type = 'cloud' AND list_contains(?, trace_id)",
                                 [project_id, list(group_ids)])
            rollup_sql.dirty_marks(run, self.DIALECT, observations, ())
            removed = conn.execute(
                "DELETE FROM observations WHERE project_id = ? AND type = 'cloud' AND list_contains(?, trace_id) "
                "RETURNING id", [project_id, list(group_ids)],
            ).fetchall()
            for start in range(0, len(values), GROUP_CHUNK):
                conn.execute(_UPSERTS["observations"],
                             [_batch_json(rows.OBSERVATION_COLUMNS, values[start:start + GROUP_CHUNK])])
        return len(removed)

