"""`costline.sdk.budget.budget_guard` against a real `costline serve`, with the real `openai` client (instrumented
by costline) on the local OpenAI-protocol server (tests/providers).

Prices (OpenAI list prices per 1M tokens): gpt-4o $2.50 input / $10 output; gpt-4o-mini $0.15 / $0.60.
Budgets are per user and per day with a $0.01 limit unless a test says otherwise; every test scopes its
budgets to an environment of its own so tests share one server without meeting.

- a guard estimating 1,000 input + 500 output tokens of gpt-4o: 0.0025 + 0.005 = 0.0075 (under 0.01)
- the fake reports 1,000 prompt + 200 completion tokens, nothing cached: on gpt-4o 0.0025 + 0.002 = 0.0045
- after that call a second estimate of 0.0075 would reach 0.0045 + 0.0075 = 0.012 > 0.01: denied;
  remaining 0.01 - 0.0045 = 0.0055
- with the hold not released the counter would stand at 0.0045 + 0.0075 = 0.012
- downgrade: 1,000 + 1,000 tokens of gpt-4o is 0.0025 + 0.01 = 0.0125 > 0.01; on gpt-4o-mini
  0.00015 + 0.0006 = 0.00075; the fake's 1,000 + 200 on gpt-4o-mini: 0.00015 + 0.00012 = 0.00027
- a 1 MB prompt, "hello " × 170,000 (1,020,000 characters), is "hello" + 169,999 × " hello" + " " in o200k:
  170,001 tokens, × 2.50/1M = 0.4250025; as one chat message: + 3 (message) + 1 ("user") + 3 (reply
  priming) = 170,008 tokens, 0.42502
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import httpx
import openai
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.providers._serve import FakeProvider
from tests.providers.openai_server import REPLY, OpenAIFake
from tests.server.harness import Server, free_port, make_server

from costline.control.budgets import RESERVATION_KEY
from costline.control.check import CheckError
from costline.sdk import Tracker, context
from costline.sdk.budget import (
    RESERVATION_KEY as SDK_RESERVATION_KEY,
)
from costline.sdk.budget import (
    BudgetExceeded,
    BudgetUnavailable,
    Grant,
    budget_guard,
    current_grant,
)
from costline.sdk.integrations.openai import instrument

USAGE = {"input_tokens": 1000, "output_tokens": 500}  # estimate 0.0075 on gpt-4o
CALL_USAGE = {"prompt_tokens": 1000, "completion_tokens": 200}  # what the fake reports: 0.0045 on gpt-4o
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


class BudgetDown(FakeProvider):
    """A server whose budget check answers 503 (and records what it was sent)."""

    def routes(self) -> list[Route]:
        return [Route("/v1/budgets/check", self.check, methods=["POST"])]

    async def check(self, request: Request) -> JSONResponse:
        await self.record(request)
        return JSONResponse({"message": "down for maintenance"}, 503)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server, _ = make_server("duckdb", tmp_path_factory.mktemp("budget-guard"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http(srv: Server) -> Iterator[httpx.Client]:
    with srv.client() as client:
        yield client


@pytest.fixture
def remote(srv: Server) -> Iterator[Tracker]:
    tracker = Tracker(host=srv.url, public_key=srv.public_key, secret_key=srv.secret_key, flush_interval=0.05)
    yield tracker
    tracker.shutdown()


@pytest.fixture
def calls(fake: OpenAIFake) -> OpenAIFake:
    fake.usage = dict(CALL_USAGE)
    return fake


@pytest.fixture
def client(calls: OpenAIFake, remote: Tracker) -> Iterator[openai.OpenAI]:
    raw = openai.OpenAI(base_url=calls.base_url, api_key="test", max_retries=0)
    yield instrument(raw, remote)
    raw.close()


@pytest.fixture(scope="module")
def down() -> Iterator[BudgetDown]:
    with BudgetDown().running() as server:
        yield server


def scope() -> str:
    return f"env-{uuid.uuid4().hex[:10]}"


def add_budget(http: httpx.Client, env: str, name: str = "day", **spec: Any) -> str:
    budget_id = f"{env}-{name}"
    body = {"id": budget_id, "name": budget_id, "window": "day", "per": "user", "limit": "0.01",
            "action": "block", "scope": {"environment": env}, **spec}
    answer = http.post("/v1/budgets", json=body)
    assert answer.status_code == 201, answer.text
    return budget_id


def standing(http: httpx.Client, budget_id: str, user: str) -> dict[str, Any]:
    answer = http.get(f"/v1/budgets/{budget_id}", params={"subject": user})
    assert answer.status_code == 200, answer.text
    status: dict[str, Any] = answer.json()["status"]
    return status


def stored(http: httpx.Client, user: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = http.get("/v1/events", params={"user": user}).json()["data"]
    return [e for e in data if e["type"] == "generation"]


def dead_tracker() -> Tracker:
    return Tracker(host=f"http://127.0.0.1:{free_port()}", public_key="pk", secret_key="sk")


def test_the_reservation_key_is_the_servers() -> None:
    assert SDK_RESERVATION_KEY == RESERVATION_KEY


# -- allow, record, release; then deny ------------------------------------------------------------------------

def test_allowed_call_releases_its_hold_and_the_next_one_is_denied(
        http: httpx.Client, remote: Tracker, client: openai.OpenAI, calls: OpenAIFake) -> None:
    env, user = scope(), "alice"
    budget = add_budget(http, env)
    with budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, tracker=remote) as grant:
        assert grant.decision == "allow" and grant.model == "gpt-4o" and not grant.downgraded
        assert grant.estimate == D("0.0075") and grant.remaining == D("0.0025")
        assert grant.reservation_id and grant.usage["day"]["limit"] == "0.01"
        assert D(standing(http, budget, user)["used"]) == D("0.0075")  # the hold, while the call runs
        reply = client.chat.completions.create(model=grant.model, messages=MESSAGES)
    assert reply.choices[0].message.content == REPLY
    assert remote.flush(timeout=30)
    [generation] = stored(http, user)
    assert generation["metadata"][RESERVATION_KEY] == grant.reservation_id
    assert generation["environment"] == env and D(generation["total_cost"]) == D("0.0045")
    after = standing(http, budget, user)
    assert D(after["used"]) == D("0.0045") and after["requests_used"] == 1  # the hold is gone: not 0.012
    # the grant's reservation is settled: cancelling it finds nothing
    assert http.delete(f"/v1/budgets/reservations/{grant.reservation_id}").status_code == 404

    sent = len(calls.requests)
    with pytest.raises(BudgetExceeded) as caught, \
            budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, tracker=remote):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(calls.requests) == sent  # the model was never asked
    denied = caught.value
    assert denied.remaining == D("0.0055") and D(denied.usage["day"]["used"]) == D("0.0045")
    assert denied.resets_at is not None and denied.resets_at.isoformat() == after["resets_at"]
    assert denied.decision["decision"] == "deny" and denied.decision["reservation_id"] is None
    assert f"budget '{budget}'" in str(denied) and f"it resets at {after['resets_at']}" in str(denied)
    assert "0.012" in denied.reason
    assert D(standing(http, budget, user)["used"]) == D("0.0045")  # nothing held for the denied call


def test_downgrade_swaps_the_model(http: httpx.Client, remote: Tracker, client: openai.OpenAI,
                                   calls: OpenAIFake) -> None:
    env, user = scope(), "bob"
    add_budget(http, env, "big-model", action="downgrade", downgrade_to="gpt-4o-mini",
               scope={"environment": env, "model": "gpt-4o"})
    cap = add_budget(http, env, "cap", limit="1")
    with budget_guard("gpt-4o", user=user, environment=env, usage={"input_tokens": 1000, "output_tokens": 1000},
                      tracker=remote) as grant:
        assert grant.decision == "downgrade" and grant.downgraded and grant.asked_model == "gpt-4o"
        assert grant.model == "gpt-4o-mini" and grant.estimate == D("0.00075")
        assert "big-model" in (grant.reason or "") and grant.reservation_id  # held on the cap budget
        client.chat.completions.create(model=grant.model, messages=MESSAGES)
    assert calls.requests.last().model == "gpt-4o-mini"
    assert remote.flush(timeout=30)
    assert D(standing(http, cap, user)["used"]) == D("0.00027")


# -- what happens to the hold when nothing is recorded --------------------------------------------------------

def test_an_exception_in_the_block_cancels_the_hold(http: httpx.Client, remote: Tracker) -> None:
    env, user = scope(), "carol"
    budget = add_budget(http, env)
    failure = RuntimeError("the prompt template is broken")
    held: list[D] = []

    def guarded_work() -> None:
        with budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, tracker=remote) as grant:
            grants.append(grant)
            held.append(D(standing(http, budget, user)["used"]))
            raise failure

    grants: list[Grant] = []
    with pytest.raises(RuntimeError) as caught:
        guarded_work()
    assert caught.value is failure  # the very exception, not masked
    assert held == [D("0.0075")]
    [grant] = grants
    assert D(standing(http, budget, user)["used"]) == 0  # cancelled on the way out, before any flush
    assert http.delete(f"/v1/budgets/reservations/{grant.reservation_id}").status_code == 404


def test_a_failed_model_call_is_recorded_and_releases_the_hold(
        http: httpx.Client, remote: Tracker, client: openai.OpenAI, calls: OpenAIFake) -> None:
    env, user = scope(), "dave"
    budget = add_budget(http, env)
    calls.fail_next("429")
    with pytest.raises(openai.RateLimitError), \
            budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, tracker=remote) as grant:
        client.chat.completions.create(model=grant.model, messages=MESSAGES)
    # the failed call was recorded (level ERROR, no usage): the guard left the hold for it to release, so until
    # the tracker's sender delivers it the hold stands (the sender may already have, then it is released)
    assert D(standing(http, budget, user)["used"]) in (D("0.0075"), D(0))
    assert remote.flush(timeout=30)
    [generation] = stored(http, user)
    assert generation["level"] == "ERROR" and generation["metadata"][RESERVATION_KEY] == grant.reservation_id
    assert D(standing(http, budget, user)["used"]) == 0


def test_a_block_that_records_nothing_cancels_and_settle_records_the_call(http: httpx.Client,
                                                                          remote: Tracker) -> None:
    env, user = scope(), "erin"
    budget = add_budget(http, env)
    with budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, tracker=remote):
        pass  # e.g. the answer came from a cache
    assert D(standing(http, budget, user)["used"]) == 0
    with budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, tracker=remote) as grant:
        grant.settle(usage={"input_tokens": 1000, "output_tokens": 200})  # a call the tracker did not see
    status = standing(http, budget, user)
    assert D(status["used"]) == D("0.0045") and status["requests_used"] == 1
    [settled] = stored(http, user)
    assert settled["id"] == grant.reservation_id and settled["model"] == "gpt-4o"


def test_generations_opened_by_hand_carry_the_reservation_and_the_guards_metadata(
        http: httpx.Client, remote: Tracker) -> None:
    env, user = scope(), "frank"
    budget = add_budget(http, env, limit="1")
    with remote.trace(name="chat", user_id=user, environment=env), \
            remote.generation(name="answer", model="gpt-4o") as outer:
        # the guard sits inside the call's own generation (as under @observe(as_type="generation"))
        with budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, metadata={"team": "search"},
                          tracker=remote) as grant:
            remote.record_generation("gpt-4o", usage={"input_tokens": 1000, "output_tokens": 200},
                                     metadata={"feature": "rerank"})
        outer.update(usage={"input_tokens": 1000, "output_tokens": 200})
    assert context.generation_hook is None  # no guard open: the hot path is untouched
    assert remote.flush(timeout=30)
    found = stored(http, user)
    assert len(found) == 2 and {g["metadata"][RESERVATION_KEY] for g in found} == {grant.reservation_id}
    [quick] = [g for g in found if g["name"] is None]
    assert quick["metadata"] == {"feature": "rerank", "team": "search", RESERVATION_KEY: grant.reservation_id}
    # the outer generation and the record inside it report one call (gpt-4o, 1000 + 200 tokens, nested in
    # time): counted once (core/duplicates.py), 1000 × 2.5/1M + 200 × 10/1M = 0.0045, no hold left
    assert D(standing(http, budget, user)["used"]) == D("0.0045")


def test_nested_guards_stamp_the_innermost_and_the_outer_cancels(http: httpx.Client, remote: Tracker,
                                                                  client: openai.OpenAI) -> None:
    env, user = scope(), "gina"
    budget = add_budget(http, env, limit="1")
    with budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, tracker=remote) as outer, \
            budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, tracker=remote) as inner:
        assert current_grant() is inner
        client.chat.completions.create(model=inner.model, messages=MESSAGES)
    assert remote.flush(timeout=30)
    [generation] = stored(http, user)
    assert generation["metadata"][RESERVATION_KEY] == inner.reservation_id != outer.reservation_id
    assert D(standing(http, budget, user)["used"]) == D("0.0045")


# -- the server cannot be asked ---------------------------------------------------------------------------------

def test_unreachable_server_fails_closed_or_open(caplog: pytest.LogCaptureFixture) -> None:
    tracker = dead_tracker()
    try:
        with pytest.raises(BudgetUnavailable, match=r"ConnectError.*fails closed"), \
                budget_guard("gpt-4o", user="hana", usage=USAGE, tracker=tracker):
            pytest.fail("the block must not run")
        with caplog.at_level(logging.WARNING, logger="costline.sdk"), \
                budget_guard("gpt-4o", user="hana", usage=USAGE, on_unavailable="open", tracker=tracker) as grant:
            assert grant.decision == "allow" and grant.model == "gpt-4o" and grant.reservation_id is None
            assert context.generation_hook is None  # nothing to stamp without a reservation
        assert "unchecked (on_unavailable='open')" in caplog.text
    finally:
        tracker.shutdown()


def test_a_5xx_or_refused_keys_follow_the_policy(down: BudgetDown, srv: Server) -> None:
    broken = Tracker(host=down.origin, public_key="pk", secret_key="sk")
    wrong_key = Tracker(host=srv.url, public_key=srv.public_key, secret_key="sk-wrong")
    try:
        with pytest.raises(BudgetUnavailable, match="HTTP 503: down for maintenance"), \
                budget_guard("gpt-4o", user="ivan", tracker=broken):
            pass
        with budget_guard("gpt-4o", user="ivan", tracker=broken, on_unavailable="open") as grant:
            assert grant.decision == "allow" and grant.reservation_id is None
        with pytest.raises(BudgetUnavailable, match="HTTP 401"), budget_guard("gpt-4o", tracker=wrong_key):
            pass
    finally:
        broken.shutdown()
        wrong_key.shutdown()


def test_an_open_guard_without_a_server_still_attributes_the_call(tracker: Tracker) -> None:
    with budget_guard("gpt-4o", user="judy", session="s-1", tags=["beta"], on_unavailable="open",
                      tracker=tracker):
        tracker.record_generation("gpt-4o", usage={"input_tokens": 10, "output_tokens": 1})
    with tracker.trace(name="request") as trace, budget_guard("gpt-4o", user="judy", on_unavailable="open",
                                                              tracker=tracker):
        pass
    assert trace.user_id == "judy"  # the current trace's missing user is filled in
    events = tracker.events()
    [generation] = [e for e in events if e["type"] == "generation"]
    assert generation["user_id"] == "judy" and generation["session_id"] == "s-1"
    assert generation["metadata"] is None  # no reservation to carry
    [guard_trace] = [e for e in events if e["type"] == "trace" and e["id"] == generation["trace_id"]]
    assert guard_trace["tags"] == ["beta"]


# -- decorators and async ---------------------------------------------------------------------------------------

def test_decorator_on_a_sync_function(http: httpx.Client, remote: Tracker, client: openai.OpenAI,
                                      calls: OpenAIFake) -> None:
    env = scope()
    budget = add_budget(http, env)

    @budget_guard("gpt-4o", user=lambda *a, **k: k["user"], environment=env, usage=USAGE, tracker=remote)
    def answer(question: str, *, user: str) -> str | None:
        grant = current_grant()
        assert grant is not None
        reply = client.chat.completions.create(model=grant.model, messages=[{"role": "user", "content": question}])
        return reply.choices[0].message.content

    assert answer.__name__ == "answer"
    assert answer("hi", user="kim") == REPLY and answer("hi", user="lee") == REPLY
    assert current_grant() is None
    assert remote.flush(timeout=30)
    assert D(standing(http, budget, "kim")["used"]) == D("0.0045") == D(standing(http, budget, "lee")["used"])
    sent = len(calls.requests)
    with pytest.raises(BudgetExceeded):
        answer("again", user="kim")
    assert len(calls.requests) == sent


def test_decorator_and_async_with_on_async_code(http: httpx.Client, remote: Tracker, calls: OpenAIFake) -> None:
    env = scope()
    budget = add_budget(http, env)

    async def run() -> list[str | None]:
        async with openai.AsyncOpenAI(base_url=calls.base_url, api_key="test", max_retries=0) as raw:
            client = instrument(raw, remote)

            @budget_guard("gpt-4o", user=lambda question, user: user, environment=env, usage=USAGE, tracker=remote)
            async def answer(question: str, user: str) -> str | None:
                grant = current_grant()
                assert grant is not None
                reply = await client.chat.completions.create(model=grant.model, messages=MESSAGES)
                return reply.choices[0].message.content

            replies = list(await asyncio.gather(answer("hi", "mia"), answer("hi", "ned")))
            async with budget_guard("gpt-4o", user="olga", environment=env, usage=USAGE, tracker=remote) as grant:
                reply = await client.chat.completions.create(model=grant.model, messages=MESSAGES)
                replies.append(reply.choices[0].message.content)
            async with budget_guard("gpt-4o", user="pia", environment=env, usage=USAGE, tracker=remote):
                pass  # nothing recorded: cancelled with the async client
            with pytest.raises(BudgetExceeded):
                await answer("again", "mia")
            return replies

    assert asyncio.run(run()) == [REPLY, REPLY, REPLY]
    assert remote.flush(timeout=30)
    for user in ("mia", "ned", "olga"):
        assert D(standing(http, budget, user)["used"]) == D("0.0045"), user
    assert D(standing(http, budget, "pia")["used"]) == 0


def test_a_generator_function_cannot_be_decorated() -> None:
    with pytest.raises(TypeError, match="generator"):
        @budget_guard("gpt-4o")
        def chunks() -> Iterator[str]:
            yield "x"


# -- hostile input ----------------------------------------------------------------------------------------------

def test_a_one_megabyte_prompt_is_counted_here_and_held(http: httpx.Client, remote: Tracker) -> None:
    env, user = scope(), "pat"
    budget = add_budget(http, env, limit="1")
    prompt = "hello " * 170_000
    with budget_guard("gpt-4o", user=user, environment=env, prompt=prompt, tracker=remote) as grant:
        assert grant.decision == "allow" and grant.estimate == D("0.4250025")
        assert D(standing(http, budget, user)["used"]) == D("0.4250025")
    with budget_guard("gpt-4o", user=user, environment=env, messages=[{"role": "user", "content": prompt}],
                      tracker=remote) as grant:
        assert grant.estimate == D("0.42502")
    with budget_guard("gpt-4o", user=user, environment=env, prompt="hi", max_output_tokens=100,
                      tracker=remote) as grant:  # a small prompt goes to the server: 1 × 2.50/1M + 100 × 10/1M
        assert grant.estimate == D("0.0010025")
    assert D(standing(http, budget, user)["used"]) == 0  # all three cancelled


def test_bad_arguments_name_the_field_before_any_request(down: BudgetDown, calls: OpenAIFake) -> None:
    tracker = Tracker(host=down.origin, public_key="pk", secret_key="sk")
    down.reset()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"user": 42}, "user"),
        ({"user": ""}, "user"),
        ({"session": ["a"]}, "session"),
        ({"tags": "beta"}, "tags"),
        ({"metadata": {"a": {"b": 1}}}, "metadata.a"),
        ({"usage": {"input_tokens": -5}}, "usage"),
        ({"usage": {"bogus_unit": 5}}, "usage"),
        ({"estimated_cost": "NaN"}, "estimated_cost"),
        ({"estimated_cost": -1}, "estimated_cost"),
        ({"max_output_tokens": 1.5}, "max_output_tokens"),
        ({"prompt": b"bytes"}, "prompt"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages[0]"),
        ({"user": lambda: "x"}, "user"),  # a callable outside a decorator
        ({"ttl_seconds": 0}, "ttl_seconds"),
    ]
    try:
        for kwargs, field in cases:
            with pytest.raises(CheckError) as caught, budget_guard("gpt-4o", tracker=tracker, **kwargs):
                pass
            assert str(caught.value).startswith(f"{field}:"), (kwargs, str(caught.value))
        with pytest.raises(CheckError, match=r"^model:"), budget_guard(7, tracker=tracker):  # type: ignore[arg-type]
            pass
        for kwargs, field in [({"on_unavailable": "maybe"}, "on_unavailable"), ({"timeout": -1}, "timeout")]:
            with pytest.raises(CheckError, match=f"^{field}:"):
                budget_guard("gpt-4o", tracker=tracker, **kwargs)

        @budget_guard("gpt-4o", user=lambda *a, **k: k["user"], tracker=tracker)
        def answer(question: str) -> str:
            return question

        with pytest.raises(CheckError, match=r"^user: the callable raised KeyError"):
            answer("hi")
        assert len(down.requests) == 0 and len(calls.requests) == 0  # nothing was sent anywhere
    finally:
        tracker.shutdown()


def test_settle_arguments_are_checked(http: httpx.Client, remote: Tracker) -> None:
    env, user = scope(), "quinn"
    budget = add_budget(http, env)
    with budget_guard("gpt-4o", user=user, environment=env, usage=USAGE, tracker=remote) as grant:
        for kwargs, field in [({}, "settle"), ({"cost": "-1"}, "cost"), ({"cost": "lots"}, "cost"),
                              ({"usage": {"input_tokens": -1}}, "usage"), ({"cost": "1", "model": ""}, "model")]:
            with pytest.raises(CheckError, match=f"^{field}:"):
                grant.settle(**kwargs)
    assert D(standing(http, budget, user)["used"]) == 0  # nothing was settled: the hold was cancelled
