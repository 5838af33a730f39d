"""The tracker: prices each model call on the app's thread, hands the event to the sender, never raises.

``Tracker(host=..., public_key=..., secret_key=...)`` sends to a costline server; ``Tracker(store_url=...)``
ingests into a store in this process; with neither, events are only kept in memory (a warning says so).
See docs/sdk.md.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import secrets
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costline.core.cost import CostBreakdown, calc_cost
from costline.core.money import to_decimal
from costline.core.resolve import PriceBook
from costline.core.usage import Usage
from costline.sdk import context as _context
from costline.sdk.config import TrackerConfig, resolve_config
from costline.sdk.context import (
    CURRENT_OBSERVATION,
    CURRENT_TRACE,
    ObservationHandle,
    TraceHandle,
    utc,
)
from costline.sdk.fastusage import fast_usage
from costline.sdk.sinks import EmbeddedTransport, HttpTransport, Shipper, Transport
from costline.sdk.spill import readable, wire_cost, wire_usage

log = logging.getLogger("costline.sdk")

_EMPTY_USAGE = Usage.validated({})
_now = datetime.now
_UTC = UTC


@dataclass(frozen=True, slots=True)
class ParsedUsage:
    usage: Usage | None
    model: str | None = None
    provider: str | None = None
    cost: Mapping[str, Decimal] | None = None
    error: str | None = None


class Tracker:
    """Records traces, spans and generations; see the module docstring and docs/sdk.md."""

    def __init__(
        self,
        host: str | None = None,
        public_key: str | None = None,
        secret_key: str | None = None,
        store_url: str | None = None,
        environment: str | None = None,
        release: str | None = None,
        flush_interval: float = 1.0,
        batch_size: int = 500,
        max_buffer: int = 10_000,
        spill_path: str | os.PathLike[str] | None = None,
        enabled: bool = True,
        timeout: float = 5.0,
        *,
        book: PriceBook | None = None,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retries: int | None = None,
        max_retry_time: float | None = None,
    ) -> None:
        self._book = book
        self._prefix = secrets.token_hex(10)
        self._counter = itertools.count(1)
        try:
            self.config = resolve_config(
                host=host, public_key=public_key, secret_key=secret_key, store_url=store_url,
                environment=environment, release=release,
                flush_interval=None if flush_interval == 1.0 else flush_interval,
                batch_size=None if batch_size == 500 else batch_size,
                max_buffer=None if max_buffer == 10_000 else max_buffer,
                spill_path=spill_path, enabled=None if enabled is True else enabled,
                timeout=None if timeout == 5.0 else timeout, min_backoff=min_backoff, max_backoff=max_backoff,
                max_retries=max_retries, max_retry_time=max_retry_time,
            )
        except Exception:
            log.exception("costline: bad tracker configuration; tracking is disabled")
            self.config = TrackerConfig(enabled=False)
        transport: Transport | None = None
        mode = self.config.mode
        try:
            if mode == "http":
                transport = HttpTransport(self.config)
            elif mode == "embedded":
                transport = EmbeddedTransport(self.config)
            elif mode == "local":
                log.warning("costline: neither COSTLINE_HOST nor COSTLINE_STORE_URL is set; costs are computed "
                            "but events are only kept in memory (the newest %s; see Tracker.events())",
                            self.config.max_buffer)
        except Exception:
            log.exception("costline: could not set up the %s sink; events are kept in memory only", mode)
            transport = None
        self._enabled = mode != "disabled"
        self._shipper = Shipper(self.config, transport)
        _TRACKERS.add(self)

    # -- ids, pricing, emitting (used by the handles) -------------------------------------------------

    def new_id(self) -> str:
        """A 32-hex-digit id: 20 random digits per tracker + a counter (unique, and cheap on the hot path)."""
        return f"{self._prefix}{next(self._counter):012x}"

    @property
    def book(self) -> PriceBook:
        if self._book is None:
            from costline.api import default_price_book

            self._book = default_price_book()
        return self._book

    def emit(self, event: dict[str, Any]) -> None:
        if self._enabled:
            self._shipper.put(event)

    def parse_usage(self, usage: Usage | Mapping[str, Any] | None, raw_usage: Mapping[str, Any] | None,
                    usage_format: str | None) -> ParsedUsage:
        """Costline units (``usage``) or a provider's usage object (``raw_usage`` + ``usage_format``)."""
        try:
            if raw_usage is not None:
                if not usage_format:
                    return ParsedUsage(None, error="raw_usage needs usage_format (openai, anthropic, ...)")
                from costline.extract import extract_usage

                found = extract_usage(raw_usage, usage_format)
                return ParsedUsage(found.usage, found.model, found.provider, found.provided_cost)
            if usage is None:
                return ParsedUsage(None)
            if isinstance(usage, Usage):
                return ParsedUsage(usage)
            if usage_format:
                from costline.extract import extract_usage

                found = extract_usage(usage, usage_format)
                return ParsedUsage(found.usage, found.model, found.provider, found.provided_cost)
            return ParsedUsage(fast_usage(usage))
        except Exception as exc:
            log.warning("costline: usage ignored: %s", exc)
            return ParsedUsage(None, error=f"usage: {exc}")

    def parse_cost(self, cost: Mapping[str, Any] | None) -> dict[str, Decimal] | None:
        if cost is None:
            return None
        try:
            return {str(unit): to_decimal(value, field=f"cost.{unit}") for unit, value in cost.items()}
        except Exception as exc:
            log.warning("costline: cost ignored: %s", exc)
            return None

    def price(self, model: str | None, provider: str | None, usage: Usage | None, at: datetime,
              attributes: Mapping[str, str] | None, cost: Mapping[str, Decimal] | None,
              error: str | None = None) -> CostBreakdown:
        """The cost as of ``at`` (timezone-aware) with the local book; unpriced (with the reason) when it cannot
        be priced. The same steps as ``costline.cost`` for a ``Usage`` and checked amounts, without its
        argument conversions (this runs on the app's thread for every generation)."""
        try:
            if error is not None and not cost:
                return calc_cost(_EMPTY_USAGE, None, at=at, model=model, provider=provider, unpriced_reason=error)
            if not model:
                return calc_cost(usage or _EMPTY_USAGE, None, at=at, provider=provider, provided=cost or None,
                                 unpriced_reason="no model given")
            book = self._book if self._book is not None else self.book
            provider_id = book.normalize_provider(provider)
            record = book.resolve(model, provider_id, at=at)
            return calc_cost(usage or _EMPTY_USAGE, record, at=at, attributes=attributes, provided=cost or None,
                             model=None if record else model, provider=provider_id if record is None else None)
        except Exception as exc:
            log.warning("costline: could not price %r: %s", model, exc)
            return calc_cost(_EMPTY_USAGE, None, at=at, model=model, provider=provider, unpriced_reason=str(exc))

    # -- tracing API ----------------------------------------------------------------------------------

    def trace(self, name: str | None = None, *, user_id: str | None = None, session_id: str | None = None,
              tags: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None,
              environment: str | None = None, release: str | None = None, id: str | None = None) -> TraceHandle:
        """A trace; use as a context manager (``with tracker.trace(name="chat", user_id="u1") as t:``)."""
        return TraceHandle(self, id=id, name=name, user_id=user_id, session_id=session_id, tags=tags,
                           metadata=metadata, environment=environment, release=release)

    def span(self, name: str | None = None, *, metadata: Mapping[str, Any] | None = None,
             type: str = "span", id: str | None = None) -> ObservationHandle:
        """A span (or ``type`` agent, tool, chain, retriever, ...) nested in the current trace/observation."""
        return ObservationHandle(self, type, name=name, metadata=metadata, id=id)

    def generation(self, name: str | None = None, *, model: str | None = None, provider: str | None = None,
                   usage: Usage | Mapping[str, Any] | None = None, raw_usage: Mapping[str, Any] | None = None,
                   usage_format: str | None = None, cost: Mapping[str, Any] | None = None,
                   metadata: Mapping[str, Any] | None = None, attributes: Mapping[str, str] | None = None,
                   model_parameters: Mapping[str, Any] | None = None, id: str | None = None) -> ObservationHandle:
        """A generation; set its usage now or later with ``update``; ``breakdown`` is its local cost."""
        handle = ObservationHandle(self, "generation", name=name, model=model, provider=provider,
                                   metadata=metadata, attributes=attributes, model_parameters=model_parameters,
                                   id=id)
        if usage is not None or raw_usage is not None or cost is not None:
            handle.update(usage=usage, raw_usage=raw_usage, usage_format=usage_format, cost=cost)
        return handle

    def record_generation(
        self,
        model: str,
        usage: Usage | Mapping[str, Any] | None = None,
        provider: str | None = None,
        usage_format: str | None = None,
        raw_usage: Mapping[str, Any] | None = None,
        name: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        attributes: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        cost: Mapping[str, Any] | None = None,
    ) -> CostBreakdown:
        """Record one finished model call and return its cost (priced as of ``start_time``, default now)."""
        try:
            start = _now(_UTC) if start_time is None else utc(start_time)
            error: str | None = None
            if raw_usage is None and usage_format is None:
                if usage is None or type(usage) is Usage:
                    parsed_usage = usage
                else:  # the common case: a mapping of quantities (as parse_usage, without its result object)
                    try:
                        parsed_usage = usage if isinstance(usage, Usage) else fast_usage(usage)
                    except Exception as exc:
                        log.warning("costline: usage ignored: %s", exc)
                        parsed_usage, error = None, f"usage: {exc}"
            else:
                parsed = self.parse_usage(usage, raw_usage, usage_format)
                parsed_usage, error = parsed.usage, parsed.error
                model = model or parsed.model or ""
                provider = provider or parsed.provider
                if parsed.cost and cost is None:
                    cost = parsed.cost
            provided = self.parse_cost(cost) if cost is not None else None
            attrs = dict(attributes) if attributes else None
            breakdown = self.price(model, provider, parsed_usage, start, attrs, provided, error=error)
            if self._enabled:
                event_id = f"{self._prefix}{next(self._counter):012x}"  # new_id(), inlined
                config = self.config
                hook = _context.generation_hook  # set while a budget guard is open (costline.sdk.budget)
                if hook is not None:
                    metadata = dict(metadata or {})
                    hook(metadata)
                trace = CURRENT_TRACE.get()
                if trace is None:
                    trace_id, parent_id, user_id, session_id = event_id, None, None, None
                    environment, release = config.environment, config.release
                else:
                    parent = CURRENT_OBSERVATION.get()
                    trace_id, user_id, session_id = trace.id, trace.user_id, trace.session_id
                    parent_id = parent.id if parent is not None and parent.trace is trace else None
                    environment, release = trace.environment, trace.release
                # Only JSON-ready values (str, int, None, datetime, plain dicts): the sender serialises the
                # batch in one orjson call, with no per-event conversion (docs/sdk.md "Delivery").
                event = {
                    "type": "generation", "id": event_id, "trace_id": trace_id, "parent_id": parent_id,
                    "name": name, "start_time": start, "end_time": start if end_time is None else utc(end_time),
                    "model": model or None, "provider": provider,
                    "usage": None if parsed_usage is None else wire_usage(parsed_usage),
                    "cost": None if provided is None else wire_cost(provided), "attributes": attrs,
                    "metadata": dict(metadata) if metadata else None, "user_id": user_id, "session_id": session_id,
                    "environment": environment, "release": release,
                    "level": "WARNING" if error else None, "status_message": error,
                }
                self._shipper.put(event)
            return breakdown
        except Exception as exc:
            log.exception("costline: could not record a generation of %r", model)
            return calc_cost(_EMPTY_USAGE, None, at=utc(None), model=str(model), unpriced_reason=str(exc))

    def update_current_trace(self, *, name: str | None = None, user_id: str | None = None,
                             session_id: str | None = None, tags: Sequence[str] | None = None,
                             metadata: Mapping[str, Any] | None = None, environment: str | None = None,
                             release: str | None = None) -> None:
        """Set attributes of the trace in context (inherited by observations recorded after this call)."""
        trace = CURRENT_TRACE.get()
        if trace is None:
            log.warning("costline: update_current_trace() outside a trace is ignored")
            return
        trace.update(name=name, user_id=user_id, session_id=session_id, tags=tags, metadata=metadata,
                     environment=environment, release=release)

    def update_current_generation(self, *, model: str | None = None, provider: str | None = None,
                                  usage: Usage | Mapping[str, Any] | None = None,
                                  raw_usage: Mapping[str, Any] | None = None, usage_format: str | None = None,
                                  cost: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
                                  attributes: Mapping[str, str] | None = None,
                                  name: str | None = None) -> CostBreakdown | None:
        """Update the generation in context and return its breakdown (``None`` outside a generation)."""
        current = CURRENT_OBSERVATION.get()
        if current is None or current.type != "generation":
            log.warning("costline: update_current_generation() outside a generation is ignored")
            return None
        return current.update(model=model, provider=provider, usage=usage, raw_usage=raw_usage,
                              usage_format=usage_format, cost=cost, metadata=metadata, attributes=attributes,
                              name=name)

    def update_current_span(self, *, name: str | None = None, metadata: Mapping[str, Any] | None = None,
                            level: str | None = None, status_message: str | None = None) -> None:
        current = CURRENT_OBSERVATION.get()
        if current is None:
            log.warning("costline: update_current_span() outside a span is ignored")
            return
        current.update(name=name, metadata=metadata, level=level, status_message=status_message)

    # -- delivery -------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event recorded so far is delivered (or refused); False if ``timeout`` passed."""
        try:
            return self._shipper.flush(timeout)
        except Exception:
            log.exception("costline: flush failed")
            return False

    def shutdown(self, timeout: float | None = None) -> None:
        """Deliver what can be delivered within ``timeout`` (default: the tracker's timeout), write the rest
        to the spill file (or count it as dropped) and stop the sender thread. Idempotent."""
        try:
            self._shipper.shutdown(self.config.timeout if timeout is None else timeout)
        except Exception:
            log.exception("costline: shutdown failed")
        self._enabled = False

    @property
    def stats(self) -> dict[str, int]:
        """Counters: queued (waiting or in flight), sent (acknowledged), dropped (lost: buffer full; or
        refused, rejected, given up or left at shutdown without a spill file), rejected (items a 207/400 reply
        refused), failed_batches (refused or given up), gave_up (events of batches retried to the cap),
        spilled (written to the spill file), retries, restored (read back from the spill file)."""
        s = self._shipper.stats
        return {"queued": self._shipper.queued, "sent": s.sent, "dropped": s.dropped, "rejected": s.rejected,
                "failed_batches": s.failed_batches, "gave_up": s.gave_up, "spilled": s.spilled,
                "retries": s.retries, "restored": s.restored}

    @property
    def mode(self) -> str:
        """``http``, ``embedded``, ``local`` (memory only) or ``disabled``."""
        return self.config.mode

    def events(self) -> list[dict[str, Any]]:
        """Copies of the events waiting in the buffer (in local mode: the newest ``max_buffer`` recorded), with
        ``usage`` as a ``Usage`` and ``cost`` amounts as ``Decimal`` (queued, they are JSON-ready dicts)."""
        return [readable(e) for e in list(self._shipper.queue)]

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


_TRACKERS: weakref.WeakSet[Tracker] = weakref.WeakSet()
_GLOBAL: Tracker | None = None
_GLOBAL_LOCK = threading.Lock()


def configure(**kwargs: Any) -> Tracker:
    """Build a tracker from ``kwargs`` (and the environment) and make it the process-wide one used by
    ``observe`` and ``get_tracker``; the previous one is shut down."""
    global _GLOBAL
    tracker = Tracker(**kwargs)
    with _GLOBAL_LOCK:
        previous, _GLOBAL = _GLOBAL, tracker
    if previous is not None:
        previous.shutdown()
    return tracker


def get_tracker() -> Tracker:
    """The process-wide tracker; built from the environment on first use."""
    global _GLOBAL
    tracker = _GLOBAL
    if tracker is None:
        with _GLOBAL_LOCK:
            if _GLOBAL is None:
                _GLOBAL = Tracker()
            tracker = _GLOBAL
    return tracker


def _shutdown_all() -> None:
    for tracker in list(_TRACKERS):
        tracker.shutdown()


atexit.register(_shutdown_all)
