"""What the OpenAI and Anthropic integrations share: one generation per call, stream observation, patching.

A ``Call`` opens a generation when the request starts (so it nests under the trace/span current *then*,
even when a stream is read elsewhere) and ends it once: with the response's usage, or with the error the
call raised. ``observe_stream`` watches a client's stream object in place (its ``_iterator`` and ``close``
are replaced on the instance), so the caller keeps the very object the client returned. Nothing here
raises into the application: failures of costline's own code are logged (logger ``costline.sdk``).
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from costline.core.cost import CostBreakdown
from costline.core.usage import Usage
from costline.sdk.context import ObservationHandle
from costline.sdk.tracker import Tracker, get_tracker

log = logging.getLogger("costline.sdk")

LAST_COST: ContextVar[CostBreakdown | None] = ContextVar("costline_last_cost", default=None)
WRAPPED = "__costline_wrapped__"
#: request parameters copied into the generation's ``model_parameters`` when given
PARAMETERS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "max_output_tokens",
              "reasoning_effort", "service_tier", "n", "seed", "dimensions")


def last_cost() -> CostBreakdown | None:
    """The local cost of the last call an integration finished in this context (``None`` when it failed,
    had no usage, or no call finished yet). Streams set it when they end."""
    return LAST_COST.get()


def given(value: object) -> bool:
    """False for ``None`` and the clients' "not given" sentinels (``NOT_GIVEN``, ``omit``)."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def dump(obj: Any) -> Any:
    """A pydantic object (or anything else) as plain data, without pydantic's serialization warnings."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_none=True, warnings=False)
    return obj


class Holder:
    """The tracker an instrumented client records with (``None``: ``get_tracker()`` at call time)."""

    def __init__(self, tracker: Tracker | None) -> None:
        self.tracker = tracker


def attach(client: object, attr: str, tracker: Tracker | None) -> Holder | None:
    """A new ``Holder`` stored on ``client`` under ``attr``; None when the client is instrumented already (then
    only its tracker changes, when one is given), so that patching happens once per client."""
    holder = getattr(client, attr, None)
    if isinstance(holder, Holder):
        if tracker is not None:
            holder.tracker = tracker
        return None
    holder = Holder(tracker)
    setattr(client, attr, holder)
    return holder


class Call:
    """One model call: a generation opened now and ended once by ``finish``."""

    __slots__ = ("ended", "handle", "started")

    def __init__(self, holder: Holder, name: str, provider: str, model: object, kwargs: Mapping[str, Any]) -> None:
        self.ended = False
        self.started = False
        self.handle: ObservationHandle | None = None
        try:
            params = {k: kwargs[k] for k in PARAMETERS if given(kwargs.get(k))
                      and isinstance(kwargs[k], str | int | float)}
            tracker = holder.tracker or get_tracker()
            self.handle = tracker.generation(name=name, provider=provider,
                                             model=str(model) if given(model) else None,
                                             model_parameters=params or None)
        except Exception:
            log.exception("costline: could not start a generation for %s", name)

    def first_item(self) -> None:
        """Mark the time the first streamed item arrived (``completion_start_time``)."""
        if not self.started:
            self.started = True
            if self.handle is not None:
                self.handle.update(completion_start_time=datetime.now(UTC))

    def finish(self, *, model: str | None = None, raw_usage: Mapping[str, Any] | None = None,
               usage_format: str | None = None, usage: Usage | None = None, tier: object = None,
               error: BaseException | str | None = None, problem: str | None = None) -> None:
        """End the generation: priced from ``raw_usage``/``usage``, marked ERROR for ``error`` (an exception,
        or a message when the provider reported a failure in the stream), WARNING with ``problem`` when there
        is no usage to price. Sets ``last_cost()``. Runs once; never raises."""
        if self.ended:
            return
        self.ended = True
        handle = self.handle
        breakdown: CostBreakdown | None = None
        try:
            if handle is not None:
                attributes = {"service_tier": str(tier)} if isinstance(tier, str) and tier else None
                if model:
                    handle.update(model=model)
                if raw_usage is not None or usage is not None:
                    breakdown = handle.update(raw_usage=raw_usage, usage=usage, usage_format=usage_format,
                                              attributes=attributes)
                elif attributes:
                    handle.update(attributes=attributes)
                if isinstance(error, BaseException):
                    handle.record_error(error)
                elif error is not None:
                    handle.update(level="ERROR", status_message=error)
                elif problem is not None and breakdown is None:
                    handle.update(level="WARNING", status_message=problem)
                handle.end()
        except Exception:
            log.exception("costline: could not record a model call")
        LAST_COST.set(None if error is not None else breakdown)


OnItem = Callable[[Any], bool]
OnEnd = Callable[[BaseException | None], None]


def observe_stream(stream: Any, on_item: OnItem, on_end: OnEnd) -> bool:
    """Watch ``stream`` (a client's ``Stream`` or ``AsyncStream``) in place: ``on_item(item)`` sees every
    item and returns False to hide it from the caller; ``on_end(error)`` runs once, when the stream is
    exhausted, fails, is closed or is dropped. False when the object cannot be watched (nothing changed)."""
    try:
        inner = stream._iterator
        is_async = hasattr(inner, "__anext__")
        if not is_async and not hasattr(inner, "__next__"):
            return False
        close = type(stream).close
    except Exception:
        return False
    done = [False]

    def end(error: BaseException | None) -> None:
        if not done[0]:
            done[0] = True
            try:
                on_end(error)
            except Exception:
                log.exception("costline: could not record a stream")

    def keep(item: Any) -> bool:
        try:
            return on_item(item)
        except Exception:
            log.exception("costline: could not read a streamed item")
            return True

    # the replacements hold a weak reference only: a dropped stream is still closed by reference counting
    ref = weakref.ref(stream)
    if is_async:
        stream._iterator = _watch_async(inner, keep, end)

        async def aclose_stream() -> None:
            try:
                target = ref()
                if target is not None:
                    await close(target)
            finally:
                end(None)

        stream.close = aclose_stream
    else:
        stream._iterator = _watch_sync(inner, keep, end)

        def close_stream() -> None:
            try:
                target = ref()
                if target is not None:
                    close(target)
            finally:
                end(None)

        stream.close = close_stream
    return True


def _watch_sync(inner: Iterator[Any], keep: Callable[[Any], bool], end: OnEnd) -> Iterator[Any]:
    try:
        for item in inner:
            if keep(item):
                yield item
    except GeneratorExit:
        end(None)
        raise
    except BaseException as exc:
        end(exc)
        raise
    finally:
        end(None)
        closer = getattr(inner, "close", None)
        if closer is not None:
            closer()


async def _watch_async(inner: AsyncIterator[Any], keep: Callable[[Any], bool], end: OnEnd) -> AsyncIterator[Any]:
    try:
        async for item in inner:
            if keep(item):
                yield item
    except GeneratorExit:
        end(None)
        raise
    except BaseException as exc:
        end(exc)
        raise
    finally:
        end(None)
        closer = getattr(inner, "aclose", None)
        if closer is not None:
            await closer()


def patch(resource: Any, method: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace ``resource.method`` on the instance with ``make(original)``, once (idempotent)."""
    try:
        original = getattr(resource, method)
    except Exception:
        log.warning("costline: %s has no %s; not instrumented", type(resource).__name__, method)
        return
    if getattr(original, WRAPPED, False):
        return
    wrapper = make(original)
    setattr(wrapper, WRAPPED, True)
    setattr(resource, method, wrapper)


def call_through(call: Call, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 on_result: Callable[[Any], Any]) -> Any:
    """Run the client's method; a coroutine (async clients) is awaited inside a wrapper coroutine. Errors
    are recorded on ``call`` and re-raised unchanged; ``on_result`` records the result (never raises)."""
    try:
        result = original(*args, **kwargs)
    except BaseException as exc:
        call.finish(error=exc)
        raise
    if inspect.isawaitable(result):
        return _await(call, result, on_result)
    return _safe(on_result, call, result)


async def _await(call: Call, pending: Any, on_result: Callable[[Any], Any]) -> Any:
    try:
        result = await pending
    except BaseException as exc:
        call.finish(error=exc)
        raise
    return _safe(on_result, call, result)


def _safe(on_result: Callable[[Any], Any], call: Call, result: Any) -> Any:
    try:
        on_result(result)
    except Exception:
        log.exception("costline: could not record a model call")
        call.finish(problem="costline could not read the response")
    return result
