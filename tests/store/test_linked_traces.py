"""``traces_observations(linked_only=True)`` (the duplicate check's read, two steps since otlp2: the traces
holding a parent link, then their rows) against a straightforward reference on random data, both stores:
trace ids shared by two projects, asked twice or never stored, ties on start time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from costline.core.events import Observation
from costline.store.base import Store

AT = datetime(2026, 3, 28, 12, tzinfo=UTC)


def test_linked_traces_read_equals_a_reference_on_random_data(store: Store) -> None:
    rng = random.Random(20261206)
    stored: list[Observation] = []
    for project in ("p1", "p2"):
        for n in range(300):
            trace = rng.randrange(40)  # a third of the traces never hold a parent link (another third in p2)
            parent = None if trace % 3 == (0 if project == "p1" else 1) else rng.choice((None, None, n - 1))
            stored.append(Observation(
                project_id=project, id=f"o{n:03d}", trace_id=f"t{trace:02d}",
                start_time=AT + timedelta(seconds=rng.randrange(5)),
                parent_id=None if parent is None else f"o{parent:03d}"))
    store.write(stored)
    p1 = [o for o in stored if o.project_id == "p1"]
    linked = {o.trace_id for o in p1 if o.parent_id is not None}
    assert 15 < len(linked) < 30
    for _ in range(60):
        asked = [f"t{rng.randrange(45):02d}" for _ in range(rng.randint(1, 12))]  # t40..t44 never stored
        for linked_only in (False, True):
            expected = sorted((o.trace_id, o.start_time, o.id) for o in p1 if o.trace_id in asked
                              and (not linked_only or o.trace_id in linked))
            found = store.traces_observations("p1", asked, linked_only=linked_only)
            assert [(o.trace_id, o.start_time, o.id) for o in found] == expected, (asked, linked_only)
            assert all(o.project_id == "p1" for o in found)
    assert store.traces_observations("p1", ["t40", "t41"], linked_only=True) == []
