"""Group commit on DuckDB (store/merge_group.py): ``merge_write`` calls queued behind the store's lock run as
one transaction, with the same result as one after the other, and a call at fault fails alone.

Each test holds the store's lock while its threads queue their calls, so the group is known; which thread
leads it is not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from costline.core.events import Observation, Trace
from costline.store.base import StoreError, open_store
from costline.store.duckdb import DuckDBStore
from costline.store.merge_group import MergeJob

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
Merge = Callable[[Mapping[str, Observation], Mapping[str, Trace]], tuple[list[Observation], list[Trace]]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    opened = open_store(f"duckdb://{tmp_path / 'costline.duckdb'}")
    assert isinstance(opened, DuckDBStore)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def groups(store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each group written as one transaction."""
    sizes: list[int] = []
    write_group = store._write_group

    def counted(conn: Any, jobs: Sequence[MergeJob]) -> None:
        sizes.append(len(jobs))
        write_group(conn, jobs)

    monkeypatch.setattr(store, "_write_group", counted)
    return sizes


def queued(store: DuckDBStore, calls: Sequence[tuple[str, list[str], list[str], Merge]]) -> list[Any]:
    """Run ``calls`` from one thread each, all queued behind the store's lock before it is let go; each
    call's result, or the exception it raised."""
    results: list[Any] = [None] * len(calls)

    def call(k: int) -> None:
        project, obs_ids, trace_ids, merge = calls[k]
        try:
            results[k] = store.merge_write(project, obs_ids, trace_ids, merge)
        except Exception as exc:  # the test looks at it
            results[k] = exc

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(calls))]
    with store._lock:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while store._merges.pending < len(calls):
            assert time.monotonic() < deadline, "the calls did not queue"
            time.sleep(0.001)
    for thread in threads:
        thread.join(30)
    return results


def add_one(project: str, obs_id: str, trace_id: str, key: str, user: str | None = None) -> Merge:
    """Adds 1 to ``metadata["n"]`` of the observation and the trace (made if absent), sets ``metadata[key]``."""

    def merge(stored: Mapping[str, Observation],
              traces: Mapping[str, Trace]) -> tuple[list[Observation], list[Trace]]:
        obs = stored.get(obs_id) or Observation(project, obs_id, trace_id, AT)
        trace = traces.get(trace_id) or Trace(project, trace_id, AT)
        return ([replace(obs, metadata={**obs.metadata, "n": obs.metadata.get("n", 0) + 1, key: True})],
                [replace(trace, user_id=user or trace.user_id,
                         metadata={**trace.metadata, "n": trace.metadata.get("n", 0) + 1, key: True})])

    return merge


def test_queued_calls_are_one_transaction_applied_in_order(store: DuckDBStore, groups: list[int]) -> None:
    calls = [("p1", ["o1"], ["t1"], add_one("p1", "o1", "t1", f"k{n}")) for n in range(6)]
    calls += [("p2", ["o1"], ["t1"], add_one("p2", "o1", "t1", "other"))]  # the same ids in another project
    results = queued(store, calls)
    assert groups == [7]
    # each call got what its own merge returned: the n-th saw the n-1 calls before it (whatever their order)
    assert sorted(r[0][0].metadata["n"] for r in results[:6]) == [1, 2, 3, 4, 5, 6]
    stored = store.get_observations("p1", ["o1"])["o1"]
    assert stored.metadata == {"n": 6, **{f"k{n}": True for n in range(6)}}
    assert store.get_traces("p1", ["t1"])["t1"].metadata["n"] == 6
    assert store.get_observations("p2", ["o1"])["o1"].metadata == {"n": 1, "other": True}


