"""The budget check request: who is calling which model, and what the call may cost.

``parse_check`` reads the JSON body of ``POST /v1/budgets/check`` (and the SDK guard's arguments) and names
the bad field; ``estimate`` prices the call before it is made with the project's price book: a given cost, a
usage (unit → quantity), or a prompt / chat messages counted with the model's tokenizer plus
``max_output_tokens`` of output (the most the call can spend when the caller passes its own ``max_tokens``).
A model without a price, or a call with nothing to estimate from, has no estimate: the budgets' ``on_unknown_cost``
policy decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from costline.core.budgets import Attributes
from costline.core.choose import estimate_cost
from costline.core.cost import calc_cost
from costline.core.money import to_decimal
from costline.core.resolve import PriceBook
from costline.core.usage import Usage
from costline.errors import CostlineError
from costline.tokens import count_chat_tokens, count_tokens

MAX_PROMPT_CHARS: Final = 4_000_000
MAX_TTL_S: Final = 24 * 3600
_TEXT_FIELDS: Final = ("user", "session", "provider", "environment", "trace_name", "name", "release", "tier")
_KEYS: Final = frozenset({
    *_TEXT_FIELDS, "model", "tags", "metadata", "estimated_cost", "usage", "prompt", "messages",
    "max_output_tokens", "reserve", "ttl_seconds",
})


class CheckError(CostlineError, ValueError):
    """A malformed check request; the message names the field."""


@dataclass(frozen=True, slots=True)
class CheckRequest:
    model: str
    attributes: Attributes
    estimated_cost: Decimal | None = None
    usage: Mapping[str, Any] | None = None
    prompt: str | None = None
    messages: tuple[Mapping[str, str], ...] | None = None
    max_output_tokens: int | None = None
    reserve: bool = True
    ttl_seconds: int | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def _text(raw: Mapping[str, Any], key: str, limit: int = 1000) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise CheckError(f"{key}: expected a non-empty string")
    if len(value) > limit:
        raise CheckError(f"{key}: longer than {limit} characters")
    return value


def parse_check(raw: object) -> CheckRequest:
    if not isinstance(raw, Mapping):
        raise CheckError('body: expected a JSON object such as {"model": "gpt-4o", "user": "alice", '
                         '"prompt": "...", "max_output_tokens": 500}')
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise CheckError(f"{unknown[0]}: unknown field; use {', '.join(sorted(_KEYS))}")
    model = _text(raw, "model", 200)
    if model is None:
        raise CheckError("model: the model the call will use is required")
    texts = {key: _text(raw, key) for key in _TEXT_FIELDS}
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or len(tags) > 100 or not all(isinstance(t, str) and 0 < len(t) <= 200
                                                                   for t in tags):
        raise CheckError("tags: expected a list of at most 100 non-empty strings")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, Mapping) or len(metadata) > 100:
        raise CheckError("metadata: expected an object of at most 100 keys")
    meta: dict[str, str] = {}
    for key, value in metadata.items():
        if isinstance(value, bool) or not isinstance(value, str | int) or len(str(value)) > 1000:
            raise CheckError(f"metadata.{key}: expected a string of at most 1,000 characters")
        meta[str(key)] = str(value)
    cost = None
    if raw.get("estimated_cost") is not None:
        try:
            cost = to_decimal(raw["estimated_cost"], field="estimated_cost")
        except CostlineError as exc:
            raise CheckError(str(exc)) from None
        if cost < 0:
            raise CheckError("estimated_cost: must not be negative")
    usage = raw.get("usage")
    if usage is not None and not isinstance(usage, Mapping):
        raise CheckError("usage: expected an object of unit → quantity such as {\"input_tokens\": 1200}")
    prompt = raw.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
        raise CheckError(f"prompt: expected a string of at most {MAX_PROMPT_CHARS:,} characters")
    messages = _messages(raw.get("messages"))
    max_out = raw.get("max_output_tokens")
    if max_out is not None and (isinstance(max_out, bool) or not isinstance(max_out, int) or
                                not 0 <= max_out <= 10_000_000):
        raise CheckError("max_output_tokens: expected a whole number from 0 to 10,000,000")
    reserve = raw.get("reserve", True)
    if not isinstance(reserve, bool):
        raise CheckError("reserve: expected true or false")
    ttl = raw.get("ttl_seconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_S):
        raise CheckError(f"ttl_seconds: expected a whole number of seconds from 1 to {MAX_TTL_S}")
    attrs = Attributes(
        user=texts["user"], session=texts["session"], tags=tuple(tags), model=model, provider=texts["provider"],
        environment=texts["environment"], trace_name=texts["trace_name"], name=texts["name"],
        release=texts["release"], metadata=MappingProxyType(meta), tier=texts["tier"],
    )
    return CheckRequest(model, attrs, cost, usage, prompt, messages, max_out, reserve, ttl)


def _messages(raw: object) -> tuple[Mapping[str, str], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > 10_000:
        raise CheckError("messages: expected a list of chat messages")
    total = 0
    for i, message in enumerate(raw):
        if not isinstance(message, Mapping) or not isinstance(message.get("content", ""), str):
            raise CheckError(f"messages[{i}]: expected {{\"role\": ..., \"content\": \"text\"}}")
        total += len(message.get("content", ""))
    if total > MAX_PROMPT_CHARS:
        raise CheckError(f"messages: more than {MAX_PROMPT_CHARS:,} characters of content")
    return tuple(raw)


def estimate(request: CheckRequest, model: str, book: PriceBook, at: datetime) -> Decimal | None:
    """What the call would cost with ``model`` (the one asked for, or a downgrade); None when it cannot be
    estimated (no price for the model, or nothing to estimate from)."""
    provider = book.normalize_provider(request.attributes.provider)
    if request.estimated_cost is not None and model == request.model:
        return request.estimated_cost
    if request.usage is not None:
        try:
            usage = Usage(dict(request.usage))
        except CostlineError as exc:
            raise CheckError(f"usage: {exc}") from None
        record = book.resolve(model, provider, at=at)
        breakdown = calc_cost(usage, record, at=at, model=None if record else model)
    elif request.prompt is not None or request.messages is not None:
        counted = count_tokens(request.prompt, model) if request.prompt is not None else \
            count_chat_tokens(list(request.messages or ()), model)
        breakdown = estimate_cost(book, model, input_tokens=counted.tokens,
                                  output_tokens=request.max_output_tokens or 0, at=at, provider=provider)
    elif request.max_output_tokens is not None:
        breakdown = estimate_cost(book, model, input_tokens=0, output_tokens=request.max_output_tokens, at=at,
                                  provider=provider)
    else:
        return None
    if breakdown.status.value not in ("priced", "provided"):
        return None
    return breakdown.total
