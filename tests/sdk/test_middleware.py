"""The ASGI cost middleware on a real FastAPI app served by uvicorn on a loopback port, with the real ``openai``
client against the fake OpenAI server, and end to end against a real ``costline serve``.

Expected costs are computed by hand from gpt-4o's published prices: $2.50/M input, $1.25/M cached input,
$10/M output (``costline prices explain gpt-4o``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse, StreamingResponse
from tests.providers.openai_server import OpenAIFake
from tests.server.harness import make_server

from costline.core.resolve import PriceBook
from costline.sdk import Tracker
from costline.sdk.middleware import CostMiddleware, add_cost, install
from costline.sdk.request_costs import RequestCosts

M = D(1_000_000)
# 1000 input tokens of which 200 cached, 50 output: 800 × 2.50 + 200 × 1.25 + 50 × 10 = 2750 per million
CHAT_USAGE = {"input_tokens": 1000, "cache_read_tokens": 200, "output_tokens": 50}
CHAT_COST = (800 * D("2.50") + 200 * D("1.25") + 50 * 10) / M
# the fake OpenAI server reporting 2006 prompt tokens (1920 cached) and 300 completion tokens
OPENAI_USAGE = {"prompt_tokens": 2006, "completion_tokens": 300, "cached_tokens": 1920}
OPENAI_COST = (86 * D("2.50") + 1920 * D("1.25") + 300 * 10) / M
LAMBDA_COST = D("0.0000400008")  # 2.4 s at a price the app knows


# -- a real server for the app -----------------------------------------------------------------------------------

@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off",
                                           ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    ready = threading.Event()
    for _ in range(500):
        if server.started or not thread.is_alive():
            break
        ready.wait(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[OpenAIFake]:
    with OpenAIFake().running() as fake:
        fake.usage = dict(OPENAI_USAGE)
        yield fake


def ask_openai(tracker: Tracker, fake: OpenAIFake) -> str | None:
    """A chat completion with the real (sync) client, recorded as a generation with the response's usage."""
    client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
    with tracker.generation(name="answer", model="gpt-4o", provider="openai") as g:
        response = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert response.usage is not None
        g.update(raw_usage=response.usage.model_dump(), usage_format="openai",
                 attributes={"service_tier": str(response.service_tier)})
    client.close()
    return response.choices[0].message.content


