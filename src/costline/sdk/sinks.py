"""Where recorded events go: a bounded buffer drained by one background thread into a transport.

The application's thread only appends a dict to a deque (and counts a drop when the deque is full); the
dict is JSON-ready (``spill.wire_usage``, ``spill.wire_cost``; datetimes orjson writes natively). The worker
thread takes batches, serializes each in one orjson call (``spill.dumps``) and hands them to a transport:

- ``HttpTransport``: ``POST {host}/v1/ingest`` with gzip (``COMPRESS_LEVEL``) and HTTP Basic auth, over
  ``http.client`` from the standard library (no runtime dependency; one kept-alive connection).
- ``EmbeddedTransport``: the ingestion pipeline on a store opened in this process.

A batch that fails for a reason that may pass (connection refused, timeout, 5xx, 408, 429, a store error) is
kept and sent again after an exponential backoff with jitter, at most ``max_retries`` times and for at most
``max_retry_time`` seconds; then it is given up. Ids are stable, so a batch that was stored but whose reply
was lost is replaced, not counted twice. A batch refused for what it is (any other 4xx) is never retried,
and neither are the items a 207/400 reply rejects. What is given up, refused or rejected is written to the
spill file (``spill.py``: JSON Lines with the reason, the status and the time), or counted as dropped
without one.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import logging
import random
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from costline.sdk.config import TrackerConfig
from costline.sdk.spill import SpillFile, dumps, item_index

log = logging.getLogger("costline.sdk")

Event = dict[str, Any]

#: errors logged per rejected batch (the rest are only counted)
LOGGED_ERRORS = 5
#: 4xx replies that may pass: retried like 5xx
RETRIED_STATUSES = frozenset({408, 429})
#: gzip level of request bodies: level 1 compresses a batch of generations 24:1 (level 5: 25:1) in less than half
#: the CPU time (docs/benchmarks.md, "SDK overhead"); zlib releases the GIL while it compresses
COMPRESS_LEVEL = 1


@dataclass(frozen=True, slots=True)
class SendResult:
    acknowledged: int = 0
    rejected: int = 0
    #: the batch may pass later: keep it and try again after a backoff
    retry: bool = False
    #: seconds the server asked us to wait (Retry-After)
    retry_after: float | None = None
    #: the batch was refused as a whole and will never pass
    refused: bool = False
    #: the batch was too large: send it in halves
    split: bool = False
    message: str = ""
    #: the HTTP status of the reply (None: no reply, or no HTTP)
    status: int | None = None
    #: the items the sink rejected: (position in the batch, its message)
    item_errors: tuple[tuple[int, str], ...] = ()


class Transport(Protocol):
    def send(self, events: list[Event]) -> SendResult: ...

    def close(self) -> None: ...


def _reply_errors(body: bytes, events: list[Event]) -> tuple[int, int, list[tuple[int, str]]]:
    """(accepted, rejected, [(position in the batch, message)]) from an ingest reply."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, 0, []
    if not isinstance(data, dict):
        return 0, 0, []
    errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
    return (int(data.get("accepted") or 0), int(data.get("rejected") or 0),
            [(item_index(str(e.get("message")), e.get("id"), events), str(e.get("message"))) for e in errors])


