"""The fake Anthropic server against the real ``anthropic`` client (sync and async) and Anthropic's types."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import httpx
import pydantic
import pytest
from anthropic.types import Message, RawMessageDeltaEvent, RawMessageStartEvent, RawMessageStreamEvent
from tests.providers.anthropic_server import REPLY, AnthropicFake

MODEL = "claude-haiku-4-5"  # not on the client's deprecation list (claude-sonnet-4-5 is: it warns)
MESSAGES: list[Any] = [{"role": "user", "content": "Hello"}]
CACHED = {"input_tokens": 50, "output_tokens": 400, "cache_read_input_tokens": 8000,
          "ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}


def client(fake: AnthropicFake, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=max_retries)


def async_client(fake: AnthropicFake) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test", max_retries=0)


def raw_events(text: str) -> list[tuple[str, str]]:
    out = []
    for block in text.split("\n\n"):
        if block.strip():
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            out.append((fields["event"], fields["data"]))
    return out


def test_raw_payloads_validate_against_the_anthropic_types(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.usage = CACHED | {"web_search_requests": 2}
    body = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES}
    with httpx.Client(base_url=anthropic_fake.base_url) as http:
        Message.model_validate(http.post("/v1/messages", json=body).json())
        text = http.post("/v1/messages", json=body | {"stream": True}).text
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
    events = raw_events(text)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "ping", *["content_block_delta"] * len(REPLY.split(" ")),
        "content_block_stop", "message_delta", "message_stop",
    ]
    for name, data in events:
        if name != "ping":
            assert adapter.validate_json(data).type == name


def test_message_reports_the_configured_usage(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.usage = CACHED
    with client(anthropic_fake) as c:
        got = c.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES)
    assert isinstance(got, Message)
    assert got.content[0].type == "text" and got.content[0].text == REPLY
    u = got.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens) == (
        50, 400, 8000, 3000)
    assert u.cache_creation is not None
    assert (u.cache_creation.ephemeral_5m_input_tokens, u.cache_creation.ephemeral_1h_input_tokens) == (1000, 2000)
    assert got.stop_reason == "end_turn"


def test_stream_event_sequence_and_cumulative_usage(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.usage = CACHED | {"start_output_tokens": 3}
    with client(anthropic_fake) as c:
        events = list(c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True))
    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert [e.type for e in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start, delta = events[0], events[-2]
    assert isinstance(start, RawMessageStartEvent) and isinstance(delta, RawMessageDeltaEvent)
    assert (start.message.usage.input_tokens, start.message.usage.output_tokens) == (50, 3)
    assert start.message.usage.cache_read_input_tokens == 8000
    assert delta.usage.output_tokens == 400
    assert (delta.usage.input_tokens, delta.usage.cache_creation_input_tokens) == (50, 3000)
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == REPLY


def test_older_message_delta_carries_only_output(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.delta_repeats_input = False
    with client(anthropic_fake) as c:
        events = list(c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True))
    delta = events[-2]
    assert isinstance(delta, RawMessageDeltaEvent)
    assert delta.usage.input_tokens is None and delta.usage.output_tokens == 12


def test_stream_helper_final_message(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.usage = CACHED
    with client(anthropic_fake) as c, c.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert "text" in {e.type for e in events}  # the helper adds its own events
    assert final.usage.output_tokens == 400 and final.usage.cache_read_input_tokens == 8000


def test_async_message_and_stream(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.usage = CACHED

    async def run() -> tuple[Message, list[Any]]:
        async with async_client(anthropic_fake) as c:
            one = await c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
            stream = await c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
            return one, [event async for event in stream]

    one, events = asyncio.run(run())
    assert one.usage.cache_creation_input_tokens == 3000
    assert events[-2].type == "message_delta" and events[-2].usage.output_tokens == 400


def test_web_search_usage(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.usage = CACHED | {"web_search_requests": 3}
    with client(anthropic_fake) as c:
        got = c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        events = list(c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True))
    assert got.usage.server_tool_use is not None and got.usage.server_tool_use.web_search_requests == 3
    delta = events[-2]
    assert isinstance(delta, RawMessageDeltaEvent) and delta.usage.server_tool_use is not None
    assert delta.usage.server_tool_use.web_search_requests == 3


@pytest.mark.parametrize(("mode", "error", "status"), [
    ("429", anthropic.RateLimitError, 429),
    ("529", anthropic.OverloadedError, 529),
    ("500", anthropic.InternalServerError, 500),
])
def test_error_modes(anthropic_fake: AnthropicFake, mode: str, error: type[anthropic.APIStatusError],
                     status: int) -> None:
    with client(anthropic_fake) as c:
        with pytest.raises(error) as caught:
            c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, extra_headers={"x-fake-error": mode})
        with pytest.raises(error):
            c.messages.create(model=f"error-{mode}", max_tokens=100, messages=MESSAGES, stream=True)
    assert caught.value.status_code == status
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")


def test_rate_limit_carries_retry_after(anthropic_fake: AnthropicFake) -> None:
    with client(anthropic_fake) as c, pytest.raises(anthropic.RateLimitError) as caught:
        c.messages.create(model="error-429", max_tokens=100, messages=MESSAGES,
                          extra_headers={"x-fake-retry-after": "9"})
    assert caught.value.response.headers["retry-after"] == "9"
    assert isinstance(caught.value.body, dict) and caught.value.body["error"]["type"] == "rate_limit_error"


def test_malformed_and_mid_stream_overload(anthropic_fake: AnthropicFake) -> None:
    with client(anthropic_fake) as c:
        with pytest.raises(json.JSONDecodeError):
            c.messages.create(model="error-malformed", max_tokens=100, messages=MESSAGES)
        # an ``event: error`` inside a 200 stream: a plain APIStatusError (status 200), not OverloadedError
        with pytest.raises(anthropic.APIStatusError, match="overloaded_error") as caught:
            list(c.messages.create(model="error-stream-overloaded", max_tokens=100, messages=MESSAGES, stream=True))
    assert type(caught.value) is anthropic.APIStatusError


def test_overloaded_then_retry_succeeds(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.fail_next("529")
    with client(anthropic_fake, max_retries=1) as c:
        got = c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES,
                                extra_headers={"x-fake-retry-after": "0.01"})
    assert got.usage.input_tokens == 25
    assert len(anthropic_fake.requests) == 2


def test_requests_are_recorded(anthropic_fake: AnthropicFake) -> None:
    with client(anthropic_fake) as c:
        c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, system="Be brief.")
    seen = anthropic_fake.requests.last()
    assert (seen.method, seen.path, seen.model) == ("POST", "/v1/messages", MODEL)
    # anthropic 2.x sends the key as a bearer token; older clients used x-api-key
    assert "test" in (seen.headers.get("x-api-key"), seen.headers.get("authorization", "").removeprefix("Bearer "))
    assert "anthropic-version" in seen.headers
    assert seen.body["system"] == "Be brief." and seen.body["max_tokens"] == 100