def build_app(tracker: Tracker, fake: OpenAIFake | None = None, **options: Any) -> FastAPI:
    app = FastAPI()
    install(app, tracker, **options)
    gates: dict[str, asyncio.Event] = {}

    def gate(name: str) -> asyncio.Event:
        return gates.setdefault(name, asyncio.Event())

    @app.get("/chat/{n}")
    async def chat(n: int) -> dict[str, Any]:
        for _ in range(n):
            tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE, provider="openai")
        return {"answer": "hello", "n": n}

    @app.get("/empty")
    async def empty() -> dict[str, Any]:
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)
        return {}

    @app.post("/job")
    def job() -> dict[str, str]:  # a sync route: runs in the thread pool with a copy of the context
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE, provider="openai")
        add_cost(service="lambda", operation="execution", unit="seconds", quantity=2.4, amount=LAMBDA_COST)
        add_cost("s3", "put", "requests", 3, unit_price="0.000005")
        return {"status": "done"}

    @app.get("/openai")
    def call_openai() -> dict[str, Any]:
        assert fake is not None
        return {"reply": ask_openai(tracker, fake)}

    @app.get("/openai-async")
    async def call_openai_async() -> dict[str, Any]:
        assert fake is not None
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
        with tracker.generation(name="answer", model="gpt-4o", provider="openai") as g:
            response = await client.chat.completions.create(model="gpt-4o",
                                                            messages=[{"role": "user", "content": "Hi"}])
            assert response.usage is not None
            g.update(raw_usage=response.usage.model_dump(), usage_format="openai")
        await client.close()
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)
        return {"reply": response.choices[0].message.content}

    @app.get("/overlap/{role}")
    async def overlap(role: str) -> dict[str, str]:
        if role == "first":  # one call, then wait until the second request has recorded, then one more
            tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)
            gate("first").set()
            await asyncio.wait_for(gate("second").wait(), 10)
            tracker.record_generation(model="gpt-4o", usage={"input_tokens": 1_000_000})
        else:
            await asyncio.wait_for(gate("first").wait(), 10)
            tracker.record_generation(model="gpt-4o", usage={"output_tokens": 1000})
            gate("second").set()
        return {"role": role}

    @app.get("/text")
    async def text() -> PlainTextResponse:
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)
        return PlainTextResponse("plain words")

    @app.get("/list")
    async def listing() -> list[int]:
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)
        return [1, 2, 3]

    @app.get("/unpriced")
    async def unpriced() -> dict[str, str]:
        tracker.record_generation(model="no-such-model-anywhere", usage={"input_tokens": 10, "output_tokens": 5})
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)
        return {"ok": "yes"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)

        async def body() -> AsyncIterator[bytes]:
            yield b"part one\n"
            tracker.record_generation(model="gpt-4o", usage={"output_tokens": 1000})
            yield b"part two\n"

        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/json-stream")
    async def json_stream() -> StreamingResponse:
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)

        async def body() -> AsyncIterator[bytes]:
            yield b'{"items": ['
            for i in range(50):
                yield f"{i}, ".encode()
            yield b'50]}'

        return StreamingResponse(body(), media_type="application/json")

    @app.get("/failed-call")
    def failed_call() -> dict[str, str]:
        assert fake is not None
        fake.fail_next("500")
        with suppress(openai.InternalServerError):
            ask_openai(tracker, fake)
        return {"reply": str(ask_openai(tracker, fake))}

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)
        raise RuntimeError("the route failed")

    @app.get("/missing")
    async def missing() -> dict[str, str]:
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)
        raise HTTPException(status_code=404, detail="no such thing")

    return app


@pytest.fixture
def tracker(bundled_book: PriceBook) -> Iterator[Tracker]:
    t = Tracker(book=bundled_book)  # local mode: events stay in memory (tracker.events())
    yield t
    t.shutdown()


def trace_events(tracker: Tracker) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in tracker.events() if e["type"] == "trace"}


def cost_headers(response: httpx.Response) -> tuple[D, int, int]:
    return (D(response.headers["x-cost-usd"]), int(response.headers["x-token-input"]),
            int(response.headers["x-token-output"]))


# -- headers -----------------------------------------------------------------------------------------------------

def test_headers_sum_the_generations_of_the_request(tracker: Tracker) -> None:
    with serving(build_app(tracker)) as url:
        r = httpx.get(f"{url}/chat/3", headers={"X-Request-ID": "req-42"})
    assert r.status_code == 200
    assert r.json() == {"answer": "hello", "n": 3}  # not injected unless asked
    assert cost_headers(r) == (3 * CHAT_COST, 3000, 150)
    assert r.headers["x-cost-usd"] == "0.00825"
    assert "x-cost-unpriced" not in r.headers
    assert r.headers["x-request-id"] == "req-42"
    trace = trace_events(tracker)[r.headers["x-costline-trace-id"]]
    assert trace["name"] == "GET /chat/{n}"
    assert trace["metadata"]["request_id"] == "req-42"
    assert trace["metadata"]["http_status"] == 200
    stored = trace["metadata"]["request_cost"]
    assert stored["total_cost"] == "0.00825" and stored["operation"] == "GET /chat/{n}"
    assert [i["cost"] for i in stored["cost_breakdown"]] == ["0.00275"] * 3
    generations = [e for e in tracker.events() if e["type"] == "generation"]
    assert {g["trace_id"] for g in generations} == {trace["id"]}


