"""Group commit for a store with one writer (DuckDB): the ``merge_write`` calls waiting for the store's lock
run together as ONE transaction.

A Langfuse SDK flushing every event on its own (``flushAt: 1``) sends a burst of one-event requests, each a
``merge_write``: lock, read, merge, write, COMMIT. On DuckDB every call is serialised on the store's lock and
each one paid its statements and its synced COMMIT alone: 800 such requests took 11.3 s, longer than the SDK's
5 s request timeout (the requests it gave up on were dropped, the SDK only warns). Whoever takes the lock now
takes every call queued behind it too (first come, first merged) and runs them as one: one read of every id
they name, each call's ``merge`` in arrival order (each sees what the calls before it wrote, exactly as one
after the other), one write of the last version of each row, one COMMIT. Each caller gets what its own
``merge`` returned, or its own exception. A call whose ``merge`` raises is left out; if the group's write
fails, each call runs again alone, so one bad call never fails the others (a ``merge`` may then be called
twice: it must not depend on being called once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from costline.core.events import Observation, Score, Trace
from costline.store import rollup_sql
from costline.store.base import Merge
from costline.store.sql import NewKeys, SqlStore

log = logging.getLogger(__name__)

#: a group stops growing at this many named ids (the calls left wait for the next one)
MAX_GROUP_IDS = 20_000

Key = tuple[str, str]  # (project id, id)


@dataclass(eq=False)
class MergeJob:
    """One ``merge_write`` call waiting for, or done by, a group."""

    project_id: str
    observation_ids: list[str]
    trace_ids: list[str]
    merge: Merge
    scores: Sequence[Score]
    result: tuple[Sequence[Observation], Sequence[Trace]] | None = None
    error: BaseException | None = None
    done: bool = False

    @property
    def size(self) -> int:
        return 1 + len(self.observation_ids) + len(self.trace_ids) + len(self.scores)


class MergeQueue:
    """The calls waiting for the store's lock, in arrival order."""

    def __init__(self, max_ids: int = MAX_GROUP_IDS) -> None:
        self.max_ids = max_ids
        self._jobs: list[MergeJob] = []
        self._lock = threading.Lock()

    def add(self, job: MergeJob) -> None:
        with self._lock:
            self._jobs.append(job)

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def take(self) -> list[MergeJob]:
        """The oldest calls, at least one, up to ``max_ids`` named ids."""
        with self._lock:
            size, count = 0, 0
            for job in self._jobs:
                if count and size + job.size > self.max_ids:
                    break
                size += job.size
                count += 1
            taken, self._jobs = self._jobs[:count], self._jobs[count:]
            return taken


