"""What each budget counter has spent, kept in the DuckDB store's memory between checks, exact.

A budget check on DuckDB used to read the counter's spend with a statement that scans the project's window
(milliseconds, growing with the day's volume). One process owns a DuckDB file and every write goes through
its store, so the store can keep each counter's spend from one read to the next:

- a check whose counter is kept (same counter, same window start) reads no row; otherwise it reads the spend
  raw (the same compiled query as ever) and keeps it;
- a write that only adds new observations (plain INSERTs that met no stored key) adds to the kept counters
  exactly what those rows contribute: the counters' own spend queries, compiled as ever, run over the batch
  itself (the JSON the INSERT read) instead of the table, grouped by the filter values that tell the counters
  apart (one statement per family of counters, e.g. one for every user of a per-user budget), after the COMMIT
  while the store's lock still keeps other writers out;
- that statement is paid only when a check wants it: a write that follows another write with no check
  between forgets the project's kept spend instead (ingestion bursts cost nothing; the next check reads raw);
- any other change (updates and merges of stored rows, duplicate marks, reprices, purges, billing imports)
  makes the kept spend of the projects it touches stale, and a batch with trace rows that of the counters
  reading trace attributes (a trace can move its stored calls between counters). After the COMMIT, still
  under the lock, a project a check read since its last write has those counters read again raw (one
  statement per family, over the table), so the next check still finds them kept: the raw read moves from the
  check to the write that made it necessary. Other projects forget them; a failed write forgets what it
  touched. Counters of rolling windows (whose start moves with every check) are never kept.

So a kept figure is always what the raw query would answer (``tests/store/test_spend_cache.py`` compares them
after every kind of write on random data). Not thread-safe: the store calls it under its lock.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final

from costline.core.query import Dimension, Metric, Query
from costline.store.dialects import Dialect
from costline.store.query_sql import TRACE_FIELDS, compile_query

#: the metrics a budget's spend query asks for (``core.budgets.spend_query``); other queries are not kept
SPEND_METRICS: Final = (Metric("cost", "sum"), Metric("calls", "count"))
#: counters kept at most (beyond, a project's are all forgotten) and how long one is kept without a check
MAX_ENTRIES: Final = 100_000
IDLE_SECONDS: Final = 3600.0
#: a counter whose window start moved by less than this between two checks slides (a rolling window): not kept
SLIDING: Final = timedelta(hours=1)
_SOURCE: Final = "FROM observations o"
_QUOTED: Final = re.compile(r"'(?:[^']|'')*'")

log = logging.getLogger(__name__)

Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


@dataclass(slots=True)
class _Entry:
    query: Query
    family: Query
    values: tuple[str, ...]
    spent: Decimal
    requests: int
    used: float


class _Project:
    """A project's kept counters, and per family the counters by their filter values (so a write's cost is the
    batch's groups, not the number of counters kept)."""

    __slots__ = ("entries", "families", "read", "sliding", "swept")

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.families: dict[Query, dict[tuple[str, ...], set[str]]] = {}
        self.swept = time.monotonic()
        #: a check read a kept counter since the last write was accounted
        self.read = False
        #: counters of rolling windows (their start moves with every check): never kept
        self.sliding: set[str] = set()

    def add(self, key: str, entry: _Entry) -> None:
        self.remove(key)
        self.entries[key] = entry
        self.families.setdefault(entry.family, {}).setdefault(entry.values, set()).add(key)

    def remove(self, key: str) -> None:
        entry = self.entries.pop(key, None)
        if entry is None:
            return
        members = self.families[entry.family]
        keys = members[entry.values]
        keys.discard(key)
        if not keys:
            del members[entry.values]
            if not members:
                del self.families[entry.family]


def _split(query: Query) -> tuple[Query, tuple[str, ...]]:
    """The family query (the text ``=`` filters turned into groupings) and this counter's values of them."""
    grouped = [f for f in query.filters if f.kind == "text" and f.operator == "="]
    rest = tuple(f for f in query.filters if not (f.kind == "text" and f.operator == "="))
    family = replace(query, dimensions=tuple(Dimension(f.field, f.key) for f in grouped), filters=rest,
                     limit=10**9, order_by=())
    return family, tuple(str(f.value) for f in grouped)