def test_added_items_and_a_sync_route(tracker: Tracker) -> None:
    with serving(build_app(tracker, inject_json=True)) as url:
        r = httpx.post(f"{url}/job")
    s3 = 3 * D("0.000005")
    assert cost_headers(r) == (CHAT_COST + LAMBDA_COST + s3, 1000, 50)
    cost = r.json()["cost"]
    assert cost["cost_breakdown"] == [
        {"service": "openai", "operation": "gpt-4o", "cost": "0.00275", "unit": "tokens", "quantity": 1050},
        {"service": "lambda", "operation": "execution", "cost": "0.0000400008", "unit": "seconds",
         "quantity": 2.4},
        {"service": "s3", "operation": "put", "cost": "0.000015", "unit": "requests", "quantity": 3},
    ]
    assert D(cost["total_cost"]) == CHAT_COST + LAMBDA_COST + s3
    spans = [e for e in tracker.events() if e["type"] == "span"]
    assert {(s["name"], s["cost"]["total"]) for s in spans} == {("lambda execution", LAMBDA_COST),
                                                               ("s3 put", s3)}
    assert {s["trace_id"] for s in spans} == {r.headers["x-costline-trace-id"]}
    assert spans[0]["metadata"]["unit"] == "seconds" and spans[0]["metadata"]["quantity"] == "2.4"


def test_real_openai_client_sync_and_async(tracker: Tracker, openai_fake: OpenAIFake) -> None:
    with serving(build_app(tracker, openai_fake)) as url:
        sync = httpx.get(f"{url}/openai")
        asyn = httpx.get(f"{url}/openai-async")
    assert sync.json() == asyn.json() and sync.json()["reply"]
    assert cost_headers(sync) == (OPENAI_COST, 2006, 300)
    assert sync.headers["x-cost-usd"] == "0.005615"
    assert cost_headers(asyn) == (OPENAI_COST + CHAT_COST, 3006, 350)


def test_overlapping_requests_keep_separate_totals(tracker: Tracker) -> None:
    with serving(build_app(tracker)) as url, ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.get, f"{url}/overlap/first", timeout=20)
        second = pool.submit(httpx.get, f"{url}/overlap/second", timeout=20)
        a, b = first.result(), second.result()
    # first: CHAT_COST + 1M input tokens ($2.50); second: 1000 output tokens ($0.01)
    assert cost_headers(a) == (CHAT_COST + D("2.5"), 1_001_000, 50)
    assert cost_headers(b) == (D("0.01"), 0, 1000)
    assert a.headers["x-costline-trace-id"] != b.headers["x-costline-trace-id"]


def test_unpriced_generations_are_stated_not_zeroed(tracker: Tracker) -> None:
    with serving(build_app(tracker, inject_json=True)) as url:
        r = httpx.get(f"{url}/unpriced")
    assert cost_headers(r) == (CHAT_COST, 1010, 55)
    assert r.headers["x-cost-unpriced"] == "1"
    cost = r.json()["cost"]
    assert cost["unpriced"] == 1
    assert cost["cost_breakdown"][0] == {"service": "llm", "operation": "no-such-model-anywhere", "cost": None,
                                         "unit": "tokens", "quantity": 15, "status": "unpriced"}


# -- bodies ------------------------------------------------------------------------------------------------------

def test_json_injection_fixes_content_length(tracker: Tracker) -> None:
    with serving(build_app(tracker, inject_json=True)) as url, httpx.Client() as client:
        r = client.get(f"{url}/chat/2", headers={"X-Request-ID": "abc"})
        raw = client.get(f"{url}/chat/1")
    assert r.headers["content-length"] == str(len(r.content))
    body = r.json()
    assert body["answer"] == "hello" and body["n"] == 2
    cost = body["cost"]
    assert set(cost) == {"request_id", "operation", "total_cost", "currency", "cost_breakdown", "timestamp",
                         "trace_id"}
    assert cost["request_id"] == "abc" and cost["operation"] == "GET /chat/{n}"
    assert cost["total_cost"] == r.headers["x-cost-usd"] == "0.0055"
    assert cost["currency"] == "USD" and cost["timestamp"].endswith("Z")
    assert cost["trace_id"] == r.headers["x-costline-trace-id"]
    # the app's own bytes are kept as they were, the cost member is appended
    assert raw.content.startswith(b'{"answer":"hello","n":1,"cost":{')
    assert raw.headers["x-request-id"] == raw.headers["x-costline-trace-id"]  # the client sent none


