"""Fallback routing with the real `openai` client against the local OpenAI-protocol server (tests/providers),
and the rate limiter's accounting on an injected clock. Prices (`costline prices explain`): gpt-4o-mini
input 0.15, cached input 0.075, output 0.60 USD per 1M. The server reports 2006 prompt tokens of which 1920
cached and 300 completion tokens: 86 × 0.15 + 1920 × 0.075 + 300 × 0.60 = 12.9 + 144 + 180 = 336.9 per 1M."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import openai
import pytest
from tests.providers.openai_server import OpenAIFake
from tests.sdk.conftest import generations

from costline.api import cost
from costline.sdk import Tracker
from costline.sdk.fallback import FallbackExhaustedError, FallbackRouter, RateLimiter, Route

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client(fake: OpenAIFake) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as c:
        yield c


def routes(client: openai.OpenAI) -> list[Route[Any]]:
    return [
        Route("gpt-4o", lambda **kw: client.chat.completions.create(model="gpt-4o", **kw), provider="openai"),
        Route("gpt-4o-mini", lambda **kw: client.chat.completions.create(model="gpt-4o-mini", **kw),
              provider="openai"),
    ]


def test_rate_limit_falls_back_to_the_next_model(client: openai.OpenAI, fake: OpenAIFake, tracker: Tracker) -> None:
    fake.fail_next("429")
    reply = FallbackRouter(routes(client), tracker=tracker)(messages=MESSAGES)
    assert reply.model.startswith("gpt-4o-mini")
    first, second = generations(tracker)
    assert first["level"] == "ERROR" and first["metadata"]["fallback"] == {
        "primary": True, "attempt": 1, "reason": None}
    assert second["metadata"]["fallback"] == {"primary": False, "attempt": 2, "reason": "rate_limited"}
    assert second["usage"]["input_tokens"] == 2006 and second["usage"]["output_tokens"] == 300


def test_the_cost_of_the_fallback_is_its_own(client: openai.OpenAI, fake: OpenAIFake, tracker: Tracker) -> None:
    fake.fail_next("500")
    router = FallbackRouter(routes(client), tracker=tracker)
    router(messages=MESSAGES)
    second = generations(tracker)[-1]
    assert second["metadata"]["fallback"]["reason"] == "error:InternalServerError"
    priced = cost(model=second["model"], provider="openai", input_tokens=2006, cache_read_tokens=1920,
                  output_tokens=300)
    assert priced.total == D("0.0003369")


def test_a_budget_guard_skips_the_primary(client: openai.OpenAI, fake: OpenAIFake, tracker: Tracker) -> None:
    router = FallbackRouter(routes(client), tracker=tracker, budget_guard=lambda route: route.model != "gpt-4o")
    reply = router(messages=MESSAGES)
    assert reply.model.startswith("gpt-4o-mini")
    assert [r.body["model"] for r in fake.requests.all()] == ["gpt-4o-mini"]  # the primary was never called
    [gen] = generations(tracker)
    assert gen["metadata"]["fallback"] == {"primary": False, "attempt": 2, "reason": "budget"}


def test_a_bad_request_is_not_retried(client: openai.OpenAI, fake: OpenAIFake, tracker: Tracker) -> None:
    fake.fail_next("400")
    with pytest.raises(openai.BadRequestError):
        FallbackRouter(routes(client), tracker=tracker)(messages=MESSAGES)
    assert len(fake.requests.all()) == 1


def test_every_route_failing_says_why(client: openai.OpenAI, fake: OpenAIFake, tracker: Tracker) -> None:
    fake.fail_next("429", times=2)
    with pytest.raises(FallbackExhaustedError) as caught:
        FallbackRouter(routes(client), tracker=tracker)(messages=MESSAGES)
    assert caught.value.reasons == [("gpt-4o", "rate_limited"), ("gpt-4o-mini", "rate_limited")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_counts_actual_tokens_in_a_sliding_minute() -> None:
    clock = Clock()
    limiter = RateLimiter(rpm=3, tpm=1000, clock=clock)
    first = limiter.reserve(600)
    assert first is not None
    assert limiter.reserve(600) is None  # 600 + 600 > 1000
    limiter.settle(first, 300)  # the call used fewer tokens than estimated
    second = limiter.reserve(600)
    assert second is not None and limiter.usage() == (2, 900)
    clock.now += 30
    assert limiter.reserve(200) is None  # 900 + 200 > 1000, both uses still in the window
    clock.now += 30.5  # the first two uses are now more than 60 s old
    assert limiter.usage() == (0, 0)
    assert all(limiter.reserve(0) is not None for _ in range(3))
    assert limiter.reserve(0) is None  # the fourth request in a minute


def test_a_limiter_refusal_falls_back(client: openai.OpenAI, fake: OpenAIFake, tracker: Tracker) -> None:
    clock = Clock()
    full = RateLimiter(rpm=1, clock=clock)
    assert full.reserve() is not None
    router = FallbackRouter(routes(client), tracker=tracker, limiters={"gpt-4o": full})
    router(messages=MESSAGES)
    [gen] = generations(tracker)
    assert gen["metadata"]["fallback"]["reason"] == "rate_limited_locally"
    mini = RateLimiter(tpm=10_000, clock=clock)
    FallbackRouter(routes(client)[1:], tracker=tracker, limiters={"gpt-4o-mini": mini},
                   estimate_tokens=lambda kw: 5000)(messages=MESSAGES)
    assert mini.usage() == (1, 2306)  # settled with the actual 2006 + 300 tokens
