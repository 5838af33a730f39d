"""`costline.sdk.integrations.openai.instrument` with the real `openai` client against the fake OpenAI
server (tests/providers): every call becomes one priced generation. Expected costs from gpt-4o's published
price (`costline prices explain gpt-4o`): input 2.50, cached input 1.25, output 10 USD per 1M tokens; the
priority tier 4.25 / 2.125 / 17; web searches 10 USD per 1K calls.
The fake reports 2006 prompt tokens of which 1920 cached, and 300 completion tokens:
86 × 2.50 + 1920 × 1.25 + 300 × 10 = 215 + 2400 + 3000 = 5615 per 1M = 0.005615;
at priority: 86 × 4.25 + 1920 × 2.125 + 300 × 17 = 365.5 + 4080 + 5100 = 9545.5 per 1M = 0.0095455."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import openai
import pytest
from tests.providers.openai_server import REPLY, OpenAIFake
from tests.sdk.conftest import generations
from tests.server.harness import make_server

from costline.core.cost import PricingStatus
from costline.core.resolve import PriceBook
from costline.sdk import Tracker
from costline.sdk.integrations import last_cost
from costline.sdk.integrations.openai import instrument

COST = D("0.005615")
PRIORITY = D("0.0095455")
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]

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


def async_client(fake: OpenAIFake) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)


def last_total() -> D | None:
    cost = last_cost()
    return None if cost is None else cost.total


# -- chat completions -------------------------------------------------------------------------------------

def test_chat_completion_is_recorded_and_priced(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    with tracker.trace(name="chat", user_id="alice", session_id="s1") as trace:
        reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.5)
    assert isinstance(reply, openai.types.chat.ChatCompletion)  # the caller's object, unchanged
    assert reply.usage is not None and reply.usage.prompt_tokens == 2006
    cost = last_cost()
    assert cost is not None and cost.status is PricingStatus.PRICED and cost.total == COST
    [gen] = generations(tracker)
    assert gen["name"] == "openai.chat.completions" and gen["provider"] == "openai"
    assert gen["model"] == "gpt-4o-2024-08-06"  # the response's model wins over the request's
    assert gen["trace_id"] == trace.id and gen["user_id"] == "alice" and gen["session_id"] == "s1"
    assert gen["usage"]["input_tokens"] == 2006 and gen["usage"]["cache_read_tokens"] == 1920
    assert gen["usage"]["output_tokens"] == 300
    assert gen["attributes"] == {"service_tier": "default"}
    assert gen["model_parameters"] == {"temperature": 0.5}
    assert gen["start_time"] <= gen["end_time"] and gen["level"] is None


def test_service_tier_prices_at_the_tier_rate(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, service_tier="priority")
    assert last_total() == PRIORITY
    [gen] = generations(tracker)
    assert gen["attributes"] == {"service_tier": "priority"}


def test_stream_gets_usage_without_showing_the_extra_chunk(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)  # the client's own stream object
    chunks = list(stream)
    assert chunks and all(c.choices for c in chunks)  # the usage-only chunk was asked for by costline: hidden
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    assert fake.requests.last().body["stream_options"] == {"include_usage": True}
    assert last_total() == COST
    [gen] = generations(tracker)
    assert gen["completion_start_time"] is not None and gen["usage"]["cache_read_tokens"] == 1920


def test_stream_keeps_the_usage_chunk_the_caller_asked_for(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert last_total() == COST


def test_stream_without_usage_by_the_callers_choice_is_recorded_unpriced(fake: OpenAIFake,
                                                                        tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": False}))
    assert fake.requests.last().body["stream_options"] == {"include_usage": False}
    assert chunks and last_cost() is None
    [gen] = generations(tracker)
    assert gen["level"] == "WARNING" and "include_usage" in gen["status_message"] and gen["usage"] is None


def test_stream_closed_early_is_recorded_once(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    with client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        first = next(iter(stream))
        assert first.choices
    assert stream.response.is_closed
    [gen] = generations(tracker)
    assert gen["level"] == "WARNING" and gen["usage"] is None  # closed before the usage arrived
    stream.close()
    assert len(generations(tracker)) == 1


def test_stream_helper_is_covered(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == REPLY
    assert last_total() == COST and len(generations(tracker)) == 1


def test_async_chat_and_stream(fake: OpenAIFake, tracker: Tracker) -> None:
    async def run() -> tuple[D | None, D | None, list[Any]]:
        async with async_client(fake) as raw:
            client = instrument(raw, tracker)
            with tracker.trace(name="async", user_id="bob"):
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                one = last_total()
                stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
                assert isinstance(stream, openai.AsyncStream)
                chunks = [chunk async for chunk in stream]
            return one, last_total(), chunks

    one, streamed, chunks = asyncio.run(run())
    assert one == COST and streamed == COST
    assert chunks and all(c.choices for c in chunks)
    gens = generations(tracker)
    assert len(gens) == 2 and {g["user_id"] for g in gens} == {"bob"}


def test_an_error_is_recorded_and_raised_unchanged(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    fake.fail_next("429")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 429 and caught.value.response.headers["retry-after"] == "1"
    [gen] = generations(tracker)
    assert gen["level"] == "ERROR" and gen["status_message"].startswith("RateLimitError: Error code: 429")
    assert gen["model"] == "gpt-4o" and gen["usage"] is None
    assert last_cost() is None


def test_a_mid_stream_failure_is_recorded_and_raised(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    stream = client.chat.completions.create(model="error-stream-error", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError):
        list(stream)
    [gen] = generations(tracker)
    assert gen["level"] == "ERROR" and "APIError" in gen["status_message"]


def test_instrument_is_idempotent_and_switches_the_tracker(fake: OpenAIFake, tracker: Tracker) -> None:
    client = sync_client(fake)
    assert instrument(instrument(client, tracker), tracker) is client
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(generations(tracker)) == 1
    other = Tracker()
    try:
        instrument(client, other)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert len(generations(tracker)) == 1 and len(generations(other)) == 1
    finally:
        other.shutdown()


# -- responses and embeddings -----------------------------------------------------------------------------

def test_responses_api(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    response = client.responses.create(model="gpt-4o", input="hi")
    assert response.output_text == REPLY
    assert last_total() == COST  # same counts in the Responses shape
    [gen] = generations(tracker)
    assert gen["name"] == "openai.responses" and gen["attributes"] == {"service_tier": "default"}


def test_responses_web_searches_are_billed(fake: OpenAIFake, tracker: Tracker) -> None:
    fake.usage["web_searches"] = 2
    client = instrument(sync_client(fake), tracker)
    client.responses.create(model="gpt-4o", input="hi")
    assert last_total() == COST + 2 * D(10) / 1000


def test_responses_stream(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    events = list(client.responses.create(model="gpt-4o", input="hi", stream=True))
    assert events[-1].type == "response.completed"  # nothing hidden
    assert last_total() == COST
    [gen] = generations(tracker)
    assert gen["model"] == "gpt-4o-2024-08-06" and gen["completion_start_time"] is not None


def test_responses_stream_error_event(fake: OpenAIFake, tracker: Tracker) -> None:
    client = instrument(sync_client(fake), tracker)
    events = list(client.responses.create(model="error-stream-error", input="hi", stream=True))
    assert events[-1].type == "error"  # the client yields it; the call does not raise
    [gen] = generations(tracker)
    assert gen["level"] == "ERROR" and gen["status_message"].startswith("error event: server_error")
    assert gen["usage"] is None


def test_async_responses_stream(fake: OpenAIFake, tracker: Tracker) -> None:
    async def run() -> D | None:
        async with async_client(fake) as raw:
            client = instrument(raw, tracker)
            stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
            async for _ in stream:
                pass
        return last_total()

    assert asyncio.run(run()) == COST


def test_embeddings(fake: OpenAIFake, tracker: Tracker) -> None:
    fake.usage = {"prompt_tokens": 8000, "completion_tokens": 0}
    client = instrument(sync_client(fake), tracker)
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(result.data) == 2
    assert last_total() == 8000 * D("0.02") / 1_000_000  # $0.02 per 1M tokens
    [gen] = generations(tracker)
    assert gen["name"] == "openai.embeddings" and gen["usage"]["input_tokens"] == 8000


# -- end to end: a real `costline serve` stores the same cost ----------------------------------------------

def test_costs_arrive_at_a_real_server(fake: OpenAIFake, bundled_book: PriceBook,
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    server, _ = make_server("duckdb", tmp_path_factory.mktemp("openai-e2e"))
    server.start()
    try:
        tracker = Tracker(host=server.url, public_key=server.public_key, secret_key=server.secret_key,
                          book=bundled_book, flush_interval=0.05)
        client = instrument(sync_client(fake), tracker)
        with tracker.trace(name="e2e", user_id="carol") as trace:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, service_tier="priority")
            fake.fail_next("429")
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert tracker.flush(timeout=30)
        tracker.shutdown()
        with server.client() as http:
            stored = http.get(f"/v1/traces/{trace.id}").json()
    finally:
        server.stop()
    # two calls at the default tier, one at priority, one refused with a 429
    assert D(stored["total_cost"]) == 2 * COST + PRIORITY == D("0.0207755")
    generations_ = [o for o in stored["observations"] if o["type"] == "generation"]
    assert len(generations_) == 4 and {o["user_id"] for o in generations_} == {"carol"}
    [failed] = [o for o in generations_ if o["level"] == "ERROR"]
    assert failed["usage"] == {} and "429" in failed["status_message"]
    assert D(failed["total_cost"]) == 0  # a refused request has no usage: nothing is billed
    assert sorted(D(o["total_cost"]) for o in generations_ if o is not failed) == [COST, COST, PRIORITY]
