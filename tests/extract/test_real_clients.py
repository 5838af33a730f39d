"""What the real ``openai`` / ``anthropic`` clients return, fed to costline's extractors and priced.

The clients talk to the local fake servers in ``tests/providers`` (real HTTP, real SSE); the tests hand
``response.model_dump()`` (or the stream's chunks' ``model_dump()``) to ``costline.extract_usage`` /
``costline.extract_stream_usage`` and price the result. Expected usages and costs are worked out by hand
from the counts the fake was told to report and the published prices (checked with
``costline prices explain <model>``):

* gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output, $10 per 1K web searches; priority tier $4.25 /
  $2.125 / $17.
* o4-mini: $1.10/M input, $0.275/M cached, $4.40/M output.
* text-embedding-3-small: $0.02/M.
* claude-sonnet-4-5: $3/M input, $3.75/M 5-minute cache write, $6/M 1-hour cache write, $0.30/M cache read,
  $15/M output, $10 per 1K web searches; above 200K input tokens (cache included) $6 / $7.50 / $12 / $0.60 /
  $22.50.

Conventions being checked: OpenAI's ``prompt_tokens`` already includes ``cached_tokens`` (and
``completion_tokens`` includes ``reasoning_tokens``); Anthropic's ``input_tokens`` excludes the cache, so
costline's input is ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal as D
from typing import Any

import anthropic
import openai
import pytest
from tests.conftest import AT
from tests.providers.anthropic_server import AnthropicFake
from tests.providers.openai_server import OpenAIFake

import costline
from costline.core.resolve import PriceBook
from costline.errors import ExtractionError

M = D(1_000_000)
MESSAGES: list[Any] = [{"role": "user", "content": "Hello"}]
OPENAI_CACHED = {"prompt_tokens": 2006, "completion_tokens": 300, "cached_tokens": 1920}
# gpt-4o: 86 uncached × 2.50 + 1920 cached × 1.25 + 300 output × 10
GPT4O_CACHED_COST = (86 * D("2.50") + 1920 * D("1.25") + 300 * D(10)) / M
ANTHROPIC_CACHED = {"input_tokens": 50, "output_tokens": 400, "cache_read_input_tokens": 8000,
                    "ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}
# claude-sonnet-4-5: 50 uncached × 3 + 1000 5m-write × 3.75 + 2000 1h-write × 6 + 8000 read × 0.30 + 400 × 15
SONNET_CACHED_COST = (50 * D(3) + 1000 * D("3.75") + 2000 * D(6) + 8000 * D("0.30") + 400 * D(15)) / M
SONNET_CACHED_USAGE = costline.Usage.of(
    input_tokens=50 + 1000 + 2000 + 8000, cache_write_tokens=3000, cache_write_5m_tokens=1000,
    cache_write_1h_tokens=2000, cache_read_tokens=8000, output_tokens=400,
)


@pytest.fixture(scope="module")
def oai_server() -> Iterator[OpenAIFake]:
    with OpenAIFake().running() as fake:
        yield fake


@pytest.fixture(scope="module")
def ant_server() -> Iterator[AnthropicFake]:
    with AnthropicFake().running() as fake:
        yield fake


@pytest.fixture
def oai(oai_server: OpenAIFake) -> Iterator[openai.OpenAI]:
    oai_server.reset()
    oai_server.usage = dict(OPENAI_CACHED)
    with openai.OpenAI(base_url=oai_server.base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def ant(ant_server: AnthropicFake) -> Iterator[anthropic.Anthropic]:
    ant_server.reset()
    ant_server.usage = dict(ANTHROPIC_CACHED)
    ant_server.delta_repeats_input = True
    with anthropic.Anthropic(base_url=ant_server.base_url, api_key="test", max_retries=0) as client:
        yield client


@contextmanager
def sonnet_45() -> Iterator[None]:
    """A call to claude-sonnet-4-5 through the anthropic client. Some client versions warn that the model is
    deprecated (a DeprecationWarning attributed to the caller's line, so a module filter cannot place it);
    whether they do is the library's business, not what these tests check: the category is ignored here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def priced(extracted: costline.Extracted, book: PriceBook, **kwargs: Any) -> D:
    assert extracted.model is not None
    breakdown = costline.cost(extracted.usage, model=extracted.model, provider=extracted.provider, at=AT,
                              book=book, **kwargs)
    assert breakdown.status is costline.PricingStatus.PRICED, breakdown.reason
    total: D = breakdown.total
    return total


def dumps(items: Any) -> list[dict[str, Any]]:
    return [item.model_dump() for item in items]


# -- OpenAI Chat Completions -----------------------------------------------------------------------------


def test_openai_chat(oai: openai.OpenAI, bundled_book: PriceBook) -> None:
    got = costline.extract_usage(oai.chat.completions.create(model="gpt-4o", messages=MESSAGES).model_dump(),
                                 "openai")
    assert got.usage == costline.Usage.of(input_tokens=2006, cache_read_tokens=1920, output_tokens=300)
    assert (got.model, got.provider) == ("gpt-4o-2024-08-06", "openai")
    assert priced(got, bundled_book) == GPT4O_CACHED_COST == D("0.005615")


def test_openai_chat_stream_with_include_usage(oai: openai.OpenAI, bundled_book: PriceBook) -> None:
    stream = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                         stream_options={"include_usage": True})
    got = costline.extract_stream_usage(dumps(stream), "openai")
    assert got.usage == costline.Usage.of(input_tokens=2006, cache_read_tokens=1920, output_tokens=300)
    assert got.model == "gpt-4o-2024-08-06"
    assert priced(got, bundled_book) == GPT4O_CACHED_COST


