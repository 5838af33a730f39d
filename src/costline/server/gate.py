"""Checks every request passes before its route, as plain ASGI middleware, and one store lookup per key for
requests that arrive together.

Starlette's ``@app.middleware("http")`` (``BaseHTTPMiddleware``) runs the rest of the app in a task group with
memory streams for the body and the response: per request and middleware, two tasks, two streams and their
cancel scopes. Under a burst of small requests (a Langfuse SDK with ``flushAt: 1``) that machinery was most of
the event loop's work. A ``Gate`` calls its check with the request's head (no body is read) and either answers
in its place or hands the untouched ASGI call on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

T = TypeVar("T")

#: a check: None lets the request through, a response answers it instead
Check = Callable[[Request], Awaitable[Response | None]]


class Gate:
    """ASGI middleware running ``check`` on each HTTP request (``app.add_middleware(Gate, check=...)``)."""

    def __init__(self, app: ASGIApp, check: Check) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            answer = await self.check(Request(scope))  # the head only: the route reads the body
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SingleFlight(Generic[T]):
    """One call in the thread pool per key at a time: requests asking for a key whose call is under way await
    that call's result instead of starting their own (a burst of requests with one new key made as many store
    lookups, all behind the store's lock). Used on the event loop only; a caller that goes away does not cancel
    the call the others wait for."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[T]] = {}

    async def run(self, key: str, call: Callable[[], T]) -> T:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(run_in_threadpool(call))
            self._running[key] = running
            running.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(running)

    def _finished(self, key: str, done: asyncio.Future[T]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failure every waiter has gone from is not logged as lost
