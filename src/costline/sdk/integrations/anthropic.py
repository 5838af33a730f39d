"""Anthropic: ``instrument(client)`` records every ``messages.create`` call (plain or ``stream=True``) and
every ``messages.stream(...)`` as a priced generation (``pip install 'costline[anthropic]'``).

``instrument`` replaces ``create`` and ``stream`` on the client's ``messages`` resource (on the instance,
once) and returns the same client; ``anthropic.Anthropic`` and ``anthropic.AsyncAnthropic`` work alike.
Streamed usage is ``message_start``'s ``message.usage`` merged with the last ``message_delta``'s
cumulative ``usage`` (``costline.extract_stream_usage``); cache writes keep their 5-minute/1-hour split.
See docs/sdk.md, "Integrations: OpenAI and Anthropic".
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from costline.sdk.integrations._record import Call, Holder, attach, dump, observe_stream, patch
from costline.sdk.integrations._record import call_through as _through
from costline.sdk.tracker import Tracker

PROVIDER = "anthropic"
NAME = "anthropic.messages"
_ATTR = "_costline_anthropic"
C = TypeVar("C")


def instrument(client: C, tracker: Tracker | None = None) -> C:
    """Record ``client``'s calls with ``tracker`` (default: ``get_tracker()`` at each call). Returns the same
    client. Calling it again only changes the tracker (when one is given)."""
    holder = attach(client, _ATTR, tracker)
    if holder is None:
        return client
    messages = client.messages  # type: ignore[attr-defined]
    patch(messages, "create", lambda original: _create(holder, original))
    patch(messages, "stream", lambda original: _stream(holder, original))
    return client


def _create(holder: Holder, original: Callable[..., Any]) -> Callable[..., Any]:
    def create(*args: Any, **kwargs: Any) -> Any:
        call = Call(holder, NAME, PROVIDER, kwargs.get("model"), kwargs)

        def on_result(result: Any) -> None:
            if kwargs.get("stream") is True:
                _watch(call, result)
            else:
                usage = getattr(result, "usage", None)
                call.finish(model=_text(result, "model"), tier=getattr(usage, "service_tier", None),
                            raw_usage=None if usage is None else {"usage": dump(usage)}, usage_format=PROVIDER,
                            problem="the response has no usage")

        return _through(call, original, args, kwargs, on_result)

    return create


def _watch(call: Call, stream: Any) -> None:
    """Watch a stream of raw events (``create(stream=True)``, or the one under ``messages.stream()``)."""
    events: list[dict[str, Any]] = []
    seen: dict[str, Any] = {}

    def on_item(event: Any) -> bool:
        call.first_item()
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = getattr(event, "message", None)
            usage = getattr(message, "usage", None)
            seen["model"] = _text(message, "model")
            seen["tier"] = getattr(usage, "service_tier", None)
            events.append({"type": kind, "message": {"model": seen["model"], "usage": dump(usage)}})
        elif kind == "message_delta" and getattr(event, "usage", None) is not None:
            events.append({"type": kind, "usage": dump(event.usage)})
        return True

    def on_end(error: BaseException | None) -> None:
        if not events:
            call.finish(error=error, problem="the stream ended before message_start")
            return
        from costline.extract import extract_stream_usage

        try:
            found = extract_stream_usage(events, PROVIDER)
        except Exception as exc:
            call.finish(model=seen.get("model"), error=error, problem=f"usage: {exc}")
            return
        call.finish(model=seen.get("model"), tier=seen.get("tier"), usage=found.usage, error=error)

    if not observe_stream(stream, on_item, on_end):
        call.finish(problem=f"costline cannot read a {type(stream).__name__} stream; the call is not priced")


def _stream(holder: Holder, original: Callable[..., Any]) -> Callable[..., Any]:
    def stream(*args: Any, **kwargs: Any) -> Any:
        call = Call(holder, NAME, PROVIDER, kwargs.get("model"), kwargs)
        try:
            manager = original(*args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        return _Manager(manager, call)

    return stream


class _Manager:
    """Stands in for ``MessageStreamManager`` / ``AsyncMessageStreamManager``: entering it makes the request
    (a failure is recorded and re-raised), and the raw stream under the helper's ``MessageStream`` is watched."""

    def __init__(self, manager: Any, call: Call) -> None:
        self._manager = manager
        self._call = call

    def _entered(self, helper: Any) -> Any:
        raw = getattr(helper, "_raw_stream", None)
        if raw is None:
            self._call.finish(problem="costline cannot read this MessageStream; the call is not priced")
        else:
            _watch(self._call, raw)
        return helper

    def __enter__(self) -> Any:
        try:
            helper = self._manager.__enter__()
        except BaseException as exc:
            self._call.finish(error=exc)
            raise
        return self._entered(helper)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Any:
        return self._manager.__exit__(kind, exc, tb)

    async def __aenter__(self) -> Any:
        try:
            helper = await self._manager.__aenter__()
        except BaseException as exc:
            self._call.finish(error=exc)
            raise
        return self._entered(helper)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> Any:
        return await self._manager.__aexit__(kind, exc, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


def _text(obj: Any, name: str) -> str | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, str) and value else None


__all__ = ["instrument"]