def test_openai_chat_stream_without_include_usage_is_a_clear_error(oai: openai.OpenAI) -> None:
    chunks = dumps(oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    with pytest.raises(ExtractionError, match="include_usage"):
        costline.extract_stream_usage(chunks, "openai")


def test_openai_async_chat_and_stream(oai_server: OpenAIFake, bundled_book: PriceBook) -> None:
    oai_server.reset()
    oai_server.usage = dict(OPENAI_CACHED)

    async def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with openai.AsyncOpenAI(base_url=oai_server.base_url, api_key="test", max_retries=0) as client:
            one = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                          stream_options={"include_usage": True})
            return one.model_dump(), [chunk.model_dump() async for chunk in stream]

    one, chunks = asyncio.run(run())
    assert priced(costline.extract_usage(one, "openai"), bundled_book) == GPT4O_CACHED_COST
    assert priced(costline.extract_stream_usage(chunks, "openai"), bundled_book) == GPT4O_CACHED_COST


def test_openai_reasoning_tokens_are_inside_the_output(oai: openai.OpenAI, oai_server: OpenAIFake,
                                                        bundled_book: PriceBook) -> None:
    oai_server.usage = {"prompt_tokens": 1117, "cached_tokens": 1024, "completion_tokens": 1846,
                        "reasoning_tokens": 1600}
    got = costline.extract_usage(oai.chat.completions.create(model="o4-mini", messages=MESSAGES).model_dump(),
                                 "openai")
    assert got.usage == costline.Usage.of(input_tokens=1117, cache_read_tokens=1024, output_tokens=1846,
                                          output_reasoning_tokens=1600)
    # 93 uncached × 1.10 + 1024 cached × 0.275 + 1846 output × 4.40 (reasoning billed once, as output)
    assert priced(got, bundled_book) == (93 * D("1.10") + 1024 * D("0.275") + 1846 * D("4.40")) / M


def test_openai_priority_tier_needs_the_response_service_tier(oai: openai.OpenAI, bundled_book: PriceBook) -> None:
    response = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, service_tier="priority")
    got = costline.extract_usage(response.model_dump(), "openai")
    # the extractor does not carry the tier: the caller must pass it as an attribute
    assert response.service_tier == "priority"
    tiered = priced(got, bundled_book, attributes={"service_tier": response.service_tier})
    assert tiered == (86 * D("4.25") + 1920 * D("2.125") + 300 * D(17)) / M
    assert priced(got, bundled_book) == GPT4O_CACHED_COST


def test_openai_chat_stream_helper_needs_its_chunk_events_unwrapped(oai: openai.OpenAI,
                                                                    bundled_book: PriceBook) -> None:
    with oai.chat.completions.stream(model="gpt-4o", messages=MESSAGES,
                                     stream_options={"include_usage": True}) as stream:
        events = dumps(stream)
        final = stream.get_final_completion().model_dump()
    # the helper wraps each raw chunk in a {"type": "chunk", "chunk": ...} event
    with pytest.raises(ExtractionError, match="no usage"):
        costline.extract_stream_usage(events, "openai")
    chunks = [event["chunk"] for event in events if event["type"] == "chunk"]
    assert priced(costline.extract_stream_usage(chunks, "openai"), bundled_book) == GPT4O_CACHED_COST
    assert priced(costline.extract_usage(final, "openai"), bundled_book) == GPT4O_CACHED_COST


