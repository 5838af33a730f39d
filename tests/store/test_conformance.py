"""One conformance suite for every store backend: each test runs on DuckDB and on PostgreSQL.

Gaps are declared where they are (a ``pytest.skip`` naming the backend and why), never silently.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from costline.core.events import Observation, Score, Trace
from costline.store.base import ApiKey, Project, Store, StoredPrice, StoreError, open_store
from costline.store.migrations import load_migrations
from costline.store.rows import SCORE_COLUMNS, score_from_row

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))


def observation(id: str = "obs-1", project_id: str = "p1", **changes: object) -> Observation:
    """A fully populated, priced generation."""
    full = Observation(
        project_id=project_id, id=id, trace_id="trace-1", parent_id="span-0", type="generation", name="chat",
        # 14:00:00.123456 at +02:00 is 12:00:00.123456 UTC
        start_time=datetime(2026, 11, 1, 14, 0, 0, 123456, tzinfo=CEST),
        end_time=AT + timedelta(seconds=2, microseconds=500),
        completion_start_time=AT + timedelta(milliseconds=350),
        model="gpt-4o-2024-08-06", resolved_model="gpt-4o", provider="openai",
        usage={"input_tokens": 1200, "cache_read_tokens": 200, "output_tokens": 345,
               "input_audio_seconds": D("12.5")},
        # gpt-4o: 1000 x 2.5/M + 200 x 1.25/M + 345 x 10/M, and 12.5 s of audio at 0.0001/s
        cost={"input_tokens": D("0.0025"), "cache_read_tokens": D("0.00025"), "output_tokens": D("0.00345"),
              "input_audio_seconds": D("0.00125")},
        total_cost=D("0.00745"), currency="USD", pricing_status="priced", price_id="openai/gpt-4o",
        pricing_reason="matched gpt-4o", provided_cost={"total": D("0.0075"), "other": D("0.000000000001")},
        attributes={"service_tier": "flex"}, user_id="user-7", session_id="session-3",
        tags=("prod", "chat", 'a,b {c} "q" \\ NULL', "", "NULL"),
        metadata={"nested": {"list": [1, "two", None, True], "deep": {"x": "y"}}, "ratio": D("0.25"), "n": 3,
                  "text": 'üñï "quoted"\n\ttab \\ 🚀'},
        environment="staging", release="1.2.3", version="v7", level="WARNING", status_message="slow\nline 2 'é'",
        model_parameters={"temperature": D("0.7"), "max_tokens": 512},
    )
    return replace(full, **changes)  # type: ignore[arg-type]


def simple(id: str, start: datetime, project_id: str = "p1", **changes: object) -> Observation:
    obs = Observation(project_id=project_id, id=id, trace_id=f"trace-{id}", start_time=start)
    return replace(obs, **changes)  # type: ignore[arg-type]


def trace(id: str = "trace-1", project_id: str = "p1", **changes: object) -> Trace:
    full = Trace(
        project_id=project_id, id=id, timestamp=AT, name="checkout", user_id="user-7", session_id="session-3",
        tags=("prod",), metadata={"plan": "pro", "nested": {"a": [1, 2]}}, environment="staging",
        release="1.2.3", version="v7", public=True,
    )
    return replace(full, **changes)  # type: ignore[arg-type]


def score(id: str = "score-1", value: D | str = D("0.875"), **changes: object) -> Score:
    full = Score(
        project_id="p1", id=id, name="accuracy", value=value, timestamp=AT, trace_id="trace-1",
        observation_id="obs-1", session_id="session-3", data_type="NUMERIC", comment="good",
        environment="staging", metadata={"rater": "human"},
    )
    return replace(full, **changes)  # type: ignore[arg-type]


def add_project(store: Store, project_id: str = "p1") -> None:
    store.create_project(
        Project(project_id, f"Project {project_id}", AT, retention_days=30),
        ApiKey(project_id, f"pk-{project_id}", f"hash-{project_id}", AT),
    )


# migrations ---------------------------------------------------------------------------------------------------

def test_migrations_apply_once_and_are_recorded(store_url: str, backend: str) -> None:
    names = [m.name for m in load_migrations(backend)]
    first = open_store(store_url, migrate=False)
    try:
        assert first.migrate() == names
        assert first.migrate() == []
    finally:
        first.close()
    again = open_store(store_url, migrate=False)  # a new connection reads what was recorded
    try:
        assert again.migrate() == []
        assert again.count_observations() == 0
    finally:
        again.close()


@pytest.mark.parametrize("name", ["duckdb", "postgres"])
def test_migration_files_are_numbered_without_gaps(name: str) -> None:
    migrations = load_migrations(name)
    assert [m.number for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.sql.strip() for m in migrations)


def test_both_backends_have_the_same_migrations() -> None:
    assert [m.name for m in load_migrations("duckdb")] == [m.name for m in load_migrations("postgres")]


def test_concurrent_migrate_applies_each_migration_once(store_url: str, backend: str) -> None:
    if backend == "duckdb":
        pytest.skip("duckdb: one process owns the file, so migrations never race across processes")
    stores = [open_store(store_url, migrate=False) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(lambda s: s.migrate(), stores))
    finally:
        for s in stores:
            s.close()
    applied = [name for names in results for name in names]
    assert sorted(applied) == [m.name for m in load_migrations(backend)]


# projects and keys --------------------------------------------------------------------------------------------

def test_projects_and_keys_round_trip(store: Store) -> None:
    add_project(store, "p1")
    store.create_project(Project("p2", "Second", AT + timedelta(hours=1)), ApiKey("p2", "pk-2", "hash-2", AT))
    assert store.list_projects() == [
        Project("p1", "Project p1", AT, 30), Project("p2", "Second", AT + timedelta(hours=1), None),
    ]
    assert store.get_project("p2") == Project("p2", "Second", AT + timedelta(hours=1))
    assert store.get_project("nope") is None
    key = store.find_key_by_public("pk-p1")
    assert key == ApiKey("p1", "pk-p1", "hash-p1", AT)
    assert key is not None and key.created_at.tzinfo is UTC
    assert store.find_key_by_secret_hash("hash-2") == ApiKey("p2", "pk-2", "hash-2", AT)
    assert store.find_key_by_public("hash-2") is None
    assert store.find_key_by_secret_hash("nope") is None


def test_duplicate_project_is_refused_and_leaves_no_key(store: Store) -> None:
    add_project(store, "p1")
    with pytest.raises(StoreError):
        store.create_project(Project("p1", "Again", AT), ApiKey("p1", "pk-other", "hash-other", AT))
    assert store.find_key_by_public("pk-other") is None
    assert [p.name for p in store.list_projects()] == ["Project p1"]


# writes and reads ---------------------------------------------------------------------------------------------

def test_observation_round_trip_is_exact(store: Store) -> None:
    obs = observation()
    store.write([obs])
    got = store.get_observations("p1", ["obs-1", "missing"])
    assert list(got) == ["obs-1"]
    back = got["obs-1"]
    assert back == obs
    assert back.start_time == datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
    for moment in (back.start_time, back.end_time, back.completion_start_time):
        assert moment is not None and moment.tzinfo is UTC
    assert {unit: type(n) for unit, n in back.usage.items()} == {
        "input_tokens": int, "cache_read_tokens": int, "output_tokens": int, "input_audio_seconds": D,
    }
    assert str(back.usage["input_audio_seconds"]) == "12.5"
    assert {unit: str(a) for unit, a in back.cost.items()} == {
        "input_tokens": "0.0025", "cache_read_tokens": "0.00025", "output_tokens": "0.00345",
        "input_audio_seconds": "0.00125",
    }
    assert isinstance(back.total_cost, D) and back.total_cost == D("0.00745")
    assert back.provided_cost == {"total": D("0.0075"), "other": D("0.000000000001")}
    assert back.tags == ("prod", "chat", 'a,b {c} "q" \\ NULL', "", "NULL")
    assert back.metadata == {"nested": {"list": [1, "two", None, True], "deep": {"x": "y"}}, "ratio": D("0.25"),
                             "n": 3, "text": 'üñï "quoted"\n\ttab \\ 🚀'}
    assert back.model_parameters == {"temperature": D("0.7"), "max_tokens": 512}


def test_total_cost_keeps_twelve_decimal_places(store: Store) -> None:
    store.write([observation(total_cost=D("12345678901234.123456789012"))])
    assert store.get_observations("p1", ["obs-1"])["obs-1"].total_cost == D("12345678901234.123456789012")


def test_unpriced_and_bare_observations_keep_their_nones(store: Store) -> None:
    unpriced = observation(total_cost=None, cost={}, pricing_status="unpriced", price_id=None,
                           provided_cost=None, attributes=None, model_parameters=None)
    bare = simple("bare", AT)
    store.write([unpriced, bare])
    got = store.get_observations("p1", ["obs-1", "bare"])
    assert got["obs-1"].total_cost is None
    assert got["obs-1"] == unpriced
    assert got["bare"] == bare
    assert got["bare"].tags == () and got["bare"].metadata == {} and got["bare"].usage == {}


def stored_scores(store: Store, backend: str) -> list[Score]:
    """The scores table read back (the protocol has no score getter): SQL shared by both engines."""
    columns = [f'"{c.name}"' for c in SCORE_COLUMNS]
    if backend == "duckdb":  # TIMESTAMPTZ is read as UTC wall time, as the backend does
        columns = [f"timezone('UTC', {c})" if c == '"timestamp"' else c for c in columns]
    found = store._fetch(f"SELECT {', '.join(columns)} FROM scores ORDER BY project_id, id")  # type: ignore[attr-defined]
    return [score_from_row(r) for r in found]


def test_trace_and_score_round_trip(store: Store, backend: str) -> None:
    t = trace(timestamp=AT.astimezone(CEST))
    numeric = score("s-num", value=D("0.875"), metadata={"rater": "human", "weights": [D("0.5"), 2]})
    text = score("s-text", value="excellent", data_type="CATEGORICAL", trace_id=None, observation_id=None)
    store.write(traces=[t], scores=[numeric, text])
    back = store.get_traces("p1", ["trace-1", "missing"])
    assert back == {"trace-1": t}
    assert back["trace-1"].timestamp.tzinfo is UTC and back["trace-1"].public is True
    assert store.get_traces("p1", []) == {}
    assert store.get_observations("p1", []) == {}
    assert stored_scores(store, backend) == [numeric, text]
    assert str(stored_scores(store, backend)[1].value) == "excellent"
    store.write(scores=[replace(numeric, value=D("-12.000000000001"))])
    assert [s.value for s in stored_scores(store, backend)] == [D("-12.000000000001"), "excellent"]


def test_writing_the_same_id_again_replaces_the_row(store: Store) -> None:
    store.write([observation()], [trace()])
    updated = observation(total_cost=D("1.5"), tags=("new",), metadata={"v": 2}, end_time=None)
    store.write([updated], [trace(name="renamed")])
    assert store.count_observations("p1") == 1
    assert store.get_observations("p1", ["obs-1"])["obs-1"] == updated
    assert store.get_traces("p1", ["trace-1"])["trace-1"].name == "renamed"
    # the same id twice in one batch: the last one wins
    store.write([observation(name="first"), observation(name="second")])
    assert store.count_observations() == 1
    assert store.get_observations("p1", ["obs-1"])["obs-1"].name == "second"


def test_a_batch_mixing_new_and_stored_ids_replaces_and_adds(store: Store, backend: str) -> None:
    # DuckDB tries a plain INSERT first and upserts the batch when one key is already stored: the stored row
    # (in observations, or only in traces, or only in scores) must be replaced and the new ones added
    store.write([observation()], [trace()])
    store.write([observation(name="again"), observation("obs-2", name="new")], [trace(name="renamed")])
    stored = store.get_observations("p1", ["obs-1", "obs-2"])
    assert (stored["obs-1"].name, stored["obs-2"].name, store.count_observations()) == ("again", "new", 2)
    assert store.get_traces("p1", ["trace-1"])["trace-1"].name == "renamed"
    store.write([observation("obs-3")], [trace(name="third"), trace("trace-2")])  # only the trace is stored
    assert store.count_observations() == 3
    assert store.get_traces("p1", ["trace-1", "trace-2"])["trace-1"].name == "third"
    assert set(store.get_traces("p1", ["trace-1", "trace-2"])) == {"trace-1", "trace-2"}
    score = Score(project_id="p1", id="s-1", name="quality", value=D("0.5"), timestamp=AT)
    store.write(scores=[score])
    store.write([observation("obs-4")], scores=[replace(score, value=D("0.75"))])  # only the score is stored
    assert store.count_observations() == 4
    assert [s.value for s in stored_scores(store, backend)] == [D("0.75")]


def test_projects_are_isolated(store: Store) -> None:
    store.write([observation(project_id="p1", name="one"), observation(project_id="p2", name="two")],
                [trace(project_id="p1", name="one"), trace(project_id="p2", name="two")])
    assert store.count_observations() == 2
    assert store.count_observations("p1") == store.count_observations("p2") == 1
    assert store.count_observations("p3") == 0
    assert store.get_observations("p2", ["obs-1"])["obs-1"].name == "two"
    assert store.get_observations("p3", ["obs-1"]) == {}
    assert store.get_traces("p1", ["trace-1"])["trace-1"].name == "one"
    assert [o.name for o in store.trace_observations("p2", "trace-1")] == ["two"]


def test_trace_observations_in_start_order(store: Store) -> None:
    rows = [
        simple("c", AT + timedelta(seconds=2), trace_id="t"), simple("a", AT, trace_id="t"),
        simple("b", AT, trace_id="t"), simple("other", AT, trace_id="u"),
        simple("elsewhere", AT, project_id="p2", trace_id="t"),
    ]
    store.write(rows)
    assert [o.id for o in store.trace_observations("p1", "t")] == ["a", "b", "c"]
    assert store.trace_observations("p1", "none") == []
    assert [(o.trace_id, o.id) for o in store.traces_observations("p1", ["u", "t", "none"])] == [
        ("t", "a"), ("t", "b"), ("t", "c"), ("u", "other")]
    assert store.traces_observations("p1", []) == []
    assert [o.id for o in store.traces_observations("p2", ["t", "u"])] == ["elsewhere"]
    # linked_only: the traces holding an observation with a parent (the rows above have none)
    assert store.traces_observations("p1", ["u", "t"], linked_only=True) == []
    store.write([simple("child", AT, trace_id="t", parent_id="a"), simple("p2-child", AT, project_id="p2",
                                                                          trace_id="u", parent_id="x")])
    assert [o.id for o in store.traces_observations("p1", ["u", "t"], linked_only=True)] == [
        "a", "b", "child", "c"]


def test_iter_observations_filters_and_pages(store: Store) -> None:
    models = ["gpt-4o", "gpt-4o-mini", "claude_x", "claudeAx"]
    rows = [
        simple(f"o{i:02d}", AT + timedelta(minutes=i // 2), model=models[i % 4])  # pairs share a start time
        for i in range(30)
    ] + [simple(f"o{i:02d}", AT + timedelta(minutes=i // 2), project_id="p2", model="gpt-4o") for i in range(6)]
    store.write(list(reversed(rows)))

    def ids(**kwargs: object) -> list[tuple[str, str]]:
        return [(o.project_id, o.id) for o in store.iter_observations(**kwargs)]  # type: ignore[arg-type]

    everything = sorted(rows, key=lambda o: (o.start_time, o.project_id, o.id))
    assert ids() == [(o.project_id, o.id) for o in everything]
    for size in (1, 3, 4, 36, 37, 1000):
        assert ids(batch_size=size) == ids(), size
    p1 = [(o.project_id, o.id) for o in everything if o.project_id == "p1"]
    assert ids(project_id="p1", batch_size=4) == p1
    window = ids(start=AT + timedelta(minutes=2), end=AT + timedelta(minutes=5), project_id="p1", batch_size=2)
    assert window == [("p1", f"o{i:02d}") for i in range(4, 10)]
    assert ids(start=AT + timedelta(minutes=14), batch_size=1) == [("p1", "o28"), ("p1", "o29")]
    assert ids(end=AT, project_id="p1") == []
    gpt = ids(model_like="gpt-4o%", project_id="p1", batch_size=3)
    assert gpt == [("p1", f"o{i:02d}") for i in range(30) if i % 4 in (0, 1)]
    assert ids(model_like="gpt-4o", project_id="p1") == [("p1", f"o{i:02d}") for i in range(0, 30, 4)]
    # an escaped underscore is literal; a bare one is any character
    assert ids(model_like="claude\\_x") == [("p1", f"o{i:02d}") for i in range(2, 30, 4)]
    assert len(ids(model_like="claude_x")) == len(ids(model_like="claude%"))
    with pytest.raises(ValueError, match="batch_size"):
        next(iter(store.iter_observations(batch_size=0)))


# user prices and audit ----------------------------------------------------------------------------------------

def test_prices_put_get_list_delete(store: Store) -> None:
    entry = {"entry": {"id": "my-model", "prices": {"input_mtok": "1.25"}}, "match": {"equals": "my-model"}}
    first = StoredPrice("p1", "my-model", entry, AT, AT)
    store.put_price(first)
    store.put_price(StoredPrice("p1", "another", {"n": 1}, AT, AT))
    store.put_price(StoredPrice("p2", "my-model", {"n": 2}, AT, AT))
    assert store.get_price("p1", "my-model") == first
    assert store.get_price("p3", "my-model") is None
    updated = replace(first, entry={**entry, "note": "cheaper"}, updated_at=AT + timedelta(days=1))
    store.put_price(updated)
    assert store.get_price("p1", "my-model") == updated
    assert [p.id for p in store.list_prices("p1")] == ["another", "my-model"]
    assert [(p.project_id, p.id) for p in store.list_prices()] == [
        ("p1", "another"), ("p1", "my-model"), ("p2", "my-model"),
    ]
    assert store.delete_price("p1", "my-model") is True
    assert store.delete_price("p1", "my-model") is False
    assert store.get_price("p1", "my-model") is None
    assert store.get_price("p2", "my-model") is not None


def test_audit_entries_in_order(store: Store) -> None:
    store.add_audit("reprice", {"scanned": 10, "old_total": "1.5", "range": {"from": "a", "to": "b"}}, AT)
    store.add_audit("purge", {"deleted": 3}, AT + timedelta(minutes=1))
    store.add_audit("reprice", {"scanned": 0}, AT.astimezone(CEST) + timedelta(minutes=2))
    entries = store.list_audit()
    assert [(e.kind, e.at) for e in entries] == [
        ("reprice", AT), ("purge", AT + timedelta(minutes=1)), ("reprice", AT + timedelta(minutes=2)),
    ]
    assert entries[0].details == {"scanned": 10, "old_total": "1.5", "range": {"from": "a", "to": "b"}}
    assert entries[0].id < entries[1].id < entries[2].id
    assert all(e.at.tzinfo is UTC for e in entries)
    assert [e.details for e in store.list_audit("reprice")] == [entries[0].details, {"scanned": 0}]
    assert store.list_audit("none") == []


# purge --------------------------------------------------------------------------------------------------------

def test_purge_deletes_old_rows_and_emptied_traces(store: Store) -> None:
    old, new = AT - timedelta(days=2), AT
    store.write(
        [
            simple("old-1", old, trace_id="t-old"), simple("old-2", old, trace_id="t-mixed"),
            simple("new-1", new, trace_id="t-mixed"), simple("new-2", new, trace_id="t-new"),
            simple("old-p2", old, project_id="p2", trace_id="t-old"),
        ],
        [
            trace("t-old", timestamp=old), trace("t-mixed", timestamp=old), trace("t-new", timestamp=new),
            trace("t-empty-recent", timestamp=new), trace("t-old", project_id="p2", timestamp=old),
        ],
        [score("s-old", timestamp=old), score("s-new", timestamp=new)],
    )
    assert store.purge(AT - timedelta(days=1), project_id="p1") == 2
    assert sorted(store.get_observations("p1", ["old-1", "old-2", "new-1", "new-2"])) == ["new-1", "new-2"]
    assert sorted(store.get_traces("p1", ["t-old", "t-mixed", "t-new", "t-empty-recent"])) == [
        "t-empty-recent", "t-mixed", "t-new",
    ]
    assert store.count_observations("p2") == 1  # another project's rows are untouched
    assert store.purge(AT - timedelta(days=1)) == 1
    assert store.get_traces("p2", ["t-old"]) == {}
    assert store.purge(AT - timedelta(days=1)) == 0
    assert store.count_observations() == 2


# atomicity, concurrency, durability ---------------------------------------------------------------------------

def test_a_failing_write_leaves_nothing(store: Store) -> None:
    good = [simple(f"o{i}", AT) for i in range(50)]
    too_big = score("s-bad", value=D("1e30"))  # DECIMAL(38,12) holds 26 integer digits
    with pytest.raises(StoreError):
        store.write(good, [trace()], [too_big])
    assert store.count_observations() == 0
    assert store.get_traces("p1", ["trace-1"]) == {}
    with pytest.raises(StoreError, match="time zone"):
        store.write([*good, simple("naive", datetime(2026, 1, 1))])
    assert store.count_observations() == 0
    store.write(good)  # the store is still usable
    assert store.count_observations() == 50


def test_concurrent_writes_land_every_row_once(store: Store) -> None:
    threads, batches, size = 8, 6, 40
    shared = [simple(f"shared-{i}", AT) for i in range(20)]  # every thread also rewrites these

    def work(n: int) -> None:
        for b in range(batches):
            own = [simple(f"t{n}-b{b}-{i}", AT + timedelta(seconds=i)) for i in range(size)]
            store.write([*own, *reversed(shared)], [trace(f"trace-{n}-{b}")])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    seen = [o.id for o in store.iter_observations(batch_size=500)]
    assert len(seen) == len(set(seen)) == threads * batches * size + len(shared)
    assert store.count_observations("p1") == len(seen)


CHILD = """
import os, signal, sys
from datetime import datetime, timezone
from costline.core.events import Observation
from costline.store.rows import SCORE_COLUMNS, score_from_row
from costline.store.base import open_store

store = open_store(sys.argv[1])
start = datetime(2026, 11, 1, tzinfo=timezone.utc)
store.write([Observation(project_id="p1", id=f"o{i}", trace_id="t", start_time=start) for i in range(100)])
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_committed_write_survives_kill_9(store_url: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), store_url], capture_output=True, text=True, timeout=120,
        env={**os.environ},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.strip() == "committed"
    reopened = open_store(store_url)
    try:
        assert reopened.count_observations("p1") == 100
    finally:
        reopened.close()
