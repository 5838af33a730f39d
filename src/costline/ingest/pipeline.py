"""The one pipeline every protocol ends in: merge → price → store (one transaction per request).

Decoders produce events; the pipeline folds them into stored rows (reading existing rows only for
protocols with partial updates), prices each observation as of its start time with the project's price
book, and writes observations, traces and scores in one transaction. A caller that gets a result back can
acknowledge: the data has committed.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

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
from costline.core.limits import LimitError, check_money
from costline.core.price import PriceRecord, Source
from costline.core.resolve import PriceBook
from costline.errors import CostlineError
from costline.ingest.batch import Decoded
from costline.store.base import Store, StoredPrice

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Summary:
    """What the listeners read of a batch written from rows a worker process built, without its ``Observation``
    objects (server/ingest_workers.py): the budget reservations its calls settle and its Prometheus sums."""

    reservations: tuple[str, ...]
    metrics: tuple[tuple[str, str, tuple[str, ...], Decimal | int], ...]


@dataclass(frozen=True, slots=True)
class PreparedRows:
    """A batch of new complete records (native, OTLP) and new traces decoded, merged, priced and turned into
    DuckDB's JSON batches by a worker process (server/ingest_workers.py), with what the write and the reply need."""

    ids: tuple[str, ...]  # the observations' ids, in the order the reply lists them
    accepted: tuple[str, ...]  # the items' ids
    payloads: tuple[tuple[str, str], ...]  # (table, JSON batch), as ``DuckDBStore.write`` builds them
    hours: tuple[int, ...]  # the hours the observations start in (UTC epoch seconds): marked dirty
    priced_traces: tuple[str, ...]  # where the duplicate check looks (``priced_traces``)
    costs: tuple[dict[str, str | None], ...]  # the reply's ``costs`` entries
    summary: Summary
    #: the batch's traces that attribute a user or metadata to their observations (``rollup_dirty_traces``)
    dirty_traces: tuple[str, ...] = ()
    #: the batch's trace events, pickled (read only when a trace is stored already: merged in the server)
    trace_events: bytes = b""


@dataclass(frozen=True, slots=True)
class IngestResult:
    observations: tuple[Observation, ...]
    traces: tuple[Trace, ...]
    scores: tuple[Score, ...]
    #: the stored rows the observations were merged into, by id (protocols with partial updates only)
    previous: Mapping[str, Observation] = field(default_factory=dict)
    #: set (and ``observations`` empty) when the batch was written from a worker's rows: ``ingest_rows``
    summary: Summary | None = None


