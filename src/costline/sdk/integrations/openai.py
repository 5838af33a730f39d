"""OpenAI: ``instrument(client)`` records every Chat Completions, Responses and embeddings call as a priced
generation (``pip install 'costline[openai]'``).

``instrument`` replaces ``create`` on the client's ``chat.completions``, ``responses`` and ``embeddings``
resources (on the instance, once) and returns the same client; ``openai.OpenAI`` and ``openai.AsyncOpenAI``
(and the Azure clients) work alike. The helpers built on ``create`` (``chat.completions.stream()``,
``responses.stream()``) are covered too. Streamed chat completions get ``stream_options.include_usage``
when the caller did not set it, and then the extra usage-only chunk (``choices: []``) is not shown to the
caller. See docs/sdk.md, "Integrations: OpenAI and Anthropic".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from costline.sdk.integrations._record import Call, Holder, attach, dump, given, observe_stream, patch
from costline.sdk.integrations._record import call_through as _through
from costline.sdk.tracker import Tracker

PROVIDER = "openai"
_ATTR = "_costline_openai"
C = TypeVar("C")


def instrument(client: C, tracker: Tracker | None = None) -> C:
    """Record ``client``'s calls with ``tracker`` (default: ``get_tracker()`` at each call). Returns the same
    client. Calling it again only changes the tracker (when one is given)."""
    holder = attach(client, _ATTR, tracker)
    if holder is None:
        return client
    resources: list[tuple[Callable[[], Any], Callable[[Holder, Callable[..., Any]], Callable[..., Any]]]] = [
        (lambda: client.chat.completions, _chat), (lambda: client.responses, _responses),  # type: ignore[attr-defined]
        (lambda: client.embeddings, _embeddings),  # type: ignore[attr-defined]
    ]
    for get, wrap in resources:
        try:
            resource = get()
        except AttributeError:  # an older client without this API
            continue
        patch(resource, "create", _maker(wrap, holder))
    return client


def _maker(wrap: Callable[[Holder, Callable[..., Any]], Callable[..., Any]], holder: Holder
           ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        return wrap(holder, original)
    return make


# -- chat.completions.create ----------------------------------------------------------------------------

def _chat(holder: Holder, original: Callable[..., Any]) -> Callable[..., Any]:
    def create(*args: Any, **kwargs: Any) -> Any:
        call = Call(holder, "openai.chat.completions", PROVIDER, kwargs.get("model"), kwargs)
        injected = False
        if kwargs.get("stream") is True:
            options = kwargs.get("stream_options")
            if not given(options):
                options = {}
            if isinstance(options, Mapping) and "include_usage" not in options:
                kwargs["stream_options"] = {**options, "include_usage": True}
                injected = True

        def on_result(result: Any) -> None:
            if kwargs.get("stream") is True:
                _watch_chat_stream(call, result, injected)
            else:
                call.finish(model=_text(result, "model"), tier=getattr(result, "service_tier", None),
                            raw_usage=_usage_payload(result), usage_format=PROVIDER,
                            problem="the response has no usage")

        return _through(call, original, args, kwargs, on_result)

    return create


def _watch_chat_stream(call: Call, stream: Any, injected: bool) -> None:
    seen: dict[str, Any] = {}

    def on_item(chunk: Any) -> bool:
        call.first_item()
        seen["model"] = _text(chunk, "model") or seen.get("model")
        seen["tier"] = getattr(chunk, "service_tier", None) or seen.get("tier")
        usage = getattr(chunk, "usage", None)
        if usage is None:
            return True
        seen["usage"] = usage
        # the usage-only chunk we asked for: user code reading choices[0] never expected it
        return not (injected and not getattr(chunk, "choices", None))

    def on_end(error: BaseException | None) -> None:
        usage = seen.get("usage")
        call.finish(model=seen.get("model"), tier=seen.get("tier"), error=error,
                    raw_usage=None if usage is None else {"usage": dump(usage)}, usage_format=PROVIDER,
                    problem="the stream reported no usage (stream_options.include_usage is off, or it "
                            "ended early)")

    _watch(call, stream, on_item, on_end)


# -- responses.create -----------------------------------------------------------------------------------

_FINAL = ("response.completed", "response.incomplete", "response.failed")


def _responses(holder: Holder, original: Callable[..., Any]) -> Callable[..., Any]:
    def create(*args: Any, **kwargs: Any) -> Any:
        call = Call(holder, "openai.responses", PROVIDER, kwargs.get("model"), kwargs)

        def on_result(result: Any) -> None:
            if kwargs.get("stream") is True:
                _watch_responses_stream(call, result)
            else:
                _finish_response(call, result, None)

        return _through(call, original, args, kwargs, on_result)

    return create


def _finish_response(call: Call, response: Any, error: BaseException | str | None,
                     problem: str = "the response has no usage") -> None:
    usage = getattr(response, "usage", None)
    payload = None
    if usage is not None:
        output = [{"type": getattr(item, "type", None)} for item in (getattr(response, "output", None) or ())]
        payload = {"object": "response", "usage": dump(usage), "output": output}
    call.finish(model=_text(response, "model"), tier=getattr(response, "service_tier", None), raw_usage=payload,
                usage_format=PROVIDER, error=error, problem=problem)


def _watch_responses_stream(call: Call, stream: Any) -> None:
    seen: dict[str, Any] = {}

    def on_item(event: Any) -> bool:
        call.first_item()
        kind = getattr(event, "type", None)
        if kind in _FINAL or kind == "response.created":
            seen["response"] = getattr(event, "response", None)
        elif kind == "error":
            seen["failure"] = f"error event: {getattr(event, 'code', None)}: {getattr(event, 'message', None)}"
        return True

    def on_end(error: BaseException | None) -> None:
        failed: BaseException | str | None = error or seen.get("failure")
        response = seen.get("response")
        if response is None:
            call.finish(error=failed, problem="the stream ended before response.completed")
        else:
            _finish_response(call, response, failed, "the stream ended before response.completed")

    _watch(call, stream, on_item, on_end)


# -- embeddings.create ----------------------------------------------------------------------------------

def _embeddings(holder: Holder, original: Callable[..., Any]) -> Callable[..., Any]:
    def create(*args: Any, **kwargs: Any) -> Any:
        call = Call(holder, "openai.embeddings", PROVIDER, kwargs.get("model"), kwargs)

        def on_result(result: Any) -> None:
            usage = getattr(result, "usage", None)
            call.finish(model=_text(result, "model"), usage_format=PROVIDER, problem="the response has no usage",
                        raw_usage=None if usage is None else {"object": "list", "usage": dump(usage)})

        return _through(call, original, args, kwargs, on_result)

    return create


# -- shared ---------------------------------------------------------------------------------------------

def _watch(call: Call, stream: Any, on_item: Callable[[Any], bool], on_end: Callable[[BaseException | None], None]
           ) -> None:
    if not observe_stream(stream, on_item, on_end):
        call.finish(problem=f"costline cannot read a {type(stream).__name__} stream; the call is not priced")


def _text(obj: Any, name: str) -> str | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, str) and value else None


def _usage_payload(result: Any) -> dict[str, Any] | None:
    usage = getattr(result, "usage", None)
    return None if usage is None else {"usage": dump(usage)}


__all__ = ["instrument"]
