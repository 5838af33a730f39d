"""A local server speaking OpenAI's wire protocol: Chat Completions, Responses and embeddings.

Shapes follow what api.openai.com sends (checked against the ``openai`` package's types:
``ChatCompletion``, ``ChatCompletionChunk``, ``CompletionUsage``, ``Response``, ``ResponseUsage``, the
``ResponseStreamEvent`` union, ``CreateEmbeddingResponse``):

* ``POST /v1/chat/completions``: a ``chat.completion`` object; with ``stream: true`` ``data: {chunk}`` lines
  ending with ``data: [DONE]``. When ``stream_options.include_usage`` is true every chunk carries
  ``"usage": null`` and one last chunk with ``"choices": []`` carries the usage, as OpenAI does; without
  it no chunk has a ``usage`` key.
* ``POST /v1/responses``: a ``response`` object; streamed as ``event: <type>`` / ``data:`` pairs from
  ``response.created`` to ``response.completed`` (whose ``response.usage`` is the only usage in the stream).
* ``POST /v1/embeddings``: floats, or base64 float32 when ``encoding_format`` is ``base64`` (the ``openai``
  client asks for base64 unless told otherwise).

The usage the fake reports is ``OpenAIFake.usage`` (counts in OpenAI's convention: ``prompt_tokens``
includes ``cached_tokens``, ``completion_tokens`` includes ``reasoning_tokens``), overridden per request by
the ``x-fake-usage`` JSON header. Keys: ``prompt_tokens``, ``completion_tokens``, ``cached_tokens``,
``reasoning_tokens``, ``cache_write_tokens`` (reported only when set), ``web_searches`` (Responses only:
``web_search_call`` output items). Error modes: see ``tests.providers._serve``.
"""

from __future__ import annotations

import base64
import itertools
import struct
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from tests.providers._serve import FakeProvider, sse

#: what OpenAI reports as ``model`` for an alias (the dated snapshot it resolved to)
SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "text-embedding-3-small": "text-embedding-3-small",
}
DEFAULT_USAGE: dict[str, int] = {"prompt_tokens": 19, "completion_tokens": 10}
REPLY = "Hello! How can I help you today?"
CREATED = 1_760_000_000
_ids = itertools.count(1)


def _id(prefix: str, sep: str = "_") -> str:
    return f"{prefix}{sep}{next(_ids):024d}"


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else f" {w}" for i, w in enumerate(words)]


