"""``merge_trace`` builds a new trace in one step; it must equal what merging the event into a bare trace
(the stored-trace path) gives, for every combination of present and absent values."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from costline.core.events import Trace, TraceEvent, merge_trace

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
VALUES = {
    "name": "root", "timestamp": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "user_id": "u1", "session_id": "s1",
    "tags": ("a", "b"), "metadata": {"k": {"n": 1}}, "environment": "production", "release": "r1", "version": "v1",
    "public": True,
}


def test_a_new_trace_equals_the_event_merged_into_a_bare_trace() -> None:
    names = list(VALUES)
    for present in itertools.product((False, True), repeat=len(names)):
        sent = {n: VALUES[n] for n, keep in zip(names, present, strict=True) if keep}
        for extra in ({}, {"public": False, "tags": (), "metadata": {}, "name": ""}):
            event = TraceEvent(id="t1", **{**sent, **{k: v for k, v in extra.items() if k in sent}})
            bare = Trace(project_id="p1", id="t1", timestamp=event.timestamp or NOW)
            built = merge_trace(None, event, "p1", NOW)
            assert built == merge_trace(bare, event, "p1", NOW), sent
            assert type(built.metadata) is dict and built.metadata is not event.metadata
