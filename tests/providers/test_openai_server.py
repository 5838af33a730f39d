"""The fake OpenAI server against the real ``openai`` client (sync and async) and OpenAI's own types."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from tests.providers.openai_server import REPLY, OpenAIFake

MESSAGES: list[Any] = [{"role": "user", "content": "Hello"}]
CACHED = {"prompt_tokens": 2006, "completion_tokens": 300, "cached_tokens": 1920}


def client(fake: OpenAIFake, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=max_retries)


def async_client(fake: OpenAIFake) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)


def raw_events(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) of each server-sent event in a body."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields.get("event"), fields["data"]))
    return out


# -- shapes: the raw JSON validates against OpenAI's types (the client itself does not validate) ---------


def test_raw_payloads_validate_against_the_openai_types(openai_fake: OpenAIFake) -> None:
    openai_fake.usage = CACHED | {"reasoning_tokens": 64, "web_searches": 1}
    with httpx.Client(base_url=openai_fake.base_url) as http:
        chat = http.post("/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}).json()
        ChatCompletion.model_validate(chat)
        stream = http.post("/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES, "stream": True,
                                                       "stream_options": {"include_usage": True}}).text
        events = raw_events(stream)
        assert events[-1] == (None, "[DONE]")
        for _, data in events[:-1]:
            ChatCompletionChunk.model_validate_json(data)
        resp = http.post("/responses", json={"model": "gpt-4o", "input": "Hello"}).json()
        Response.model_validate(resp)
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
        resp_stream = http.post("/responses", json={"model": "gpt-4o", "input": "Hello", "stream": True}).text
        for name, data in raw_events(resp_stream):
            assert adapter.validate_json(data).type == name
        emb = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b"]}).json()
        CreateEmbeddingResponse.model_validate(emb)


# -- chat completions ------------------------------------------------------------------------------------


def test_chat_completion_reports_the_configured_usage(openai_fake: OpenAIFake) -> None:
    openai_fake.usage = CACHED | {"reasoning_tokens": 128}
    with client(openai_fake) as c:
        got = c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert isinstance(got, ChatCompletion)
    assert got.model == "gpt-4o-2024-08-06"
    assert got.choices[0].message.content == REPLY
    assert got.usage is not None
    assert (got.usage.prompt_tokens, got.usage.completion_tokens, got.usage.total_tokens) == (2006, 300, 2306)
    assert got.usage.prompt_tokens_details is not None and got.usage.prompt_tokens_details.cached_tokens == 1920
    assert got.usage.completion_tokens_details is not None
    assert got.usage.completion_tokens_details.reasoning_tokens == 128
    assert got.service_tier == "default"


def test_chat_stream_with_include_usage_ends_with_a_usage_only_chunk(openai_fake: OpenAIFake) -> None:
    openai_fake.usage = CACHED
    with client(openai_fake) as c:
        chunks = list(c.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True}))
    assert all(isinstance(ch, ChatCompletionChunk) for ch in chunks)
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None and last.usage.prompt_tokens == 2006
    assert all(ch.usage is None for ch in body)
    assert "".join(ch.choices[0].delta.content or "" for ch in body) == REPLY
    assert body[-1].choices[0].finish_reason == "stop"
    assert openai_fake.requests.last().body["stream_options"] == {"include_usage": True}


def test_chat_stream_without_include_usage_has_no_usage_anywhere(openai_fake: OpenAIFake) -> None:
    with httpx.Client(base_url=openai_fake.base_url) as http:
        text = http.post("/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}).text
    assert all("usage" not in json.loads(data) for _, data in raw_events(text)[:-1])
    with client(openai_fake) as c:
        chunks = list(c.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert chunks and all(ch.usage is None and ch.choices for ch in chunks)


def test_async_chat_and_stream(openai_fake: OpenAIFake) -> None:
    openai_fake.usage = CACHED

    async def run() -> tuple[ChatCompletion, list[ChatCompletionChunk]]:
        async with async_client(openai_fake) as c:
            one = await c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            stream = await c.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": True})
            return one, [chunk async for chunk in stream]

    one, chunks = asyncio.run(run())
    assert one.usage is not None and one.usage.completion_tokens == 300
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 300


def test_service_tier_is_echoed(openai_fake: OpenAIFake) -> None:
    with client(openai_fake) as c:
        got = c.chat.completions.create(model="gpt-4o", messages=MESSAGES, service_tier="priority")
    assert got.service_tier == "priority"


def test_usage_header_overrides_per_request(openai_fake: OpenAIFake) -> None:
    with client(openai_fake) as c:
        got = c.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                        extra_headers={"x-fake-usage": json.dumps({"prompt_tokens": 7})})
    assert got.usage is not None and (got.usage.prompt_tokens, got.usage.completion_tokens) == (7, 10)


# -- responses -------------------------------------------------------------------------------------------


def test_responses_object_and_stream(openai_fake: OpenAIFake) -> None:
    openai_fake.usage = CACHED | {"reasoning_tokens": 64, "web_searches": 2}
    with client(openai_fake) as c:
        got = c.responses.create(model="gpt-4o", input="Hello")
        events = list(c.responses.create(model="gpt-4o", input="Hello", stream=True))
    assert got.output_text == REPLY
    assert got.usage is not None
    assert (got.usage.input_tokens, got.usage.output_tokens, got.usage.total_tokens) == (2006, 300, 2306)
    assert got.usage.input_tokens_details.cached_tokens == 1920
    assert got.usage.output_tokens_details.reasoning_tokens == 64
    assert [item.type for item in got.output] == ["reasoning", "web_search_call", "web_search_call", "message"]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage is not None and completed.response.usage.output_tokens == 300
    assert completed.response.output_text == REPLY
    assert all(e.response.usage is None for e in events if e.type in ("response.created", "response.in_progress"))


def test_async_responses_stream(openai_fake: OpenAIFake) -> None:
    async def run() -> list[Any]:
        async with async_client(openai_fake) as c:
            stream = await c.responses.create(model="gpt-4o", input="Hello", stream=True)
            return [event async for event in stream]

    events = asyncio.run(run())
    assert events[-1].type == "response.completed" and events[-1].response.usage.input_tokens == 19


# -- embeddings ------------------------------------------------------------------------------------------


def test_embeddings_base64_default_and_float(openai_fake: OpenAIFake) -> None:
    openai_fake.usage = {"prompt_tokens": 8, "completion_tokens": 0}
    with client(openai_fake) as c:
        got = c.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        floats = c.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float")
    # the client asks for base64 unless told otherwise, and decodes it itself
    assert openai_fake.requests.all()[0].body["encoding_format"] == "base64"
    assert got.data[1].embedding == [0.25 * (k + 1) for k in range(8)]
    assert floats.data[0].embedding == [0.125 * (k + 1) for k in range(8)]
    assert (got.usage.prompt_tokens, got.usage.total_tokens) == (8, 8)
    packed = struct.pack("<2f", 0.5, 1.0)
    assert base64.b64decode(base64.b64encode(packed)) == packed


# -- errors ----------------------------------------------------------------------------------------------


def test_rate_limit_is_a_rate_limit_error_with_retry_after(openai_fake: OpenAIFake) -> None:
    with client(openai_fake) as c, pytest.raises(openai.RateLimitError) as caught:
        c.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-fake-error": "429",
                                                                                    "x-fake-retry-after": "7"})
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize(("model", "error"), [
    ("error-500", openai.InternalServerError),
    ("error-503", openai.InternalServerError),
    ("error-429", openai.RateLimitError),
])
def test_error_modes_by_model_name(openai_fake: OpenAIFake, model: str, error: type[Exception]) -> None:
    with client(openai_fake) as c:
        with pytest.raises(error):
            c.chat.completions.create(model=model, messages=MESSAGES)
        with pytest.raises(error):
            c.responses.create(model=model, input="x")
        with pytest.raises(error):
            c.embeddings.create(model=model, input="x")


def test_malformed_body_and_broken_streams(openai_fake: OpenAIFake) -> None:
    with client(openai_fake) as c:
        # a 200 whose JSON is cut off: the client raises the JSON decoder's own error, not an APIError
        with pytest.raises(json.JSONDecodeError):
            c.chat.completions.create(model="error-malformed", messages=MESSAGES)
        with pytest.raises(openai.APIError, match="server had an error"):
            list(c.chat.completions.create(model="error-stream-error", messages=MESSAGES, stream=True))
        with pytest.raises(json.JSONDecodeError):
            list(c.chat.completions.create(model="error-stream-malformed", messages=MESSAGES, stream=True))
        # the Responses API reports a mid-stream failure as an ``error`` event, which the client yields
        events = list(c.responses.create(model="error-stream-error", input="x", stream=True))
    assert events[-1].type == "error"


def test_queued_failures_then_retry_succeeds(openai_fake: OpenAIFake) -> None:
    openai_fake.fail_next("429")
    with client(openai_fake, max_retries=1) as c:
        got = c.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                        extra_headers={"x-fake-retry-after": "0.01"})
    assert got.usage is not None and got.usage.prompt_tokens == 19
    assert len(openai_fake.requests) == 2
    first, second = openai_fake.requests.all()
    assert second.headers["x-stainless-retry-count"] == "1" and first.body == second.body


def test_requests_are_recorded(openai_fake: OpenAIFake) -> None:
    with client(openai_fake) as c:
        c.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0)
    seen = openai_fake.requests.last()
    assert (seen.method, seen.path, seen.model, seen.stream) == ("POST", "/v1/chat/completions", "gpt-4o", False)
    assert seen.headers["authorization"] == "Bearer test"
    assert seen.body["messages"] == MESSAGES and seen.body["temperature"] == 0