def chat_usage(spec: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = int(spec["prompt_tokens"]), int(spec["completion_tokens"])
    prompt_details: dict[str, Any] = {"cached_tokens": int(spec.get("cached_tokens", 0)), "audio_tokens": 0}
    if spec.get("cache_write_tokens") is not None:
        prompt_details["cache_write_tokens"] = int(spec["cache_write_tokens"])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": int(spec.get("reasoning_tokens", 0)),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def responses_usage(spec: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = int(spec["prompt_tokens"]), int(spec["completion_tokens"])
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(spec.get("cached_tokens", 0)),
            "cache_write_tokens": int(spec.get("cache_write_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(spec.get("reasoning_tokens", 0))},
        "total_tokens": prompt + completion,
    }


def _error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class OpenAIFake(FakeProvider):
    """``with OpenAIFake().running() as fake: OpenAI(base_url=fake.base_url, api_key="test")``."""

    def __init__(self, usage: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.usage: dict[str, Any] = dict(usage or DEFAULT_USAGE)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/responses", self.responses, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
        ]

    # -- shared -----------------------------------------------------------------------------------------
    def _usage_spec(self, request: Request) -> dict[str, Any]:
        return {**self.usage, **self.usage_override(request)}

    def _headers(self) -> dict[str, str]:
        return {"x-request-id": _id("req"), "openai-processing-ms": "42", "openai-version": "2020-10-01"}

    def _error(self, mode: str, request: Request, model: str) -> Response | None:
        """The response for an error mode; ``None`` for modes that only apply mid-stream."""
        headers = self._headers()
        if mode == "429":
            headers.update({"retry-after": self.retry_after(request), "x-ratelimit-limit-requests": "500",
                            "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"})
            message = f"Rate limit reached for {model} on requests per min (RPM): Limit 500, Used 500."
            return JSONResponse(_error_body(message, "requests", "rate_limit_exceeded"), 429, headers)
        if mode == "malformed":
            return Response('{"id": "chatcmpl-broken", "object": "chat.comp', 200, headers,
                            media_type="application/json")
        if mode.isdigit():
            status = int(mode)
            message = "The server had an error while processing your request. Sorry about that!"
            return JSONResponse(_error_body(message, "server_error", None), status, headers)
        return None

    def _model(self, body: dict[str, Any]) -> str:
        requested = str(body.get("model", ""))
        return SNAPSHOTS.get(requested, requested)

    @staticmethod
    def _tier(body: dict[str, Any]) -> str:
        tier = body.get("service_tier")
        return "default" if tier in (None, "auto") else str(tier)

    # -- /v1/chat/completions ---------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        body = await self.record(request)
        mode = self.error_mode(request, body)
        if mode and (failed := self._error(mode, request, str(body.get("model")))) is not None:
            return failed
        usage = chat_usage(self._usage_spec(request))
        model, tier, cid = self._model(body), self._tier(body), _id("chatcmpl", "-")
        if not body.get("stream"):
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY, "refusal": None, "annotations": []},
                    "logprobs": None, "finish_reason": "stop",
                }],
                "usage": usage, "service_tier": tier, "system_fingerprint": "fp_fake0001",
            }, headers=self._headers())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(self._chat_stream(cid, model, tier, usage, include_usage, mode),
                                 media_type="text/event-stream", headers=self._headers())

    async def _chat_stream(
        self, cid: str, model: str, tier: str, usage: dict[str, Any], include_usage: bool, mode: str | None
    ) -> AsyncIterator[bytes]:
        def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": CREATED,
                                   "model": model, "service_tier": tier, "system_fingerprint": "fp_fake0001",
                                   "choices": choices}
            if include_usage:
                out["usage"] = None
            return out

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        yield sse(chunk(choice({"role": "assistant", "content": "", "refusal": None})))
        for i, piece in enumerate(_pieces(REPLY)):
            if mode == "stream-error" and i == 2:
                yield sse(_error_body("The server had an error while processing your request.",
                                      "server_error", None))
                return
            if mode == "stream-malformed" and i == 2:
                yield b'data: {"id": "chatcmpl-broken", "choices": [\n\n'
                return
            yield sse(chunk(choice({"content": piece})))
        yield sse(chunk(choice({}, "stop")))
        if include_usage:
            final = chunk([])
            final["usage"] = usage
            yield sse(final)
        yield sse("[DONE]")

    # -- /v1/responses ----------------------------------------------------------------------------------
    def _response(self, body: dict[str, Any], rid: str, status: str, output: list[dict[str, Any]],
                  usage: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "id": rid, "object": "response", "created_at": CREATED, "status": status, "background": False,
            "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": self._model(body), "output": output,
            "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None,
                                                                                   "summary": None},
            "service_tier": self._tier(body), "store": True, "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
            "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
        }

    @staticmethod
    def _message(mid: str, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [],
                                            "logprobs": []}]
        return {"type": "message", "id": mid, "status": status, "role": "assistant", "content": content}

    def _extra_items(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if int(spec.get("reasoning_tokens", 0)):
            items.append({"type": "reasoning", "id": _id("rs"), "summary": []})
        for n in range(int(spec.get("web_searches", 0))):
            items.append({"type": "web_search_call", "id": _id("ws"), "status": "completed",
                          "action": {"type": "search", "query": f"query {n}"}})
        return items

    async def responses(self, request: Request) -> Response:
        body = await self.record(request)
        mode = self.error_mode(request, body)
        if mode and (failed := self._error(mode, request, str(body.get("model")))) is not None:
            return failed
        spec = self._usage_spec(request)
        rid, mid = _id("resp"), _id("msg")
        extra = self._extra_items(spec)
        if not body.get("stream"):
            output = [*extra, self._message(mid, "completed", REPLY)]
            return JSONResponse(self._response(body, rid, "completed", output, responses_usage(spec)),
                                headers=self._headers())
        return StreamingResponse(self._responses_stream(body, rid, mid, extra, spec, mode),
                                 media_type="text/event-stream", headers=self._headers())

    async def _responses_stream(self, body: dict[str, Any], rid: str, mid: str, extra: list[dict[str, Any]],
                                spec: dict[str, Any], mode: str | None) -> AsyncIterator[bytes]:
        seq = itertools.count()

        def event(kind: str, **fields: Any) -> bytes:
            return sse({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

        yield event("response.created", response=self._response(body, rid, "in_progress", [], None))
        yield event("response.in_progress", response=self._response(body, rid, "in_progress", [], None))
        for index, item in enumerate(extra):
            yield event("response.output_item.added", output_index=index, item=item)
            yield event("response.output_item.done", output_index=index, item=item)
        index = len(extra)
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield event("response.output_item.added", output_index=index, item=self._message(mid, "in_progress", None))
        yield event("response.content_part.added", item_id=mid, output_index=index, content_index=0, part=part)
        for i, piece in enumerate(_pieces(REPLY)):
            if mode == "stream-error" and i == 2:
                yield event("error", code="server_error", message="The server had an error.", param=None)
                return
            yield event("response.output_text.delta", item_id=mid, output_index=index, content_index=0,
                        delta=piece, logprobs=[])
        yield event("response.output_text.done", item_id=mid, output_index=index, content_index=0, text=REPLY,
                    logprobs=[])
        yield event("response.content_part.done", item_id=mid, output_index=index, content_index=0,
                    part={**part, "text": REPLY})
        message = self._message(mid, "completed", REPLY)
        yield event("response.output_item.done", output_index=index, item=message)
        done = self._response(body, rid, "completed", [*extra, message], responses_usage(spec))
        yield event("response.completed", response=done)

    # -- /v1/embeddings ---------------------------------------------------------------------------------
    async def embeddings(self, request: Request) -> Response:
        body = await self.record(request)
        mode = self.error_mode(request, body)
        if mode and (failed := self._error(mode, request, str(body.get("model")))) is not None:
            return failed
        inputs = body.get("input")
        texts = inputs if isinstance(inputs, list) else [inputs]
        dims = int(body.get("dimensions") or 8)
        b64 = body.get("encoding_format") == "base64"
        data = []
        for index, _ in enumerate(texts):
            vector = [round((index + 1) * 0.125 * (k + 1), 6) for k in range(dims)]
            encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if b64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        prompt = int(self._usage_spec(request)["prompt_tokens"])
        return JSONResponse({
            "object": "list", "data": data, "model": self._model(body),
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }, headers=self._headers())
