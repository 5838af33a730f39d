"""Fallback routing with budgets and rate limits: call the primary model, fall back to the next on rate
limits, server errors, unreadable replies, a local limiter's refusal or a budget guard's word.

    router = FallbackRouter([
        Route("gpt-4o", lambda **kw: client.chat.completions.create(model="gpt-4o", **kw), provider="openai"),
        Route("gpt-4o-mini", lambda **kw: client.chat.completions.create(model="gpt-4o-mini", **kw),
              provider="openai"),
    ], budget_guard=lambda route: spent_today() < limit, limiters={"gpt-4o": RateLimiter(rpm=500, tpm=30_000)})
    reply = router(messages=[...])

Every attempt is a generation (the failed ones with level ERROR) whose metadata carries
``{"fallback": {"primary": bool, "attempt": n, "reason": why the previous route was left or None}}``, its
latency (start/end) and its actual tokens, priced by the tracker. Errors that are not worth another route
(a bad request, authentication) are raised at once; when every route fails, ``FallbackExhaustedError`` says why
each one did.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from costline.sdk.integrations._record import dump
from costline.sdk.tracker import Tracker, get_tracker

T = TypeVar("T")

#: error classes (by name, so no client library is imported) that make the router try the next route
RETRYABLE_NAMES = frozenset({
    "RateLimitError", "APIConnectionError", "APITimeoutError", "InternalServerError", "OverloadedError",
    "ServiceUnavailableError", "TimeoutError", "ConnectionError",
})
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Route(Generic[T]):
    """One way to answer: ``call(*args, **kwargs)`` with ``model``; ``usage_format`` names how costline reads
    the usage of its result (``openai``, ``anthropic``, ...; default: the provider)."""

    model: str
    call: Callable[..., T]
    provider: str | None = None
    usage_format: str | None = None


class FallbackExhaustedError(Exception):
    """Every route failed or was refused; ``reasons`` lists (model, reason) in order."""

    def __init__(self, reasons: Sequence[tuple[str, str]]) -> None:
        self.reasons = list(reasons)
        super().__init__("no route answered: " + "; ".join(f"{m}: {r}" for m, r in self.reasons))


@dataclass
class _Use:
    at: float
    tokens: int


@dataclass
class RateLimiter:
    """Requests and tokens per minute over a sliding 60-second window. ``reserve`` books a call with an
    estimate of its tokens (refused when it would exceed a limit); ``settle`` replaces the estimate with the
    call's actual tokens. Thread-safe; ``clock`` is injectable (seconds, monotonic)."""

    rpm: int | None = None
    tpm: int | None = None
    clock: Callable[[], float] = time.monotonic
    _uses: deque[_Use] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _expire(self, now: float) -> None:
        while self._uses and self._uses[0].at <= now - WINDOW_SECONDS:
            self._uses.popleft()

    def reserve(self, estimate_tokens: int = 0) -> _Use | None:
        with self._lock:
            now = self.clock()
            self._expire(now)
            if self.rpm is not None and len(self._uses) + 1 > self.rpm:
                return None
            if self.tpm is not None and sum(u.tokens for u in self._uses) + estimate_tokens > self.tpm:
                return None
            use = _Use(now, estimate_tokens)
            self._uses.append(use)
            return use

    def settle(self, use: _Use, actual_tokens: int) -> None:
        with self._lock:
            use.tokens = actual_tokens

    def usage(self) -> tuple[int, int]:
        """(requests, tokens) in the current window."""
        with self._lock:
            self._expire(self.clock())
            return len(self._uses), sum(u.tokens for u in self._uses)


def is_retryable(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    return type(exc).__name__ in RETRYABLE_NAMES or isinstance(exc, json.JSONDecodeError | ConnectionError)


def reason_of(exc: BaseException) -> str:
    if getattr(exc, "status_code", None) == 429 or type(exc).__name__ == "RateLimitError":
        return "rate_limited"
    return f"error:{type(exc).__name__}"


class FallbackRouter(Generic[T]):
    def __init__(self, routes: Sequence[Route[T]], *, tracker: Tracker | None = None,
                 budget_guard: Callable[[Route[T]], bool] | None = None,
                 limiters: Mapping[str, RateLimiter] | None = None,
                 estimate_tokens: Callable[[Mapping[str, Any]], int] | None = None,
                 retryable: Callable[[BaseException], bool] = is_retryable) -> None:
        if not routes:
            raise ValueError("a FallbackRouter needs at least one route")
        self.routes = list(routes)
        self.tracker = tracker
        self.budget_guard = budget_guard
        self.limiters = dict(limiters or {})
        self.estimate_tokens = estimate_tokens
        self.retryable = retryable

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        tracker = self.tracker or get_tracker()
        reasons: list[tuple[str, str]] = []
        previous: str | None = None
        for attempt, route in enumerate(self.routes, start=1):
            if self.budget_guard is not None and not self.budget_guard(route):
                previous = "budget"
                reasons.append((route.model, previous))
                continue
            limiter = self.limiters.get(route.model)
            use = None
            if limiter is not None:
                use = limiter.reserve(self.estimate_tokens(kwargs) if self.estimate_tokens else 0)
                if use is None:
                    previous = "rate_limited_locally"
                    reasons.append((route.model, previous))
                    continue
            meta = {"fallback": {"primary": attempt == 1, "attempt": attempt, "reason": previous}}
            handle = tracker.generation(name="fallback", model=route.model, provider=route.provider, metadata=meta)
            try:
                result = route.call(*args, **kwargs)
            except BaseException as exc:
                handle.record_error(exc)
                handle.end()
                if use is not None and limiter is not None:
                    limiter.settle(use, 0)
                if not isinstance(exc, Exception) or not self.retryable(exc):
                    raise
                previous = reason_of(exc)
                reasons.append((route.model, previous))
                continue
            try:
                handle.update(raw_usage=dump(result), usage_format=route.usage_format or route.provider)
            finally:
                handle.end()
            if use is not None and limiter is not None:  # the actual tokens replace the estimate
                usage = handle.usage
                limiter.settle(use, 0 if usage is None else int(usage.get("input_tokens") + usage.get("output_tokens")))
            return result
        raise FallbackExhaustedError(reasons)


__all__ = ["FallbackExhaustedError", "FallbackRouter", "RateLimiter", "Route", "is_retryable"]
