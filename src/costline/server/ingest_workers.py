"""Large native and OTLP batches decoded, merged, priced and turned into rows in worker processes (DuckDB stores).

The server is one Python process, and its interpreter work per batch (decode, merge, price, rows) runs under one
GIL while the store's writes wait for it (docs/benchmarks.md, 2026-12-06 "late"). For a ``POST /v1/ingest`` body,
or an OTLP ``/v1/traces`` export, of at least ``MIN_BODY`` bytes, a worker process does that work with the same
price book and sends back what the write needs as data: DuckDB's JSON batches, the hours and traces to mark dirty,
the traces the duplicate check reads, the reply's costs and the listeners' summary (``PreparedRows``). The server's
process writes them with ``Pipeline.ingest_rows``.

Only a clean batch of new rows goes this way. A batch with an item error, a score (or, native, a trace event), an
id already stored (an observation or trace: an OTLP export continuing a stored trace included), a call reported
twice within its traces, a project with alert rules checked on ingest, a store other than DuckDB, workers not
started yet or broken: each goes through ``Pipeline.ingest`` in the server's process, so replies, stored rows
and counters never depend on the way a batch took (tests/server/test_ingest_workers.py compares them).

The workers are spawned (never forked: the server holds DuckDB's threads and locks) on the first large batch,
in the background; each unpickles the server's base price book once, and a project's own prices come with each
batch with their version, so a price change reaches the next batch. A worker that dies breaks the pool: the
batches in flight go through ``Pipeline.ingest`` and the next large batch starts a new pool.
"""

from __future__ import annotations

import asyncio
import copyreg
import logging
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from costline.core.events import Observation
from costline.core.money import decimal_str
from costline.core.price import PriceRecord
from costline.core.resolve import PriceBook
from costline.ingest.batch import Decoded
from costline.ingest.native import decode_native
from costline.ingest.otlp import decode_otlp
from costline.ingest.pipeline import Pipeline, PreparedRows, Summary, priced_traces
from costline.server.body import parse_json
from costline.server.collector import tune_collector
from costline.store import duckdb as duckdb_store
from costline.store.rollup_sql import attributing_traces, observation_hours

log = logging.getLogger(__name__)

#: bodies smaller than this (about 100 native events) are decoded in the server's process: the copy to and from a
#: worker would cost more than it saves
MIN_BODY: Final = 32 * 1024
#: books a worker keeps (the base book plus one project's prices, per project and price version)
MAX_BOOKS: Final = 256
#: how often a worker checks that the server is still its parent
WATCH_SECONDS: Final = 1.0


