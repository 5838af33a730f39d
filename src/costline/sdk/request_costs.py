"""What one request cost: a request-scoped accumulator of model calls and other cost items, and ``add_cost``.

The ASGI middleware (``costline.sdk.middleware``) puts a ``RequestCosts`` in a context variable for the
duration of a request. Every generation the tracker records while it is current is added to it:

- ``Tracker.record_generation`` returns the call's ``CostBreakdown``; ``instrument(tracker)`` wraps the
  instance's method and adds that breakdown as it is (no second pricing; the usage is parsed again only to
  count tokens);
- handles (``tracker.generation()``, ``@observe(as_type="generation")``, the client integrations) send their
  event through ``Tracker.emit`` when they end; the wrapped ``emit`` prices the event's usage and provided cost
  with the tracker's own ``price`` (the same function, book and start time the handle used, so the same
  breakdown). Other observations that carry a provided cost (a span with ``cost=``) are added as cost items,
  as the server adds them to the trace total.

``record_generation`` does not go through ``emit`` (it hands its event to the sender directly), hence the two
wrappers. Both are installed on the tracker instance only (the class is not touched) and cost one
``ContextVar.get`` per event outside a request.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costline.core.cost import CostBreakdown, PricingStatus
from costline.core.money import DEFAULT_CURRENCY, MONEY_CONTEXT, decimal_str, to_decimal
from costline.core.usage import Usage
from costline.errors import CostlineError
from costline.sdk.spill import readable
from costline.sdk.tracker import Tracker, get_tracker

log = logging.getLogger("costline.sdk")

#: metadata key marking the span ``add_cost`` records (already counted; the ``emit`` wrapper skips it)
COST_ITEM_KEY = "costline_cost_item"
LLM_TYPES = frozenset({"generation", "embedding"})


@dataclass(frozen=True, slots=True)
class CostItem:
    """One line of a request's cost: a model call (``llm``) or an item the application added."""

    service: str
    operation: str
    cost: Decimal | None  # None: unpriced (never 0)
    unit: str
    quantity: Decimal | int
    currency: str = DEFAULT_CURRENCY
    input_tokens: int = 0
    output_tokens: int = 0
    llm: bool = False
    #: True when only part of the usage could be priced (``cost`` is then a lower bound)
    partial: bool = False

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "service": self.service, "operation": self.operation,
            "cost": None if self.cost is None else decimal_str(self.cost),
            "unit": self.unit, "quantity": json_quantity(self.quantity),
        }
        if self.currency != DEFAULT_CURRENCY:
            out["currency"] = self.currency
        if self.cost is None or self.partial:
            out["status"] = "unpriced" if self.cost is None else "partially_priced"
        return out


def json_quantity(value: Decimal | int) -> int | float | str:
    """A quantity as a JSON number with its exact digits (a string only if no float has them)."""
    if isinstance(value, int):
        return value
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else decimal_str(value)


@dataclass(frozen=True, slots=True)
class Summary:
    total: Decimal  # the priced items in ``currency``
    unpriced: int  # items whose cost is unknown in whole or in part, or in another currency
    input_tokens: int
    output_tokens: int
    items: tuple[CostItem, ...]


class RequestCosts:
    """The cost items of one request (appended from any thread that copied the request's context)."""

    __slots__ = ("closed", "currency", "items", "operation", "request_id", "started", "trace_id", "tracker")

    def __init__(self, tracker: Tracker, *, request_id: str, operation: str, trace_id: str | None = None,
                 currency: str = DEFAULT_CURRENCY) -> None:
        self.tracker = tracker
        self.request_id = request_id
        self.operation = operation
        self.trace_id = trace_id
        self.currency = currency
        self.started = datetime.now(UTC)
        self.items: list[CostItem] = []
        self.closed = False

    def add(self, item: CostItem) -> None:
        if not self.closed:
            self.items.append(item)  # list.append is atomic: no lock needed across threads

    def summary(self) -> Summary:
        items = tuple(self.items)
        total = Decimal(0)
        unpriced = 0
        for item in items:
            if item.cost is None or item.currency != self.currency:
                unpriced += 1
                continue
            total = MONEY_CONTEXT.add(total, item.cost)
            if item.partial:
                unpriced += 1
        return Summary(total, unpriced, sum(i.input_tokens for i in items), sum(i.output_tokens for i in items),
                       items)

    def cost_object(self, summary: Summary | None = None, *, trace_id: bool = True) -> dict[str, Any]:
        """``{request_id, operation, total_cost, currency, cost_breakdown, timestamp}`` (+ ``unpriced`` when
        some item has no price, ``trace_id`` when asked); money as decimal strings."""
        s = summary or self.summary()
        out: dict[str, Any] = {
            "request_id": self.request_id, "operation": self.operation, "total_cost": decimal_str(s.total),
            "currency": self.currency, "cost_breakdown": [i.as_json() for i in s.items],
            "timestamp": self.started.isoformat().replace("+00:00", "Z"),
        }
        if s.unpriced:
            out["unpriced"] = s.unpriced
        if trace_id and self.trace_id:
            out["trace_id"] = self.trace_id
        return out


