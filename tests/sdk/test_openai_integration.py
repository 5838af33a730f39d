"""`costline.sdk.integrations.openai.instrument` with the real `openai` client against the fake OpenAI
server (tests/providers): every call becomes one priced generation. Expected costs from gpt-4o's published
price (`costline prices explain gpt-4o`): input 2.50, cached input 1.25, output 10 USD per 1M tokens.
The fake reports 2006 prompt tokens of which 1920 cached, and 300 completion tokens:
86 × 2.50 + 1920 × 1.25 + 300 × 10 = 215 + 2400 + 3000 = 5615 per 1M = 0.005615."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal as D

import openai
import pytest
from tests.providers.openai_server import OpenAIFake
from tests.sdk.conftest import generations

from costline.core.cost import PricingStatus
from costline.sdk import Tracker
from costline.sdk.integrations import last_cost
from costline.sdk.integrations.openai import instrument

COST = D("0.005615")


CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while CLIENTS:
        CLIENTS.pop().close()


def sync_client(fake: OpenAIFake) -> openai.OpenAI:
    client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
    CLIENTS.append(client)
    return client


def test_chat_completion_is_recorded_and_priced(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    with tracker.trace(name="chat", user_id="alice"):
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.usage is not None and reply.usage.prompt_tokens == 2006  # the caller's object, unchanged
    cost = last_cost()
    assert cost is not None and cost.status is PricingStatus.PRICED and cost.total == COST
    [gen] = generations(tracker)
    assert gen["provider"] == "openai" and gen["model"].startswith("gpt-4o")
    assert gen["usage"]["input_tokens"] == 2006 and gen["usage"]["cache_read_tokens"] == 1920


def test_stream_gets_usage_without_showing_the_extra_chunk(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                            stream=True)
    chunks = list(stream)
    assert chunks and all(c.choices for c in chunks)  # the usage-only chunk was asked for by costline: hidden
    sent = fake.requests.last().body
    assert sent["stream_options"] == {"include_usage": True}
    cost = last_cost()
    assert cost is not None and cost.total == COST
    assert len(generations(tracker)) == 1


def test_stream_keeps_the_usage_chunk_the_caller_asked_for(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    chunks = list(client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    cost = last_cost()
    assert cost is not None and cost.total == COST


def test_async_client(fake: OpenAIFake, tracker: Tracker) -> None:
    async def run() -> D | None:
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as raw:
            client = instrument(raw, tracker)
            await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        cost = last_cost()
        return None if cost is None else cost.total

    assert asyncio.run(run()) == COST
    assert len(generations(tracker)) == 1


def test_an_error_is_recorded_and_raised_unchanged(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    fake.fail_next("429")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    [gen] = generations(tracker)
    assert gen["level"] == "ERROR"


def test_instrument_is_idempotent(fake: OpenAIFake, tracker: Tracker) -> None:
    client = sync_client(fake)
    instrument(instrument(client, tracker), tracker)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert len(generations(tracker)) == 1


def test_responses_api(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    client.responses.create(model="gpt-4o", input="hi")
    cost = last_cost()
    assert cost is not None and cost.total == COST  # same counts in the Responses shape


def test_embeddings(fake: OpenAIFake, tracker: Tracker) -> None:
    fake.usage = {"prompt_tokens": 8000, "completion_tokens": 0}
    client = instrument(sync_client(fake), tracker)
    client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    cost = last_cost()
    assert cost is not None and cost.total == 8000 * D("0.02") / 1_000_000  # $0.02 per 1M tokens
