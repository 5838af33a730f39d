"""``@observe``: a span (or generation) around every call of a function, sync or async, plain or generator.

The tracker is looked up at call time (``get_tracker()`` unless one is passed), so decorating before
``configure`` works. For generators the observation covers the whole iteration, and it is current only
while the generator's own code runs (never in the consumer's code between items).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, cast

from costline.sdk.context import CURRENT_OBSERVATION, CURRENT_TRACE, ObservationHandle
from costline.sdk.tracker import Tracker, get_tracker

log = logging.getLogger("costline.sdk")

F = TypeVar("F", bound=Callable[..., Any])


def _start(tracker: Tracker | None, as_type: str, name: str) -> ObservationHandle | None:
    try:
        chosen = tracker or get_tracker()
        if as_type == "generation":
            return chosen.generation(name)
        return chosen.span(name, type=as_type)
    except Exception:
        log.exception("costline: could not start an observation for %s", name)
        return None


def _fail(obs: ObservationHandle | None, exc: BaseException) -> None:
    if obs is not None:
        try:
            obs.record_error(exc)
        except Exception:
            log.exception("costline: could not record an error")


def _end(obs: ObservationHandle | None) -> None:
    if obs is not None:
        obs.end()


def observe(name: str | None = None, *, as_type: str = "span", tracker: Tracker | None = None) -> Callable[[F], F]:
    """Decorate a function: ``@observe()``, ``@observe(as_type="generation")``, ``@observe(name="step")``.

    Inside a generation, ``get_tracker().update_current_generation(model=..., usage=...)`` prices it.
    ``as_type`` is ``span`` (default), ``generation`` or another observation type (``tool``, ``agent``, ...).
    """

    def decorate(fn: F) -> F:
        label: str = name or str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "function"))

        if inspect.isasyncgenfunction(fn):
            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
                obs = _start(tracker, as_type, label)
                inner = fn(*args, **kwargs)
                try:
                    sent: Any = None
                    while True:
                        tokens = _enter(obs)
                        try:
                            item = await inner.asend(sent)
                        except StopAsyncIteration:
                            return
                        finally:
                            _leave(obs, tokens)
                        sent = yield item
                except BaseException as exc:
                    if not isinstance(exc, GeneratorExit):
                        _fail(obs, exc)
                    await inner.aclose()
                    raise
                finally:
                    _end(obs)
            return cast(F, agen_wrapper)

        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
                obs = _start(tracker, as_type, label)
                inner = fn(*args, **kwargs)
                try:
                    sent: Any = None
                    while True:
                        tokens = _enter(obs)
                        try:
                            item = inner.send(sent)
                        except StopIteration as stop:
                            return stop.value
                        finally:
                            _leave(obs, tokens)
                        sent = yield item
                except BaseException as exc:
                    if not isinstance(exc, GeneratorExit):
                        _fail(obs, exc)
                    inner.close()
                    raise
                finally:
                    _end(obs)
            return cast(F, gen_wrapper)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                obs = _start(tracker, as_type, label)
                tokens = _enter(obs)
                try:
                    return await fn(*args, **kwargs)
                except BaseException as exc:
                    _fail(obs, exc)
                    raise
                finally:
                    _leave(obs, tokens)
                    _end(obs)
            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            obs = _start(tracker, as_type, label)
            tokens = _enter(obs)
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                _fail(obs, exc)
                raise
            finally:
                _leave(obs, tokens)
                _end(obs)
        return cast(F, wrapper)

    return decorate


_Saved = tuple[Any, Any, Any] | None


def _enter(obs: ObservationHandle | None) -> _Saved:
    if obs is None:
        return None
    try:
        previous = (CURRENT_TRACE.get(), CURRENT_OBSERVATION.get())
        return obs.activate(), previous, None
    except Exception:
        log.exception("costline: could not enter an observation")
        return None


def _leave(obs: ObservationHandle | None, saved: _Saved) -> None:
    if obs is None or saved is None:
        return
    try:
        obs.deactivate(saved[0], saved[1])
    except Exception:
        log.exception("costline: could not leave an observation")