_CURRENT: ContextVar[RequestCosts | None] = ContextVar("costline_request_costs", default=None)


def current_request_costs() -> RequestCosts | None:
    """The accumulator of the request being served (``None`` outside the middleware)."""
    return _CURRENT.get()


def activate(costs: RequestCosts) -> Token[RequestCosts | None]:
    return _CURRENT.set(costs)


def deactivate(costs: RequestCosts, token: Token[RequestCosts | None]) -> None:
    costs.closed = True
    try:
        _CURRENT.reset(token)
    except ValueError:  # reset from another context: clear by value
        _CURRENT.set(None)


# -- turning what the tracker records into cost items ----------------------------------------------------------

def _tokens(usage: Usage | None) -> tuple[int, int]:
    if usage is None:
        return 0, 0
    return int(usage.get("input_tokens")), int(usage.get("output_tokens"))


def llm_item(breakdown: CostBreakdown, usage: Usage | None, model: str | None, provider: str | None) -> CostItem:
    input_tokens, output_tokens = _tokens(usage)
    unpriced = breakdown.status is PricingStatus.UNPRICED
    return CostItem(
        service=provider or breakdown.provider or "llm", operation=model or breakdown.model or "unknown",
        cost=None if unpriced else breakdown.total, unit="tokens", quantity=input_tokens + output_tokens,
        currency=breakdown.currency, input_tokens=input_tokens, output_tokens=output_tokens, llm=True,
        partial=breakdown.status is PricingStatus.PARTIALLY_PRICED,
    )


def item_from_event(tracker: Tracker, event: Mapping[str, Any]) -> CostItem | None:
    """The cost item of an observation event sent through ``Tracker.emit`` (None: it costs nothing)."""
    kind = event.get("type")
    if kind == "trace":
        return None
    event = readable(event)  # usage and cost as Usage and Decimal (events carry them JSON-ready)
    cost = event.get("cost")
    metadata = event.get("metadata") or {}
    if kind == "trace" or (kind not in LLM_TYPES and not cost) or metadata.get(COST_ITEM_KEY):
        return None
    usage = event.get("usage")
    usage = usage if isinstance(usage, Usage) else None
    model, provider = event.get("model"), event.get("provider")
    if kind in LLM_TYPES:
        if usage is None and not cost:
            # no usage was ever set, or it was invalid: the cost is unknown; a failed call (level ERROR) was
            # billed nothing, as the server prices it
            failed = event.get("level") == "ERROR"
            return CostItem(service=provider or "llm", operation=model or "unknown",
                            cost=Decimal(0) if failed else None, unit="tokens", quantity=0, llm=True)
        breakdown = tracker.price(model, provider, usage, event["start_time"], event.get("attributes"), cost)
        return llm_item(breakdown, usage, model, provider)
    breakdown = tracker.price(None, None, usage, event["start_time"], None, cost)
    try:
        quantity = to_decimal(metadata.get("quantity", 1), field="metadata.quantity")
    except CostlineError:
        quantity = Decimal(1)
    return CostItem(
        service=str(metadata.get("service") or kind), operation=str(metadata.get("operation") or event.get("name")
                                                                    or kind),
        cost=None if breakdown.status is PricingStatus.UNPRICED else breakdown.total,
        unit=str(metadata.get("unit") or "item"), quantity=quantity,
        currency=breakdown.currency,
    )


def _record_usage(given: Mapping[str, Any], breakdown: CostBreakdown) -> Usage | None:
    """The usage ``record_generation`` was given, parsed again (quietly) to count its tokens."""
    usage, raw, fmt = given.get("usage"), given.get("raw_usage"), given.get("usage_format")
    if isinstance(usage, Usage):
        return usage
    try:
        if raw is not None or fmt:
            if not fmt:
                return None
            from costline.extract import extract_usage

            source = raw if raw is not None else usage
            return extract_usage(source, fmt).usage if isinstance(source, Mapping) else None
        if usage is not None:
            from costline.sdk.fastusage import fast_usage

            return fast_usage(usage)
    except Exception:  # already reported by the tracker (the breakdown is unpriced, with the reason)
        return None
    return None


