"""Per-request cost transparency for ASGI apps (FastAPI, Starlette): what serving this request cost.

``install(app, tracker)`` (or ``app.add_middleware(CostMiddleware, tracker=tracker)``) wraps every HTTP
request in a trace (named ``"GET /items/{item_id}"`` after the matched route, else the raw path) and a
request-scoped ``RequestCosts`` (see ``costline.sdk.request_costs``). Every generation the tracker records
while serving the request, and every ``add_cost(...)`` item, is added to it; the response gets

- ``X-Cost-USD`` (exact decimal string: priced model calls + added items), ``X-Token-Input`` and
  ``X-Token-Output`` (inclusive counts), ``X-Cost-Unpriced: <n>`` when n items have no (or only a partial)
  price, ``X-Costline-Trace-ID`` and, if the response has none, ``X-Request-ID``;
- with ``inject_json=True``, a ``"cost"`` member in a JSON object body (Content-Length fixed);

and the trace's metadata gets the same breakdown (``request_cost``), as of the end of the response.

Headers go out before the body: what a streaming response records while it streams is in the trace, not in
the headers. Nothing here may break the app: any failure of costline's own code is logged (logger
``costline.sdk``) and the response passes unchanged. See docs/sdk.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextvars import Token
from typing import Any, Protocol

from costline.core.money import decimal_str
from costline.sdk.context import TraceHandle
from costline.sdk.emf import EmfOptions
from costline.sdk.emf import emit as emit_emf
from costline.sdk.request_costs import RequestCosts, Summary, activate, add_cost, deactivate, instrument
from costline.sdk.tracker import Tracker, get_tracker

__all__ = ["CostMiddleware", "add_cost", "install"]

log = logging.getLogger("costline.sdk")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_NO_BODY_STATUS = frozenset({204, 304})
#: ``usage(scope, cost_object)`` → the caller's quota standing for the response body, or None
UsageHook = Callable[[Scope, Mapping[str, Any]], Mapping[str, Any] | None]


class _HasMiddleware(Protocol):
    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None: ...


def install(app: _HasMiddleware, tracker: Tracker | None = None, *, inject_json: bool = False,
            headers: bool = True, trace_header: str | None = "X-Costline-Trace-ID",
            max_inject_bytes: int = 1 << 20, record_in_trace: bool = True,
            usage: UsageHook | None = None, emf: EmfOptions | None = None) -> None:
    """Add ``CostMiddleware`` to a Starlette/FastAPI app (before it starts) and hook ``tracker`` (default:
    ``get_tracker()`` at each request). ``usage(scope, cost)``, when given with ``inject_json``, returns the
    caller's quota standing (``{"daily": {"used": ..., "limit": ...}, "monthly": {...}}``) put beside
    ``cost`` in the JSON body as ``usage``. ``emf`` writes CloudWatch Embedded Metric Format lines after each
    request (``costline.sdk.emf``)."""
    if tracker is not None:
        instrument(tracker)
    app.add_middleware(CostMiddleware, tracker=tracker, inject_json=inject_json, headers=headers,
                       trace_header=trace_header, max_inject_bytes=max_inject_bytes,
                       record_in_trace=record_in_trace, usage=usage, emf=emf)


class CostMiddleware:
    """Pure ASGI middleware; see the module docstring. Non-HTTP scopes (websocket, lifespan) pass through."""

    def __init__(self, app: ASGIApp, tracker: Tracker | None = None, *, inject_json: bool = False,
                 headers: bool = True, trace_header: str | None = "X-Costline-Trace-ID",
                 max_inject_bytes: int = 1 << 20, record_in_trace: bool = True,
                 usage: UsageHook | None = None, emf: EmfOptions | None = None) -> None:
        self.app = app
        self.usage = usage
        self.emf = emf
        self.tracker = tracker
        self.inject_json = inject_json
        self.headers = headers
        self.trace_header = trace_header.lower().encode("latin-1") if trace_header else None
        self.max_inject_bytes = max_inject_bytes
        self.record_in_trace = record_in_trace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        try:
            exchange = _Exchange(self, scope, send)
        except Exception:
            log.exception("costline: could not start tracking a request's cost; serving it without")
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, exchange.send)
        except BaseException as exc:
            exchange.error = exc
            raise
        finally:
            exchange.finish()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            text = bytes(value).decode("latin-1").strip()
            return text if text and len(text) <= 200 and text.isprintable() else None
    return None


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class _Exchange:
    """One request: its trace, its costs, and the response messages on their way out."""

    def __init__(self, middleware: CostMiddleware, scope: Scope, send: Send) -> None:
        self.mw = middleware
        self.scope = scope
        self._send = send
        self.method = str(scope.get("method") or "GET")
        path = str(scope.get("path") or "/")
        tracker = instrument(middleware.tracker or get_tracker())
        trace_id = tracker.new_id()
        # the client's X-Request-ID, else the trace id (unique: a random per-tracker prefix and a counter)
        self.request_id = _header(scope, b"x-request-id") or trace_id
        operation = f"{self.method} {path}"
        self.trace: TraceHandle = tracker.trace(name=operation, id=trace_id, metadata={
            "http_method": self.method, "http_path": path, "request_id": self.request_id})
        self.costs = RequestCosts(tracker, request_id=self.request_id, operation=operation, trace_id=self.trace.id)
        self.token: Token[RequestCosts | None] = activate(self.costs)
        self.trace.__enter__()
        self.status: int | None = None
        self.error: BaseException | None = None
        self.held: Message | None = None  # the response start, held while a JSON body is buffered
        self.chunks: list[bytes] = []
        self.size = 0
        self.passthrough = False

    async def send(self, message: Message) -> None:
        for out in self._outgoing(message):
            await self._send(out)

    # -- the response's messages ------------------------------------------------------------------------

    def _outgoing(self, message: Message) -> list[Message]:
        """The messages to send for ``message`` (none while a JSON body is being buffered). Never raises."""
        if self.passthrough:
            return [message]
        kind = message.get("type")
        is_body = kind == "http.response.body" and self.held is not None
        if is_body:
            body = bytes(message.get("body") or b"")
            self.chunks.append(body)
            self.size += len(body)
        try:
            if kind == "http.response.start":
                self.status = int(message.get("status") or 200)
                self._resolve_operation()
                if self._injectable(message):
                    self.held = message
                    return []
                self.passthrough = True
                return [self._decorate(message, self.costs.summary())]
            if self.held is None:
                return [message]
            if not is_body:  # an extension message while the body is held: let everything go first
                return [*self._release(self._decorate(self.held, self.costs.summary()), more_body=True), message]
            if message.get("more_body", False):
                if self.size <= self.mw.max_inject_bytes:
                    return []
                return self._release(self._decorate(self.held, self.costs.summary()), more_body=True)
            return self._inject(self.held, b"".join(self.chunks))
        except Exception:
            log.exception("costline: could not add the request's cost to the response; sent unchanged")
            if self.held is None:
                self.passthrough = True
                return [message]
            out = self._release(self.held, more_body=bool(message.get("more_body", False)) if is_body else True)
            return out if is_body else [*out, message]

    def _release(self, start: Message, *, more_body: bool) -> list[Message]:
        """The held start and buffered chunks, unchanged (the last chunk with ``more_body``); then pass through."""
        chunks = self.chunks or [b""]
        out: list[Message] = [start]
        out.extend({"type": "http.response.body", "body": c, "more_body": True} for c in chunks[:-1])
        out.append({"type": "http.response.body", "body": chunks[-1], "more_body": more_body})
        self.held, self.chunks, self.passthrough = None, [], True
        return out

    def _injectable(self, start: Message) -> bool:
        if not self.mw.inject_json or self.method == "HEAD" or self.status in _NO_BODY_STATUS:
            return False
        content_type = b""
        for key, value in start.get("headers") or ():
            name = bytes(key).lower()
            if name == b"content-encoding":
                return False  # compressed by an inner middleware: cannot be edited
            if name == b"content-type":
                content_type = bytes(value)
        return _is_json(content_type)

    def _inject(self, start: Message, body: bytes) -> list[Message]:
        summary = self.costs.summary()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        stripped = body.rstrip()
        if not isinstance(parsed, dict) or "cost" in parsed or not stripped.endswith(b"}"):
            new_body = body  # not a JSON object (or it has a "cost" of its own): headers only
        else:
            cost = self.costs.cost_object(summary, trace_id=self.mw.trace_header is not None)
            payload = b'"cost":' + json.dumps(cost, separators=(",", ":")).encode()
            standing = self.mw.usage(self.scope, cost) if self.mw.usage is not None and "usage" not in parsed \
                else None
            if standing is not None:
                payload += b',"usage":' + json.dumps(standing, separators=(",", ":"), default=str).encode()
            new_body = (stripped[:-1].rstrip() + (b"," if parsed else b"") + payload + b"}"
                        + body[len(stripped):])
        decorated = self._decorate(start, summary, content_length=len(new_body) if new_body is not body else None)
        self.chunks = [new_body]
        return self._release(decorated, more_body=False)

    def _decorate(self, start: Message, summary: Summary, content_length: int | None = None) -> Message:
        added: list[tuple[bytes, bytes]] = []
        if self.mw.headers:
            added += [(b"x-cost-usd", decimal_str(summary.total).encode()),
                      (b"x-token-input", str(summary.input_tokens).encode()),
                      (b"x-token-output", str(summary.output_tokens).encode())]
            if summary.unpriced:
                added.append((b"x-cost-unpriced", str(summary.unpriced).encode()))
        if self.mw.trace_header is not None:
            added.append((self.mw.trace_header, self.trace.id.encode()))
        if content_length is not None:
            added.append((b"content-length", str(content_length).encode()))
        replaced = {name for name, _ in added}
        headers = [(bytes(k), bytes(v)) for k, v in start.get("headers") or () if bytes(k).lower() not in replaced]
        if not any(k.lower() == b"x-request-id" for k, _ in headers):
            added.append((b"x-request-id", self.request_id.encode("latin-1")))
        return {**start, "headers": headers + added}

    # -- the end of the request -------------------------------------------------------------------------

    def _resolve_operation(self) -> None:
        route = self.scope.get("route")
        template = getattr(route, "path", None)
        if isinstance(template, str) and template:
            self.costs.operation = f"{self.method} {template}"

    def finish(self) -> None:
        """Close the request's costs and end its trace with the breakdown in its metadata. Never raises."""
        try:
            self._resolve_operation()
            summary = self.costs.summary()
            deactivate(self.costs, self.token)
            metadata: dict[str, Any] = {"http_status": self.status if self.status is not None else 500}
            if self.error is not None:
                metadata["error"] = f"{type(self.error).__name__}: {self.error}"[:500]
            if self.mw.record_in_trace:
                metadata["request_cost"] = self.costs.cost_object(summary, trace_id=False)
            if self.mw.emf is not None:
                emit_emf(self.costs.cost_object(summary, trace_id=False), self.mw.emf,
                         input_tokens=summary.input_tokens, output_tokens=summary.output_tokens)
            self.trace.update(name=self.costs.operation, metadata=metadata)
        except Exception:
            log.exception("costline: could not finish a request's cost")
        finally:
            self.trace.__exit__(None, None, None)
