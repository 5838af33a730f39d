"""Budget enforcement for one server: check (reserve), settle, cancel, and where each budget stands.

``check`` finds the budgets a call falls under (scope, tier, per-attribute counter), estimates the call with
the project's price book (and each downgrade model's), and asks the store to reserve atomically
(``Store.reserve``); the decision itself is ``core.enforce.decide``. A reservation is settled when an
observation carrying its id in metadata ``costline_reservation`` is ingested (any protocol), or by
``settle`` (which records that observation itself), and released by ``cancel``; otherwise it expires after its
TTL. The observation is written before its hold is released, so for a moment the call counts twice: the error
is always on the safe side.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from costline.control.check import CheckRequest, estimate
from costline.core.budgets import Attributes, Budget, counter_key, parse_budget, spend_query, subject_of
from costline.core.enforce import Counter, CounterUsage, Decision, Option, Status, decide
from costline.core.events import Observation, ObservationEvent
from costline.core.money import decimal_str
from costline.core.usage import Usage
from costline.errors import CostlineError
from costline.ingest.batch import Decoded
from costline.ingest.pipeline import IngestResult, Pipeline
from costline.store.base import ControlObject, Reservation, Store

log = logging.getLogger(__name__)

RESERVATION_KEY: Final = "costline_reservation"
DEFAULT_TTL: Final = timedelta(minutes=15)

#: what one reservation attempt gives back: the decision, the hold written (if any), the usage it saw
Outcome = tuple[Decision, Reservation | None, Mapping[str, CounterUsage]]

#: called with (project_id, budget, status before, status after) when a check moves a counter
CrossingListener = Callable[[str, Budget, Status | None, Status], None]


class BudgetNotFoundError(CostlineError, LookupError):
    pass


@dataclass(frozen=True, slots=True)
class CheckResult:
    decision: Decision
    estimate: Decimal | None
    reservation: Reservation | None

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        statuses = [s.to_json() for s in d.statuses]
        binding = [s for s in d.statuses if s.counter.budget.limit is not None]
        remaining = min((s.remaining for s in binding if s.remaining is not None), default=None)
        resets = [s.counter.resets_at for s in d.statuses if s.over and s.counter.resets_at is not None]
        return {
            "decision": d.outcome, "allowed": d.outcome != "deny", "model": d.model, "reason": d.reason,
            "estimate": None if self.estimate is None else decimal_str(self.estimate),
            "reservation_id": None if self.reservation is None else self.reservation.id,
            "expires_at": None if self.reservation is None else self.reservation.expires_at.isoformat(),
            "remaining": None if remaining is None else decimal_str(remaining),
            "resets_at": min(resets).isoformat() if resets else None,  # UTC: the budgets may differ in zone
            "budgets": statuses, "usage": usage_summary(d.statuses),
        }


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settle recorded, and whether the hold had already expired (the cost is recorded either way)."""

    result: IngestResult
    hold_expired: bool
    expires_at: datetime


def budget_object(project_id: str, budget: Budget, source: str, now: datetime,
                  created: datetime | None = None) -> ControlObject:
    """The store's record of a budget (its spec, with where it came from)."""
    spec = budget.to_json()
    spec["source"] = source
    return ControlObject(project_id, "budget", budget.id, spec, source, created or now, now)


def usage_summary(statuses: Sequence[Status]) -> dict[str, Any]:
    """Per window (day, week, month, ...): the budget that binds first (least left) with its used / limit and
    reset time, and likewise the tightest request quota, for a product to show its users."""
    summary: dict[str, Any] = {}
    cost_left: dict[str, Decimal] = {}
    for status in statuses:
        budget = status.counter.budget
        window = budget.window.label
        entry = summary.setdefault(window, {"used": None, "limit": None, "requests_used": None, "max_requests": None,
                                            "resets_at": None, "currency": budget.currency})
        if budget.limit is not None:
            left = budget.limit - status.used
            if window not in cost_left or left < cost_left[window]:
                cost_left[window] = left
                entry.update(used=decimal_str(status.used), limit=decimal_str(budget.limit), currency=budget.currency,
                             resets_at=_iso(status.counter.resets_at, budget))
        if budget.max_requests is not None and (entry["max_requests"] is None or
                                                budget.max_requests - status.requests_used <
                                                entry["max_requests"] - entry["requests_used"]):
            entry["requests_used"], entry["max_requests"] = status.requests_used, budget.max_requests
            if window not in cost_left:
                entry["resets_at"] = _iso(status.counter.resets_at, budget)
    return summary


def _iso(moment: datetime | None, budget: Budget | None = None) -> str | None:
    if moment is None:
        return None
    return (moment.astimezone(budget.window.tz) if budget is not None else moment).isoformat()