# -- installing the hooks on a tracker -------------------------------------------------------------------------

_INSTRUMENTED: weakref.WeakSet[Tracker] = weakref.WeakSet()
_LOCK = threading.Lock()
_RECORD_PARAMS = tuple(inspect.signature(Tracker.record_generation).parameters)[1:]  # without self


def instrument(tracker: Tracker) -> Tracker:
    """Wrap ``tracker``'s ``emit`` and ``record_generation`` (on the instance) so that what it records while a
    request is being served is added to the request's costs. Idempotent."""
    if tracker in _INSTRUMENTED:
        return tracker
    with _LOCK:
        if tracker in _INSTRUMENTED:
            return tracker
        emit: Callable[[dict[str, Any]], None] = tracker.emit
        record: Callable[..., CostBreakdown] = tracker.record_generation

        @functools.wraps(emit)
        def observed_emit(event: dict[str, Any]) -> None:
            emit(event)
            costs = _CURRENT.get()
            if costs is not None:
                try:
                    item = item_from_event(tracker, event)
                    if item is not None:
                        costs.add(item)
                except Exception:
                    log.exception("costline: could not add a %s to the request's cost", event.get("type"))

        @functools.wraps(record)
        def observed_record(*args: Any, **kwargs: Any) -> CostBreakdown:
            breakdown = record(*args, **kwargs)
            costs = _CURRENT.get()
            if costs is not None:
                try:
                    given = dict(zip(_RECORD_PARAMS, args, strict=False))
                    given.update(kwargs)
                    usage = _record_usage(given, breakdown)
                    costs.add(llm_item(breakdown, usage, given.get("model"), given.get("provider")))
                except Exception:
                    log.exception("costline: could not add a generation to the request's cost")
            return breakdown

        vars(tracker)["emit"] = observed_emit
        vars(tracker)["record_generation"] = observed_record
        _INSTRUMENTED.add(tracker)
    return tracker


# -- non-LLM cost items ----------------------------------------------------------------------------------------

def add_cost(service: str, operation: str, unit: str, quantity: Decimal | int | float | str,
             amount: Decimal | int | float | str | None = None, currency: str = DEFAULT_CURRENCY, *,
             unit_price: Decimal | int | float | str | None = None, name: str | None = None,
             metadata: Mapping[str, Any] | None = None, tracker: Tracker | None = None) -> Decimal | None:
    """Add a cost that is not a model call (``add_cost("lambda", "execution", "seconds", 2.4,
    amount="0.00004")``) to the request being served, and record it as a span with that provided cost in
    the current trace (so the server adds it to the trace total). ``amount`` is exact (Decimal or string; a
    float goes through ``repr``), or ``quantity × unit_price``. Returns the amount; bad input is logged and
    ignored (``None``), never raised. Outside a request the span is still recorded."""
    try:
        qty = to_decimal(quantity, field="quantity")
        if qty < 0:
            raise CostlineError(f"quantity: must not be negative, got {quantity!r}")
        if amount is not None and unit_price is not None:
            raise CostlineError("amount, unit_price: give one of them, not both")
        if amount is not None:
            total = to_decimal(amount, field="amount")
        elif unit_price is not None:
            total = MONEY_CONTEXT.multiply(qty, to_decimal(unit_price, field="unit_price"))
        else:
            raise CostlineError("amount: required (or give unit_price)")
        if total < 0:
            raise CostlineError(f"amount: must not be negative, got {total}")
        if currency != DEFAULT_CURRENCY:
            raise CostlineError(f"currency: costs are recorded in {DEFAULT_CURRENCY}, got {currency!r}")
        costs = _CURRENT.get()
        chosen = tracker or (costs.tracker if costs is not None else None) or get_tracker()
        meta = {**(metadata or {}), COST_ITEM_KEY: True, "service": str(service), "operation": str(operation),
                "unit": str(unit), "quantity": decimal_str(qty), "currency": currency}
        span = chosen.span(name or f"{service} {operation}", metadata=meta)
        span.update(cost={"total": total})
        span.end()
        if costs is not None:
            costs.add(CostItem(service=str(service), operation=str(operation), cost=total, unit=str(unit),
                               quantity=qty, currency=currency))
        return total
    except Exception as exc:
        log.warning("costline: add_cost(%r, %r) ignored: %s", service, operation, exc)
        return None