#: called after each committed ingest with (project_id, protocol, decoded, result); see server/prometheus.py.
#: A listener added with ``reads_summary=True`` reads ``result.summary`` when it is set (``ingest_rows``).
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
        self._books: dict[str, tuple[PriceBook, tuple[PriceRecord, ...], int]] = {}
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()
        self.listeners: list[IngestListener] = []
        self._summary_readers: list[IngestListener] = []

    def add_listener(self, listener: IngestListener, *, reads_summary: bool = False) -> None:
        self.listeners.append(listener)
        if reads_summary:
            self._summary_readers.append(listener)

    def reads_summaries(self) -> bool:
        """Every listener reads a batch's ``summary``: ``ingest_rows`` may be used."""
        return all(listener in self._summary_readers for listener in self.listeners)

    def book_for(self, project_id: str) -> PriceBook:
        """The base book plus the project's own prices (they rank above every catalog)."""
        return self._book_entry(project_id)[0]

    def price_source(self, project_id: str) -> tuple[int, tuple[PriceRecord, ...]]:
        """(version, the project's own price records): what a worker process needs to hold ``book_for``'s book
        (the base book plus these records); the version changes with every ``prices_changed``."""
        _, records, version = self._book_entry(project_id)
        return version, records

    def _book_entry(self, project_id: str) -> tuple[PriceBook, tuple[PriceRecord, ...], int]:
        entry = self._books.get(project_id)
        if entry is None:
            version = self._versions.get(project_id, 0)
            records = tuple(stored_price_records(self.store.list_prices(project_id)))
            entry = (self.base_book.with_records(records) if records else self.base_book, records, version)
            with self._lock:
                if self._versions.get(project_id, 0) == version:  # no change since the read began
                    self._books[project_id] = entry
        return entry

    def prices_changed(self, project_id: str) -> None:
        with self._lock:
            self._books.pop(project_id, None)
            self._versions[project_id] = self._versions.get(project_id, 0) + 1

    def ingest(self, project_id: str, decoded: Decoded, protocol: str = "native") -> IngestResult:
        now = self.clock()
        book = self.book_for(project_id)  # before the store's transaction: ``merge`` must not call the store
        previous: dict[str, Observation] = {}
        scores = [score_from_event(s, project_id, now) for s in decoded.scores]

        # complete records (native, OTLP) replace the stored row: merged and priced before any lock is taken
        complete = [] if decoded.merge else self.merge_and_price(project_id, decoded, {}, book, now)

        def merge(stored: Mapping[str, Observation],
                  stored_traces: Mapping[str, Trace]) -> tuple[list[Observation], list[Trace]]:
            previous.update(stored)
            merged = self.merge_and_price(project_id, decoded, stored, book, now) if decoded.merge else complete
            return merged, self.merge_traces(project_id, decoded, stored_traces, now)

        observations: Sequence[Observation] = ()
        traces: Sequence[Trace] = ()
        # the ids whose stored rows the events are folded into: read, merged and written under their locks, so
        # partial updates of one id in concurrent requests (or on other servers) all land
        merged_ids = [e.id for e in decoded.observations] if decoded.merge else []
        linked: list[str] | None = None  # read with the write: the traces the duplicate check reads
        if merged_ids or decoded.traces:
            observations, traces = self.store.merge_write(
                project_id, merged_ids, [e.id for e in decoded.traces], merge, scores
            )
        elif complete or scores:  # nothing to read: a plain upsert
            linked = self.store.write_linked(complete, scores, project_id, priced_traces(complete))
            observations = complete
        if observations:
            observations = self._count_once(project_id, observations, linked)
        result = IngestResult(tuple(observations), tuple(traces), tuple(scores), previous)
        self._notify(project_id, protocol, decoded, result)
        return result

    def ingest_rows(self, project_id: str, prepared: PreparedRows, protocol: str = "native") -> IngestResult | None:
        """Write a batch a worker process prepared (``PreparedRows``; a DuckDB store), count duplicate reports
        once, and tell the listeners, as ``ingest`` does for the same events. None, with nothing written, when
        the batch must go through ``ingest`` instead: a listener does not read summaries, or one of the ids is
        already stored (an event sent again replaces its row: an upsert, which ``ingest`` does)."""
        if not self.reads_summaries():
            return None
        linked = self.store.write_prepared(project_id, prepared.payloads, prepared.hours, prepared.priced_traces,
                                           prepared.dirty_traces)
        if linked is None and prepared.trace_events:  # a trace is stored (or a span: then this fails too)
            linked = self._write_merging_traces(project_id, prepared)
        if linked is None:
            return None
        decoded = Decoded(merge=False)
        decoded.accepted.extend(prepared.accepted)
        counted = self._newly_counted(project_id, linked) if linked else {}
        if counted:
            # a batch that reports a call twice (a wrapper and its child): its rows are read back and marked as
            # ``ingest`` marks them, and the listeners and the reply read the objects
            stored = self.store.get_observations(project_id, prepared.ids)
            written = [stored[i] for i in prepared.ids if i in stored]
            result = IngestResult(tuple(self._mark_counted(project_id, written, counted)), (), ())
        else:
            result = IngestResult((), (), (), summary=prepared.summary)
        self._notify(project_id, protocol, decoded, result)
        return result

    def _write_merging_traces(self, project_id: str, prepared: PreparedRows) -> list[str] | None:
        """``ingest_rows``' write when the batch's traces may be stored: its new observations as the worker built
        them, its trace events merged into the stored traces in the store's transaction, as ``ingest`` does."""
        # the worker process is the server's own (server/ingest_workers.py): its pickle is not the request's text
        events = pickle.loads(prepared.trace_events)
        decoded = Decoded(traces=list(events), merge=False)
        now = self.clock()

        def merge(stored: Mapping[str, Trace]) -> list[Trace]:
            return self.merge_traces(project_id, decoded, stored, now)

        observations = [(table, payload) for table, payload in prepared.payloads if table == "observations"]
        return self.store.write_prepared_traces(project_id, observations, prepared.hours, prepared.priced_traces,
                                                [e.id for e in events], merge)

    def _notify(self, project_id: str, protocol: str, decoded: Decoded, result: IngestResult) -> None:
        for listener in self.listeners:
            try:
                listener(project_id, protocol, decoded, result)
            except Exception:  # the data has committed: a listener's failure must not fail the request
                log.exception("ingest listener %r failed", listener)

    @staticmethod
    def merge_and_price(project_id: str, decoded: Decoded, stored: Mapping[str, Observation], book: PriceBook,
                      now: datetime) -> list[Observation]:
        """The events folded into the stored rows (Langfuse) or replacing them (complete records), each priced
        from its merged model, usage and provided cost. An item whose merged row ends before it starts, or
        whose computed cost passes the money bound, is rejected (``decoded.reject``) and not written."""
        if not decoded.observations:
            return []
        merged: dict[str, Observation] = dict(stored) if decoded.merge else {}
        keys: dict[str, list[str]] = {}  # observation id -> the items that wrote it
        for index, event in enumerate(decoded.observations):
            row = merge_observation(merged.get(event.id) if decoded.merge else None, event, project_id, now)
            if row.end_time is not None and row.end_time < row.start_time:  # an update's end before the start
                decoded.reject(decoded.key_of(index), f"{decoded.key_of(index)}: end time {row.end_time.isoformat()}"
                               f" is before the start time {row.start_time.isoformat()}")
                continue
            merged[event.id] = row
            keys.setdefault(event.id, []).append(decoded.key_of(index))
        priced = []
        for obs_id, item_keys in keys.items():
            # a complete record's row was built just above and is held only here: priced in place
            row = price_observation(merged[obs_id], book, fresh=not decoded.merge)
            try:  # a computed cost past the money bound (a huge count times a project's rate) is the item's error
                for unit, amount in (("total", row.total_cost), *row.cost.items()):
                    if amount is not None:
                        check_money(amount, f"cost.{unit}")
            except LimitError as exc:
                for key in dict.fromkeys(item_keys):
                    decoded.reject(key, f"{key}: the computed {exc}")
                continue
            priced.append(row)
        return priced

    def _count_once(self, project_id: str, written: Sequence[Observation],
                    linked: Sequence[str] | None = None) -> list[Observation]:
        """Mark observations that report the same model call as a descendant (core/duplicates.py): after the
        write, read the stored traces that hold a priced call and rewrite, under their ids' locks, the outer
        reports newly found to be duplicates (a later update that reprices one is marked again here).
        ``linked``: those of the traces holding a parent link, when the write read them already."""
        traces = priced_traces(written)
        if not traces:
            return list(written)
        return self._mark_counted(project_id, written, self._newly_counted(project_id, linked, traces))

    def _mark_counted(self, project_id: str, written: Sequence[Observation],
                      counted: Mapping[str, str]) -> list[Observation]:
        """``written`` with the outer reports in ``counted`` (outer id → the descendant counted) marked as
        duplicates, rewritten under their ids' locks (and any stored one not in ``written`` added)."""
        if not counted:
            return list(written)

        def mark(rows: Mapping[str, Observation], _: Mapping[str, Trace]) -> tuple[list[Observation], list[Trace]]:
            return [mark_duplicate(o, counted[i]) for i, o in rows.items()
                    if o.pricing_status != DUPLICATE and o.total_cost is not None], []

        marked, _ = self.store.merge_write(project_id, list(counted), [], mark)
        rewritten = {o.id: o for o in marked}
        ids = {o.id for o in written}
        return [*(rewritten.get(o.id, o) for o in written), *(o for i, o in rewritten.items() if i not in ids)]

    def _newly_counted(self, project_id: str, linked: Sequence[str] | None,
                       traces: Sequence[str] = ()) -> dict[str, str]:
        """Outer report id → the descendant that reports the same call, for the reports not yet marked: read from
        ``linked`` (the traces holding a parent link, when the write read them) or else from ``traces``, narrowed
        to those holding a parent link."""
        # a pair is an observation and one of its ancestors: only traces holding an observation with a parent
        # can hold one, so only those are read (a batch of flat calls reads no row)
        found = (self.store.trace_calls(project_id, traces, linked_only=True) if linked is None
                 else self.store.trace_calls(project_id, linked))
        stored = {o.id: o for o in found}
        return {outer: inner for outer, inner in find_duplicates(stored.values()).items()
                if stored[outer].pricing_status != DUPLICATE}

    @staticmethod
    def merge_traces(project_id: str, decoded: Decoded, stored: Mapping[str, Trace], now: datetime) -> list[Trace]:
        """The batch's trace events folded into the stored traces (``stored``: those of their ids found)."""
        merged: dict[str, Trace] = dict(stored)
        for event in decoded.traces:
            merged[event.id] = merge_trace(merged.get(event.id), event, project_id, now)
        return [merged[i] for i in dict.fromkeys(e.id for e in decoded.traces)]

    def write_repriced(self, observations: Iterable[Observation]) -> None:
        """Write these observations priced with today's books, re-reading each under its id's lock first: an
        update that landed since they were read is kept (and priced), a row deleted since stays deleted."""
        by_project: dict[str, list[str]] = {}
        for obs in observations:
            by_project.setdefault(obs.project_id, []).append(obs.id)
        for project_id, ids in by_project.items():
            book = self.book_for(project_id)

            def merge(stored: Mapping[str, Observation], _: Mapping[str, Trace],
                      book: PriceBook = book) -> tuple[list[Observation], list[Trace]]:
                return [reprice_keeping_mark(o, book) for o in stored.values()], []

            self.store.merge_write(project_id, ids, [], merge)

    def reprice(self, observations: Iterable[Observation]) -> Iterable[tuple[Observation, Observation]]:
        """(old, new) for each observation priced again with today's books (nothing is written)."""
        for obs in observations:
            yield obs, reprice_keeping_mark(obs, self.book_for(obs.project_id))


def priced_traces(written: Iterable[Observation]) -> list[str]:
    """The traces of the written observations that hold a priced call (where the duplicate check looks)."""
    return list(dict.fromkeys(o.trace_id for o in written
                              if o.type in PRICED_TYPES and o.total_cost is not None and o.usage))


def reprice_keeping_mark(obs: Observation, book: PriceBook) -> Observation:
    """``obs`` priced again with ``book``; a report marked as a duplicate stays one (its call is counted on
    the descendant that reported it too)."""
    new = price_observation(replace(obs), book)
    if obs.pricing_status == DUPLICATE and new.total_cost is not None:
        new = replace(mark_duplicate(new, ""), pricing_reason=obs.pricing_reason)
    return new

