"""Budget guard: ask the costline server before a model call, hold its estimate, let the recorded call release it.

``budget_guard(model, user=..., ...)`` is a context manager (``with``, ``async with``) and a decorator. Entering
asks ``POST /v1/budgets/check`` on the tracker's server: a denied call raises ``BudgetExceeded`` before any model
request is made; a downgrade gives ``grant.model`` the cheaper model. Every generation opened in the block's
context (``tracker.generation``, ``record_generation``, the OpenAI/Anthropic integrations) carries metadata
``costline_reservation: <id>`` (``costline.sdk.context.generation_hook``), and the server releases the hold when
it ingests that generation; a block that recorded nothing cancels the hold on the way out. When the server
cannot be asked, ``on_unavailable`` decides. See docs/sdk.md, "Budgets: guard a call".
"""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from ssl import SSLContext
from types import TracebackType
from typing import Any, Final, TypeVar, cast

import httpx

from costline.control.check import CheckError, parse_check
from costline.core.money import to_decimal
from costline.core.usage import Usage
from costline.errors import CostlineError
from costline.sdk import context as _context
from costline.sdk.context import CURRENT_OBSERVATION, CURRENT_TRACE, TraceHandle
from costline.sdk.spill import dumps
from costline.sdk.tracker import Tracker, get_tracker

log = logging.getLogger("costline.sdk")

#: the metadata key the server settles reservations by (``costline.control.budgets.RESERVATION_KEY``)
RESERVATION_KEY: Final = "costline_reservation"
#: above this many characters of prompt / message content, tokens are counted here and only the count is sent
LOCAL_COUNT_CHARS: Final = 256_000
POLICIES: Final = ("closed", "open")

F = TypeVar("F", bound=Callable[..., Any])


class BudgetExceeded(CostlineError):  # noqa: N818 (the name issue 6 gives it)
    """A budget stops the call (decision ``deny``); nothing is reserved. ``decision`` is the server's answer,
    ``reason`` names the budget; ``remaining``, ``resets_at`` (None: a lifetime budget) and ``usage``
    (``{"day": {"used", "limit", ...}, ...}``) are what a product shows its user."""

    def __init__(self, decision: Mapping[str, Any]) -> None:
        self.decision: dict[str, Any] = dict(decision)
        self.reason: str = str(decision.get("reason") or "a budget stops this call")
        self.remaining: Decimal | None = _money(decision.get("remaining"))
        self.resets_at: datetime | None = _reset_time(decision, self.reason)
        self.usage: Mapping[str, Any] = _usage(decision)
        when = f"it resets at {self.resets_at.isoformat()}" if self.resets_at else "it does not reset"
        super().__init__(f"{self.reason}; {when}")


class BudgetUnavailable(CostlineError):  # noqa: N818 (pairs with BudgetExceeded)
    """The server could not be asked (unreachable, timeout, 5xx, keys refused) and the guard fails closed."""


@dataclass(frozen=True, slots=True)
class _Server:
    host: str
    headers: Mapping[str, str]
    timeout: float

    def send(self, method: str, path: str, body: bytes | None = None) -> httpx.Response | str:
        """The server's answer, or what went wrong on the way (connection refused, timeout, ...)."""
        try:
            with httpx.Client(base_url=self.host, headers=self.headers, timeout=self.timeout, verify=_tls()) as c:
                return c.request(method, path, content=body)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def asend(self, method: str, path: str, body: bytes | None = None) -> httpx.Response | str:
        try:
            async with httpx.AsyncClient(base_url=self.host, headers=self.headers, timeout=self.timeout,
                                         verify=_tls()) as c:
                return await c.request(method, path, content=body)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"


@functools.cache
def _tls() -> SSLContext:
    """One TLS context for every guard (building one per client costs tens of milliseconds)."""
    return httpx.create_ssl_context()


@dataclass(slots=True, eq=False)
class _Entry:
    """One entered guard: what its generations are stamped with and whether anything was recorded."""

    owner: BudgetGuard
    metadata: Mapping[str, Any]
    grant: Grant | None = None
    recorded: int = 0
    settled: bool = False
    token: Token[_Entry | None] | None = None
    trace: TraceHandle | None = None

    def stamp(self, metadata: dict[str, Any]) -> None:
        if self.grant is None or self.grant.reservation_id is None or self.settled:
            return
        for key, value in self.metadata.items():
            metadata.setdefault(key, value)
        metadata[RESERVATION_KEY] = self.grant.reservation_id  # the innermost guard's reservation
        self.recorded += 1


