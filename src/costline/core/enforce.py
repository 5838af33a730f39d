"""Budget decisions: given what each counter has spent and holds, allow, deny or downgrade one call.

The store reads every counter a call falls under in one statement while it holds their locks, then calls
``decide``; the reservation ``decide`` asks for is written in the same transaction. So two concurrent calls
see each other's holds and a limit is overshot by at most what one call spends beyond its estimate.

A counter's usage is ``spent`` (recorded observations in the window, exact) plus ``reserved`` (live holds of
calls not yet recorded). A call fits a cost limit when ``spent + reserved + estimate <= limit``, and a request
quota when ``requests + reserved_requests + 1 <= max_requests``. Zero-cost calls are exempt from cost limits
(unless the budget says otherwise); a call whose cost cannot be estimated is denied or allowed by the budget's
``on_unknown_cost`` policy. ``alert`` budgets never block: they report the call as over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from costline.core.budgets import Budget
from costline.core.money import decimal_str

OUTCOMES: Final = ("allow", "deny", "downgrade")
ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class Counter:
    """One budget's counter for one subject (the user, for a per-user budget) in its current window."""

    budget: Budget
    subject: str
    key: str
    start: datetime | None
    resets_at: datetime | None


@dataclass(frozen=True, slots=True)
class CounterUsage:
    spent: Decimal = ZERO
    requests: int = 0
    reserved: Decimal = ZERO
    reserved_requests: int = 0


@dataclass(frozen=True, slots=True)
class Option:
    """A way to make the call: the model asked for, or a downgrade; ``estimate`` None = cannot be estimated."""

    model: str
    estimate: Decimal | None
    counters: tuple[Counter, ...]


@dataclass(frozen=True, slots=True)
class Status:
    """Where one counter stands, counting this call's hold when the call goes ahead."""

    counter: Counter
    used: Decimal
    requests_used: int
    over: bool
    problem: str | None

    @property
    def remaining(self) -> Decimal | None:
        limit = self.counter.budget.limit
        return None if limit is None else max(ZERO, limit - self.used)

    @property
    def percent(self) -> Decimal | None:
        """The larger of cost used / limit and requests used / quota, in percent."""
        budget = self.counter.budget
        shares = []
        if budget.limit is not None:
            shares.append(Decimal(100) if budget.limit == 0 and self.used > 0 else
                          ZERO if budget.limit == 0 else self.used * 100 / budget.limit)
        if budget.max_requests is not None:
            shares.append(Decimal(100) if budget.max_requests == 0 and self.requests_used else
                          ZERO if budget.max_requests == 0 else Decimal(self.requests_used * 100) / budget.max_requests)
        return max(shares) if shares else None

    def to_json(self) -> dict[str, Any]:
        budget = self.counter.budget
        percent = self.percent
        return {
            "budget_id": budget.id, "budget": budget.name, "subject": self.counter.subject or None,
            "window": budget.window.label, "timezone": budget.window.timezone,
            "window_start": _iso(self.counter.start, budget), "resets_at": _iso(self.counter.resets_at, budget),
            "limit": _money(budget.limit), "used": decimal_str(self.used), "remaining": _money(self.remaining),
            "currency": budget.currency, "max_requests": budget.max_requests, "requests_used": self.requests_used,
            "requests_remaining": None if budget.max_requests is None else max(0, budget.max_requests -
                                                                                 self.requests_used),
            "percent": None if percent is None else str(percent.quantize(Decimal("0.01"))),
            "action": budget.action, "over": self.over, "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str
    model: str
    #: what each counter of the chosen option holds for this call (None when the call is denied)
    hold: Decimal | None
    counters: tuple[Counter, ...]
    statuses: tuple[Status, ...]
    reason: str | None = None


def _iso(moment: datetime | None, budget: Budget | None = None) -> str | None:
    """ISO 8601, in the budget's zone when there is one (midnight reads as midnight)."""
    if moment is None:
        return None
    return (moment.astimezone(budget.window.tz) if budget is not None else moment).isoformat()


def _money(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


def _check(counter: Counter, usage: CounterUsage, estimate: Decimal | None) -> tuple[Status, bool]:
    """The counter's status if the call goes ahead, and whether the budget stops it (block/downgrade)."""
    budget = counter.budget
    problem = None
    exempt = estimate is not None and estimate == 0 and budget.exempt_zero_cost
    used = usage.spent + usage.reserved + (estimate or ZERO)
    requests = usage.requests + usage.reserved_requests + 1
    if budget.limit is not None and not exempt:
        if estimate is None:
            if budget.on_unknown_cost == "closed":
                problem = "the call's cost cannot be estimated and the budget fails closed (on_unknown_cost)"
        elif used > budget.limit:
            problem = (f"{budget.window.label} cost would reach {decimal_str(used)} {budget.currency} "
                       f"of a {decimal_str(budget.limit)} limit")
    if problem is None and budget.max_requests is not None and requests > budget.max_requests:
        problem = f"{budget.window.label} requests would reach {requests} of a quota of {budget.max_requests}"
    stops = problem is not None and budget.action != "alert"
    return Status(counter, used, requests, problem is not None, problem), stops


def _evaluate(option: Option, usage: Mapping[str, CounterUsage]) -> tuple[list[Status], list[Status]]:
    statuses: list[Status] = []
    stopping: list[Status] = []
    for counter in option.counters:
        status, stops = _check(counter, usage.get(counter.key, CounterUsage()), option.estimate)
        statuses.append(status)
        if stops:
            stopping.append(status)
    return statuses, stopping


def _standing(counters: Sequence[Counter], usage: Mapping[str, CounterUsage],
              stopping: Sequence[Status]) -> tuple[Status, ...]:
    """Statuses without this call (it is denied): what was used so far; the budgets that stopped it are over."""
    problems = {s.counter.key: s.problem for s in stopping}
    found = []
    for counter in counters:
        u = usage.get(counter.key, CounterUsage())
        problem = problems.get(counter.key)
        found.append(Status(counter, u.spent + u.reserved, u.requests + u.reserved_requests, problem is not None,
                            problem))
    return tuple(found)


def decide(options: Sequence[Option], usage: Mapping[str, CounterUsage]) -> Decision:
    """Allow ``options[0]`` if every budget that stops calls lets it through; else, when only downgrade budgets
    stop it, the first downgrade option that no budget stops; else deny with the first budget's reason."""
    asked = options[0]
    statuses, stopping = _evaluate(asked, usage)
    if not stopping:
        return Decision("allow", asked.model, asked.estimate or ZERO, asked.counters, tuple(statuses))
    reason = f"budget {stopping[0].counter.budget.name!r}: {stopping[0].problem}"
    if all(s.counter.budget.action == "downgrade" for s in stopping):
        for option in options[1:]:
            down_statuses, down_stopping = _evaluate(option, usage)
            if not down_stopping:
                return Decision("downgrade", option.model, option.estimate or ZERO, option.counters,
                                tuple(down_statuses), reason)
    return Decision("deny", asked.model, None, (), _standing(asked.counters, usage, stopping), reason)


def crossed(before: Decimal | None, after: Decimal | None, thresholds: Sequence[int]) -> int | None:
    """The highest threshold (percent) that ``after`` reaches and ``before`` did not, or None."""
    if after is None:
        return None
    hit = [t for t in thresholds if after >= t and (before is None or before < t)]
    return max(hit) if hit else None