class GroupedMerges(SqlStore):
    """Mixin for a store whose every call takes one re-entrant lock (``DuckDBStore``): ``merge_write`` calls
    that queue up behind the lock are written together (module docstring)."""

    _lock: AbstractContextManager[Any]  # re-entrant: the single-call path takes it again in ``_transaction``
    _merges: MergeQueue

    def merge_write(self, project_id: str, observation_ids: Sequence[str], trace_ids: Sequence[str],
                    merge: Merge, scores: Sequence[Score] = ()) -> tuple[Sequence[Observation], Sequence[Trace]]:
        job = MergeJob(project_id, list(dict.fromkeys(observation_ids)), list(dict.fromkeys(trace_ids)), merge,
                       tuple(scores))
        self._merges.add(job)
        with self._lock:  # a group that took this call finishes it before it lets the lock go
            while not job.done:
                self._run_group(self._merges.take())
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _run_group(self, jobs: list[MergeJob]) -> None:
        try:
            if len(jobs) > 1:
                try:
                    with self._transaction("write") as conn:
                        self._write_group(conn, jobs)
                    return
                except Exception:  # every call again alone: only the one at fault fails
                    log.warning("a group of %d merged writes failed; writing each alone", len(jobs), exc_info=True)
            for job in jobs:
                if job.error is None:
                    try:
                        job.result = super().merge_write(job.project_id, job.observation_ids, job.trace_ids,
                                                         job.merge, job.scores)
                    except BaseException as exc:  # the caller's, raised in its thread
                        job.error = exc
        finally:
            for job in jobs:
                job.done = True

    def _write_group(self, conn: Any, jobs: Sequence[MergeJob]) -> None:
        """``merge_write`` for several calls in one transaction (``_transaction``'s, under the lock)."""
        wanted_obs: dict[str, dict[str, None]] = {}
        wanted_traces: dict[str, dict[str, None]] = {}
        for job in jobs:
            wanted_obs.setdefault(job.project_id, {}).update(dict.fromkeys(job.observation_ids))
            wanted_traces.setdefault(job.project_id, {}).update(dict.fromkeys(job.trace_ids))
        stored_obs: dict[Key, Observation] = {}
        stored_traces: dict[Key, Trace] = {}
        for project_id, ids in wanted_obs.items():
            self._lock_ids(conn, project_id, list(ids), list(wanted_traces[project_id]))
            if ids:
                found = self._read_observations(conn, project_id, list(ids))
                stored_obs.update(((project_id, i), o) for i, o in found.items())
        for project_id, ids in wanted_traces.items():
            if ids:
                found_traces = self._read_traces(conn, project_id, list(ids))
                stored_traces.update(((project_id, i), t) for i, t in found_traces.items())

        # each call's merge in arrival order, over what is stored as the calls before it left it
        observations: dict[Key, Observation] = dict(stored_obs)
        traces: dict[Key, Trace] = dict(stored_traces)
        written_obs: dict[Key, Observation] = {}
        written_traces: dict[Key, Trace] = {}
        scores: dict[Key, Score] = {}
        for job in jobs:
            p = job.project_id
            try:
                merged_obs, merged_traces = job.merge(
                    {i: observations[(p, i)] for i in job.observation_ids if (p, i) in observations},
                    {i: traces[(p, i)] for i in job.trace_ids if (p, i) in traces},
                )
            except Exception as exc:  # this call fails alone, as it would have on its own
                job.error = exc
                continue
            job.result = (merged_obs, merged_traces)
            for o in merged_obs:
                observations[(o.project_id, o.id)] = written_obs[(o.project_id, o.id)] = o
            for t in merged_traces:
                traces[(t.project_id, t.id)] = written_traces[(t.project_id, t.id)] = t
            scores.update(((s.project_id, s.id), s) for s in job.scores)

        # the rows no call read (complete records, another project's) may be stored: their hours are read
        unread: dict[str, list[str]] = {}
        for p, i in written_obs:
            if (p, i) not in stored_obs:
                unread.setdefault(p, []).append(i)
        replaced = {(p, i): us for p, ids in unread.items() for i, us in self._stored_hours(conn, p, ids)}
        named = {(p, i) for p, ids in wanted_traces.items() for i in ids}
        for project_id in {p for p, _ in written_obs} | {p for p, _ in written_traces}:
            mine_traces = [t for k, t in written_traces.items() if k[0] == project_id]
            # a trace no call named may replace a stored one whose user or metadata was not read
            known = ({i: t for (p, i), t in stored_traces.items() if p == project_id}
                     if all((project_id, t.id) in named for t in mine_traces) else None)
            rollup_sql.dirty_marks(
                self._runner(conn), self.DIALECT, [o for k, o in written_obs.items() if k[0] == project_id],
                mine_traces, {i: o for (p, i), o in stored_obs.items() if p == project_id}, known,
                old_hours=[(p, us) for (p, _), us in replaced.items() if p == project_id])
        new = NewKeys(
            frozenset(k for k in written_obs if k not in stored_obs and k not in replaced),
            frozenset(k for k in written_traces if k in named and k not in stored_traces),
        )
        self._write_rows(conn, list(written_obs.values()), list(written_traces.values()), list(scores.values()), new)

