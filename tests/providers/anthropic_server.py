"""A local server speaking Anthropic's Messages wire protocol (``POST /v1/messages``).

Shapes follow what api.anthropic.com sends (checked against the ``anthropic`` package's types: ``Message``,
``Usage``, ``CacheCreation``, ``RawMessageStartEvent``, ``RawContentBlockStartEvent``,
``RawContentBlockDeltaEvent``, ``RawContentBlockStopEvent``, ``RawMessageDeltaEvent`` /
``MessageDeltaUsage``, ``RawMessageStopEvent``):

* non-streaming: a ``message`` object whose ``usage`` has ``input_tokens`` (uncached only),
  ``cache_creation_input_tokens``, ``cache_read_input_tokens``, ``cache_creation`` (the write split by
  TTL: ``ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``), ``output_tokens``, ``service_tier``
  and, when web searches are configured, ``server_tool_use``.
* ``stream: true``: ``event: <type>`` / ``data:`` pairs: ``message_start`` (the full input usage and a
  small provisional ``output_tokens``), ``content_block_start``, a ``ping``, ``content_block_delta`` per
  piece, ``content_block_stop``, ``message_delta`` (CUMULATIVE usage: the final ``output_tokens``; like
  the current API it repeats the input and cache counts unless ``AnthropicFake.delta_repeats_input`` is
  false, as older API versions did) and ``message_stop``.

The usage is ``AnthropicFake.usage``, overridden per request by the ``x-fake-usage`` JSON header. Keys (in
Anthropic's convention): ``input_tokens`` (uncached), ``output_tokens``, ``cache_read_input_tokens``,
``ephemeral_5m_input_tokens``, ``ephemeral_1h_input_tokens`` (``cache_creation_input_tokens`` is their sum),
``web_search_requests``, ``start_output_tokens`` (``message_start``'s provisional output count, default 1).
Error modes (see ``tests.providers._serve``): ``429`` (``rate_limit_error`` + ``retry-after``), ``529``
(``overloaded_error``), ``500`` (``api_error``), other numbers, ``malformed`` (a 200 with a truncated JSON
body) and ``stream-overloaded`` (an ``event: error`` after the first delta, as the API does mid-stream).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from tests.providers._serve import FakeProvider, sse

#: what the API reports as ``model`` for an alias
SNAPSHOTS = {
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}
DEFAULT_USAGE: dict[str, int] = {"input_tokens": 25, "output_tokens": 12}
REPLY = "Hello! I'm Claude, an AI assistant."
_ids = itertools.count(1)

_ERRORS = {
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    529: ("overloaded_error", "Overloaded"),
    500: ("api_error", "Internal server error"),
    400: ("invalid_request_error", "messages: field required"),
    401: ("authentication_error", "invalid x-api-key"),
}


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):024d}"


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else f" {w}" for i, w in enumerate(words)]


def message_usage(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``usage`` of a ``message`` (and of ``message_start``, with the provisional output count)."""
    five, hour = int(spec.get("ephemeral_5m_input_tokens", 0)), int(spec.get("ephemeral_1h_input_tokens", 0))
    usage: dict[str, Any] = {
        "input_tokens": int(spec["input_tokens"]),
        "cache_creation_input_tokens": five + hour,
        "cache_read_input_tokens": int(spec.get("cache_read_input_tokens", 0)),
        "cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour},
        "output_tokens": int(spec["output_tokens"]),
        "service_tier": "standard",
    }
    if spec.get("web_search_requests") is not None:
        usage["server_tool_use"] = {"web_search_requests": int(spec["web_search_requests"]),
                                    "web_fetch_requests": 0}
    return usage


def error_body(kind: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


class AnthropicFake(FakeProvider):
    """``with AnthropicFake().running() as fake: Anthropic(base_url=fake.origin, api_key="test")``."""

    def __init__(self, usage: dict[str, Any] | None = None, *, delta_repeats_input: bool = True) -> None:
        super().__init__()
        self.usage: dict[str, Any] = dict(usage or DEFAULT_USAGE)
        self.delta_repeats_input = delta_repeats_input

    @property
    def base_url(self) -> str:
        return self.origin

    def routes(self) -> list[Route]:
        return [Route("/v1/messages", self.messages, methods=["POST"])]

    @staticmethod
    def _headers(request_id: str) -> dict[str, str]:
        return {"request-id": request_id, "anthropic-organization-id": "00000000-0000-4000-8000-000000000000"}

    def _error(self, mode: str, request: Request, request_id: str) -> Response | None:
        headers = self._headers(request_id)
        if mode == "malformed":
            return Response('{"id": "msg_broken", "type": "mess', 200, headers, media_type="application/json")
        if not mode.isdigit():
            return None
        status = int(mode)
        kind, message = _ERRORS.get(status, ("api_error", "Internal server error"))
        if status == 429:
            headers.update({"retry-after": self.retry_after(request),
                            "anthropic-ratelimit-requests-limit": "50",
                            "anthropic-ratelimit-requests-remaining": "0",
                            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:01Z"})
        return JSONResponse(error_body(kind, message, request_id), status, headers)

    async def messages(self, request: Request) -> Response:
        body = await self.record(request)
        request_id = _id("req")
        mode = self.error_mode(request, body)
        if mode and (failed := self._error(mode, request, request_id)) is not None:
            return failed
        spec = {**self.usage, **self.usage_override(request)}
        requested = str(body.get("model", ""))
        message = {
            "id": _id("msg"), "type": "message", "role": "assistant", "model": SNAPSHOTS.get(requested, requested),
            "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": message_usage(spec),
        }
        if not body.get("stream"):
            return JSONResponse(message, headers=self._headers(request_id))
        return StreamingResponse(self._stream(message, spec, mode), media_type="text/event-stream",
                                 headers=self._headers(request_id))

    async def _stream(self, message: dict[str, Any], spec: dict[str, Any], mode: str | None) -> AsyncIterator[bytes]:
        def event(kind: str, **fields: Any) -> bytes:
            return sse({"type": kind, **fields}, event=kind)

        final = message["usage"]
        start_usage = {**final, "output_tokens": int(spec.get("start_output_tokens", 1))}
        start_usage.pop("server_tool_use", None)
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
        yield event("message_start", message=start)
        yield event("content_block_start", index=0, content_block={"type": "text", "text": ""})
        yield event("ping")
        for i, piece in enumerate(_pieces(REPLY)):
            if mode == "stream-overloaded" and i == 1:
                yield sse(error_body("overloaded_error", "Overloaded", "req_stream"), event="error")
                return
            yield event("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
        yield event("content_block_stop", index=0)
        delta_usage: dict[str, Any] = {"output_tokens": final["output_tokens"]}
        if self.delta_repeats_input:
            delta_usage = {key: final[key] for key in ("input_tokens", "cache_creation_input_tokens",
                                                       "cache_read_input_tokens")} | delta_usage
        if "server_tool_use" in final:
            delta_usage["server_tool_use"] = final["server_tool_use"]
        yield event("message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None}, usage=delta_usage)
        yield event("message_stop")
