"""``traces_observations(linked_only=True)`` (the duplicate check's read, two steps since otlp2: the traces
holding a parent link, then their rows) against a straightforward reference on random data, both stores:
trace ids shared by two projects, asked twice or never stored, ties on start time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from costline.core.duplicates import find_duplicates
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


def test_trace_calls_read_what_the_duplicate_rule_reads_of_the_stored_rows(store: Store) -> None:
    """``trace_calls`` (the duplicate check's narrow read) gives, for every stored observation of the traces
    asked, the fields the rule reads equal to the full row's: times to the microsecond (also before 1970 and
    with an end or not), token counts as ints or exact decimals (fractional units), models and statuses set or
    not; and the rule finds the same duplicates in either."""
    rng = random.Random(20261207)
    stored: list[Observation] = []
    for project in ("p1", "p2"):
        for n in range(200):
            start = AT + timedelta(microseconds=rng.randrange(-10**15, 10**12))
            usage: dict[str, int | Decimal] = {}
            if rng.random() < 0.8:
                usage["input_tokens"] = rng.choice((rng.randrange(0, 10**9), Decimal(rng.randrange(1, 10**6)) / 8))
            if rng.random() < 0.8:
                usage["output_tokens"] = rng.choice((0, rng.randrange(1, 5), 7))
            if rng.random() < 0.3:
                usage["cache_read_tokens"] = 3
            stored.append(Observation(
                project_id=project, id=f"o{n:03d}", trace_id=f"t{rng.randrange(20):02d}", start_time=start,
                end_time=rng.choice((None, start + timedelta(microseconds=rng.randrange(10**7)))),
                type=rng.choice(("generation", "span", "embedding", "event")),
                parent_id=rng.choice((None, f"o{rng.randrange(200):03d}")),
                model=rng.choice((None, "gpt-4o", "openai/gpt-4o-2024-08-06")),
                resolved_model=rng.choice((None, "gpt-4o")), usage=usage,
                pricing_status=rng.choice((None, "priced", "duplicate", "unpriced"))))
    # and one call reported twice, a wrapper and its child (core/duplicates.py)
    pair = {"type": "generation", "usage": {"input_tokens": 10, "output_tokens": 5}, "pricing_status": "priced"}
    stored += [Observation("p1", "outer", "t00", AT, end_time=AT + timedelta(seconds=10), model="gpt-4o", **pair),
               Observation("p1", "inner", "t00", AT + timedelta(seconds=1), end_time=AT + timedelta(seconds=2),
                           parent_id="outer", model="openai/gpt-4o-2024-08-06", **pair)]
    store.write(stored)
    asked = [f"t{i:02d}" for i in range(0, 22, 2)]  # t20 never stored
    full = {o.id: o for o in store.traces_observations("p1", asked)}
    light = {c.id: c for c in store.trace_calls("p1", asked)}
    assert len(full) > 80 and set(light) == set(full)
    for i, o in full.items():
        c = light[i]
        assert (c.trace_id, c.parent_id, c.type, c.model, c.resolved_model, c.start_time, c.end_time,
                c.pricing_status) == (o.trace_id, o.parent_id, o.type, o.model, o.resolved_model, o.start_time,
                                      o.end_time, o.pricing_status), i
        assert dict(c.usage) == {k: v for k, v in o.usage.items() if k in ("input_tokens", "output_tokens")}, i
    assert find_duplicates(light.values()) == find_duplicates(full.values())
    assert find_duplicates(light.values())["outer"] == "inner"
    assert store.trace_calls("p1", []) == [] and store.trace_calls("p1", ["t20"]) == []
    linked = {o.trace_id for o in full.values() if o.parent_id is not None}
    assert {c.trace_id for c in store.trace_calls("p1", asked, linked_only=True)} == linked
