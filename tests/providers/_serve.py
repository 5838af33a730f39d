"""A Starlette app served by uvicorn in a background thread on a free loopback port, with a request log.

Shared by the fake OpenAI and Anthropic servers. The socket is bound before the thread starts (port 0, so
there is no race for the port), uvicorn's signal handlers are not installed (it only does that on the main
thread) and ``stop()`` asks uvicorn to exit and joins the thread, so nothing is left running after a test.

Error modes shared by both fakes (``ErrorSpec``): a request picks one with the ``x-fake-error`` header
(``429``, ``500``, ``529``, ``malformed``, ...), with a model name ``error-<mode>``, or the test queues
them with ``fake.fail_next(mode, times=n)``. ``x-fake-retry-after`` sets the 429's ``retry-after``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

ERROR_HEADER = "x-fake-error"
RETRY_AFTER_HEADER = "x-fake-retry-after"
USAGE_HEADER = "x-fake-usage"
ERROR_MODEL_PREFIX = "error-"


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any  # the parsed JSON body (None when there was none)

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        return bool(isinstance(self.body, dict) and self.body.get("stream"))


@dataclass
class RequestLog:
    """The requests received, in order (thread-safe: the server thread appends, the test reads)."""

    _items: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def append(self, item: Recorded) -> None:
        with self._lock:
            self._items.append(item)

    def all(self) -> list[Recorded]:
        with self._lock:
            return list(self._items)

    def last(self) -> Recorded:
        with self._lock:
            return self._items[-1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class FakeProvider:
    """Base of the fake provider servers: routing, the request log, error selection, lifecycle."""

    def __init__(self) -> None:
        self.requests = RequestLog()
        self._queued: deque[str] = deque()
        self._queue_lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    # -- subclasses -------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        raise NotImplementedError

    # -- test controls ----------------------------------------------------------------------------------
    def fail_next(self, mode: str, times: int = 1) -> None:
        """The next ``times`` requests fail with ``mode`` (``"429"``, ``"500"``, ``"529"``, ``"malformed"``)."""
        with self._queue_lock:
            self._queued.extend([mode] * times)

    def reset(self) -> None:
        """Forget recorded requests and queued failures (between tests sharing one server)."""
        self.requests.clear()
        with self._queue_lock:
            self._queued.clear()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- request helpers --------------------------------------------------------------------------------
    async def record(self, request: Request) -> Any:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        self.requests.append(Recorded(request.method, request.url.path, dict(request.headers), body))
        return body

    def error_mode(self, request: Request, body: Any) -> str | None:
        with self._queue_lock:
            if self._queued:
                return self._queued.popleft()
        header = request.headers.get(ERROR_HEADER)
        if header:
            return header
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model.startswith(ERROR_MODEL_PREFIX):
            return model[len(ERROR_MODEL_PREFIX):]
        return None

    @staticmethod
    def usage_override(request: Request) -> dict[str, Any]:
        raw = request.headers.get(USAGE_HEADER)
        return dict(json.loads(raw)) if raw else {}

    @staticmethod
    def retry_after(request: Request) -> str:
        return request.headers.get(RETRY_AFTER_HEADER, "1")

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        self._socket = sock
        config = uvicorn.Config(
            Starlette(routes=self.routes()), log_level="warning", access_log=False, lifespan="off",
            ws="none", timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"{type(self).__name__}:{self.port}")
        self._thread.start()
        started = threading.Event()
        for _ in range(500):
            if server.started or not self._thread.is_alive():
                break
            started.wait(0.01)
        if not server.started:
            self.stop()
            raise RuntimeError(f"{type(self).__name__} did not start")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not stop")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    @contextmanager
    def running(self) -> Iterator[Self]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event: an optional ``event:`` line and a ``data:`` line (JSON unless a str)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
