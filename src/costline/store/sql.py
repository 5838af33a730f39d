"""What the SQL backends share: statements that differ only in their placeholder style.

Each backend subclasses ``SqlStore`` and supplies its transactions, its fetches, how it selects columns
(DuckDB reads TIMESTAMPTZ through ``timezone('UTC', ...)``), and its placeholder (``?`` or ``%s``); the
statements here are written with ``?`` and translated once per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from costline.core import timebuckets
from costline.core.duplicates import CallLink
from costline.core.events import Observation, Score, Trace
from costline.core.limits import EARLIEST, LATEST
from costline.core.money import to_decimal
from costline.core.query import Query, QueryResult
from costline.core.usage import Quantity
from costline.store import rollup_compile, rollup_sql, rows
from costline.store.base import (
    OBSERVATION_FILTERS,
    ApiKey,
    AuditEntry,
    Merge,
    Project,
    StoredPrice,
    StoreError,
)
from costline.store.control_sql import ControlSql
from costline.store.dialects import Dialect
from costline.store.keys_sql import KeySql
from costline.store.query_sql import Compiled, compile_query, finish
from costline.store.rows import Column

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NewKeys(NamedTuple):
    """The (project id, id) keys of a write's observations and traces known to be absent from the store (read
    under the transaction's locks); any other row may be stored and is upserted."""

    observations: frozenset[tuple[str, str]]
    traces: frozenset[tuple[str, str]]


NO_NEW_KEYS = NewKeys(frozenset(), frozenset())