def test_an_empty_object_gets_a_cost_member(tracker: Tracker) -> None:
    with serving(build_app(tracker, inject_json=True)) as url:
        r = httpx.get(f"{url}/empty")
    assert list(r.json()) == ["cost"] and r.json()["cost"]["total_cost"] == "0.00275"
    assert r.headers["content-length"] == str(len(r.content))


def test_non_json_and_non_object_bodies_get_headers_only(tracker: Tracker) -> None:
    with serving(build_app(tracker, inject_json=True)) as url:
        text = httpx.get(f"{url}/text")
        listing = httpx.get(f"{url}/list")
    assert text.text == "plain words" and text.headers["content-length"] == "11"
    assert listing.json() == [1, 2, 3]
    for r in (text, listing):
        assert cost_headers(r) == (CHAT_COST, 1000, 50)


def test_streaming_headers_hold_what_was_recorded_before_the_body(tracker: Tracker) -> None:
    with serving(build_app(tracker, inject_json=True)) as url:
        r = httpx.get(f"{url}/stream")
    assert r.text == "part one\npart two\n"
    assert cost_headers(r) == (CHAT_COST, 1000, 50)  # the call made while streaming came after the headers
    stored = trace_events(tracker)[r.headers["x-costline-trace-id"]]["metadata"]["request_cost"]
    assert D(stored["total_cost"]) == CHAT_COST + D("0.01")  # ... but the trace has it


def test_a_large_streamed_json_body_passes_with_headers_only(tracker: Tracker) -> None:
    with serving(build_app(tracker, inject_json=True, max_inject_bytes=64)) as url:
        big = httpx.get(f"{url}/json-stream")
    with serving(build_app(tracker, inject_json=True)) as url:
        small = httpx.get(f"{url}/json-stream")
    assert big.json() == {"items": list(range(51))}  # past max_inject_bytes: released as it came
    assert small.json()["items"] == list(range(51)) and small.json()["cost"]["total_cost"] == "0.00275"
    for r in (big, small):
        assert cost_headers(r) == (CHAT_COST, 1000, 50)


# -- errors ------------------------------------------------------------------------------------------------------

def test_a_failed_provider_call_costs_nothing(tracker: Tracker, openai_fake: OpenAIFake) -> None:
    with serving(build_app(tracker, openai_fake)) as url:
        r = httpx.get(f"{url}/failed-call")
    assert r.status_code == 200
    assert cost_headers(r) == (OPENAI_COST, 2006, 300)  # the 500 reported no usage and is not billed
    assert "x-cost-unpriced" not in r.headers
    failed = [e for e in tracker.events() if e["type"] == "generation" and e["level"] == "ERROR"]
    assert len(failed) == 1 and failed[0]["usage"] is None


def test_an_exception_in_the_route_passes_through(tracker: Tracker) -> None:
    with serving(build_app(tracker, inject_json=True)) as url:
        r = httpx.get(f"{url}/boom")
        missing = httpx.get(f"{url}/missing")
    assert r.status_code == 500 and r.text == "Internal Server Error"
    traces = [e for e in trace_events(tracker).values() if e["name"] == "GET /boom"]
    assert len(traces) == 1
    meta = traces[0]["metadata"]
    assert meta["error"] == "RuntimeError: the route failed" and meta["http_status"] == 500
    assert meta["request_cost"]["total_cost"] == "0.00275"
    assert missing.status_code == 404 and missing.json()["detail"] == "no such thing"
    assert missing.json()["cost"]["total_cost"] == missing.headers["x-cost-usd"] == "0.00275"


