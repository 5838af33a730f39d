"""The one pipeline every protocol ends in: merge → price → store (one transaction per request).

Decoders produce events; the pipeline folds them into stored rows (reading existing rows only for
protocols with partial updates), prices each observation as of its start time with the project's price
book, and writes observations, traces and scores in one transaction. A caller that gets a result back can
acknowledge: the data has committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from costline.catalog.user_file import compile_price_data
from costline.core.duplicates import DUPLICATE, find_duplicates, mark_duplicate
from costline.core.events import (
    PRICED_TYPES,
    Observation,
    Score,
    Trace,
    merge_observation,
    merge_trace,
    price_observation,
    score_from_event,
)
from costline.core.price import PriceRecord, Source
from costline.core.resolve import PriceBook
from costline.errors import CostlineError
from costline.ingest.batch import Decoded
from costline.store.base import Store, StoredPrice

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class IngestResult:
    observations: tuple[Observation, ...]
    traces: tuple[Trace, ...]
    scores: tuple[Score, ...]
    #: the stored rows the observations were merged into, by id (protocols with partial updates only)
    previous: Mapping[str, Observation] = field(default_factory=dict)


#: called after each committed ingest with (project_id, protocol, decoded, result); see server/prometheus.py
IngestListener = Callable[[str, str, Decoded, IngestResult], None]


def stored_price_records(prices: Iterable[StoredPrice]) -> list[PriceRecord]:
    """Compile project prices kept in the store (``StoredPrice.entry["entry"]`` is a price-file entry)."""
    records: list[PriceRecord] = []
    for price in prices:
        entry = dict(price.entry.get("entry", price.entry))
        entry.setdefault("id", f"project:{price.project_id}:{price.id}")
        try:
            records.extend(compile_price_data({"prices": [entry]}, f"project {price.project_id}",
                                              source=Source.PROJECT))
        except CostlineError as exc:  # a stored price that no longer compiles must not stop ingestion
            log.warning("skipping stored price %s of project %s: %s", price.id, price.project_id, exc)
    return records


class Pipeline:
    """Merges, prices and stores decoded events for a project."""

    def __init__(self, store: Store, book: PriceBook, clock: Clock) -> None:
        self.store = store
        self.base_book = book
        self.clock = clock
        self._books: dict[str, PriceBook] = {}
        self._lock = threading.Lock()
        self.listeners: list[IngestListener] = []

    def book_for(self, project_id: str) -> PriceBook:
        """The base book plus the project's own prices (they rank above every catalog)."""
        book = self._books.get(project_id)
        if book is None:
            records = stored_price_records(self.store.list_prices(project_id))
            book = self.base_book.with_records(records) if records else self.base_book
            with self._lock:
                self._books[project_id] = book
        return book

    def prices_changed(self, project_id: str) -> None:
        with self._lock:
            self._books.pop(project_id, None)

    def ingest(self, project_id: str, decoded: Decoded, protocol: str = "native") -> IngestResult:
        now = self.clock()
        book = self.book_for(project_id)
        previous: dict[str, Observation] = {}
        observations = self._observations(project_id, decoded, book, now, previous)
        traces = self._traces(project_id, decoded, now)
        scores = [score_from_event(s, project_id, now) for s in decoded.scores]
        if observations or traces or scores:
            self.store.write(observations, traces, scores)
        result = IngestResult(tuple(observations), tuple(traces), tuple(scores), previous)
        for listener in self.listeners:
            try:
                listener(project_id, protocol, decoded, result)
            except Exception:  # the data has committed: a listener's failure must not fail the request
                log.exception("ingest listener %r failed", listener)
        return result

    def _observations(self, project_id: str, decoded: Decoded, book: PriceBook, now: datetime,
                      previous: dict[str, Observation]) -> list[Observation]:
        if not decoded.observations:
            return []
        merged: dict[str, Observation] = {}
        if decoded.merge:
            ids = list(dict.fromkeys(e.id for e in decoded.observations))
            previous.update(self.store.get_observations(project_id, ids))
            merged.update(previous)
        for event in decoded.observations:
            merged[event.id] = merge_observation(merged.get(event.id) if decoded.merge else None, event,
                                                 project_id, now)
        priced = {o.id: price_observation(o, book) for o in merged.values()}
        return self._count_once(project_id, priced)

    def _count_once(self, project_id: str, priced: dict[str, Observation]) -> list[Observation]:
        """Mark observations that report the same model call as a descendant (core/duplicates.py), reading
        the stored rest of the traces that hold a priced call; stored rows newly marked are rewritten."""
        traces = list(dict.fromkeys(o.trace_id for o in priced.values()
                                    if o.type in PRICED_TYPES and o.total_cost is not None and o.usage))
        if not traces:
            return list(priced.values())
        stored = {o.id: o for o in self.store.traces_observations(project_id, traces)}
        everything = {**stored, **priced}
        rewrite: dict[str, Observation] = {}
        for outer_id, counted_id in find_duplicates(everything.values()).items():
            outer = everything[outer_id]
            if outer_id in priced or outer.pricing_status != DUPLICATE:
                rewrite[outer_id] = mark_duplicate(outer, counted_id)
        return [*(rewrite.get(i, o) for i, o in priced.items()), *(o for i, o in rewrite.items() if i not in priced)]

    def _traces(self, project_id: str, decoded: Decoded, now: datetime) -> list[Trace]:
        if not decoded.traces:
            return []
        ids = list(dict.fromkeys(e.id for e in decoded.traces))
        merged: dict[str, Trace] = dict(self.store.get_traces(project_id, ids))
        for event in decoded.traces:
            merged[event.id] = merge_trace(merged.get(event.id), event, project_id, now)
        return list(merged.values())

    def reprice(self, observations: Iterable[Observation]) -> Iterable[tuple[Observation, Observation]]:
        """(old, new) for each observation priced again with today's books (nothing is written)."""
        for obs in observations:
            new = price_observation(replace(obs), self.book_for(obs.project_id))
            if obs.pricing_status == DUPLICATE and new.total_cost is not None:  # still counted elsewhere
                new = replace(mark_duplicate(new, ""), pricing_reason=obs.pricing_reason)
            yield obs, new