class SqlStore(KeySql, ControlSql):
    """Shared ``Store`` methods for the SQL backends."""

    PARAM: ClassVar[str] = "?"
    DIALECT: ClassVar[Dialect]
    #: budget checks read the rollup too; off on both stores: the current hour is read raw anyway, and on
    #: the measured layouts the rollup's extra statements cost more than they save (docs/benchmarks.md)
    ROLLUP_BUDGETS: ClassVar[bool] = False
    #: answer the queries the rollup can from it (``rollup_sql``); False: raw rows only (tests compare both)
    use_rollups: bool = True

    def _transaction(self, what: str) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _columns(self, columns: Sequence[Column]) -> str:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        """``sql`` written with ``?`` placeholders, in this backend's style."""
        return sql if self.PARAM == "?" else sql.replace("?", self.PARAM)

    def _lock_ids(self, conn: Any, project_id: str, observation_ids: Sequence[str],
                  trace_ids: Sequence[str]) -> None:
        """Hold these ids until COMMIT against other ``merge_write`` calls (a backend without a store-wide lock)."""

    def _read_observations(self, conn: Any, project_id: str, ids: Sequence[str]) -> dict[str, Observation]:
        raise NotImplementedError

    def _read_traces(self, conn: Any, project_id: str, ids: Sequence[str]) -> dict[str, Trace]:
        raise NotImplementedError

    def _write_rows(self, conn: Any, observations: Sequence[Observation], traces: Sequence[Trace],
                    scores: Sequence[Score], new: NewKeys = NO_NEW_KEYS) -> None:
        """Upsert the rows; a backend may write those whose key is in ``new`` with plain INSERTs."""
        raise NotImplementedError

    def _stored_hours(self, conn: Any, project_id: str, ids: Sequence[str]) -> list[tuple[str, int]]:
        """(id, start time in epoch microseconds) of the stored observations among ``ids``."""
        raise NotImplementedError

    # writes ------------------------------------------------------------------------------------------------
    def write(self, observations: Sequence[Observation] = (), traces: Sequence[Trace] = (),
              scores: Sequence[Score] = ()) -> None:
        raise NotImplementedError

    def merge_write(
        self,
        project_id: str,
        observation_ids: Sequence[str],
        trace_ids: Sequence[str],
        merge: Merge,
        scores: Sequence[Score] = (),
    ) -> tuple[Sequence[Observation], Sequence[Trace]]:
        """Lock, read, merge and write in one transaction (see ``Store.merge_write``): two partial updates of
        one id in parallel requests are applied one after the other, the second to what the first wrote.

        Observations ``merge`` returns without having read them (complete records: native, OTLP) replace any
        stored row: one statement reads which of them are stored, and their start times, so the hours they
        leave are marked dirty too. The rows known to be new are then plain INSERTs where the backend can.
        """
        obs_ids, trc_ids = list(dict.fromkeys(observation_ids)), list(dict.fromkeys(trace_ids))
        with self._transaction("write") as conn:
            self._lock_ids(conn, project_id, obs_ids, trc_ids)
            stored_obs = self._read_observations(conn, project_id, obs_ids) if obs_ids else {}
            stored_traces = self._read_traces(conn, project_id, trc_ids) if trc_ids else {}
            observations, traces = merge(stored_obs, stored_traces)
            # rows ``merge`` was not given (complete records, or any row of another project) are looked up by key
            read = {(project_id, i) for i in obs_ids}
            unread: dict[str, list[str]] = {}
            for o in observations:
                if (o.project_id, o.id) not in read:
                    unread.setdefault(o.project_id, []).append(o.id)
            replaced = [(p, i, us) for p, ids in unread.items() for i, us in self._stored_hours(conn, p, ids)]
            named = {(project_id, i) for i in trc_ids}
            # a trace it was not given may replace a stored one whose user or metadata we did not read
            known = stored_traces if all((t.project_id, t.id) in named for t in traces) else None
            rollup_sql.dirty_marks(self._runner(conn), self.DIALECT, observations, traces, stored_obs, known,
                                   old_hours=[(p, us) for p, _, us in replaced])
            stored = {(project_id, i) for i in stored_obs} | {(p, i) for p, i, _ in replaced}
            new = NewKeys(
                frozenset(k for o in observations if (k := (o.project_id, o.id)) not in stored),
                frozenset(k for t in traces if (k := (t.project_id, t.id)) in named and t.id not in stored_traces),
            )
            self._write_rows(conn, observations, traces, scores, new)
        return observations, traces

    # projects and keys -------------------------------------------------------------------------------------
    def create_project(self, project: Project, key: ApiKey) -> None:
        if key.project_id != project.id:
            raise StoreError(f"key {key.public_key} is for project {key.project_id!r}, not {project.id!r}")
        with self._transaction(f"creating project {project.id!r}") as conn:
            conn.execute(
                self._q("INSERT INTO projects VALUES (?, ?, ?, ?)"),
                [project.id, project.name, rows.utc_in(project.created_at, "created_at"), project.retention_days],
            )
            conn.execute(
                self._q("INSERT INTO api_keys (project_id, public_key, secret_hash, created_at) VALUES (?, ?, ?, ?)"),
                [key.project_id, key.public_key, key.secret_hash, rows.utc_in(key.created_at, "created_at")],
            )

    def list_projects(self) -> list[Project]:
        found = self._fetch(f"SELECT {self._columns(rows.PROJECT_COLUMNS)} FROM projects ORDER BY created_at, id")
        return [Project(r[0], r[1], rows.utc_out(r[2]), r[3]) for r in found]

    def get_project(self, project_id: str) -> Project | None:
        found = self._fetch(
            self._q(f"SELECT {self._columns(rows.PROJECT_COLUMNS)} FROM projects WHERE id = ?"), [project_id]
        )
        return Project(found[0][0], found[0][1], rows.utc_out(found[0][2]), found[0][3]) if found else None

    # reads -------------------------------------------------------------------------------------------------
    def trace_observations(self, project_id: str, trace_id: str) -> list[Observation]:
        found = self._fetch(
            self._q(f"SELECT {self._columns(rows.OBSERVATION_COLUMNS)} FROM observations "
                    "WHERE project_id = ? AND trace_id = ? ORDER BY start_time, id"),
            [project_id, trace_id],
        )
        return [rows.observation_from_row(r) for r in found]

    def _linked_sql(self) -> str:
        """The ids among a list of a project's traces of those holding an observation with a parent."""
        return ("SELECT DISTINCT trace_id FROM observations WHERE project_id = ? AND parent_id IS NOT NULL "
                f"AND {self.DIALECT.among('trace_id')}")

    def _linked(self, project_id: str, trace_ids: Sequence[str]) -> list[str]:
        if not trace_ids:
            return []
        return [t for (t,) in self._fetch(self._q(self._linked_sql()), [project_id, list(trace_ids)])]

    def write_linked(self, observations: Sequence[Observation], scores: Sequence[Score], project_id: str,
                     trace_ids: Sequence[str]) -> list[str]:
        self.write(observations, (), scores)
        return self._linked(project_id, trace_ids)

    def write_prepared(self, project_id: str, payloads: Sequence[tuple[str, str]], hours: Sequence[int],
                       trace_ids: Sequence[str], dirty_traces: Sequence[str] = ()) -> list[str] | None:
        return None  # the batches are DuckDB's (a backend that takes them overrides this)

    def write_prepared_traces(self, project_id: str, payloads: Sequence[tuple[str, str]], hours: Sequence[int],
                              trace_ids: Sequence[str], traces_of: Sequence[str],
                              merge: Callable[[Mapping[str, Trace]], Sequence[Trace]]) -> list[str] | None:
        return None  # as ``write_prepared``

    def traces_observations(self, project_id: str, trace_ids: Sequence[str],
                            linked_only: bool = False) -> list[Observation]:
        trace_ids = self._asked_traces(project_id, trace_ids, linked_only)
        if not trace_ids:
            return []
        where = f"project_id = ? AND {self.DIALECT.among('trace_id')}"
        params: list[Any] = [project_id, list(trace_ids)]
        found = self._fetch(
            self._q(f"SELECT {self._columns(rows.OBSERVATION_COLUMNS)} FROM observations "
                    f"WHERE {where} ORDER BY trace_id, start_time, id"),
            params,
        )
        return [rows.observation_from_row(r) for r in found]

    def _asked_traces(self, project_id: str, trace_ids: Sequence[str], linked_only: bool) -> Sequence[str]:
        """The traces to read: with ``linked_only``, those holding a parent link (a batch of flat calls reads no
        row)."""
        return self._linked(project_id, trace_ids) if linked_only and trace_ids else trace_ids

    def trace_calls(self, project_id: str, trace_ids: Sequence[str], linked_only: bool = False) -> list[CallLink]:
        trace_ids = self._asked_traces(project_id, trace_ids, linked_only)
        if not trace_ids:
            return []
        d = self.DIALECT
        # epoch microseconds and two numbers out of the usage: the full rows cost ~30 µs each in Python
        found = self._fetch(self._q(
            f"SELECT id, trace_id, parent_id, type, model, resolved_model, {d.epoch_us('start_time')}, "
            f"{d.epoch_us('end_time')}, {d.json_text('usage', 'input_tokens')}, "
            f"{d.json_text('usage', 'output_tokens')}, pricing_status "
            f"FROM observations WHERE project_id = ? AND {d.among('trace_id')}"), [project_id, list(trace_ids)])
        return [CallLink(i, t, parent, kind, model, resolved, EPOCH + timedelta(microseconds=int(start)),
                         None if end is None else EPOCH + timedelta(microseconds=int(end)),
                         _token_counts(inp, out), status)
                for i, t, parent, kind, model, resolved, start, end, inp, out, status in found]

    def iter_observations(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        project_id: str | None = None,
        model_like: str | None = None,
        batch_size: int = 10_000,
        type_is: str | None = None,
    ) -> Iterator[Observation]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        conditions: list[str] = []
        params: list[Any] = []
        if start is not None:
            conditions.append("start_time >= ?")
            params.append(rows.utc_in(start, "start"))
        if end is not None:
            conditions.append("start_time < ?")
            params.append(rows.utc_in(end, "end"))
        if project_id is not None:
            conditions.append("project_id = ?")
            params.append(project_id)
        if model_like is not None:
            conditions.append("model LIKE ? ESCAPE '\\'")
            params.append(model_like)
        if type_is is not None:
            conditions.append("type = ?")
            params.append(type_is)
        # within one project the key is (start_time, id), which a (project_id, start_time, id) index serves
        key = ("start_time", "id") if project_id is not None else ("start_time", "project_id", "id")
        return self._iter_batches(conditions, params, key, batch_size)

    def _iter_batches(
        self, conditions: list[str], params: list[Any], key: tuple[str, ...], batch_size: int
    ) -> Iterator[Observation]:
        """Keyset pagination: each batch starts after the last key of the previous one."""
        after: list[Any] = []
        order = ", ".join(key)
        while True:
            where = [*conditions, f"({order}) > ({', '.join('?' for _ in key)})"] if after else conditions
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            found = self._fetch(
                self._q(f"SELECT {self._columns(rows.OBSERVATION_COLUMNS)} FROM observations {clause} "
                        f"ORDER BY {order} LIMIT {batch_size}"),
                [*params, *after],
            )
            batch = [rows.observation_from_row(r) for r in found]
            yield from batch
            if len(batch) < batch_size:
                return
            last = batch[-1]
            after = [getattr(last, name) for name in key]

    def list_observations(
        self,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        filters: Mapping[str, str] = MappingProxyType({}),
        before: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[Observation]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        conditions = ["project_id = ?"]
        params: list[Any] = [project_id]
        if start is not None:
            conditions.append("start_time >= ?")
            params.append(rows.utc_in(start, "start"))
        if end is not None:
            conditions.append("start_time < ?")
            params.append(rows.utc_in(end, "end"))
        for name, value in filters.items():
            column = OBSERVATION_FILTERS.get(name)
            if column is None:
                raise ValueError(f"unknown observation filter {name!r}; use one of {', '.join(OBSERVATION_FILTERS)}")
            conditions.append(f"{column} = ?")
            params.append(value)
        if before is not None:
            conditions.append("(start_time, id) < (?, ?)")
            params.extend([rows.utc_in(before[0], "before"), before[1]])
        found = self._fetch(
            self._q(f"SELECT {self._columns(rows.OBSERVATION_COLUMNS)} FROM observations "
                    f"WHERE {' AND '.join(conditions)} ORDER BY start_time DESC, id DESC LIMIT {int(limit)}"),
            params,
        )
        return [rows.observation_from_row(r) for r in found]

    def query(self, query: Query) -> QueryResult:
        offsets = None
        if query.granularity and (query.start is None or query.end is None):
            offsets = self._data_offsets(query)
        elif query.granularity:
            offsets = timebuckets.offsets(query.tz, query.start, query.end)  # type: ignore[arg-type]
        plan = rollup_sql.plan(query, offsets) if self.use_rollups else None
        if plan is None:
            compiled = compile_query(query, self.DIALECT, offsets)
            return finish(query, compiled, self._fetch(self._q(compiled.sql), compiled.params))
        with self._transaction("rolling up") as conn:
            rolled = self._refresh_rollups(conn, query.project_id, plan)
        if not rolled:
            compiled = compile_query(query, self.DIALECT, offsets)
            return finish(query, compiled, self._fetch(self._q(compiled.sql), compiled.params))
        with self._transaction("query") as conn:
            self._snapshot(conn)
            compiled = self._rollup_compiled(conn, query, plan, offsets)
            return finish(query, compiled, self._runner(conn)(compiled.sql, compiled.params))

    # rollups -----------------------------------------------------------------------------------------------
    def _runner(self, conn: Any) -> rollup_sql.Run:
        def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            cur = conn.execute(self._q(sql), params)
            return cur.fetchall() if cur.description is not None else []
        return run

    def _snapshot(self, conn: Any) -> None:
        """Make the transaction's reads one snapshot (PostgreSQL: REPEATABLE READ; DuckDB's lock does it)."""

    def _lock_rollups(self, conn: Any) -> None:
        """Serialise rollup refreshes until COMMIT (a backend without a store-wide lock)."""

    def _refresh_rollups(self, conn: Any, project_id: str | None, plan: rollup_sql.Plan) -> bool:
        """Recompute the dirty hours in the plan's range before the current one (which is still being written:
        raw rows answer for it, as for any hour dirtied after this); resolve traces whose user or metadata
        changed first when the query reads them; register a metadata key the query groups by. False: the
        rollup cannot answer (a project with ``MAX_METADATA_KEYS`` other keys)."""
        self._lock_rollups(conn)
        run = self._runner(conn)
        if plan.key is not None:
            assert project_id is not None
            if not rollup_sql.register_key(run, self.DIALECT, project_id, plan.key):
                return False
        if plan.uses_user:
            rollup_sql.resolve_traces(run, self.DIALECT, project_id)
        current = rollup_sql.floor_hour(datetime.now(UTC))
        hours = [h for h in rollup_sql.dirty_hours(run, self.DIALECT, project_id, plan) if h < current]
        rollup_sql.refresh(run, self.DIALECT, project_id, hours)
        if len(hours) >= rollup_sql.ANALYZE_AFTER:
            self._analyze_rollups(conn)
        return True

    def _analyze_rollups(self, conn: Any) -> None:
        """Refresh the planner's statistics after a large roll-up (PostgreSQL)."""

    def _rollup_compiled(self, conn: Any, query: Query, plan: rollup_sql.Plan,
                         offsets: Sequence[timebuckets.Offset] | None) -> Compiled:
        """The rollup statement for ``query`` given the dirty hours read in this transaction; the raw one
        while a trace's user or metadata change is not yet resolved into dirty hours and the query reads them."""
        run = self._runner(conn)
        if plan.uses_user:
            params: list[Any] = []
            scope = rollup_sql.project_scope(query.project_id, "project_id", params)
            if run(f"SELECT 1 FROM rollup_dirty_traces WHERE {scope} LIMIT 1", params):
                return compile_query(query, self.DIALECT, offsets)
        dirty = rollup_sql.dirty_hours(run, self.DIALECT, query.project_id, plan)
        return rollup_compile.compile_rollup(query, self.DIALECT, offsets, plan, dirty)

    def _usage_compiled(self, conn: Any, query: Query) -> Compiled:
        plan = rollup_sql.plan(query, None) if self.use_rollups and self.ROLLUP_BUDGETS else None
        if plan is None:
            return compile_query(query, self.DIALECT)
        if not self._refresh_rollups(conn, query.project_id, plan):
            return compile_query(query, self.DIALECT)
        return self._rollup_compiled(conn, query, plan, None)

    def _data_offsets(self, query: Query) -> list[timebuckets.Offset]:
        """The zone's offsets over the range the data covers (for a query without a range)."""
        epoch = self.DIALECT.epoch_us("start_time")
        sql = f"SELECT min({epoch}), max({epoch}) FROM observations"
        found = self._fetch(self._q(f"{sql} WHERE project_id = ?"), [query.project_id]) if query.project_id else \
            self._fetch(sql)
        low, high = found[0]
        if low is None:
            return [timebuckets.Offset(None, 0)]
        # within the range queries may name (rows beyond it, which ingestion refuses, keep the edge offsets)
        first, last = (int((t - EPOCH) / timedelta(microseconds=1)) for t in (EARLIEST, LATEST))
        start = EPOCH + timedelta(microseconds=min(max(int(low), first), last - 1))
        end = EPOCH + timedelta(microseconds=min(max(int(high) + 1, first + 1), last))
        return timebuckets.offsets(query.tz, start, end)

    def count_observations(self, project_id: str | None = None) -> int:
        if project_id is None:
            found = self._fetch("SELECT count(*) FROM observations")
        else:
            found = self._fetch(self._q("SELECT count(*) FROM observations WHERE project_id = ?"), [project_id])
        return int(found[0][0])

    # user prices -------------------------------------------------------------------------------------------
    def put_price(self, price: StoredPrice) -> None:
        with self._transaction(f"saving price {price.id!r}") as conn:
            conn.execute(
                self._q("INSERT INTO prices VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, id) DO UPDATE SET "
                        "entry = excluded.entry, created_at = excluded.created_at, updated_at = excluded.updated_at"),
                [price.project_id, price.id, rows.dumps_json(price.entry),
                 rows.utc_in(price.created_at, "created_at"), rows.utc_in(price.updated_at, "updated_at")],
            )

    def get_price(self, project_id: str, price_id: str) -> StoredPrice | None:
        found = self._fetch(
            self._q(f"SELECT {self._columns(rows.PRICE_COLUMNS)} FROM prices WHERE project_id = ? AND id = ?"),
            [project_id, price_id],
        )
        return stored_price(found[0]) if found else None

    def list_prices(self, project_id: str | None = None) -> list[StoredPrice]:
        sql = f"SELECT {self._columns(rows.PRICE_COLUMNS)} FROM prices"
        if project_id is None:
            found = self._fetch(f"{sql} ORDER BY project_id, id")
        else:
            found = self._fetch(self._q(f"{sql} WHERE project_id = ? ORDER BY id"), [project_id])
        return [stored_price(r) for r in found]

    # maintenance -------------------------------------------------------------------------------------------
    def add_audit(self, kind: str, details: Mapping[str, Any], at: datetime) -> None:
        with self._transaction(f"audit entry {kind!r}") as conn:
            conn.execute(
                self._q('INSERT INTO audit ("at", kind, details) VALUES (?, ?, ?)'),
                [rows.utc_in(at, "at"), kind, rows.dumps_json(details)],
            )

    def list_audit(self, kind: str | None = None) -> list[AuditEntry]:
        sql = f"SELECT {self._columns(rows.AUDIT_COLUMNS)} FROM audit"
        found = self._fetch(f"{sql} ORDER BY id") if kind is None else self._fetch(
            self._q(f"{sql} WHERE kind = ? ORDER BY id"), [kind]
        )
        return [AuditEntry(int(r[0]), rows.utc_out(r[1]), r[2], rows.json_out(r[3])) for r in found]


def stored_price(r: Sequence[Any]) -> StoredPrice:
    return StoredPrice(r[0], r[1], rows.json_out(r[2]), rows.utc_out(r[3]), rows.utc_out(r[4]))


def _token_counts(inp: str | None, out: str | None) -> dict[str, Quantity]:
    """The usage the duplicate rule reads (``input_tokens``, ``output_tokens``) from their JSON text."""
    usage: dict[str, Quantity] = {}
    for unit, text in (("input_tokens", inp), ("output_tokens", out)):
        if text is not None:  # an int, or a decimal string for fractional units (``rows.usage_json``)
            usage[unit] = int(text) if text.isascii() and text.isdigit() else to_decimal(text, field=unit)
    return usage