# -- OpenAI Responses and embeddings ---------------------------------------------------------------------


def test_openai_responses_object_and_stream(oai: openai.OpenAI, oai_server: OpenAIFake,
                                            bundled_book: PriceBook) -> None:
    oai_server.usage = OPENAI_CACHED | {"web_searches": 2}
    whole = costline.extract_usage(oai.responses.create(model="gpt-4o", input="Hello").model_dump(), "openai")
    streamed = costline.extract_stream_usage(
        dumps(oai.responses.create(model="gpt-4o", input="Hello", stream=True)), "openai")
    expected = costline.Usage.of(input_tokens=2006, cache_read_tokens=1920, output_tokens=300, web_searches=2)
    # tokens as above, plus 2 web_search_call items × $10 / 1K
    cost = GPT4O_CACHED_COST + 2 * D(10) / 1000
    for got in (whole, streamed):
        assert got.usage == expected
        assert got.model == "gpt-4o-2024-08-06"
        assert priced(got, bundled_book) == cost == D("0.025615")


def test_openai_responses_stream_helper_events_dump_only_without_serializer_warnings(
        oai: openai.OpenAI, bundled_book: PriceBook) -> None:
    with oai.responses.stream(model="gpt-4o", input="Hello") as stream:
        events = list(stream)
    completed = events[-1]
    assert completed.type == "response.completed"
    # some versions' parsed helper events make pydantic warn on a plain model_dump() (an error under -W error):
    # dump them as an application would, without serializer warnings
    dumped = [event.model_dump(warnings=False) for event in events]
    assert priced(costline.extract_stream_usage(dumped, "openai"), bundled_book) == GPT4O_CACHED_COST


def test_openai_async_responses_stream(oai_server: OpenAIFake, bundled_book: PriceBook) -> None:
    oai_server.reset()
    oai_server.usage = dict(OPENAI_CACHED)

    async def run() -> list[dict[str, Any]]:
        async with openai.AsyncOpenAI(base_url=oai_server.base_url, api_key="test", max_retries=0) as client:
            stream = await client.responses.create(model="gpt-4o", input="Hello", stream=True)
            return [event.model_dump() async for event in stream]

    got = costline.extract_stream_usage(asyncio.run(run()), "openai")
    assert priced(got, bundled_book) == GPT4O_CACHED_COST


def test_openai_embeddings(oai: openai.OpenAI, oai_server: OpenAIFake, bundled_book: PriceBook) -> None:
    oai_server.usage = {"prompt_tokens": 8000, "completion_tokens": 0}
    response = oai.embeddings.create(model="text-embedding-3-small", input=["first text", "second text"])
    got = costline.extract_usage(response.model_dump(), "openai")
    assert got.usage == costline.Usage.of(input_tokens=8000)
    assert priced(got, bundled_book) == 8000 * D("0.02") / M


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_cache_writes_are_priced_as_cache_writes(oai: openai.OpenAI, oai_server: OpenAIFake,
                                                        bundled_book: PriceBook, api: str) -> None:
    # openai 2.x types carry prompt_tokens_details.cache_write_tokens / input_tokens_details.cache_write_tokens
    # (a subset of the input, like cached_tokens); the catalog prices it for e.g. gpt-6-sol ($2 input,
    # $2.50 cache write, $0.20 cache read, $10 output per 1M)
    oai_server.usage = {"prompt_tokens": 10_000, "cached_tokens": 2000, "cache_write_tokens": 4000,
                        "completion_tokens": 500}
    if api == "chat":
        payload = oai.chat.completions.create(model="gpt-6-sol", messages=MESSAGES).model_dump()
    else:
        payload = oai.responses.create(model="gpt-6-sol", input="Hello").model_dump()
    got = costline.extract_usage(payload, "openai")
    assert got.usage == costline.Usage.of(input_tokens=10_000, cache_read_tokens=2000, cache_write_tokens=4000,
                                          output_tokens=500)
    assert priced(got, bundled_book) == (4000 * D(2) + 4000 * D("2.50") + 2000 * D("0.20") + 500 * D(10)) / M


# -- Anthropic Messages ----------------------------------------------------------------------------------


def test_anthropic_message(ant: anthropic.Anthropic, bundled_book: PriceBook) -> None:
    with sonnet_45():
        message = ant.messages.create(model="claude-sonnet-4-5", max_tokens=500, messages=MESSAGES)
    got = costline.extract_usage(message.model_dump(), "anthropic")
    assert got.usage == SONNET_CACHED_USAGE
    assert (got.model, got.provider) == ("claude-sonnet-4-5-20250929", "anthropic")
    assert priced(got, bundled_book) == SONNET_CACHED_COST == D("0.0243")


