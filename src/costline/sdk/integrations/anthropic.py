"""Anthropic: ``instrument(client)`` records every ``messages.create`` call as a priced generation
(``pip install 'costline[anthropic]'``).

``instrument`` replaces ``create`` on the client's ``messages`` resource (on the instance, once) and returns
the same client; ``anthropic.Anthropic`` and ``anthropic.AsyncAnthropic`` work alike. Non-streamed calls are
priced from the message's usage; streamed calls (``stream=True``) from ``message_start`` (input and cache
tokens) updated by ``message_delta`` (cumulative output), recorded when the stream ends or is closed. Cache
writes (5-minute and 1-hour) and reads are priced as such by costline's Anthropic extractor. See docs/sdk.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from costline.sdk.integrations._record import Call, Holder, call_through, dump, observe_stream, patch
from costline.sdk.tracker import Tracker

PROVIDER = "anthropic"
_ATTR = "_costline_anthropic"
C = TypeVar("C")


def instrument(client: C, tracker: Tracker | None = None) -> C:
    """Record ``client``'s ``messages.create`` calls with ``tracker`` (default: ``get_tracker()`` at each
    call). Returns the same client; calling it again only changes the tracker (when one is given)."""
    holder = getattr(client, _ATTR, None)
    if isinstance(holder, Holder):
        if tracker is not None:
            holder.tracker = tracker
        return client
    holder = Holder(tracker)
    setattr(client, _ATTR, holder)
    try:
        messages = client.messages  # type: ignore[attr-defined]
    except AttributeError:
        return client
    patch(messages, "create", _maker(holder))
    return client


def _maker(holder: Holder) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def create(*args: Any, **kwargs: Any) -> Any:
            call = Call(holder, "anthropic.messages", PROVIDER, kwargs.get("model"), kwargs)

            def on_result(result: Any) -> None:
                if kwargs.get("stream") is True:
                    _watch_stream(call, result)
                    return
                usage = getattr(result, "usage", None)
                call.finish(model=_text(result, "model"), raw_usage=None if usage is None else {"usage": dump(usage)},
                            usage_format=PROVIDER, tier=getattr(usage, "service_tier", None),
                            problem="the response has no usage")

            return call_through(call, original, args, kwargs, on_result)

        return create

    return make


def _watch_stream(call: Call, stream: Any) -> None:
    seen: dict[str, Any] = {"usage": {}}

    def on_item(event: Any) -> bool:
        call.first_item()
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = getattr(event, "message", None)
            seen["model"] = _text(message, "model")
            usage = getattr(message, "usage", None)
            if usage is not None:
                seen["usage"] = dict(dump(usage))
        elif kind == "message_delta":
            usage = getattr(event, "usage", None)
            if usage is not None:  # cumulative counts: the newest wins, absent ones keep message_start's
                seen["usage"].update({k: v for k, v in dump(usage).items() if v is not None})
        return True

    def on_end(error: BaseException | None) -> None:
        usage = seen["usage"]
        call.finish(model=seen.get("model"), raw_usage={"usage": usage} if usage else None, usage_format=PROVIDER,
                    tier=usage.get("service_tier"), error=error, problem="the stream reported no usage")

    if not observe_stream(stream, on_item, on_end):
        call.finish(problem=f"costline cannot read a {type(stream).__name__} stream; the call is not priced")


def _text(obj: Any, name: str) -> str | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, str) and value else None


__all__ = ["instrument"]