class BudgetService:
    def __init__(self, store: Store, pipeline: Pipeline, clock: Callable[[], datetime], *,
                 ttl: timedelta = DEFAULT_TTL) -> None:
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self.ttl = ttl
        self.listeners: list[CrossingListener] = []
        self._budgets: dict[str, list[Budget]] = {}
        self._lock = threading.Lock()
        pipeline.add_listener(self._on_ingest, reads_summary=True)

    # budgets ------------------------------------------------------------------------------------------------
    def budgets(self, project_id: str) -> list[Budget]:
        found = self._budgets.get(project_id)
        if found is None:
            found = []
            for obj in self.store.list_control("budget", project_id):
                try:
                    found.append(parse_budget(obj.spec, f"budget {obj.id}"))
                except CostlineError as exc:  # a stored budget that no longer parses must not stop checks
                    log.error("skipping stored budget %s of project %s: %s", obj.id, project_id, exc)
            with self._lock:
                self._budgets[project_id] = found
        return found

    def changed(self, project_id: str | None = None) -> None:
        with self._lock:
            if project_id is None:
                self._budgets.clear()
            else:
                self._budgets.pop(project_id, None)

    def get(self, project_id: str, budget_id: str) -> Budget:
        for budget in self.budgets(project_id):
            if budget.id == budget_id:
                return budget
        raise BudgetNotFoundError(f"no budget {budget_id!r} in this project")

    # check ----------------------------------------------------------------------------------------------------
    def counters(self, project_id: str, attrs: Attributes, now: datetime) -> list[Counter]:
        found = []
        for budget in self.budgets(project_id):
            subject = subject_of(budget, attrs)
            if subject is not None:
                start, resets = budget.window.bounds(now)
                found.append(Counter(budget, subject, counter_key(budget, subject), start, resets))
        return found

    def check(self, project_id: str, request: CheckRequest) -> CheckResult:
        now = self.clock()
        attrs = self._with_tier(project_id, request.attributes, now)
        book = self.pipeline.book_for(project_id)
        asked_estimate = estimate(request, request.model, book, now)
        options = [Option(request.model, asked_estimate, tuple(self.counters(project_id, attrs, now)))]
        for budget in options[0].counters:
            target = budget.budget.downgrade_to
            if target and all(o.model != target for o in options):
                down = replace(attrs, model=target)
                options.append(Option(target, estimate(request, target, book, now),
                                      tuple(self.counters(project_id, down, now))))
        every = {c.key: c for o in options for c in o.counters}
        queries = [(key, spend_query(c.budget, c.subject, project_id, now)) for key, c in every.items()]
        reservation_id = uuid.uuid4().hex
        ttl = timedelta(seconds=request.ttl_seconds) if request.ttl_seconds else self.ttl
        def decide_and_hold(usage: Mapping[str, CounterUsage]) -> tuple[Outcome, Reservation | None]:
            decision = decide(options, usage)
            if decision.outcome == "deny" or not request.reserve or not decision.counters:
                return (decision, None, usage), None
            chosen = next(o for o in options if o.model == decision.model)
            details = {"model": decision.model, "asked_model": request.model, "attributes": _attrs_json(attrs),
                       "estimate": None if chosen.estimate is None else str(chosen.estimate)}
            reservation = Reservation(project_id, reservation_id, tuple(c.key for c in decision.counters),
                                      decision.hold or Decimal(0), now, now + ttl, details)
            return (decision, reservation, usage), reservation

        decision, reservation, usage = self.store.reserve(project_id, queries, decide_and_hold, now)
        chosen_estimate = next((o.estimate for o in options if o.model == decision.model), None)
        self._notify(project_id, decision, usage)
        return CheckResult(decision, chosen_estimate, reservation)

    def _with_tier(self, project_id: str, attrs: Attributes, now: datetime) -> Attributes:
        if attrs.user is None:
            return attrs
        if attrs.tier is None and all(b.tier is None for b in self.budgets(project_id)):
            return attrs  # no budget reads tiers: the stored one would change nothing (a read saved per check)
        stored = self.store.get_user_tier(project_id, attrs.user)
        if attrs.tier is None:
            return replace(attrs, tier=stored) if stored else attrs
        if attrs.tier != stored:  # remember it: the periodic evaluator needs to know who is on which tier
            self.store.set_user_tier(project_id, attrs.user, attrs.tier, now)
        return attrs

    def _notify(self, project_id: str, decision: Decision, usage: Mapping[str, CounterUsage]) -> None:
        """Tell listeners where each counter went; a denied call reports its counters as over (blocked)."""
        if not self.listeners:
            return
        for status in decision.statuses:
            u = usage.get(status.counter.key, CounterUsage())
            before = Status(status.counter, u.spent + u.reserved, u.requests + u.reserved_requests, False, None)
            after = status
            if decision.outcome == "deny":
                after = Status(status.counter, before.used, before.requests_used, True, decision.reason)
            for listener in self.listeners:
                try:
                    listener(project_id, status.counter.budget, before, after)
                except Exception:
                    log.exception("budget listener %r failed", listener)

    # settle -----------------------------------------------------------------------------------------------------
    def settle(self, project_id: str, reservation_id: str, *, cost: Decimal | None = None,
               usage: Mapping[str, Any] | None = None, model: str | None = None,
               end_time: datetime | None = None) -> Settled:
        """Record the call a reservation held (with its actual cost or usage) and release the hold.

        A hold that expired before its settle is settled all the same: the call happened, so its cost is
        recorded and counts against the budgets (the spend may then pass a limit; the next checks are denied).
        ``Settled.hold_expired`` says so. Only a reservation already settled, cancelled, or purged
        (``COSTLINE_RESERVATION_KEEP`` after its expiry) is unknown."""
        reservation = self.store.get_reservation(project_id, reservation_id)
        if reservation is None:
            raise BudgetNotFoundError(f"no reservation {reservation_id!r} (already settled or cancelled, or "
                                      "expired longer ago than COSTLINE_RESERVATION_KEEP); record the call by "
                                      "ingesting its observation")
        if cost is None and usage is None:
            raise CostlineError("settle needs the call's actual cost or its usage")
        attrs = reservation.details.get("attributes", {})
        event = ObservationEvent(
            id=reservation_id, trace_id=attrs.get("trace_id") or reservation_id, type="generation",
            name=attrs.get("name"), start_time=reservation.created_at,
            # another server's clock may lag the one that reserved: the call never ends before it was held
            end_time=max(end_time or self.clock(), reservation.created_at),
            model=model or reservation.details.get("model"), provider=attrs.get("provider"),
            usage=Usage(dict(usage)) if usage is not None else Usage({}),
            provided_cost={"total": cost} if cost is not None else None, user_id=attrs.get("user"),
            session_id=attrs.get("session"), tags=tuple(attrs.get("tags") or ()),
            metadata={**(attrs.get("metadata") or {}), RESERVATION_KEY: reservation_id},
            environment=attrs.get("environment"), release=attrs.get("release"),
        )
        now = self.clock()
        decoded = Decoded(observations=[event], merge=False)
        result = self.pipeline.ingest(project_id, decoded, "budget-settle")
        if decoded.errors:  # refused once priced (a cost past the money bound): the caller's error, not a 5xx
            raise CostlineError(decoded.errors[0].message)
        expired = reservation.expires_at <= now
        if expired:
            log.info("reservation %s of project %s settled after its hold expired at %s; its cost is recorded",
                     reservation_id, project_id, reservation.expires_at.isoformat())
        return Settled(result, expired, reservation.expires_at)

    def cancel(self, project_id: str, reservation_id: str) -> bool:
        return self.store.release_reservations(project_id, [reservation_id]) > 0

    def _on_ingest(self, project_id: str, protocol: str, decoded: Decoded, result: IngestResult) -> None:
        ids = result.summary.reservations if result.summary is not None else reservation_ids(result.observations)
        if ids:
            self.store.release_reservations(project_id, ids)

    # where budgets stand ------------------------------------------------------------------------------------------
    def standing(self, project_id: str, budget: Budget, subject: str = "") -> Status:
        """The counter's usage now (recorded spend plus live holds), for status pages and the evaluator."""
        now = self.clock()
        start, resets = budget.window.bounds(now)
        counter = Counter(budget, subject, counter_key(budget, subject), start, resets)
        query = spend_query(budget, subject, project_id, now)
        usage = self.store.reserve(project_id, [(counter.key, query)], lambda u: (u, None), now)
        u = usage.get(counter.key, CounterUsage())
        used, requests = u.spent + u.reserved, u.requests + u.reserved_requests
        over = (budget.limit is not None and used > budget.limit) or (
            budget.max_requests is not None and requests > budget.max_requests)
        return Status(counter, used, requests, over, None)


def reservation_ids(observations: Iterable[Observation]) -> tuple[str, ...]:
    """The reservations the observations settle (their metadata names one: ``settle`` records it so)."""
    return tuple(str(o.metadata[RESERVATION_KEY]) for o in observations
                 if isinstance(o.metadata, Mapping) and o.metadata.get(RESERVATION_KEY))


def _attrs_json(attrs: Attributes) -> dict[str, Any]:
    return {
        "user": attrs.user, "session": attrs.session, "tags": list(attrs.tags), "provider": attrs.provider,
        "environment": attrs.environment, "trace_name": attrs.trace_name, "name": attrs.name,
        "release": attrs.release, "metadata": dict(attrs.metadata), "tier": attrs.tier,
    }