_ENTRY: ContextVar[_Entry | None] = ContextVar("costline_budget_guard", default=None)
_ACTIVE = [0]
_ACTIVE_LOCK = threading.Lock()


def _stamp(metadata: dict[str, Any]) -> None:
    if (entry := _ENTRY.get()) is not None:
        entry.stamp(metadata)


def _hook(delta: int) -> None:
    """Count open guards holding a reservation; the generation hook is installed only while there are any."""
    with _ACTIVE_LOCK:
        _ACTIVE[0] += delta
        _context.generation_hook = _stamp if _ACTIVE[0] > 0 else None


@dataclass(frozen=True, slots=True)
class Grant:
    """What the server allowed: call ``model`` (the downgrade model when ``downgraded``)."""

    model: str
    decision: str
    reservation_id: str | None
    estimate: Decimal | None
    remaining: Decimal | None
    resets_at: datetime | None
    usage: Mapping[str, Any]
    budgets: list[Mapping[str, Any]]
    downgraded: bool
    asked_model: str = ""
    reason: str | None = None
    expires_at: datetime | None = None
    _server: _Server | None = field(default=None, repr=False, compare=False)
    _entry: _Entry | None = field(default=None, repr=False, compare=False)

    def settle(self, *, cost: Decimal | str | int | float | None = None, usage: Mapping[str, Any] | None = None,
               model: str | None = None) -> None:
        """Record a call the tracker does not record (a recorded one settles itself: settling it too counts it
        twice) with its actual ``cost`` (or ``usage`` and ``model``), releasing the hold. A bad argument raises;
        a server that cannot be reached is logged and the hold stays until it expires (the safe side)."""
        body = self._settle_body(cost, usage, model)
        if body is not None and self._server is not None:
            path = f"/v1/budgets/reservations/{self.reservation_id}/settle"
            _report("settle", self, self._server.send("POST", path, body))

    async def asettle(self, *, cost: Decimal | str | int | float | None = None,
                      usage: Mapping[str, Any] | None = None, model: str | None = None) -> None:
        """``settle`` for async code (does not block the event loop)."""
        body = self._settle_body(cost, usage, model)
        if body is not None and self._server is not None:
            path = f"/v1/budgets/reservations/{self.reservation_id}/settle"
            _report("settle", self, await self._server.asend("POST", path, body))

    def _settle_body(self, cost: object, usage: Mapping[str, Any] | None, model: str | None) -> bytes | None:
        body: dict[str, Any] = {}
        if cost is not None:
            try:
                body["cost"] = to_decimal(cost, field="cost")
            except CostlineError as exc:
                raise CheckError(str(exc)) from None
            if body["cost"] < 0:
                raise CheckError("cost: must not be negative")
        if usage is not None:
            body["usage"] = _checked_usage(usage)
        if model is not None:
            if not isinstance(model, str) or not model or len(model) > 200:
                raise CheckError("model: expected a model name")
            body["model"] = model
        if "cost" not in body and "usage" not in body:
            raise CheckError("settle: give the call's actual cost or its usage")
        if self.reservation_id is None:
            log.info("costline: nothing to settle: this grant holds no reservation")
            return None
        if self._entry is not None:
            self._entry.settled = True
        return dumps(body)


def current_grant() -> Grant | None:
    """The grant of the innermost budget guard open in this context (for decorated functions)."""
    return None if (entry := _ENTRY.get()) is None else entry.grant