def _server_message(data: bytes) -> str:
    """The ``message`` of a JSON error reply, else the start of the body."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:1000]
    return data[:300].decode("utf-8", "replace")


class HttpTransport:
    """Native batches to a costline server."""

    def __init__(self, config: TrackerConfig) -> None:
        assert config.host is not None
        parts = urllib.parse.urlsplit(config.host)
        self.https = parts.scheme == "https"
        self.netloc = parts.netloc
        self.path = (parts.path.rstrip("/") or "") + "/v1/ingest"
        self.timeout = config.timeout
        self.compresslevel = COMPRESS_LEVEL
        self.headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": "costline-sdk",
        }
        if config.public_key or config.secret_key:
            token = base64.b64encode(f"{config.public_key or ''}:{config.secret_key or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        else:
            log.warning("costline: no COSTLINE_PUBLIC_KEY / COSTLINE_SECRET_KEY; the server will refuse events")
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._conn = cls(self.netloc, timeout=self.timeout)
        return self._conn

    def send(self, events: list[Event]) -> SendResult:
        body = gzip.compress(dumps({"events": events}), compresslevel=self.compresslevel, mtime=0)
        try:
            conn = self._connection()
            conn.request("POST", self.path, body=body, headers=self.headers)
            reply = conn.getresponse()
            status, data = reply.status, reply.read()
            retry_after = reply.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return SendResult(retry=True, message=f"{type(exc).__name__}: {exc}")
        if status == 200:
            return SendResult(acknowledged=len(events), status=status)
        if status in (207, 400):
            accepted, rejected, errors = _reply_errors(data, events)
            if accepted + rejected == len(events) and len(errors) == rejected:
                return SendResult(acknowledged=accepted, rejected=rejected, status=status, item_errors=tuple(errors),
                                  message="; ".join(m for _, m in errors[:LOGGED_ERRORS]))
        if status == 413 and len(events) > 1:
            return SendResult(split=True, message="413: batch too large", status=status)
        text = _server_message(data)
        if status in RETRIED_STATUSES or status >= 500:
            wait = None
            if retry_after and retry_after.strip().isdigit():
                wait = float(retry_after.strip())
            return SendResult(retry=True, retry_after=wait, message=f"HTTP {status}: {text}", status=status)
        return SendResult(refused=True, message=f"HTTP {status}: {text}", status=status)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken socket must not matter
                self._conn.close()
            self._conn = None


class EmbeddedTransport:
    """The ingestion pipeline on a store in this process (opened lazily, on the worker thread)."""

    def __init__(self, config: TrackerConfig) -> None:
        assert config.store_url is not None
        self.url = config.store_url
        self.public_key = config.public_key
        self._pipeline: Any = None
        self._store: Any = None
        self._project_id: str | None = None

    def _open(self) -> None:
        from costline.api import default_price_book
        from costline.ingest.pipeline import Pipeline
        from costline.store import open_store

        store = open_store(self.url)
        try:
            self._project_id = self._project(store)
        except Exception:
            store.close()
            raise
        self._store = store
        self._pipeline = Pipeline(store, default_price_book(), lambda: datetime.now(UTC))

    def _project(self, store: Any) -> str:
        from costline.store.base import redact_url

        if self.public_key:
            key = store.find_key_by_public(self.public_key)
            if key is None:
                raise LookupError(f"no project has the public key {self.public_key!r} in {redact_url(self.url)}")
            return str(key.project_id)
        projects = store.list_projects()
        if len(projects) == 1:
            return str(projects[0].id)
        if projects:
            raise LookupError(f"{redact_url(self.url)} has {len(projects)} projects; set public_key to choose one")
        from costline.server.auth import create_project

        new = create_project(store, "default", datetime.now(UTC))
        log.warning("costline: created project 'default' (%s) in %s", new.project.id, redact_url(self.url))
        return new.project.id

    def send(self, events: list[Event]) -> SendResult:
        from costline.ingest.native import decode_native

        try:
            if self._pipeline is None:
                self._open()
            decoded = decode_native(orjson.loads(dumps({"events": events})))
            if decoded.observations or decoded.traces:
                assert self._project_id is not None
                self._pipeline.ingest(self._project_id, decoded, "native")
        except LookupError as exc:
            return SendResult(refused=True, message=str(exc))
        except Exception as exc:  # a store that is busy or away: try again later
            self.close()
            return SendResult(retry=True, message=f"{type(exc).__name__}: {exc}")
        errors = [(item_index(e.message, e.id, events), e.message) for e in decoded.errors]
        return SendResult(acknowledged=len(decoded.accepted), rejected=len(errors), item_errors=tuple(errors),
                          message="; ".join(m for _, m in errors[:LOGGED_ERRORS]))

    def close(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                log.debug("costline: closing the embedded store failed", exc_info=True)
        self._store = self._pipeline = None


class Stats:
    """Counters, written by the worker (and by the app's thread for drops); read with ``snapshot``."""

    __slots__ = ("dropped", "failed_batches", "gave_up", "rejected", "restored", "retries", "sent", "spilled")

    def __init__(self) -> None:
        self.sent = self.dropped = self.rejected = self.failed_batches = 0
        self.spilled = self.retries = self.restored = self.gave_up = 0


class Shipper:
    """A bounded buffer and the background thread that empties it (or, with no transport, just keeps it)."""

    def __init__(self, config: TrackerConfig, transport: Transport | None) -> None:
        self.config = config
        self.transport = transport
        self.queue: deque[Event] = deque()
        self.stats = Stats()
        self.max_buffer = config.max_buffer
        self.batch_size = config.batch_size
        self._batch: list[Event] | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._deadline = 0.0
        self._idle = threading.Condition()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._retrying_since: float | None = None
        self.spill = SpillFile(config.spill_path) if config.spill_path is not None else None
        self._restore()
        if transport is not None:
            self._thread = threading.Thread(target=self._run, name="costline-sdk", daemon=True)
            self._thread.start()

    # -- the app's side -------------------------------------------------------------------------------

    def put(self, event: Event) -> None:
        queue = self.queue
        if len(queue) >= self.max_buffer:
            if self.transport is None:  # local mode keeps the newest events
                queue.popleft()
            self.stats.dropped += 1
            if self.stats.dropped in (1, 100, 10_000) or self.stats.dropped % 1_000_000 == 0:
                log.warning("costline: buffer full (%s events); %s events dropped so far",
                            self.max_buffer, self.stats.dropped)
            if self.transport is not None:
                return
        queue.append(event)
        # Event.set() takes a lock; while a batch waits the flag is already set (or the worker is busy and
        # takes the next batch without waiting), so the app's thread only reads it.
        if len(queue) >= self.batch_size and self.transport is not None and not self._wake.is_set():
            self._wake.set()

    @property
    def queued(self) -> int:
        batch = self._batch
        return len(self.queue) + (len(batch) if batch else 0)

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything put so far has been handled; False on timeout (events stay queued)."""
        if self.transport is None or self._thread is None or not self._thread.is_alive():
            return self.transport is None or self.queued == 0
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self.queue or self._batch is not None:
                remaining = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(remaining)
        return True

    def shutdown(self, timeout: float) -> None:
        """Send what can be sent within ``timeout``; spill (or count as dropped) the rest."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread is not None:
            self._deadline = time.monotonic() + timeout
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout + self.config.timeout + 1)
        left = list(self._batch or []) + list(self.queue)
        self._batch = None
        self.queue.clear()
        if left and self.transport is not None:
            self._spill(left)
        if self.transport is not None:
            self.transport.close()

    # -- spill file -----------------------------------------------------------------------------------

    def _spill(self, events: list[Event], kind: str = "shutdown", reason: str = "undelivered at shutdown",
               status: int | None = None, reasons: list[str] | None = None) -> None:
        """Write ``events`` to the spill file with why (``reasons``: one per event), or count them as dropped."""
        if not events:
            return
        if self.spill is None:
            if kind != "rejected":  # rejected items are counted in ``rejected`` already
                self.stats.dropped += len(events)
            log.warning("costline: %s events %s were dropped (set spill_path / COSTLINE_SPILL_PATH to keep them)",
                        len(events), "undelivered at shutdown" if kind == "shutdown" else f"{kind} ({reason})")
            return
        try:
            self.spill.append(events, kind=kind, status=status, reasons=reasons or [reason] * len(events))
        except OSError as exc:
            self.stats.dropped += len(events)
            log.error("costline: could not write %s events to %s: %s", len(events), self.spill.path, exc)
            return
        self.stats.spilled += len(events)
        log.warning("costline: %s events written to %s (%s: %s)", len(events), self.spill.path, kind, reason)

    def _restore(self) -> None:
        if self.spill is None or self.transport is None:
            return
        try:
            events = self.spill.take_resendable()
        except OSError as exc:
            log.error("costline: could not read the spill file %s: %s", self.spill.path, exc)
            return
        self.queue.extend(events)
        self.stats.restored = len(events)
        if events:
            log.info("costline: %s events restored from %s", len(events), self.spill.path)

    # -- the worker -----------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while True:
            try:
                if self._batch is None:
                    if not self.queue:
                        if self._stopping:
                            break
                        self._wake.wait(self.config.flush_interval)
                        self._wake.clear()
                        if not self.queue:
                            self._notify_idle()
                            continue
                    self._batch = self._take()
                if self._stopping and time.monotonic() >= self._deadline:
                    break
                delay = self._send_batch(failures)
                if delay is None:
                    failures = 0
                    self._notify_idle()
                    continue
                failures += 1
                self.stats.retries += 1
                if self._stopping:
                    delay = min(delay, max(0.0, self._deadline - time.monotonic()))
                    if delay <= 0:
                        break
                if delay > 0:
                    self._sleep(delay)
            except Exception:  # the worker must survive anything; never lose the batch silently
                log.exception("costline: unexpected error in the sender thread")
                self._sleep(self.config.min_backoff or 0.1)
        self._notify_idle()

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(min(remaining, 0.25))
            self._wake.clear()

    def _take(self) -> list[Event]:
        batch: list[Event] = []
        queue = self.queue
        while queue and len(batch) < self.batch_size:
            batch.append(queue.popleft())
        return batch

    def _send_batch(self, failures: int) -> float | None:
        """Send the current batch; None when it is done with, else the delay before trying again."""
        batch = self._batch
        assert batch is not None and self.transport is not None
        result = self.transport.send(batch)
        stats = self.stats
        if result.split:
            half = len(batch) // 2
            self.queue.extendleft(reversed(batch[half:]))
            self._batch = batch[:half]
            self.batch_size = max(1, min(self.batch_size, half))
            log.warning("costline: %s; sending batches of at most %s events", result.message, self.batch_size)
            return 0.0
        if result.retry:
            now = time.monotonic()
            if failures == 0 or self._retrying_since is None:
                self._retrying_since = now
            if failures >= self.config.max_retries or now - self._retrying_since >= self.config.max_retry_time:
                stats.failed_batches += 1
                stats.gave_up += len(batch)
                log.error("costline: giving up a batch of %s events after %s attempts in %.0f s (%s)",
                          len(batch), failures + 1, now - self._retrying_since, result.message)
                self._spill(batch, "gave_up", f"gave up after {failures + 1} attempts: {result.message}",
                            result.status)
                self._batch = self._retrying_since = None
                return None
            if failures == 0 or failures % 10 == 0:
                log.warning("costline: sending %s events failed (%s); retrying", len(batch), result.message)
            base = min(self.config.max_backoff, self.config.min_backoff * float(2 ** min(failures, 30)))
            delay = base / 2 + random.uniform(0, base / 2)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, self.config.max_backoff))
            left = self.config.max_retry_time - (now - self._retrying_since)
            return max(0.0, min(delay, left))
        self._retrying_since = None
        if result.refused:
            stats.failed_batches += 1
            log.error("costline: the sink refused a batch of %s events (%s); not retried",
                      len(batch), result.message)
            self._spill(batch, "refused", result.message, result.status)
        else:
            stats.sent += result.acknowledged
            if result.rejected:
                stats.rejected += result.rejected
                log.error("costline: %s of %s events rejected: %s", result.rejected, len(batch), result.message)
                rejected = [(batch[i], message) for i, message in result.item_errors if 0 <= i < len(batch)]
                self._spill([e for e, _ in rejected], "rejected", "rejected by the sink", result.status,
                            [m for _, m in rejected])
            if failures:
                log.info("costline: sending works again")
        self._batch = None
        return None

    def _notify_idle(self) -> None:
        with self._idle:
            self._idle.notify_all()
