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
from tests.providers.anthropic_server import AnthropicFake
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


def test_message_with_cache_tokens(client: anthropic.Anthropic, tracker: Tracker) -> None:
    instrument(client, tracker)
    message = client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES)
    assert message.usage.cache_read_input_tokens == 8000  # the caller's object, unchanged
    cost = last_cost()
    assert cost is not None and cost.status is PricingStatus.PRICED and cost.total == COST
    [gen] = generations(tracker)
    # costline's input is inclusive: 50 + 1000 + 2000 + 8000
    assert gen["provider"] == "anthropic" and gen["usage"]["input_tokens"] == 11050


@pytest.mark.parametrize("repeats", [True, False])
def test_stream(client: anthropic.Anthropic, fake: AnthropicFake, tracker: Tracker, repeats: bool) -> None:
    fake.delta_repeats_input = repeats
    instrument(client, tracker)
    events = list(client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES, stream=True))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    cost = last_cost()
    assert cost is not None and cost.total == COST
    assert len(generations(tracker)) == 1


def test_async_client(fake: AnthropicFake, tracker: Tracker) -> None:
    async def run() -> D | None:
        async with anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test", max_retries=0) as raw:
            client = instrument(raw, tracker)
            await client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES)
        cost = last_cost()
        return None if cost is None else cost.total

    assert asyncio.run(run()) == COST


def test_an_error_is_recorded_and_raised_unchanged(client: anthropic.Anthropic, fake: AnthropicFake,
                                                   tracker: Tracker) -> None:
    instrument(client, tracker)
    fake.fail_next("529")
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES)
    [gen] = generations(tracker)
    assert gen["level"] == "ERROR"
    assert last_cost() is None
