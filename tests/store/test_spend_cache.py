"""The budget spend the DuckDB store keeps in memory always equals the raw spend query.

A random sequence of writes of every kind (new rows through each write path, stored rows replaced, partial
merges, duplicate marks, traces arriving late with a user, tags or metadata, purges, billing periods replaced,
worker-prepared batches) runs against one DuckDB store. Before each write every counter is checked (so the
store keeps it), and after it every counter's spend and call count from ``reserve`` must equal what the same
spend query answers from the rows (``Store.query``). The budgets cover a per-user day in UTC and in
Europe/Berlin, a project month, per-user counters narrowed by model, by tag and by metadata, a per-session
and a per-metadata-key counter, and a lifetime one. A hand-worked case pins the figures to prices worked out by
hand, and the counters must really have been kept and added to (else the comparison proves nothing).
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from costline.core.budgets import Budget, counter_key, parse_budget, spend_query
from costline.core.enforce import CounterUsage
from costline.core.events import Observation, Trace
from costline.store import holds
from costline.store.base import Reservation, StoreError, open_store
from costline.store.duckdb import DuckDBStore, batch_payloads

NOW = datetime(2026, 11, 20, 10, tzinfo=UTC)
USERS = ("u1", "u2", "u3", None)
MODELS = ("gpt-4o", "claude-sonnet-4", None)
TAGS = ("chat", "search", "batch")
BUDGETS = [
    {"id": "user-day", "window": "day", "per": "user", "limit": "1"},
    {"id": "user-day-berlin", "window": "day", "timezone": "Europe/Berlin", "per": "user", "limit": "1"},
    {"id": "month", "window": "month", "limit": "100"},
    {"id": "gpt-user", "window": "week", "scope": {"model": "gpt-4o"}, "per": "user", "limit": "1"},
    {"id": "chat-user", "window": "day", "scope": {"tag": "chat"}, "per": "user", "limit": "1"},
    {"id": "team-a-user", "window": "day", "scope": {"metadata.team": "a"}, "per": "user", "limit": "1"},
    {"id": "session", "window": "day", "per": "session", "limit": "1"},
    {"id": "team", "window": "lifetime", "per": "metadata.team", "limit": "1"},
    {"id": "prod-model", "window": "day", "scope": {"environment": "production"}, "per": "model", "limit": "1"},
]
SUBJECTS: Mapping[str | None, Sequence[str]] = {
    None: ("",), "user": ("u1", "u2", "u3"), "session": ("s1", "s2"), "metadata.team": ("a", "b"),
    "model": MODELS[:2],
}


def budgets() -> list[Budget]:
    return [parse_budget({"name": b["id"], **b}) for b in BUDGETS]


def counters(project: str) -> list[tuple[str, Any]]:
    return [(counter_key(b, s), spend_query(b, s, project, NOW)) for b in budgets() for s in SUBJECTS[b.per]]


def kept_usage(store: DuckDBStore, project: str) -> dict[str, CounterUsage]:
    found: dict[str, CounterUsage] = store.reserve(project, counters(project), lambda u: (dict(u), None), NOW)
    return found


def raw_usage(store: DuckDBStore, project: str) -> dict[str, tuple[D, int]]:
    found = {}
    for key, query in counters(project):
        row = store.query(query).rows[0]
        found[key] = (D(row["sum_cost"] or 0), int(row["calls"] or 0))
    return found


def observation(rng: random.Random, project: str, n: int, trace: str) -> Observation:
    model = rng.choice(MODELS)
    status = None if model is None else rng.choice(("priced", "priced", "priced", "unpriced", "duplicate"))
    total = None if status in (None, "unpriced") else D(rng.randrange(1, 5 * 10**9)).scaleb(-12)
    return Observation(
        project_id=project, id=f"o{n}", trace_id=trace, type="generation" if model else "span",
        start_time=NOW + timedelta(minutes=rng.randrange(-3 * 24 * 60, 24 * 60)), model=model,
        total_cost=total, cost={"total": total} if total is not None else {}, pricing_status=status,
        user_id=rng.choice(USERS), session_id=rng.choice(("s1", "s2", None)),
        tags=tuple(rng.sample(TAGS, rng.randrange(0, 3))), metadata=rng.choice(({}, {"team": "a"}, {"team": "b"})),
        environment=rng.choice(("production", "staging")),
    )


def trace(rng: random.Random, project: str, trace_id: str) -> Trace:
    return Trace(project, trace_id, NOW - timedelta(hours=1), user_id=rng.choice(USERS),
                 session_id=rng.choice(("s1", "s2", None)), tags=tuple(rng.sample(TAGS, rng.randrange(0, 2))),
                 metadata=rng.choice(({}, {"team": "a"}, {"team": "b"})))


def assert_kept_equals_raw(store: DuckDBStore, project: str, step: str) -> None:
    kept = kept_usage(store, project)
    raw = raw_usage(store, project)
    for key, (spent, calls) in raw.items():
        assert (kept[key].spent, kept[key].requests) == (spent, calls), f"{key} after {step}"


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    opened = open_store(f"duckdb://{tmp_path / 'costline.duckdb'}")
    assert isinstance(opened, DuckDBStore)
    return opened


def test_kept_spend_equals_the_raw_query_after_every_kind_of_write(store: DuckDBStore) -> None:
    rng = random.Random(20261207)
    written: dict[tuple[str, str], Observation] = {}
    n = 0

    def fresh(project: str, count: int) -> list[Observation]:
        nonlocal n
        found = []
        for _ in range(count):
            n += 1
            found.append(observation(rng, project, n, f"t{rng.randrange(40)}"))
        for o in found:
            written[(o.project_id, o.id)] = o
        return found

    def stored(project: str, count: int) -> list[Observation]:
        ids = [k for k in written if k[0] == project]
        return [written[k] for k in rng.sample(ids, min(count, len(ids)))]

    def new_rows(project: str) -> str:
        store.write(fresh(project, rng.randrange(1, 30)))
        return "new rows"

    def new_rows_and_scores_linked(project: str) -> str:
        batch = fresh(project, rng.randrange(1, 10))
        store.write_linked(batch, (), project, [o.trace_id for o in batch])
        return "new rows (write_linked)"

    def replaced(project: str) -> str:
        changed = [Observation(**{**_fields(o), "total_cost": D(rng.randrange(1, 10**9)).scaleb(-12),
                                  "user_id": rng.choice(USERS),
                                  "start_time": o.start_time + timedelta(hours=rng.randrange(-30, 30))})
                   for o in stored(project, 5)]
        store.write(changed + fresh(project, 2))
        for o in changed:
            written[(o.project_id, o.id)] = o
        return "stored rows replaced"

    def merged(project: str) -> str:
        targets = stored(project, 4)

        def merge(found: Mapping[str, Observation], _: Mapping[str, Trace]) -> tuple[list[Observation], list[Trace]]:
            out = [Observation(**{**_fields(o), "pricing_status": "duplicate" if rng.random() < 0.5 else
                                  o.pricing_status, "model": rng.choice(MODELS)}) for o in found.values()]
            for o in out:
                written[(o.project_id, o.id)] = o
            return out, []

        store.merge_write(project, [o.id for o in targets], [], merge)
        return "merged (duplicate marks, model changes)"

    def late_traces(project: str) -> str:
        store.write(traces=[trace(rng, project, f"t{rng.randrange(40)}") for _ in range(rng.randrange(1, 4))])
        return "traces written late"

    def rows_with_traces(project: str) -> str:
        batch = fresh(project, 3)
        store.write(batch, [trace(rng, project, o.trace_id) for o in batch])
        return "new rows with their traces"

    def prepared(project: str) -> str:
        batch = fresh(project, rng.randrange(1, 20))
        payloads = batch_payloads(batch, [], [])
        assert store.write_prepared(project, payloads, [0], []) is not None
        return "worker-prepared batch"

    def prepared_with_traces(project: str) -> str:
        # a worker's new rows whose traces may be stored (an OTLP export continuing them): merged in the write
        batch = fresh(project, rng.randrange(1, 10))
        sent = [trace(rng, project, o.trace_id) for o in batch]

        def merge(found: Mapping[str, Trace]) -> list[Trace]:
            return [Trace(**{**_fields(t, Trace), "name": (found[t.id].name if t.id in found else None)})
                    for t in sent]

        assert store.write_prepared_traces(project, batch_payloads(batch, [], []), [0], [],
                                           [t.id for t in sent], merge) is not None
        return "worker-prepared batch, traces merged"

    def purged(project: str) -> str:
        store.purge(NOW - timedelta(days=rng.randrange(1, 3)), project if rng.random() < 0.5 else None)
        for key in [k for k, o in written.items() if o.start_time < NOW - timedelta(days=2)]:
            written.pop(key)  # some of them may still be stored; they are only not picked again
        return "purge"

    def imported(project: str) -> str:
        lines = [Observation(project_id=project, id=f"cloud-{rng.randrange(10)}", trace_id="billing-2026-11",
                             type="cloud", start_time=NOW - timedelta(hours=rng.randrange(48)), model=None,
                             total_cost=D(rng.randrange(1, 10**6)).scaleb(-6), pricing_status="provided")
                 for _ in range(3)]
        store.replace_groups(project, ["billing-2026-11"], list({o.id: o for o in lines}.values()))
        return "billing period replaced"

    steps = [new_rows, new_rows, new_rows, new_rows_and_scores_linked, prepared, prepared, prepared_with_traces,
             replaced, merged, late_traces, rows_with_traces, purged, imported]
    for project in ("p1", "p2"):
        store.write(fresh(project, 50), [trace(rng, project, f"t{i}") for i in range(0, 40, 3)])
    for _ in range(120):
        project = rng.choice(("p1", "p2"))
        if rng.random() < 0.85:  # the counters are kept from here on (else two writes follow each other)
            kept_usage(store, project)
        step = rng.choice(steps)(project)
        assert_kept_equals_raw(store, project, step)
    spend = store._spend  # the kept figures were really used: read, added to, and read again after changes
    assert spend.hits > 500 and spend.deltas > 50 and spend.refreshes > 20


def _fields(o: Any, kind: type = Observation) -> dict[str, Any]:
    return {name: getattr(o, name) for name in kind.__dataclass_fields__}


def test_a_kept_counter_adds_each_settled_call_worked_by_hand(store: DuckDBStore) -> None:
    """gpt-4o at $2.50 / 1M input and $10 / 1M output tokens: 1,000 + 500 tokens = $0.0075 a call; alice's calls
    today add up ($0.0225 after three), bob's and yesterday's do not count."""
    budget = parse_budget({"id": "d", "name": "d", "window": "day", "per": "user", "limit": "1"})
    query = spend_query(budget, "alice", "p", NOW)
    key = counter_key(budget, "alice")

    def call(i: str, user: str, at: datetime) -> Observation:
        cost = D(1000) * D("2.5") / 10**6 + D(500) * D(10) / 10**6
        return Observation("p", i, f"t-{i}", at, type="generation", model="gpt-4o", total_cost=cost,
                           pricing_status="priced", user_id=user)

    def check() -> tuple[D, int]:
        usage = store.reserve("p", [(key, query)], lambda u: (u[key], None), NOW)
        return usage.spent, usage.requests

    assert check() == (D(0), 0)
    store.write([call("a1", "alice", NOW), call("b1", "bob", NOW), call("old", "alice", NOW - timedelta(days=1))])
    assert check() == (D("0.0075"), 1)
    store.write([call("a2", "alice", NOW + timedelta(minutes=1))])
    assert check() == (D("0.0150"), 2)
    assert (store._spend.hits, store._spend.misses, store._spend.deltas) == (2, 1, 2)
    # two writes with no check between: the second forgets the counter, the next check reads it raw
    store.write([call("a3", "alice", NOW + timedelta(minutes=2))])
    store.write([call("b2", "bob", NOW + timedelta(minutes=2))])
    assert check() == (D("0.0225"), 3)
    assert (store._spend.hits, store._spend.misses, store._spend.deltas) == (2, 2, 3)


def test_holds_survive_a_crash_through_their_journal(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path / 'costline.duckdb'}"
    store = open_store(url)
    hold = Reservation("p", "r1", ("d|alice",), D("0.0125"), NOW, NOW + timedelta(minutes=15), {"model": "gpt-4o"})
    store.reserve("p", [], lambda u: (None, hold), NOW)
    store.reserve("p", [], lambda u: (None, Reservation("p", "r2", ("d|alice",), D("1"), NOW,
                                                        NOW + timedelta(minutes=15), {})), NOW)
    store.release_reservations("p", ["r2"])
    journal = tmp_path / "costline.duckdb.holds"
    assert journal.stat().st_mode & 0o777 == 0o600
    # a crash: the process ends without closing the store; a new process reads the journal
    store._conn.close()  # type: ignore[attr-defined]  # what the crash releases (DuckDB's file lock)
    with journal.open("ab") as f:
        f.write(b'{"hold": {"project_id": "p", "id": "torn"')  # a record cut short: never acknowledged
    again = open_store(url)
    assert again.get_reservation("p", "r1") == hold
    assert again.get_reservation("p", "r2") is None and again.get_reservation("p", "torn") is None
    usage = again.reserve("p", [("d|alice", spend_query(parse_budget(
        {"id": "d", "name": "d", "window": "day", "per": "user", "limit": "1"}), "alice", "p", NOW))],
        lambda u: (u["d|alice"], None), NOW)
    assert (usage.reserved, usage.reserved_requests) == (D("0.0125"), 1)
    again.close()


def test_a_damaged_journal_is_refused_with_its_line(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path / 'costline.duckdb'}"
    open_store(url).close()
    (tmp_path / "costline.duckdb.holds").write_bytes(b"not json\n" + b'{"release": ["p", []]}\n')
    with pytest.raises(Exception, match=r"hold journal .* damaged at line 1"):
        open_store(url)


def test_an_acknowledged_hold_survives_the_process_being_killed(tmp_path: Path) -> None:
    """A real crash: a child process reserves, says so, and is killed with SIGKILL before it closes anything."""
    url = f"duckdb://{tmp_path / 'costline.duckdb'}"
    open_store(url).close()
    child = textwrap.dedent(f"""
        import sys, time
        from datetime import datetime, timedelta, timezone
        from decimal import Decimal
        from costline.store.base import Reservation, open_store
        store = open_store({url!r})
        now = datetime.now(timezone.utc)
        hold = Reservation("p", "r1", ("d|alice",), Decimal("0.0125"), now, now + timedelta(hours=1), {{}})
        store.reserve("p", [], lambda u: (None, hold), now)
        print("held", flush=True)
        time.sleep(60)
    """)
    with subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None and process.stdout.readline().strip() == "held"
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    again = open_store(url)
    found = again.get_reservation("p", "r1")
    assert found is not None and found.amount == D("0.0125") and found.counters == ("d|alice",)
    again.close()


def test_the_journal_is_compacted_and_keeps_what_is_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holds, "MIN_RECORDS", 20)
    book = holds.HoldBook(tmp_path / "f.holds")
    for i in range(50):
        book.add(Reservation("p", f"r{i}", ("c|",), D("0.01"), NOW, NOW + timedelta(minutes=i + 1), {"i": i}))
        if i % 5:
            book.release("p", [f"r{i}"])
    assert book.purge(NOW + timedelta(minutes=10)) == 2  # r0 and r5 expired; the others of the first ten released
    book.close()
    lines = (tmp_path / "f.holds").read_bytes().splitlines()
    assert len(lines) < 50  # rewritten along the way: 100 records were appended
    again = holds.HoldBook(tmp_path / "f.holds")
    assert sorted(int(r.id[1:]) for r in (again.get("p", f"r{i}") for i in range(50)) if r) == list(range(10, 50, 5))
    assert again.usage("p", "c|", NOW) == (D("0.08"), 8)
    assert again.get("p", "r10") == Reservation("p", "r10", ("c|",), D("0.010000000000"), NOW,
                                                 NOW + timedelta(minutes=11), {"i": 10})


def test_a_rolling_window_is_read_raw_every_time(store: DuckDBStore) -> None:
    budget = parse_budget({"id": "r", "name": "r", "window": "24h", "per": "user", "limit": "1"})
    key = counter_key(budget, "alice")
    for minutes in (0, 1, 2, 3):
        at = NOW + timedelta(minutes=minutes)
        store.reserve("p", [(key, spend_query(budget, "alice", "p", at))], lambda u: (None, None), at)
    assert store._spend.misses == 4 and store._spend.hits == 0 and len(store._spend) == 0


def test_a_write_that_fails_after_its_commit_forgets_the_kept_spend(store: DuckDBStore,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The new rows' COMMIT goes with the read of linked traces; if that read fails, the rows are stored and the
    write still raises: the kept spend must not stay as it was."""
    budget = parse_budget({"id": "d", "name": "d", "window": "day", "per": "user", "limit": "1"})
    key, query = counter_key(budget, "alice"), spend_query(budget, "alice", "p", NOW)

    def spent() -> D:
        found: D = store.reserve("p", [(key, query)], lambda u: (u[key].spent, None), NOW)
        return found

    assert spent() == D(0)
    monkeypatch.setattr(store, "_linked_sql", lambda: "SELECT * FROM no_such_table WHERE ? = ?")
    call = Observation("p", "a1", "t1", NOW, type="generation", model="gpt-4o", total_cost=D("0.0075"),
                       pricing_status="priced", user_id="alice")
    with pytest.raises(StoreError):
        store.write_linked([call], (), "p", ["t1"])
    assert store.get_observations("p", ["a1"])  # stored: the COMMIT went through
    assert spent() == D("0.0075")