def test_a_merge_that_raises_fails_its_caller_alone(store: DuckDBStore, groups: list[int]) -> None:
    def broken(stored: Mapping[str, Observation], traces: Mapping[str, Trace]) -> tuple[list[Observation],
                                                                                        list[Trace]]:
        raise ValueError("bad merge")

    calls = [("p1", ["o1"], ["t1"], add_one("p1", "o1", "t1", "a")), ("p1", ["o1"], ["t1"], broken),
             ("p1", ["o1"], ["t1"], add_one("p1", "o1", "t1", "b"))]
    results = queued(store, calls)
    assert groups == [3]
    assert isinstance(results[1], ValueError)
    assert store.get_observations("p1", ["o1"])["o1"].metadata == {"n": 2, "a": True, "b": True}


def test_a_row_the_database_refuses_fails_its_caller_alone(store: DuckDBStore, groups: list[int]) -> None:
    """A cost past DECIMAL(38, 12) fails the group's write; each call is then written alone."""
    def too_costly(stored: Mapping[str, Observation], traces: Mapping[str, Trace]) -> tuple[list[Observation],
                                                                                            list[Trace]]:
        return [Observation("p1", "o9", "t9", AT, total_cost=D("1e30"))], []

    calls = [("p1", ["o1"], ["t1"], add_one("p1", "o1", "t1", "a")), ("p1", ["o9"], [], too_costly),
             ("p1", ["o2"], ["t1"], add_one("p1", "o2", "t1", "b"))]
    results = queued(store, calls)
    assert groups == [3]  # tried together first
    assert isinstance(results[1], StoreError)
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    found = store.get_observations("p1", ["o1", "o2", "o9"])
    assert set(found) == {"o1", "o2"}
    assert store.get_traces("p1", ["t1"])["t1"].metadata == {"n": 2, "a": True, "b": True}


def test_a_group_marks_what_it_changes_for_the_rollups(store: DuckDBStore, groups: list[int]) -> None:
    """The hours an observation leaves and enters, and a trace whose user changes, are marked dirty: the stored
    versions before the group, not the ones a call before in the group made."""
    store.write([Observation("p1", "o1", "t1", AT - timedelta(hours=2))], [Trace("p1", "t1", AT)])
    store._fetch("DELETE FROM rollup_dirty")
    store._fetch("DELETE FROM rollup_dirty_traces")

    def move(hours: int) -> Merge:
        def merge(stored: Mapping[str, Observation], traces: Mapping[str, Trace]) -> tuple[list[Observation],
                                                                                           list[Trace]]:
            return [replace(stored["o1"], start_time=AT + timedelta(hours=hours))], []
        return merge

    calls = [("p1", ["o1"], [], move(3)), ("p1", ["o1"], [], move(5)),
             ("p1", ["o2"], ["t1"], add_one("p1", "o2", "t1", "u", user="alice"))]
    queued(store, calls)
    assert groups == [3]
    hours = {h for (h,) in store._fetch("SELECT epoch(hour)::BIGINT FROM rollup_dirty WHERE project_id = 'p1'")}
    at = int(AT.timestamp())
    assert {at - 2 * 3600, at + 5 * 3600, at} <= hours  # o1 left, o1 entered, o2 entered
    assert at + 3 * 3600 not in hours  # where the first call put o1: never stored
    assert store._fetch("SELECT project_id, trace_id FROM rollup_dirty_traces") == [("p1", "t1")]
    assert store.get_observations("p1", ["o1"])["o1"].start_time == AT + timedelta(hours=5)


def test_an_item_rejected_by_a_merge_run_twice_is_one_error() -> None:
    """A merge may run again alone after its group's write failed: the item it rejects is reported once, and
    an item of the same batch rejected for another reason is still reported."""
    from costline.ingest.batch import Decoded

    decoded = Decoded(accepted=["a", "b"])
    for _ in range(2):
        decoded.reject("a", "a: end time before the start time")
    decoded.reject("a", "a: the computed cost.total is past the bound")
    assert [(e.id, e.message) for e in decoded.errors] == [("a", "a: end time before the start time"),
                                                           ("a", "a: the computed cost.total is past the bound")]
    assert decoded.accepted == ["b"]