@pytest.mark.parametrize("repeats_input", [True, False], ids=["current-delta", "older-delta"])
def test_anthropic_stream(ant: anthropic.Anthropic, ant_server: AnthropicFake, bundled_book: PriceBook,
                          repeats_input: bool) -> None:
    ant_server.delta_repeats_input = repeats_input
    ant_server.usage = ANTHROPIC_CACHED | {"start_output_tokens": 4}
    with sonnet_45():
        events = dumps(ant.messages.create(model="claude-sonnet-4-5", max_tokens=500, messages=MESSAGES,
                                           stream=True))
    got = costline.extract_stream_usage(events, "anthropic")
    # message_start's provisional output_tokens (4) is replaced by message_delta's cumulative 400
    assert got.usage == SONNET_CACHED_USAGE
    assert got.model == "claude-sonnet-4-5-20250929"
    assert priced(got, bundled_book) == SONNET_CACHED_COST


def test_anthropic_stream_helper_events(ant: anthropic.Anthropic, bundled_book: PriceBook) -> None:
    with sonnet_45(), ant.messages.stream(model="claude-sonnet-4-5", max_tokens=500, messages=MESSAGES) as stream:
        events = dumps(stream)
        final = stream.get_final_message().model_dump()
    # the helper's extra events (text, content snapshots, message_stop with the message) are ignored
    assert priced(costline.extract_stream_usage(events, "anthropic"), bundled_book) == SONNET_CACHED_COST
    assert priced(costline.extract_usage(final, "anthropic"), bundled_book) == SONNET_CACHED_COST


def test_anthropic_async_message_and_stream(ant_server: AnthropicFake, bundled_book: PriceBook) -> None:
    ant_server.reset()
    ant_server.usage = dict(ANTHROPIC_CACHED)

    async def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with anthropic.AsyncAnthropic(base_url=ant_server.base_url, api_key="test", max_retries=0) as client:
            with sonnet_45():
                one = await client.messages.create(model="claude-sonnet-4-5", max_tokens=500, messages=MESSAGES)
            with sonnet_45():
                stream = await client.messages.create(model="claude-sonnet-4-5", max_tokens=500,
                                                      messages=MESSAGES, stream=True)
            return one.model_dump(), [event.model_dump() async for event in stream]

    one, events = asyncio.run(run())
    assert priced(costline.extract_usage(one, "anthropic"), bundled_book) == SONNET_CACHED_COST
    assert priced(costline.extract_stream_usage(events, "anthropic"), bundled_book) == SONNET_CACHED_COST


def test_anthropic_long_context_tier_counts_the_cache(ant: anthropic.Anthropic, ant_server: AnthropicFake,
                                                      bundled_book: PriceBook) -> None:
    # 150K uncached + 60K cache read = 210K input > 200K: every rate is the long-context one, although
    # Anthropic's own input_tokens (150K) is under the threshold
    ant_server.usage = {"input_tokens": 150_000, "cache_read_input_tokens": 60_000, "output_tokens": 1000}
    with sonnet_45():
        message = ant.messages.create(model="claude-sonnet-4-5", max_tokens=2000, messages=MESSAGES)
    got = costline.extract_usage(message.model_dump(), "anthropic")
    assert got.usage == costline.Usage.of(input_tokens=210_000, cache_read_tokens=60_000, output_tokens=1000)
    assert priced(got, bundled_book) == (150_000 * D(6) + 60_000 * D("0.60") + 1000 * D("22.50")) / M


def test_anthropic_web_searches(ant: anthropic.Anthropic, ant_server: AnthropicFake, bundled_book: PriceBook) -> None:
    ant_server.usage = ANTHROPIC_CACHED | {"web_search_requests": 3}
    with sonnet_45():
        whole = ant.messages.create(model="claude-sonnet-4-5", max_tokens=500, messages=MESSAGES).model_dump()
    with sonnet_45():
        events = dumps(ant.messages.create(model="claude-sonnet-4-5", max_tokens=500, messages=MESSAGES,
                                           stream=True))
    cost = SONNET_CACHED_COST + 3 * D(10) / 1000
    for got in (costline.extract_usage(whole, "anthropic"), costline.extract_stream_usage(events, "anthropic")):
        assert got.usage.get("web_searches") == 3
        assert priced(got, bundled_book) == cost
