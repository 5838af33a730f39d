"""Traces, spans and generations, and the context variables that nest them.

The current trace and the current observation live in ``contextvars``: a span or generation opened inside
another gets its ``parent_id`` and ``trace_id`` from them, in threads that copy the context and in asyncio
tasks (which copy it when created). A span or generation opened with no trace around it opens an implicit
trace named after it, so ``update_current_trace`` works inside a top-level ``@observe`` function.

Handles never raise into the application: a bad update is logged and ignored (bad usage leaves the
generation unpriced, with the reason in ``breakdown.reason``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from costline.core.cost import CostBreakdown
from costline.core.usage import Usage
from costline.sdk.spill import wire_cost, wire_usage

if TYPE_CHECKING:
    from costline.sdk.tracker import Tracker

log = logging.getLogger("costline.sdk")

CURRENT_TRACE: ContextVar[TraceHandle | None] = ContextVar("costline_trace", default=None)
CURRENT_OBSERVATION: ContextVar[ObservationHandle | None] = ContextVar("costline_observation", default=None)

_Tokens = tuple[Token["TraceHandle | None"], "Token[ObservationHandle | None] | None"]

#: set by ``costline.sdk.budget`` while a budget guard is open anywhere in the process: called with the metadata
#: of every generation opened (``tracker.generation``, ``record_generation``, the integrations) to add the
#: guard's reservation id. ``None`` otherwise, so the hot path pays one global lookup.
generation_hook: Callable[[dict[str, Any]], None] | None = None


def utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _reset(var: ContextVar[Any], token: Token[Any] | None, previous: object) -> None:
    if token is None:
        return
    try:
        var.reset(token)
    except ValueError:  # ended in another context (a generator finalized elsewhere): restore by value
        var.set(previous)


class TraceHandle:
    """A trace: attributes that every observation in it inherits. Sent as one ``trace`` event when it ends."""

    __slots__ = ("_ended", "_previous", "_tokens", "_tracker", "environment", "id", "metadata", "name",
                 "release", "session_id", "start_time", "tags", "user_id")

    def __init__(self, tracker: Tracker, *, id: str | None = None, name: str | None = None,
                 user_id: str | None = None, session_id: str | None = None, tags: Sequence[str] | None = None,
                 metadata: Mapping[str, Any] | None = None, environment: str | None = None,
                 release: str | None = None, start_time: datetime | None = None) -> None:
        self._tracker = tracker
        self.id = id or tracker.new_id()
        self.name = name
        self.user_id = user_id
        self.session_id = session_id
        self.tags: list[str] = list(tags or ())
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.environment = environment or tracker.config.environment
        self.release = release or tracker.config.release
        self.start_time = utc(start_time)
        self._ended = False
        self._tokens: list[_Tokens] = []
        self._previous: list[tuple[TraceHandle | None, ObservationHandle | None]] = []

    def update(self, *, name: str | None = None, user_id: str | None = None, session_id: str | None = None,
               tags: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None,
               environment: str | None = None, release: str | None = None) -> None:
        """Set trace attributes; ``tags`` are added, ``metadata`` keys merged."""
        try:
            if name is not None:
                self.name = str(name)
            if user_id is not None:
                self.user_id = str(user_id)
            if session_id is not None:
                self.session_id = str(session_id)
            if tags is not None:
                self.tags.extend(str(t) for t in ([tags] if isinstance(tags, str) else tags) if t not in self.tags)
            if metadata is not None:
                self.metadata.update(metadata)
            if environment is not None:
                self.environment = str(environment)
            if release is not None:
                self.release = str(release)
        except Exception:
            log.exception("costline: ignoring a bad trace update")

    def event(self) -> dict[str, Any]:
        return {
            "type": "trace", "id": self.id, "name": self.name, "timestamp": self.start_time,
            "user_id": self.user_id, "session_id": self.session_id, "tags": list(self.tags),
            "metadata": dict(self.metadata) if self.metadata else None,
            "environment": self.environment, "release": self.release,
        }

    def end(self) -> None:
        """Send the trace event (once)."""
        if self._ended:
            return
        self._ended = True
        self._tracker.emit(self.event())

    def activate(self) -> _Tokens:
        return CURRENT_TRACE.set(self), CURRENT_OBSERVATION.set(None)

    def __enter__(self) -> TraceHandle:
        try:
            self._previous.append((CURRENT_TRACE.get(), CURRENT_OBSERVATION.get()))
            self._tokens.append(self.activate())
        except Exception:
            log.exception("costline: could not enter the trace")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._tokens:
                trace_token, obs_token = self._tokens.pop()
                trace_prev, obs_prev = self._previous.pop()
                _reset(CURRENT_OBSERVATION, obs_token, obs_prev)
                _reset(CURRENT_TRACE, trace_token, trace_prev)
            self.end()
        except Exception:
            log.exception("costline: could not end the trace")


class ObservationHandle:
    """A span (``type="span"``) or a generation. Sent as one event when it ends."""

    __slots__ = ("_ended", "_implicit_trace", "_previous", "_tokens", "_tracker", "attributes", "breakdown",
                 "completion_start_time", "cost", "end_time", "id", "level", "metadata", "model",
                 "model_parameters", "name", "parent_id", "provider", "start_time", "status_message", "trace",
                 "type", "usage")

    def __init__(self, tracker: Tracker, type: str, *, name: str | None = None, model: str | None = None,
                 provider: str | None = None, metadata: Mapping[str, Any] | None = None,
                 attributes: Mapping[str, str] | None = None, start_time: datetime | None = None,
                 id: str | None = None, model_parameters: Mapping[str, Any] | None = None) -> None:
        self._tracker = tracker
        self.type = type
        self.id = id or tracker.new_id()
        self.name = name
        self.model = model
        self.provider = provider
        self.metadata: dict[str, Any] = dict(metadata or {})
        hook = generation_hook  # read once: another thread may clear it
        if hook is not None and type == "generation":
            hook(self.metadata)
        self.attributes: dict[str, str] | None = dict(attributes) if attributes else None
        self.model_parameters = dict(model_parameters) if model_parameters else None
        self.start_time = utc(start_time)
        self.end_time: datetime | None = None
        self.completion_start_time: datetime | None = None
        self.usage: Usage | None = None
        self.cost: dict[str, Decimal] | None = None
        #: the locally computed cost (``None`` until usage or a cost is set)
        self.breakdown: CostBreakdown | None = None
        self.level: str | None = None
        self.status_message: str | None = None
        parent = CURRENT_OBSERVATION.get()
        trace = CURRENT_TRACE.get()
        self._implicit_trace = trace is None
        if trace is None:
            trace = TraceHandle(tracker, name=name, start_time=self.start_time)
        self.trace = trace
        self.parent_id = parent.id if parent is not None and parent.trace is trace else None
        self._ended = False
        self._tokens: list[_Tokens] = []
        self._previous: list[tuple[TraceHandle | None, ObservationHandle | None]] = []

    def update(self, *, name: str | None = None, model: str | None = None, provider: str | None = None,
               usage: Usage | Mapping[str, Any] | None = None, raw_usage: Mapping[str, Any] | None = None,
               usage_format: str | None = None, cost: Mapping[str, Any] | None = None,
               metadata: Mapping[str, Any] | None = None, attributes: Mapping[str, str] | None = None,
               level: str | None = None, status_message: str | None = None,
               completion_start_time: datetime | None = None,
               model_parameters: Mapping[str, Any] | None = None) -> CostBreakdown | None:
        """Set fields; with usage (costline units, or ``raw_usage`` in ``usage_format``) or a cost, price the
        generation now (as of its start time) and return the breakdown."""
        try:
            if name is not None:
                self.name = str(name)
            if model is not None:
                self.model = str(model)
            if provider is not None:
                self.provider = str(provider)
            if metadata is not None:
                self.metadata.update(metadata)
            if attributes is not None:
                self.attributes = {**(self.attributes or {}), **{str(k): str(v) for k, v in attributes.items()}}
            if model_parameters is not None:
                self.model_parameters = {**(self.model_parameters or {}), **model_parameters}
            if level is not None:
                self.level = str(level).upper()
            if status_message is not None:
                self.status_message = str(status_message)
            if completion_start_time is not None:
                self.completion_start_time = utc(completion_start_time)
            if cost is not None:
                self.cost = self._tracker.parse_cost(cost)
            priced = False
            if usage is not None or raw_usage is not None:
                parsed = self._tracker.parse_usage(usage, raw_usage, usage_format)
                if parsed.model and not self.model:
                    self.model = parsed.model
                if parsed.provider and not self.provider:
                    self.provider = parsed.provider
                if parsed.error:
                    self.level = self.level or "WARNING"
                    self.status_message = self.status_message or parsed.error
                self.usage = parsed.usage
                if parsed.cost and self.cost is None:
                    self.cost = dict(parsed.cost)
                self.breakdown = self._tracker.price(
                    self.model, self.provider, parsed.usage, self.start_time, self.attributes, self.cost,
                    error=parsed.error)
                priced = True
            if not priced and (cost is not None or (model is not None and self.usage is not None)
                               or (attributes is not None and self.usage is not None)):
                self.breakdown = self._tracker.price(self.model, self.provider, self.usage, self.start_time,
                                                     self.attributes, self.cost)
        except Exception:
            log.exception("costline: ignoring a bad update of %s %s", self.type, self.id)
        return self.breakdown

    def event(self) -> dict[str, Any]:
        trace = self.trace
        return {
            "type": self.type, "id": self.id, "trace_id": trace.id, "parent_id": self.parent_id,
            "name": self.name, "start_time": self.start_time, "end_time": self.end_time,
            "completion_start_time": self.completion_start_time, "model": self.model,
            "provider": self.provider, "usage": None if self.usage is None else wire_usage(self.usage),
            "cost": None if self.cost is None else wire_cost(self.cost),
            "attributes": self.attributes, "metadata": self.metadata or None,
            "user_id": trace.user_id, "session_id": trace.session_id,
            "environment": trace.environment, "release": trace.release,
            "level": self.level, "status_message": self.status_message,
            "model_parameters": self.model_parameters,
        }

    def end(self, end_time: datetime | None = None) -> None:
        """Send the observation (once); an implicit trace ends with it."""
        if self._ended:
            return
        self._ended = True
        try:
            self.end_time = utc(end_time)
            self._tracker.emit(self.event())
            if self._implicit_trace:
                self.trace.end()
        except Exception:
            log.exception("costline: could not record %s %s", self.type, self.id)

    def record_error(self, exc: BaseException) -> None:
        self.level = "ERROR"
        self.status_message = f"{type(exc).__name__}: {exc}"[:2000]

    def activate(self) -> _Tokens:
        return CURRENT_TRACE.set(self.trace), CURRENT_OBSERVATION.set(self)

    def deactivate(self, tokens: _Tokens, previous: tuple[TraceHandle | None, ObservationHandle | None]) -> None:
        _reset(CURRENT_OBSERVATION, tokens[1], previous[1])
        _reset(CURRENT_TRACE, tokens[0], previous[0])

    def __enter__(self) -> ObservationHandle:
        try:
            self._previous.append((CURRENT_TRACE.get(), CURRENT_OBSERVATION.get()))
            self._tokens.append(self.activate())
        except Exception:
            log.exception("costline: could not enter %s", self.type)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is not None and not isinstance(exc, GeneratorExit):
                self.record_error(exc)
            if self._tokens:
                self.deactivate(self._tokens.pop(), self._previous.pop())
        except Exception:
            log.exception("costline: could not leave %s", self.type)
        self.end()


def current_trace() -> TraceHandle | None:
    return CURRENT_TRACE.get()


def current_observation() -> ObservationHandle | None:
    return CURRENT_OBSERVATION.get()