def _mapping_proxy(data: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(data)


def _reduce_mapping_proxy(proxy: MappingProxyType[str, Any]) -> tuple[Any, tuple[dict[str, Any]]]:
    return _mapping_proxy, (dict(proxy),)


# price books and records hold read-only views; they cross to the workers as plain dicts made read-only again
copyreg.pickle(MappingProxyType, _reduce_mapping_proxy)


# -- in the worker process --------------------------------------------------------------------------------------
_BASE: PriceBook | None = None
_BOOKS: dict[tuple[str, int], PriceBook] = {}


def _start(book: bytes, server_pid: int) -> None:
    """A worker's initializer: the server's base book, the collector tuned as in the server, and a watch that
    ends the worker when the server is gone (killed: no shutdown reached the pool)."""
    global _BASE
    _BASE = pickle.loads(book)
    threading.Thread(target=_watch, args=(server_pid,), name="costline-server-watch", daemon=True).start()
    tune_collector()


def _watch(server_pid: int) -> None:
    while os.getppid() == server_pid:
        time.sleep(WATCH_SECONDS)
    os._exit(0)


def _ready() -> bool:
    return _BASE is not None


def _book(project_id: str, version: int, records: tuple[PriceRecord, ...]) -> PriceBook:
    assert _BASE is not None
    if not records:
        return _BASE
    book = _BOOKS.get((project_id, version))
    if book is None:
        if len(_BOOKS) >= MAX_BOOKS:
            _BOOKS.clear()
        book = _BOOKS[project_id, version] = _BASE.with_records(records)
    return book


def prepare(body: bytes, project_id: str, version: int, records: tuple[PriceRecord, ...], now: datetime,
            metadata_keys: tuple[str, ...]) -> PreparedRows | None:
    """The rows of a clean native batch of observations (in a worker); None for anything else (see the module)."""
    try:
        decoded = decode_native(parse_json(body))
    except Exception:  # the server's process decodes it again and answers the error
        return None
    if decoded.traces:  # a trace event may update a stored trace: merged in the server's process
        return None
    return _rows(decoded, project_id, _book(project_id, version, records), now, metadata_keys)


def prepare_otlp(body: bytes, content_type: str, project_id: str, version: int, records: tuple[PriceRecord, ...],
                 now: datetime, metadata_keys: tuple[str, ...]) -> PreparedRows | None:
    """The rows of a clean OTLP export (in a worker): its spans and the traces it opens, all taken as new (the
    store refuses the batch if one is stored); None for anything else (see the module)."""
    if "json" in content_type.lower() and b"\\u0000" in body:  # the route's own check names the place
        return None
    try:
        decoded = decode_otlp(body, content_type)
    except Exception:  # the server's process decodes it again and answers the error
        return None
    return _rows(decoded, project_id, _book(project_id, version, records), now, metadata_keys)


def _rows(decoded: Decoded, project_id: str, book: PriceBook, now: datetime,
          metadata_keys: tuple[str, ...]) -> PreparedRows | None:
    from costline.control.budgets import reservation_ids
    from costline.server.prometheus import metric_sums

    if decoded.errors or decoded.scores or not decoded.observations:
        return None
    observations = Pipeline.merge_and_price(project_id, decoded, {}, book, now)
    if decoded.errors or not observations:  # an item rejected while pricing
        return None
    traces = Pipeline.merge_traces(project_id, decoded, {}, now)
    # traces first: an export continuing a stored trace is refused at its first INSERT, before the observations'
    payloads = sorted(duckdb_store.batch_payloads(observations, traces, ()), key=lambda p: p[0] != "traces")
    return PreparedRows(
        ids=tuple(o.id for o in observations),
        accepted=tuple(decoded.accepted),
        payloads=tuple(payloads),
        hours=tuple(sorted({seconds for _, seconds in observation_hours(observations)})),
        priced_traces=tuple(priced_traces(observations)),
        costs=tuple(cost_entry(o) for o in observations),
        summary=Summary(reservation_ids(observations), metric_sums(observations, None, metadata_keys)),
        dirty_traces=tuple(attributing_traces(traces)),
        trace_events=pickle.dumps(tuple(decoded.traces), protocol=pickle.HIGHEST_PROTOCOL) if traces else b"",
    )


def cost_entry(o: Observation) -> dict[str, str | None]:
    """One entry of the native reply's ``costs`` (routes/native.py)."""
    return {"id": o.id, "total": None if o.total_cost is None else decimal_str(o.total_cost), "currency": o.currency,
            "status": o.pricing_status, "price_id": o.price_id}


# -- in the server's process ------------------------------------------------------------------------------------
class IngestWorkers:
    """The pool, started on first use; ``prepare`` answers None whenever a batch must go the in-process way."""

    def __init__(self, book: PriceBook, processes: int, metadata_keys: tuple[str, ...] = ()) -> None:
        self.processes = processes
        self.metadata_keys = metadata_keys
        self._book = pickle.dumps(book, protocol=pickle.HIGHEST_PROTOCOL)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._ready = False
        self._closed = False

    async def prepare(self, pipeline: Pipeline, project_id: str, body: bytes,
                      prices: tuple[int, tuple[PriceRecord, ...]], otlp_type: str | None = None) -> PreparedRows | None:
        """The batch's rows from a worker; ``prices``: ``pipeline.price_source(project_id)`` (it may read the
        store: the caller gets it off the event loop); ``otlp_type``: the content type of an OTLP export (None:
        a native batch)."""
        pool = self._usable()
        if pool is None:
            return None
        version, records = prices
        now = pipeline.clock()
        try:
            if otlp_type is None:
                future = pool.submit(prepare, body, project_id, version, records, now, self.metadata_keys)
            else:
                future = pool.submit(prepare_otlp, body, otlp_type, project_id, version, records, now,
                                     self.metadata_keys)
            prepared: PreparedRows | None = await asyncio.wrap_future(future)
        except BrokenProcessPool:
            log.warning("an ingest worker process died: batches go through the server's process until a new "
                        "pool starts")
            self._reset(pool)
            return None
        except Exception:  # never the request's fault: the server's process does the work instead
            log.exception("an ingest worker failed a batch: it goes through the server's process")
            return None
        return prepared

    def _usable(self) -> ProcessPoolExecutor | None:
        """The pool once its workers answer; the first call starts it (in the background) and answers None."""
        with self._lock:
            if self._closed:
                return None
            if self._pool is not None:
                return self._pool if self._ready else None
            try:
                context = multiprocessing.get_context("spawn")
                pool = ProcessPoolExecutor(self.processes, context, initializer=_start,
                                           initargs=(self._book, os.getpid()))
            except Exception:  # no processes here (no /dev/shm for the queues' locks, a process limit): in process
                log.exception("cannot start the ingest worker processes: every batch goes through the server's")
                self._closed = True
                return None
            self._pool, self._ready = pool, False
        # a call per worker: the pool takes batches once they answered (imported, book loaded); the callbacks
        # are added outside the lock, since a future already done runs its callback at once
        try:
            warm = [pool.submit(_ready) for _ in range(self.processes)]
        except Exception:  # the processes could not be started
            log.exception("cannot start the ingest worker processes: batches go through the server's process")
            self._reset(pool)
            return None

        def warmed(_: Future[bool]) -> None:
            self._warmed(pool, warm)

        for future in warm:
            future.add_done_callback(warmed)
        return None

    def _warmed(self, pool: ProcessPoolExecutor, warm: list[Future[bool]]) -> None:
        if not all(f.done() for f in warm):
            return
        failed = [f for f in warm if f.cancelled() or f.exception() is not None]
        if failed:
            log.warning("the ingest worker processes did not start: batches go through the server's process")
            self._reset(pool)
            return
        with self._lock:
            if self._pool is pool:
                self._ready = True

    def _reset(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool, self._ready = None, False
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