class BudgetGuard:
    """Built by ``budget_guard``: a context manager (sync and async) and a decorator."""

    def __init__(self, values: Mapping[str, Any], *, on_unavailable: str, tracker: Tracker | None,
                 timeout: float | None, ttl_seconds: int | None) -> None:
        if on_unavailable not in POLICIES:
            raise CheckError(f"on_unavailable: expected 'closed' or 'open', got {on_unavailable!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or not 0 < timeout <= 600):
            raise CheckError(f"timeout: expected seconds between 0 and 600, got {timeout!r}")
        self.values = dict(values)
        self.on_unavailable = on_unavailable
        self.tracker = tracker
        self.timeout = timeout
        self.ttl_seconds = ttl_seconds

    # -- the request ------------------------------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        """The check request, validated here (the error names the field) before anything is sent."""
        for key, value in self.values.items():
            if callable(value):
                raise CheckError(f"{key}: a callable is only allowed when budget_guard decorates a function")
        body: dict[str, Any] = {k: v for k, v in self.values.items() if v is not None}
        for key in ("tags", "messages"):
            if isinstance(body.get(key), tuple | set | frozenset):
                body[key] = list(body[key])
        if self.ttl_seconds is not None:
            body["ttl_seconds"] = self.ttl_seconds
        parse_check(body)
        if "usage" in body:
            body["usage"] = _checked_usage(body["usage"])
        elif "prompt" in body or "messages" in body:
            _count_large_prompt(body)
        return body

    def _server(self, tracker: Tracker) -> _Server | None:
        config = tracker.config
        if not config.host:
            return None
        headers = {"Content-Type": "application/json", "User-Agent": "costline-sdk"}
        if config.public_key or config.secret_key:
            token = base64.b64encode(f"{config.public_key or ''}:{config.secret_key or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return _Server(config.host, headers, self.timeout or config.timeout)

    # -- the answer -------------------------------------------------------------------------------------------
    def _unavailable(self, server: _Server | None, problem: str) -> Grant:
        where = f"the costline server at {server.host}" if server else "no costline server (the tracker has no host)"
        if self.on_unavailable == "closed":
            raise BudgetUnavailable(f"{where} could not be asked ({problem}); the guard fails closed "
                                    "(on_unavailable='closed')")
        log.warning("costline: %s could not be asked (%s); the call goes ahead unchecked (on_unavailable='open')",
                    where, problem)
        model = str(self.values["model"])
        return Grant(model, "allow", None, None, None, None, {}, [], False, model, "budget server unavailable")

    def _grant(self, server: _Server | None, answer: httpx.Response | str | None) -> Grant:
        if server is None or answer is None:
            return self._unavailable(None, "set host / COSTLINE_HOST: budgets are checked by a costline server")
        if isinstance(answer, str):
            return self._unavailable(server, answer)
        if answer.status_code == 400:
            raise CheckError(_message(answer))
        if answer.status_code != 200:
            return self._unavailable(server, f"HTTP {answer.status_code}: {_message(answer)}")
        try:
            data = answer.json()
            decision = data["decision"]
            model = data["model"]
        except (ValueError, KeyError, TypeError):
            return self._unavailable(server, f"unreadable answer: {answer.text[:200]!r}")
        if decision == "deny":
            raise BudgetExceeded(data)
        return Grant(
            model=str(model), decision=str(decision), reservation_id=data.get("reservation_id") or None,
            estimate=_money(data.get("estimate")), remaining=_money(data.get("remaining")),
            resets_at=_reset_time(data, ""), usage=_usage(data), budgets=_budgets(data),
            downgraded=decision == "downgrade", asked_model=str(self.values["model"]), reason=data.get("reason"),
            expires_at=_time(data.get("expires_at")), _server=server,
        )

    # -- entering and leaving ---------------------------------------------------------------------------------
    def _open(self, grant: Grant, tracker: Tracker) -> Grant:
        entry = _Entry(self, self.values.get("metadata") or {})
        entry.grant = grant = replace(grant, _entry=entry)
        if grant.reservation_id is not None:
            _hook(+1)
            current = CURRENT_OBSERVATION.get()
            if current is not None and current.type == "generation":  # the guard sits inside the call's generation
                entry.stamp(current.metadata)
        entry.token = _ENTRY.set(entry)
        entry.trace = self._attribute(tracker)
        return grant

    def _attribute(self, tracker: Tracker) -> TraceHandle | None:
        """Make the calls count for the guard's user, session, tags, environment: a trace of its own when none
        is current, else the current trace's missing attributes filled in."""
        v = self.values
        attrs = {"user_id": v.get("user"), "session_id": v.get("session"), "tags": v.get("tags"),
                 "environment": v.get("environment"), "release": v.get("release"), "name": v.get("trace_name")}
        try:
            trace = CURRENT_TRACE.get()
            if trace is None:
                return tracker.trace(metadata=v.get("metadata"), **attrs).__enter__()
            trace.update(tags=attrs.pop("tags"))
            for key, want in attrs.items():
                have = getattr(trace, key)
                if want is not None and have is None:
                    setattr(trace, key, want)
                elif want is not None and have != want:
                    log.warning("costline: the current trace's %s is %r, the budget guard's %r: the call's cost "
                                "counts for %r", key, have, want, have)
        except Exception:
            log.exception("costline: could not attribute the guarded call")
        return None

    def _close(self, kind: type[BaseException] | None, exc: BaseException | None,
               tb: TracebackType | None) -> Grant | None:
        """Leave the block; the grant whose hold must be cancelled (nothing was recorded), if any."""
        entry = _ENTRY.get()
        if entry is None or entry.owner is not self:
            log.error("costline: budget guard exited out of order; its reservation is left to expire")
            return None
        if entry.trace is not None:
            entry.trace.__exit__(kind, exc, tb)
        try:
            if entry.token is not None:
                _ENTRY.reset(entry.token)
        except ValueError:  # left in another context
            _ENTRY.set(None)
        if entry.grant is None or entry.grant.reservation_id is None:
            return None
        _hook(-1)
        return None if entry.recorded or entry.settled else entry.grant

    def __enter__(self) -> Grant:
        body, tracker = self._body(), self.tracker or get_tracker()
        server = self._server(tracker)
        answer = None if server is None else server.send("POST", "/v1/budgets/check", dumps(body))
        return self._open(self._grant(server, answer), tracker)

    async def __aenter__(self) -> Grant:
        body, tracker = self._body(), self.tracker or get_tracker()
        server = self._server(tracker)
        answer = None if server is None else await server.asend("POST", "/v1/budgets/check", dumps(body))
        return self._open(self._grant(server, answer), tracker)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        grant = self._close(kind, exc, tb)
        if grant is not None and grant._server is not None:
            try:  # never mask the block's own exception, never fail a block that worked; 404: settled meanwhile
                path = f"/v1/budgets/reservations/{grant.reservation_id}"
                _report("cancel", grant, grant._server.send("DELETE", path), (200, 404))
            except Exception:
                log.exception("costline: could not cancel reservation %s", grant.reservation_id)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        grant = self._close(kind, exc, tb)
        if grant is not None and grant._server is not None:
            try:
                path = f"/v1/budgets/reservations/{grant.reservation_id}"
                _report("cancel", grant, await grant._server.asend("DELETE", path), (200, 404))
            except (Exception, asyncio.CancelledError) as problem:
                if exc is None and isinstance(problem, asyncio.CancelledError):
                    raise  # the task is being cancelled; with an exception in flight, that one is kept instead
                log.warning("costline: could not cancel reservation %s: %r", grant.reservation_id, problem)

    # -- as a decorator ---------------------------------------------------------------------------------------
    def _for_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BudgetGuard:
        values = dict(self.values)
        for key, value in self.values.items():
            if callable(value):
                try:
                    values[key] = value(*args, **kwargs)
                except Exception as exc:
                    raise CheckError(f"{key}: the callable raised {type(exc).__name__}: {exc}") from exc
        return BudgetGuard(values, on_unavailable=self.on_unavailable, tracker=self.tracker,
                           timeout=self.timeout, ttl_seconds=self.ttl_seconds)

    def __call__(self, fn: F) -> F:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError("budget_guard cannot decorate a generator function: use `with budget_guard()` in it")
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._for_call(args, kwargs):
                    return await fn(*args, **kwargs)
            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._for_call(args, kwargs):
                return fn(*args, **kwargs)
        return cast(F, wrapper)


def budget_guard(model: str | Callable[..., str], *, user: Any = None, session: Any = None, tags: Any = None,
                 environment: Any = None, metadata: Any = None, tier: Any = None, prompt: Any = None,
                 messages: Any = None, max_output_tokens: Any = None, estimated_cost: Any = None,
                 usage: Any = None, provider: Any = None, trace_name: Any = None, release: Any = None,
                 on_unavailable: str = "closed", tracker: Tracker | None = None, timeout: float | None = None,
                 ttl_seconds: int | None = None) -> BudgetGuard:
    """``with budget_guard("gpt-4o", user="alice", prompt=text, max_output_tokens=500) as grant:`` then call
    ``grant.model``. Raises ``BudgetExceeded`` (a budget stops the call), ``BudgetUnavailable`` (no answer and
    ``on_unavailable="closed"``; ``"open"`` goes ahead with a warning), ``CheckError`` naming the field for a
    bad argument, before any request. As a decorator an attribute may be a callable of the function's
    arguments; ``current_grant()`` gives the grant inside. ``timeout`` defaults to the tracker's; ``ttl_seconds``
    is how long an unrecorded hold lasts (the server's default: 15 minutes)."""
    values = {"model": model, "user": user, "session": session, "tags": tags, "environment": environment,
              "metadata": metadata, "tier": tier, "prompt": prompt, "messages": messages,
              "max_output_tokens": max_output_tokens, "estimated_cost": estimated_cost, "usage": usage,
              "provider": provider, "trace_name": trace_name, "release": release}
    return BudgetGuard(values, on_unavailable=on_unavailable, tracker=tracker, timeout=timeout,
                       ttl_seconds=ttl_seconds)


def _checked_usage(usage: object) -> dict[str, Any]:
    if not isinstance(usage, Mapping):
        raise CheckError('usage: expected an object of unit → quantity such as {"input_tokens": 1200}')
    try:
        checked = Usage(dict(usage))
    except CostlineError as exc:
        raise CheckError(f"usage: {exc}") from None
    return {unit: str(q) if isinstance(q, Decimal) else q for unit, q in checked.quantities.items()}


def _count_large_prompt(body: dict[str, Any]) -> None:
    """Replace a large prompt by its token count, so the request stays small (the server's body limit is
    1 MiB) and the text never leaves the process."""
    from costline.tokens import count_chat_tokens, count_tokens

    prompt, messages = body.get("prompt"), body.get("messages")
    size = len(prompt or "") + sum(len(m.get("content", "")) for m in messages or ())
    if size <= LOCAL_COUNT_CHARS:
        return
    model = str(body["model"])
    counted = count_tokens(prompt, model) if prompt is not None else count_chat_tokens(list(messages or ()), model)
    body.pop("prompt", None)
    body.pop("messages", None)
    body["usage"] = {"input_tokens": counted.tokens, "output_tokens": body.get("max_output_tokens") or 0}


def _report(action: str, grant: Grant, answer: httpx.Response | str, fine: tuple[int, ...] = (200,)) -> None:
    if isinstance(answer, str) or answer.status_code not in fine:
        problem = answer if isinstance(answer, str) else f"HTTP {answer.status_code}: {_message(answer)}"
        log.warning("costline: could not %s reservation %s (%s); the hold stays until %s", action,
                    grant.reservation_id, problem, grant.expires_at)


def _message(answer: httpx.Response) -> str:
    try:
        message = answer.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return message if isinstance(message, str) else answer.text[:300]


def _money(value: object) -> Decimal | None:
    try:
        return None if value is None else to_decimal(str(value), field="amount")
    except CostlineError:
        return None


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _usage(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    return usage if isinstance(usage := answer.get("usage"), Mapping) else {}


def _budgets(answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [b for b in budgets if isinstance(b, Mapping)] if isinstance(budgets := answer.get("budgets"), list) else []


def _reset_time(decision: Mapping[str, Any], reason: str) -> datetime | None:
    """When the budget that stopped the call resets: the answer's ``resets_at``, else the budget ``reason``
    names, else the first of the budgets that apply (None: lifetime budgets only, or none)."""
    found = _time(decision.get("resets_at"))
    if found is not None:
        return found
    budgets = _budgets(decision)
    named = [b for b in budgets if f"budget {b.get('budget')!r}" in reason]
    times = [t for t in (_time(b.get("resets_at")) for b in named or budgets) if t is not None]
    return min(times) if times else None


__all__ = ["BudgetExceeded", "BudgetGuard", "BudgetUnavailable", "Grant", "budget_guard", "current_grant"]