def cacheable(query: Query) -> bool:
    return (query.view == "observations" and query.metrics == SPEND_METRICS and query.end is None
            and not query.dimensions and not query.granularity and query.project_id is not None)


class SpendCache:
    def __init__(self, dialect: Dialect, rows_sql: str) -> None:
        """``rows_sql``: a SELECT giving a batch's observation rows from its JSON (one ``?``), as the table's."""
        self.dialect = dialect
        self.rows_sql = rows_sql
        self._projects: dict[str, _Project] = {}
        self._pending: dict[str, bool] = {}  # project → only its counters reading trace attributes are stale
        self._touched: set[str] = set()  # projects a write accounted (their checks-since-write flag resets)
        self.hits = 0
        self.misses = 0
        self.deltas = 0
        self.refreshes = 0

    # reads -------------------------------------------------------------------------------------------------
    def get(self, project_id: str, key: str, query: Query) -> tuple[Decimal, int] | None:
        project = self._projects.get(project_id)
        entry = None if project is None else project.entries.get(key)
        if project is None or entry is None or entry.query != query:
            self.misses += 1
            return None
        self.hits += 1
        entry.used = time.monotonic()
        project.read = True
        return entry.spent, entry.requests

    def put(self, project_id: str, key: str, query: Query, spent: Decimal, requests: int) -> None:
        if not cacheable(query):
            return
        project = self._projects.get(project_id)
        if project is None or len(project.entries) >= MAX_ENTRIES:
            project = self._projects[project_id] = _Project()
        old = project.entries.get(key)
        if key in project.sliding:
            return
        if old is not None and old.query.start is not None and query.start is not None and \
                timedelta(0) < query.start - old.query.start < SLIDING:  # a rolling window: read raw every time
            project.remove(key)
            if len(project.sliding) >= MAX_ENTRIES:
                project.sliding.clear()
            project.sliding.add(key)
            return
        family, values = _split(query)
        project.add(key, _Entry(query, family, values, spent, requests, time.monotonic()))
        project.read = True

    def __len__(self) -> int:
        return sum(len(p.entries) for p in self._projects.values())

    # writes ------------------------------------------------------------------------------------------------
    def forget(self, project_ids: Iterable[str] | None = None, *, traced_only: bool = False) -> None:
        """Forget the kept spend of these projects (all when None): only the counters reading trace attributes
        with ``traced_only``."""
        targets = list(self._projects) if project_ids is None else [p for p in set(project_ids) if p in self._projects]
        for project_id in targets:
            if traced_only:
                project = self._projects[project_id]
                for key in [k for k, e in project.entries.items() if _traced(e.family)]:
                    project.remove(key)
            else:
                del self._projects[project_id]

    def stale(self, project_ids: Iterable[str] | None = None, *, traced_only: bool = False) -> None:
        """A change in a write's transaction that the kept spend of these projects (all when None; the counters
        reading trace attributes with ``traced_only``) cannot be accounted for: see ``committed``."""
        targets = list(self._projects) if project_ids is None else [p for p in set(project_ids) if p in self._projects]
        for project_id in targets:
            self._pending[project_id] = traced_only and self._pending.get(project_id, True)

    def committed(self, run: Run) -> None:
        """After a write's COMMIT, still under the store's lock: a project whose counters a check read since its
        last write has its stale counters read again raw now (one statement per family, so the next check finds
        them kept); the others are forgotten (the next check reads them raw)."""
        if not self._pending and not self._touched:
            return
        pending, touched = self._pending, self._touched
        self._pending, self._touched = {}, set()
        for project_id, traced_only in pending.items():
            project = self._projects.get(project_id)
            if project is None:
                continue
            if not project.read:
                self.forget([project_id], traced_only=traced_only)
                continue
            try:
                self._refresh(run, project, traced_only)
            except Exception:
                log.exception("could not read the kept budget spend of project %s again; it is read at the next "
                              "check", project_id)
                self.forget([project_id])
        for project_id in touched | set(pending):
            if (project := self._projects.get(project_id)) is not None:
                project.read = False

    def touch(self, project_ids: Iterable[str]) -> None:
        """A write of new rows to these projects begins: if it fails after its COMMIT may have happened, the
        projects' kept spend is forgotten (``abandon``)."""
        self._touched.update(p for p in project_ids if p in self._projects)

    def abandon(self) -> None:
        """A write failed (rolled back, or its COMMIT's outcome unknown): forget what it touched."""
        self.forget([*self._pending, *self._touched])
        self._pending, self._touched = {}, set()

    def account(self, run: Run, project_ids: Iterable[str], payload: str | None, traces: bool) -> None:
        """Add what a committed write of new rows contributes (``payload``: its observations' JSON batch;
        ``traces``: it also wrote trace rows, after which the counters reading trace attributes are stale),
        computed with ``run`` while the store's lock still keeps other writers out. Only a project a check read
        since its last write is accounted; the others are forgotten (the next check reads them raw)."""
        for project_id in set(project_ids):
            project = self._projects.get(project_id)
            if project is None:
                continue
            if not project.read:  # a second write with no check between: forgotten, the next check reads raw
                self.forget([project_id])
                continue
            self._touched.add(project_id)
            if traces:
                self.stale([project_id], traced_only=True)
            if payload is None:  # nothing but trace rows or scores
                continue
            self._sweep(project)
            try:
                for family, members in project.families.items():
                    if traces and _traced(family):  # read again by ``committed``
                        continue
                    for values, (cost, calls) in self._family_sums(run, family, payload).items():
                        for key in members.get(values, ()):
                            entry = project.entries[key]
                            entry.spent += cost
                            entry.requests += calls
                    self.deltas += 1
            except Exception:  # the write is committed: lose only what was kept
                log.exception("could not account a write in the kept budget spend of project %s; it is "
                              "read again at the next check", project_id)
                self.forget([project_id])

    def _refresh(self, run: Run, project: _Project, traced_only: bool) -> None:
        for family, members in project.families.items():
            if traced_only and not _traced(family):
                continue
            compiled = compile_query(family, self.dialect)
            sums = _sums(run(compiled.sql, compiled.params), len(family.dimensions))
            for values, keys in members.items():
                cost, calls = sums.get(values, (Decimal(0), 0))
                for key in keys:
                    entry = project.entries[key]
                    entry.spent, entry.requests = cost, calls
            self.refreshes += 1

    @staticmethod
    def _sweep(project: _Project) -> None:
        """Drop the counters no check read for ``IDLE_SECONDS`` (at most once a minute)."""
        now = time.monotonic()
        if now - project.swept < 60:
            return
        project.swept = now
        for key in [k for k, e in project.entries.items() if e.used < now - IDLE_SECONDS]:
            project.remove(key)

    def _family_sums(self, run: Run, family: Query, payload: str) -> dict[tuple[str, ...], tuple[Decimal, int]]:
        compiled = compile_query(family, self.dialect)
        head, found, tail = compiled.sql.partition(_SOURCE)
        if not found or "?" in _QUOTED.sub("", head):  # the batch's parameter must come first
            raise ValueError(f"unexpected shape of a spend query: {compiled.sql[:200]}")
        sql = f"{head}FROM ({self.rows_sql}) o{tail}"
        return _sums(run(sql, [payload, *compiled.params]), len(family.dimensions))


def _traced(family: Query) -> bool:
    return any(d.name in TRACE_FIELDS for d in family.dimensions) or any(f.field in TRACE_FIELDS
                                                                       for f in family.filters)


def _sums(found: Sequence[tuple[Any, ...]], groups: int) -> dict[tuple[str, ...], tuple[Decimal, int]]:
    """A family statement's rows as filter values → (cost, calls); a NULL value matches no counter."""
    sums: dict[tuple[str, ...], tuple[Decimal, int]] = {}
    for row in found:
        if any(v is None for v in row[:groups]):
            continue
        cost, calls = row[groups], row[groups + 1]
        sums[tuple(str(v) for v in row[:groups])] = (Decimal(cost or 0), int(calls or 0))
    return sums
