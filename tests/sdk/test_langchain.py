"""`CostlineCallbackHandler` with a real LangChain chat model (`langchain_openai.ChatOpenAI`) talking to the
local OpenAI-protocol server (tests/providers). gpt-4o's published price (`costline prices explain gpt-4o`):
input 2.50, cached input 1.25, output 10 USD per 1M. The server reports 2006 prompt tokens of which 1920
cached and 300 completion tokens: 86 × 2.50 + 1920 × 1.25 + 300 × 10 = 5615 per 1M = 0.005615."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI
from tests.providers.openai_server import OpenAIFake

from costline.sdk import Tracker
from costline.sdk.integrations.langchain import CostlineCallbackHandler


def events(tracker: Tracker, kind: str) -> list[dict[str, Any]]:
    return [e for e in tracker.events() if e.get("type") == kind]


def test_chat_model_run_is_priced_and_attributed(fake: OpenAIFake, tracker: Tracker) -> None:
    model = ChatOpenAI(model="gpt-4o", base_url=fake.base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]
    handler = CostlineCallbackHandler(tracker)
    reply = model.invoke("hi", config={"callbacks": [handler], "tags": ["support"],
                                       "metadata": {"user_id": "alice", "session_id": "s-1"}})
    assert reply.usage_metadata is not None and reply.usage_metadata["input_tokens"] == 2006
    [gen] = events(tracker, "generation")
    assert gen["provider"] == "openai" and gen["model"].startswith("gpt-4o")
    assert gen["usage"]["input_tokens"] == 2006 and gen["usage"]["cache_read_tokens"] == 1920
    assert gen["usage"]["output_tokens"] == 300
    [trace] = events(tracker, "trace")
    assert trace["user_id"] == "alice" and trace["session_id"] == "s-1" and "support" in trace["tags"]


def test_cost_matches_the_published_price(fake: OpenAIFake, tracker: Tracker) -> None:
    model = ChatOpenAI(model="gpt-4o", base_url=fake.base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]
    seen: list[D] = []
    with tracker.generation(name="outer-check") as outer:  # a sibling: just to prove nesting keeps working
        outer.update(usage={"input_tokens": 0})
    handler = CostlineCallbackHandler(tracker)
    original_end = handler.on_llm_end

    def spy(response: Any, **kwargs: Any) -> None:
        handle = handler._runs[kwargs["run_id"]]
        original_end(response, **kwargs)
        if handle.breakdown is not None:
            seen.append(handle.breakdown.total)

    handler.on_llm_end = spy  # type: ignore[method-assign]
    model.invoke("hi", config={"callbacks": [handler]})
    assert seen == [D("0.005615")]


def test_a_failed_run_is_an_error(fake: OpenAIFake, tracker: Tracker) -> None:
    model = ChatOpenAI(model="gpt-4o", base_url=fake.base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]
    fake.fail_next("500")
    with pytest.raises(openai.InternalServerError):
        model.invoke("hi", config={"callbacks": [CostlineCallbackHandler(tracker)]})
    [gen] = events(tracker, "generation")
    assert gen["level"] == "ERROR"
