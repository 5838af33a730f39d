"""`costline.sdk.integrations.anthropic.instrument` with the real `anthropic` client against the local
Anthropic-protocol server (tests/providers). Expected cost from claude-haiku-4-5's published price
(`costline prices explain claude-haiku-4-5`, per 1M tokens: input 1, 5-minute cache write 1.25, 1-hour cache
write 2, cache read 0.10, output 5): 50 uncached input, 1000 written for 5 minutes, 2000 for an hour, 8000
read and 400 output tokens cost 50 × 1 + 1000 × 1.25 + 2000 × 2 + 8000 × 0.10 + 400 × 5 = 8100 per 1M."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import anthropic
import pytest
from tests.providers.anthropic_server import REPLY, AnthropicFake
from tests.sdk.conftest import generations

from costline.core.cost import PricingStatus
from costline.sdk import Tracker
from costline.sdk.integrations import last_cost
from costline.sdk.integrations.anthropic import instrument

MODEL = "claude-haiku-4-5"
USAGE = {"input_tokens": 50, "output_tokens": 400, "cache_read_input_tokens": 8000,
         "ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}
COST = D("0.0081")
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[AnthropicFake]:
    with AnthropicFake().running() as fake:
        yield fake


@pytest.fixture
def fake(server: AnthropicFake) -> AnthropicFake:
    server.reset()
    server.usage = dict(USAGE)
    server.delta_repeats_input = True
    return server


@pytest.fixture
def client(fake: AnthropicFake) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0) as c:
        yield c


def async_client(fake: AnthropicFake) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test", max_retries=0)


def last_total() -> D | None:
    cost = last_cost()
    return None if cost is None else cost.total


def check_usage(gen: dict[str, Any]) -> None:
    usage = gen["usage"]
    # costline's input is inclusive: 50 + 1000 + 2000 + 8000; the write keeps its split by TTL
    assert usage["input_tokens"] == 11050 and usage["cache_read_tokens"] == 8000
    assert usage["cache_write_tokens"] == 3000 and usage["cache_write_5m_tokens"] == 1000
    assert usage["cache_write_1h_tokens"] == 2000 and usage["output_tokens"] == 400


def test_message_with_cache_tokens(client: anthropic.Anthropic, tracker: Tracker) -> None:
    instrument(client, tracker)
    with tracker.trace(name="chat", user_id="alice") as trace:
        message = client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES)
    assert isinstance(message, anthropic.types.Message)  # the caller's object, unchanged
    assert message.usage.cache_read_input_tokens == 8000
    cost = last_cost()
    assert cost is not None and cost.status is PricingStatus.PRICED and cost.total == COST
    [gen] = generations(tracker)
    assert gen["provider"] == "anthropic" and gen["name"] == "anthropic.messages"
    assert gen["model"] == "claude-haiku-4-5-20251001" and gen["model_parameters"] == {"max_tokens": 500}
    assert gen["trace_id"] == trace.id and gen["user_id"] == "alice"
    assert gen["attributes"] == {"service_tier": "standard"}
    check_usage(gen)


@pytest.mark.parametrize("repeats", [True, False])
def test_stream(client: anthropic.Anthropic, fake: AnthropicFake, tracker: Tracker, repeats: bool) -> None:
    fake.delta_repeats_input = repeats  # older API versions sent only output_tokens in message_delta
    fake.usage["start_output_tokens"] = 3  # message_start's provisional count is replaced by the delta's
    instrument(client, tracker)
    stream = client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.Stream)
    events = list(stream)
    assert events[0].type == "message_start" and events[-1].type == "message_stop"  # nothing hidden
    assert last_total() == COST
    [gen] = generations(tracker)
    check_usage(gen)
    assert gen["completion_start_time"] is not None


def test_stream_helper(client: anthropic.Anthropic, tracker: Tracker) -> None:
    instrument(client, tracker)
    with client.messages.stream(model=MODEL, max_tokens=500, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == REPLY and final.usage.output_tokens == 400
    assert last_total() == COST
    [gen] = generations(tracker)
    check_usage(gen)


def test_stream_closed_early(client: anthropic.Anthropic, tracker: Tracker) -> None:
    instrument(client, tracker)
    with client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES, stream=True) as stream:
        assert next(iter(stream)).type == "message_start"
    [gen] = generations(tracker)
    # recorded at close with what message_start reported: the whole input, the provisional output (1)
    assert gen["usage"]["input_tokens"] == 11050 and gen["usage"]["output_tokens"] == 1


def test_async_client(fake: AnthropicFake, tracker: Tracker) -> None:
    async def run() -> tuple[D | None, D | None, D | None]:
        async with async_client(fake) as raw:
            client = instrument(raw, tracker)
            await client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES)
            one = last_total()
            stream = await client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES, stream=True)
            assert isinstance(stream, anthropic.AsyncStream)
            events = [event async for event in stream]
            assert events[-2].type == "message_delta"
            streamed = last_total()
            async with client.messages.stream(model=MODEL, max_tokens=500, messages=MESSAGES) as helper:
                await helper.get_final_message()
            return one, streamed, last_total()

    assert asyncio.run(run()) == (COST, COST, COST)
    assert len(generations(tracker)) == 3


@pytest.mark.parametrize(("mode", "error"), [("429", anthropic.RateLimitError),
                                              ("529", anthropic.OverloadedError)])
def test_an_error_is_recorded_and_raised_unchanged(client: anthropic.Anthropic, fake: AnthropicFake,
                                                   tracker: Tracker, mode: str,
                                                   error: type[anthropic.APIStatusError]) -> None:
    instrument(client, tracker)
    fake.fail_next(mode)
    with pytest.raises(error) as caught:
        client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES)
    assert caught.value.status_code == int(mode)
    fake.fail_next(mode)
    with pytest.raises(error), client.messages.stream(model=MODEL, max_tokens=500, messages=MESSAGES):
        pass
    gens = generations(tracker)
    assert len(gens) == 2 and {g["level"] for g in gens} == {"ERROR"}
    # the exception's type is recorded (its text is the client library's and changes between versions)
    assert all(g["status_message"].startswith(f"{error.__name__}: ") for g in gens)
    assert last_cost() is None


def test_a_mid_stream_error_is_recorded_and_raised(client: anthropic.Anthropic, tracker: Tracker) -> None:
    instrument(client, tracker)
    stream = client.messages.create(model="error-stream-overloaded", max_tokens=500, messages=MESSAGES,
                                    stream=True)
    with pytest.raises(anthropic.APIStatusError):
        list(stream)
    [gen] = generations(tracker)
    assert gen["level"] == "ERROR" and "overloaded_error" in gen["status_message"]


def test_instrument_is_idempotent(client: anthropic.Anthropic, tracker: Tracker) -> None:
    assert instrument(instrument(client, tracker)) is client
    client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES)
    assert len(generations(tracker)) == 1