def test_the_journal_says_what_the_book_holds_after_every_change(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Whenever a change sets off a rewrite (adds, releases, purges), the journal read back holds exactly what
    the book holds: a hold acknowledged is never lost, one released never comes back."""
    monkeypatch.setattr(holds, "MIN_RECORDS", 3)
    rewrites: list[Path] = []
    rewrite = holds.HoldBook._rewrite
    monkeypatch.setattr(holds.HoldBook, "_rewrite", lambda self: (rewrites.append(self.path), rewrite(self))[1])
    book = holds.HoldBook(tmp_path / "f.holds")
    book.add(Reservation("p", "keep", ("c|",), D("0.01"), NOW, NOW + timedelta(hours=2), {}))

    def read_back() -> set[str]:
        copy = tmp_path / "copy.holds"
        shutil.copyfile(tmp_path / "f.holds", copy)
        again = holds.HoldBook(copy)
        found = {r for r in ("keep", *(f"r{i}" for i in range(40))) if again.get("p", r)}
        again.close()
        copy.unlink()
        return found

    live = {"keep"}
    for i in range(40):
        book.add(Reservation("p", f"r{i}", ("c|",), D("0.01"), NOW, NOW + timedelta(minutes=i + 1), {}))
        live.add(f"r{i}")
        assert read_back() == live, f"after adding r{i}"
        if i % 10:
            book.release("p", [f"r{i}"])
            live.discard(f"r{i}")
            assert read_back() == live, f"after releasing r{i}"
        if i % 10 == 9:
            book.purge(NOW + timedelta(minutes=i - 5))
            live = {r for r in live if r == "keep" or int(r[1:]) + 1 > i - 5}
            assert read_back() == live, f"after the purge at r{i}"
    assert rewrites.count(tmp_path / "f.holds") > 3  # the book's own journal was rewritten along the way