def test_a_costline_failure_leaves_the_response_unchanged(tracker: Tracker, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    def broken(self: RequestCosts) -> None:
        raise RuntimeError("accounting is broken")

    monkeypatch.setattr(RequestCosts, "summary", broken)
    with caplog.at_level(logging.ERROR, logger="costline.sdk"), serving(build_app(tracker, inject_json=True)) as url:
        r = httpx.get(f"{url}/chat/1")
        text = httpx.get(f"{url}/text")
    assert r.status_code == 200 and r.json() == {"answer": "hello", "n": 1}
    assert text.text == "plain words"
    assert "x-cost-usd" not in r.headers and "x-cost-usd" not in text.headers
    assert "could not add the request's cost to the response" in caplog.text


def test_options_and_non_http_scopes(tracker: Tracker) -> None:
    app = FastAPI()
    app.add_middleware(CostMiddleware, tracker=tracker, headers=False, trace_header=None)

    @app.get("/")
    async def root() -> dict[str, int]:
        tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE)
        return {"a": 1}

    with serving(app) as url:
        r = httpx.get(url)
    assert r.json() == {"a": 1}
    assert not any(h.startswith(("x-cost", "x-token", "x-costline")) for h in r.headers)
    assert trace_events(tracker)  # the trace is still recorded


def test_add_cost_refuses_bad_input_without_raising(tracker: Tracker, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="costline.sdk"):
        assert add_cost("lambda", "execution", "seconds", 1, tracker=tracker) is None
        assert add_cost("lambda", "execution", "seconds", 1, amount="-1", tracker=tracker) is None
        assert add_cost("lambda", "execution", "seconds", 1, amount="1", currency="EUR", tracker=tracker) is None
        assert add_cost("lambda", "execution", "seconds", "x", amount="1", tracker=tracker) is None
    assert "amount: required" in caplog.text and "currency" in caplog.text and "quantity" in caplog.text
    # outside a request the item is still recorded as a span with its cost
    assert add_cost("gpu", "render", "seconds", 10, unit_price="0.0001", tracker=tracker) == D("0.0010")
    assert [e["cost"] for e in tracker.events() if e["type"] == "span"] == [{"total": D("0.0010")}]


# -- end to end: the stored trace's total is the header --------------------------------------------------------

def test_stored_trace_total_equals_the_header(tmp_path: Path, bundled_book: PriceBook,
                                              openai_fake: OpenAIFake) -> None:
    server, _ = make_server("duckdb", tmp_path / "srv")
    server.start()
    tracker = Tracker(host=server.url, public_key=server.public_key, secret_key=server.secret_key,
                      book=bundled_book, flush_interval=0.05)
    try:
        app = build_app(tracker, openai_fake, inject_json=True)

        @app.get("/everything")
        def everything() -> dict[str, str]:
            ask_openai(tracker, openai_fake)
            tracker.record_generation(model="gpt-4o", usage=CHAT_USAGE, provider="openai")
            add_cost(service="lambda", operation="execution", unit="seconds", quantity=2.4, amount=LAMBDA_COST)
            return {"done": "yes"}

        with serving(app) as url:
            r = httpx.get(f"{url}/everything")
        assert r.status_code == 200
        expected = OPENAI_COST + CHAT_COST + LAMBDA_COST
        assert D(r.headers["x-cost-usd"]) == expected
        assert tracker.flush(timeout=20)
        with server.client() as c:
            stored = c.get(f"/v1/traces/{r.headers['x-costline-trace-id']}").json()
        assert D(str(stored["total_cost"])) == D(r.headers["x-cost-usd"])
        assert stored["name"] == "GET /everything" and stored["observation_count"] == 3
        assert stored["unpriced_count"] == 0
        assert stored["metadata"]["request_cost"]["total_cost"] == r.json()["cost"]["total_cost"]
        assert stored["metadata"]["request_cost"]["cost_breakdown"] == r.json()["cost"]["cost_breakdown"]
    finally:
        tracker.shutdown()
        server.stop()
