"""The tracker in memory-only mode: local prices by hand, nesting through contextvars, never raising."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal as D
from typing import Any

import pytest

from costline.core.cost import PricingStatus
from costline.core.resolve import PriceBook
from costline.sdk import Tracker, configure, current_observation, get_tracker, observe


@pytest.fixture
def tracker(bundled_book: PriceBook) -> Iterator[Tracker]:
    t = Tracker(book=bundled_book)
    yield t
    t.shutdown()


def by_type(t: Tracker, kind: str) -> list[dict[str, Any]]:
    return [e for e in t.events() if e["type"] == kind]


def test_local_mode_is_announced(bundled_book: PriceBook, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "costline.sdk"):
        t = Tracker(book=bundled_book)
    assert t.mode == "local"
    assert "only kept in memory" in caplog.text
    t.shutdown()


def test_record_generation_prices_by_hand(tracker: Tracker) -> None:
    # gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output (costline prices explain gpt-4o)
    # 800 uncached × 2.5 + 200 cached × 1.25 + 50 × 10 = 2000 + 250 + 500 = 2750 → $0.00275
    b = tracker.record_generation(model="gpt-4o",
                                  usage={"input_tokens": 1000, "cache_read_tokens": 200, "output_tokens": 50})
    assert b.status == PricingStatus.PRICED
    assert b.total == D("0.00275")
    assert b.component("cache_read_tokens").amount == D("0.00025")  # type: ignore[union-attr]
    [event] = by_type(tracker, "generation")
    assert event["model"] == "gpt-4o" and event["cost"] is None  # the server prices it again
    assert dict(event["usage"].quantities) == {"input_tokens": 1000, "cache_read_tokens": 200, "output_tokens": 50}
    assert event["trace_id"] == event["id"] and event["parent_id"] is None


def test_provider_usage_shape(tracker: Tracker) -> None:
    openai_usage = {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050,
                    "prompt_tokens_details": {"cached_tokens": 200}}
    b = tracker.record_generation(model="gpt-4o", raw_usage=openai_usage, usage_format="openai")
    assert b.total == D("0.00275")
    with tracker.generation(name="answer", model="gpt-4o", provider="openai") as g:
        assert g.breakdown is None
        g.update(raw_usage=openai_usage, usage_format="openai")
        assert g.breakdown is not None and g.breakdown.total == D("0.00275")


def test_provided_cost_wins_and_is_sent(tracker: Tracker) -> None:
    b = tracker.record_generation(model="house-model", usage={"input_tokens": 10}, cost={"total": "0.0004"})
    assert b.total == D("0.0004") and b.status == PricingStatus.PROVIDED
    [event] = by_type(tracker, "generation")
    assert event["cost"] == {"total": D("0.0004")}


def test_bad_input_never_raises(tracker: Tracker, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "costline.sdk"):
        unknown = tracker.record_generation(model="no-such-model-xyz", usage={"input_tokens": 5})
        negative = tracker.record_generation(model="gpt-4o", usage={"input_tokens": -5})
        bad_unit = tracker.record_generation(model="gpt-4o", usage={"tokens_in": 5})
        bad_shape = tracker.record_generation(model="gpt-4o", raw_usage={"x": "y"}, usage_format="nonsense")
        bad_cost = tracker.record_generation(model="gpt-4o", usage={"input_tokens": 5}, cost={"total": "abc"})
        no_model = tracker.record_generation(model=None, usage={"input_tokens": 5})  # type: ignore[arg-type]
    assert unknown.status == PricingStatus.UNPRICED and "no-such-model-xyz" in (unknown.reason or "")
    assert negative.status == PricingStatus.UNPRICED and "must not be negative" in (negative.reason or "")
    assert bad_unit.status == PricingStatus.UNPRICED and "tokens_in" in (bad_unit.reason or "")
    assert bad_shape.status == PricingStatus.UNPRICED
    assert bad_cost.status == PricingStatus.PRICED and bad_cost.total == D("0.0000125")  # cost ignored
    assert no_model.status == PricingStatus.UNPRICED
    assert "must not be negative" in caplog.text and "cost ignored" in caplog.text
    events = by_type(tracker, "generation")
    assert len(events) == 6  # every call is still recorded
    flagged = [e for e in events if e["level"] == "WARNING"]
    assert {e["status_message"].split(":")[0] for e in flagged} == {"usage"}
    assert all(e["usage"] is None for e in flagged)


def test_nesting_and_inherited_trace_attributes(tracker: Tracker) -> None:
    with tracker.trace(name="chat", user_id="u1", session_id="s1", tags=["a"], metadata={"k": 1}) as t:
        with tracker.span(name="retrieve") as s, tracker.generation(name="answer", model="gpt-4o") as g:
            g.update(usage={"input_tokens": 100, "output_tokens": 10})
            tracker.update_current_trace(tags=["b"], release="1.2")
            inner = tracker.record_generation(model="gpt-4o", usage={"input_tokens": 1000}, name="inner")
        assert current_observation() is None
    assert inner.total == D("0.0025")
    events = {e.get("name"): e for e in tracker.events()}
    assert events["retrieve"]["trace_id"] == t.id and events["retrieve"]["parent_id"] is None
    assert events["answer"]["trace_id"] == t.id and events["answer"]["parent_id"] == s.id
    assert events["inner"]["trace_id"] == t.id and events["inner"]["parent_id"] == g.id
    assert events["inner"]["user_id"] == "u1" and events["inner"]["session_id"] == "s1"
    assert events["inner"]["release"] == "1.2"
    trace = events["chat"]
    assert trace["type"] == "trace" and trace["id"] == t.id
    assert trace["tags"] == ["a", "b"] and trace["metadata"] == {"k": 1} and trace["user_id"] == "u1"
    # 100 × 2.5 + 10 × 10 = 350 → $0.00035
    assert g.breakdown is not None and g.breakdown.total == D("0.00035")


def test_environment_and_release_defaults(bundled_book: PriceBook) -> None:
    t = Tracker(environment="staging", release="9.9", book=bundled_book)
    t.record_generation(model="gpt-4o", usage={"input_tokens": 1})
    with t.trace(name="x"):
        pass
    gen, trace = t.events()
    assert gen["environment"] == trace["environment"] == "staging" and gen["release"] == trace["release"] == "9.9"
    t.shutdown()


def test_asyncio_tasks_inherit_the_context(tracker: Tracker) -> None:
    async def work(i: int) -> str | None:
        await asyncio.sleep(0)
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": i + 1}, name=f"task-{i}")
        obs = current_observation()
        return obs.id if obs else None

    async def main() -> tuple[str, list[str | None]]:
        with tracker.trace(name="root", user_id="u9") as t, tracker.span(name="fanout") as s:
            parents = await asyncio.gather(*(work(i) for i in range(3)))
            assert all(p == s.id for p in parents)
            return t.id, list(parents)

    trace_id, _ = asyncio.run(main())
    tasks = [e for e in tracker.events() if str(e.get("name")).startswith("task-")]
    assert len(tasks) == 3
    assert all(e["trace_id"] == trace_id and e["user_id"] == "u9" for e in tasks)


def test_observe_on_every_kind_of_function(tracker: Tracker) -> None:
    seen: dict[str, str | None] = {}

    @observe(tracker=tracker)
    def plain(x: int) -> int:
        seen["plain"] = current_observation().name  # type: ignore[union-attr]
        return x + 1

    @observe(as_type="generation", tracker=tracker, name="llm")
    def llm() -> str:
        tracker.update_current_generation(model="gpt-4o", usage={"input_tokens": 1000, "output_tokens": 100})
        return "ok"

    @observe(tracker=tracker)
    async def coro() -> int:
        await asyncio.sleep(0)
        return plain(1)

    @observe(tracker=tracker)
    def gen(n: int) -> Iterator[int]:
        for i in range(n):
            seen[f"gen-{i}"] = current_observation().name  # type: ignore[union-attr]
            yield i

    @observe(tracker=tracker)
    async def agen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    @observe(tracker=tracker)
    def broken() -> None:
        raise KeyError("boom")

    with tracker.trace(name="t") as t:
        assert plain(1) == 2
        assert llm() == "ok"
        assert asyncio.run(coro()) == 2
        got = []
        for item in gen(2):
            got.append(item)
            assert current_observation() is None  # not leaked into the consumer between items
        assert got == [0, 1]

        async def consume() -> list[int]:
            return [i async for i in agen(3)]

        assert asyncio.run(consume()) == [0, 1, 2]
        with pytest.raises(KeyError):
            broken()
    assert seen["plain"].endswith("plain") and seen["gen-1"].endswith("gen")  # type: ignore[union-attr]
    events = [e for e in tracker.events() if e["type"] != "trace"]
    names = [e["name"].rsplit(".", 1)[-1] for e in events]
    assert names == ["plain", "llm", "plain", "coro", "gen", "agen", "broken"]
    assert all(e["trace_id"] == t.id for e in events)
    coro_event = events[3]
    assert events[2]["parent_id"] == coro_event["id"]  # plain() called inside coro()
    llm_event = events[1]
    assert llm_event["type"] == "generation" and llm_event["model"] == "gpt-4o"
    assert events[-1]["level"] == "ERROR" and "KeyError" in events[-1]["status_message"]


def test_observe_at_top_level_opens_a_trace(tracker: Tracker) -> None:
    @observe(tracker=tracker)
    def handler() -> None:
        tracker.update_current_trace(user_id="u5", session_id="s5")
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": 10})

    handler()
    gen, span, trace = tracker.events()
    assert trace["type"] == "trace" and trace["user_id"] == "u5" and trace["name"].endswith("handler")
    assert span["trace_id"] == gen["trace_id"] == trace["id"] and gen["parent_id"] == span["id"]


def test_updates_outside_context_are_ignored(tracker: Tracker, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "costline.sdk"):
        tracker.update_current_trace(user_id="x")
        assert tracker.update_current_generation(model="gpt-4o") is None
    assert "outside a trace" in caplog.text and "outside a generation" in caplog.text


def test_local_buffer_keeps_the_newest_and_counts_drops(bundled_book: PriceBook) -> None:
    t = Tracker(max_buffer=5, book=bundled_book)
    for i in range(8):
        t.record_generation(model="gpt-4o", usage={"input_tokens": i + 1})
    assert [dict(e["usage"].quantities)["input_tokens"] for e in t.events()] == [4, 5, 6, 7, 8]
    assert t.stats["dropped"] == 3 and t.stats["queued"] == 5
    t.shutdown()


def test_disabled_tracker_still_prices(bundled_book: PriceBook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLINE_ENABLED", "false")
    t = Tracker(host="http://127.0.0.1:9", book=bundled_book)
    assert t.mode == "disabled"
    assert t.record_generation(model="gpt-4o", usage={"output_tokens": 100}).total == D("0.001")
    assert t.events() == [] and t.flush(timeout=1)
    t.shutdown()


def test_configuration_from_environment(monkeypatch: pytest.MonkeyPatch, bundled_book: PriceBook) -> None:
    monkeypatch.setenv("COSTLINE_HOST", "127.0.0.1:9/")
    monkeypatch.setenv("COSTLINE_PUBLIC_KEY", "pk")
    monkeypatch.setenv("COSTLINE_SECRET_KEY", "sk")
    monkeypatch.setenv("COSTLINE_ENVIRONMENT", "prod")
    monkeypatch.setenv("COSTLINE_BATCH_SIZE", "not-a-number")
    t = Tracker(book=bundled_book, release="r1")
    assert t.mode == "http"
    assert t.config.host == "http://127.0.0.1:9" and t.config.public_key == "pk"
    assert t.config.environment == "prod" and t.config.release == "r1" and t.config.batch_size == 500
    t.shutdown(timeout=0)


def test_configure_sets_the_process_tracker(bundled_book: PriceBook) -> None:
    t = configure(book=bundled_book, environment="e1")
    try:
        assert get_tracker() is t

        @observe()
        def work() -> None:
            get_tracker().record_generation(model="gpt-4o", usage={"input_tokens": 1})

        work()
        assert [e["type"] for e in t.events()] == ["generation", "span", "trace"]
    finally:
        t.shutdown()
