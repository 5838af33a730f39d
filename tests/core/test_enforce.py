"""Budget decisions with figures worked out by hand: a call fits when spent + reserved + estimate <= limit and
requests + reserved_requests + 1 <= quota; zero-cost calls are exempt unless the budget says otherwise; unknown
estimates follow on_unknown_cost; alert budgets never stop; downgrade budgets move the call to a cheaper model
only when that model fits every budget it falls under."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from costline.core.budgets import Budget, counter_key, parse_budget
from costline.core.enforce import Counter, CounterUsage, Option, Status, crossed, decide

D = Decimal
START = datetime(2026, 11, 1, tzinfo=UTC)
RESET = datetime(2026, 11, 2, tzinfo=UTC)


def budget(name: str = "daily", **spec: Any) -> Budget:
    base: dict[str, Any] = {"id": name.replace(" ", "-"), "name": name, "window": "day", "limit": "1.00",
                            "action": "block"}
    base.update(spec)
    return parse_budget({k: v for k, v in base.items() if v is not None})


def counter(b: Budget, subject: str = "") -> Counter:
    return Counter(b, subject, counter_key(b, subject), START, RESET)


def usage(c: Counter, spent: str = "0", requests: int = 0, reserved: str = "0",
          reserved_requests: int = 0) -> dict[str, CounterUsage]:
    return {c.key: CounterUsage(D(spent), requests, D(reserved), reserved_requests)}


def ask(estimate: str | None, *counters: Counter, model: str = "gpt-4o") -> Option:
    return Option(model, None if estimate is None else D(estimate), counters)


# cost limits -------------------------------------------------------------------------------------------------

def test_exactly_at_the_limit_is_allowed() -> None:
    c = counter(budget())
    # 0.70 spent + 0.20 held by calls in flight + 0.10 estimate = 1.00 <= 1.00
    decision = decide([ask("0.10", c)], usage(c, "0.70", 7, "0.20", 2))
    assert decision.outcome == "allow"
    assert decision.model == "gpt-4o"
    assert decision.hold == D("0.10")
    assert decision.counters == (c,)
    assert decision.reason is None
    [status] = decision.statuses
    assert status.used == D("1.00")
    assert status.requests_used == 10  # 7 recorded + 2 held + this one
    assert status.over is False
    assert status.problem is None
    assert status.remaining == D("0")
    assert status.percent == D("100")


def test_one_cent_over_the_limit_is_denied_with_the_budget_named() -> None:
    c = counter(budget("free daily"))
    # 0.70 + 0.20 + 0.11 = 1.01 > 1.00
    decision = decide([ask("0.11", c)], usage(c, "0.70", 7, "0.20", 2))
    assert decision.outcome == "deny"
    assert decision.hold is None
    assert decision.counters == ()
    assert decision.reason == "budget 'free daily': day cost would reach 1.01 USD of a 1 limit"
    # a denied call reports where the counter stands without it (0.70 + 0.20, 7 + 2 requests), marked over
    # with the problem that stopped it
    [status] = decision.statuses
    assert (status.used, status.requests_used, status.over) == (D("0.90"), 9, True)
    assert status.problem == "day cost would reach 1.01 USD of a 1 limit"


def test_unused_counter_reads_as_zero() -> None:
    c = counter(budget())
    decision = decide([ask("0.40", c)], {})
    assert decision.outcome == "allow"
    assert decision.statuses[0].used == D("0.40")
    assert decision.statuses[0].requests_used == 1


def test_a_call_under_no_budget_is_allowed_and_holds_its_estimate() -> None:
    decision = decide([ask("0.25")], {})
    assert (decision.outcome, decision.hold, decision.counters, decision.statuses) == ("allow", D("0.25"), (), ())


# zero-cost calls -----------------------------------------------------------------------------------------------

def test_zero_cost_call_passes_an_exhausted_budget() -> None:
    c = counter(budget())
    # 1.00 spent and 0.20 held: any priced call is over, a free (local) model is not stopped
    decision = decide([ask("0", c, model="llama-local")], usage(c, "1.00", 20, "0.20", 1))
    assert decision.outcome == "allow"
    assert decision.model == "llama-local"
    assert decision.hold == D(0)
    assert decision.statuses[0].over is False
    assert decision.statuses[0].used == D("1.20")


def test_zero_cost_is_not_exempt_when_the_budget_says_so() -> None:
    c = counter(budget(exempt_zero_cost=False))
    decision = decide([ask("0", c)], usage(c, "1.00", 20, "0.20", 1))
    assert decision.outcome == "deny"
    assert decision.reason == "budget 'daily': day cost would reach 1.2 USD of a 1 limit"
    # not exhausted yet: a zero-cost call adds nothing and fits (0.50 + 0 <= 1.00)
    assert decide([ask("0", c)], usage(c, "0.50")).outcome == "allow"


def test_zero_limit_lets_only_free_calls_through() -> None:
    c = counter(budget(limit=0))
    assert decide([ask("0", c)], {}).outcome == "allow"
    assert decide([ask("0.000001", c)], {}).outcome == "deny"
    strict = counter(budget(limit=0, exempt_zero_cost=False))
    assert decide([ask("0", strict)], {}).outcome == "allow"  # 0 + 0 <= 0


def test_zero_cost_does_not_escape_a_request_quota() -> None:
    c = counter(budget(max_requests=3))
    decision = decide([ask("0", c)], usage(c, "0", 3))
    assert decision.outcome == "deny"
    assert decision.reason == "budget 'daily': day requests would reach 4 of a quota of 3"


# unknown estimates ---------------------------------------------------------------------------------------------

def test_unknown_estimate_fails_closed_by_default() -> None:
    c = counter(budget())
    decision = decide([ask(None, c, model="mystery-model")], usage(c, "0.10"))
    assert decision.outcome == "deny"
    assert decision.reason is not None
    assert decision.reason.startswith("budget 'daily': ")
    assert "cannot be estimated" in decision.reason
    assert "on_unknown_cost" in decision.reason


def test_unknown_estimate_allowed_when_open_and_holds_nothing() -> None:
    c = counter(budget(on_unknown_cost="open"))
    decision = decide([ask(None, c)], usage(c, "0.10", 1))
    assert decision.outcome == "allow"
    assert decision.hold == D(0)
    assert decision.statuses[0].used == D("0.10")
    assert decision.statuses[0].requests_used == 2


def test_unknown_estimate_under_a_request_quota_only() -> None:
    c = counter(budget(limit=None, max_requests=5))
    assert decide([ask(None, c)], usage(c, "0", 4)).outcome == "allow"  # 4 + 1 <= 5, no cost limit to miss
    assert decide([ask(None, c)], usage(c, "0", 4, "0", 1)).outcome == "deny"  # 4 + 1 + 1 > 5


def test_unknown_estimate_under_a_closed_alert_budget_only_marks_it() -> None:
    c = counter(budget(action="alert"))
    decision = decide([ask(None, c)], {})
    assert decision.outcome == "allow"
    assert decision.statuses[0].over is True
    assert "cannot be estimated" in (decision.statuses[0].problem or "")


# alert budgets ---------------------------------------------------------------------------------------------------

def test_alert_budget_never_stops_but_marks_over() -> None:
    alert = counter(budget("soft", action="alert"))
    # 0.95 + 0.10 = 1.05 > 1.00
    decision = decide([ask("0.10", alert)], usage(alert, "0.95", 19))
    assert decision.outcome == "allow"
    assert decision.hold == D("0.10")
    assert decision.reason is None
    [status] = decision.statuses
    assert status.over is True
    assert status.problem == "day cost would reach 1.05 USD of a 1 limit"
    assert status.remaining == D(0)  # never negative
    assert status.percent == D(105)


def test_denied_call_marks_only_the_budgets_that_stopped_it() -> None:
    hard = counter(budget("hard", limit="1.00"))
    soft = counter(budget("soft", action="alert", limit="2.00"))
    # 0.95 + 0.10 > 1.00 stops the call; the alert budget has room (0.95 of 2.00): the denied call reports the
    # recorded usage, and the stopping budget as over with its problem
    decision = decide([ask("0.10", hard, soft)], {**usage(hard, "0.95"), **usage(soft, "0.95")})
    assert decision.outcome == "deny"
    assert [(s.counter.budget.name, s.used, s.over, s.problem) for s in decision.statuses] == [
        ("hard", D("0.95"), True, "day cost would reach 1.05 USD of a 1 limit"), ("soft", D("0.95"), False, None)]


def test_block_and_alert_budgets_together() -> None:
    hard = counter(budget("hard", limit="5.00"))
    soft = counter(budget("soft", action="alert", limit="1.00"))
    both = {**usage(hard, "0.95"), **usage(soft, "0.95")}
    decision = decide([ask("0.10", hard, soft)], both)
    assert decision.outcome == "allow"
    assert [s.over for s in decision.statuses] == [False, True]
    assert decision.counters == (hard, soft)  # the hold is on every counter the call falls under


# request quotas ----------------------------------------------------------------------------------------------------

def test_request_quota_counts_recorded_held_and_this_call() -> None:
    c = counter(budget(limit=None, max_requests=10))
    allowed = decide([ask("0.01", c)], usage(c, "3.00", 7, "0", 2))  # 7 + 2 + 1 = 10 <= 10
    assert allowed.outcome == "allow"
    assert allowed.statuses[0].requests_used == 10
    assert allowed.statuses[0].percent == D(100)
    assert allowed.statuses[0].remaining is None  # no cost limit
    denied = decide([ask("0.01", c)], usage(c, "3.00", 7, "0", 3))  # 7 + 3 + 1 = 11 > 10
    assert denied.outcome == "deny"
    assert denied.reason == "budget 'daily': day requests would reach 11 of a quota of 10"


def test_zero_request_quota_denies_every_call() -> None:
    c = counter(budget(limit=None, max_requests=0))
    assert decide([ask("0", c)], {}).outcome == "deny"


def test_cost_and_quota_on_one_budget_both_apply() -> None:
    c = counter(budget(max_requests=2))
    assert decide([ask("0.10", c)], usage(c, "0.10", 1)).outcome == "allow"  # 0.20 <= 1, 2 <= 2
    assert decide([ask("0.10", c)], usage(c, "0.10", 2)).outcome == "deny"  # 3 > 2
    assert decide([ask("0.95", c)], usage(c, "0.10", 0)).outcome == "deny"  # 1.05 > 1


# downgrades ---------------------------------------------------------------------------------------------------------

def downgrade_budget(**spec: Any) -> Budget:
    return budget("premium", action="downgrade", downgrade_to="gpt-4o-mini", **spec)


def test_over_a_downgrade_budget_the_cheaper_model_goes_ahead() -> None:
    b = counter(downgrade_budget())
    # asked: 0.90 + 0.20 = 1.10 > 1.00; downgrade: 0.90 + 0.05 = 0.95 <= 1.00
    options = [ask("0.20", b), ask("0.05", b, model="gpt-4o-mini")]
    decision = decide(options, usage(b, "0.90", 9))
    assert decision.outcome == "downgrade"
    assert decision.model == "gpt-4o-mini"
    assert decision.hold == D("0.05")  # the downgrade's estimate, not the asked model's
    assert decision.counters == (b,)
    assert decision.reason == "budget 'premium': day cost would reach 1.1 USD of a 1 limit"
    assert decision.statuses[0].used == D("0.95")


def test_downgrade_that_does_not_fit_either_is_denied() -> None:
    b = counter(downgrade_budget())
    # downgrade: 0.90 + 0.15 = 1.05 > 1.00
    options = [ask("0.20", b), ask("0.15", b, model="gpt-4o-mini")]
    decision = decide(options, usage(b, "0.90", 9))
    assert decision.outcome == "deny"
    assert decision.model == "gpt-4o"
    assert decision.hold is None
    assert decision.reason == "budget 'premium': day cost would reach 1.1 USD of a 1 limit"


def test_downgrade_model_outside_the_budget_scope_goes_ahead_once_the_budget_is_spent() -> None:
    # the budget covers gpt-4o only; the downgrade model falls under a separate, roomy budget
    premium = counter(downgrade_budget(scope={"model": "gpt-4o"}))
    overall = counter(budget("overall", limit="10.00"))
    options = [ask("0.20", premium, overall), ask("0.05", overall, model="gpt-4o-mini")]
    found = {**usage(premium, "1.00", 10), **usage(overall, "3.00", 30)}
    decision = decide(options, found)
    assert decision.outcome == "downgrade"
    assert decision.counters == (overall,)  # the hold goes on the downgrade model's counters only
    assert decision.statuses[0].used == D("3.05")


def test_unknown_downgrade_estimate_fails_closed() -> None:
    b = counter(downgrade_budget())
    decision = decide([ask("0.20", b), ask(None, b, model="gpt-4o-mini")], usage(b, "0.90"))
    assert decision.outcome == "deny"


def test_block_and_downgrade_budgets_both_stopping_deny() -> None:
    hard = counter(budget("hard-cap"))
    premium = counter(downgrade_budget())
    found = {**usage(hard, "0.95"), **usage(premium, "0.95")}
    # the downgrade would fit both (0.95 + 0.01), but a block budget stops the asked call: no downgrade
    options = [ask("0.10", hard, premium), ask("0.01", hard, premium, model="gpt-4o-mini")]
    decision = decide(options, found)
    assert decision.outcome == "deny"
    assert decision.reason == "budget 'hard-cap': day cost would reach 1.05 USD of a 1 limit"
    assert [(s.used, s.over) for s in decision.statuses] == [(D("0.95"), True), (D("0.95"), True)]
    # the budgets in the other order: the reason names the first one that stops the call
    decision = decide([ask("0.10", premium, hard), ask("0.01", premium, hard, model="gpt-4o-mini")], found)
    assert decision.outcome == "deny"
    assert decision.reason is not None and decision.reason.startswith("budget 'premium': ")


def test_downgrade_budget_not_reached_allows_the_asked_model() -> None:
    b = counter(downgrade_budget())
    decision = decide([ask("0.20", b), ask("0.05", b, model="gpt-4o-mini")], usage(b, "0.10"))
    assert (decision.outcome, decision.model, decision.hold) == ("allow", "gpt-4o", D("0.20"))


def test_first_fitting_downgrade_option_wins() -> None:
    b = counter(downgrade_budget())
    options = [ask("0.20", b), ask("0.15", b, model="too-big"), ask("0.05", b, model="gpt-4o-mini"),
               ask("0.01", b, model="tiny")]
    decision = decide(options, usage(b, "0.90"))
    assert (decision.outcome, decision.model, decision.hold) == ("downgrade", "gpt-4o-mini", D("0.05"))


# statuses ------------------------------------------------------------------------------------------------------------

def status(b: Budget, used: str, requests: int = 0, *, over: bool = False, subject: str = "") -> Status:
    return Status(counter(b, subject), D(used), requests, over, "problem" if over else None)


def test_percent_and_remaining() -> None:
    assert status(budget(), "0.75").percent == D(75)
    assert status(budget(), "0.75").remaining == D("0.25")
    assert status(budget(limit="3"), "1").percent == D(100) / D(3)
    # the larger share of cost (50 %) and requests (3 of 4 = 75 %)
    both = budget(limit="2.00", max_requests=4)
    assert status(both, "1.00", 3).percent == D(75)
    assert status(both, "1.80", 3).percent == D(90)
    assert status(budget(limit=None, max_requests=8), "5", 2).percent == D(25)


def test_percent_of_zero_limits() -> None:
    assert status(budget(limit=0), "0").percent == D(0)
    assert status(budget(limit=0), "0.01").percent == D(100)
    assert status(budget(limit=None, max_requests=0), "0", 0).percent == D(0)
    assert status(budget(limit=None, max_requests=0), "0", 1).percent == D(100)


def test_status_to_json_writes_money_as_strings() -> None:
    b = budget("free daily", per="user", limit="0.50", max_requests=100)
    found = Status(counter(b, "u1"), D("0.375"), 12, False, None).to_json()
    assert found == {
        "budget_id": "free-daily", "budget": "free daily", "subject": "u1", "window": "day",
        "timezone": "UTC", "window_start": "2026-11-01T00:00:00+00:00",
        "resets_at": "2026-11-02T00:00:00+00:00", "limit": "0.5", "used": "0.375", "remaining": "0.125",
        "currency": "USD", "max_requests": 100, "requests_used": 12, "requests_remaining": 88,
        "percent": "75.00",  # 0.375 / 0.50 = 75 % (requests: 12 %)
        "action": "block", "over": False, "problem": None,
    }


def test_status_to_json_money_read_from_a_store_has_no_trailing_zeros() -> None:
    # stores return DECIMAL(38, 12): 0.95 comes back as 0.950000000000
    found = Status(counter(budget(limit="1.00")), D("0.950000000000"), 1, False, None).to_json()
    assert (found["limit"], found["used"], found["remaining"], found["percent"]) == ("1", "0.95", "0.05", "95.00")


def test_status_to_json_without_limit_subject_or_window() -> None:
    b = budget(limit=None, max_requests=3, window="lifetime")
    c = Counter(b, "", counter_key(b, ""), None, None)
    found = Status(c, D("7.5"), 4, True, "quota").to_json()
    assert found["subject"] is None
    assert (found["window_start"], found["resets_at"]) == (None, None)
    assert (found["limit"], found["remaining"], found["used"]) == (None, None, "7.5")
    assert found["requests_remaining"] == 0  # never negative
    assert found["percent"] == "133.33"  # 4 / 3
    assert (found["over"], found["problem"]) == (True, "quota")


# crossing thresholds --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("before", "after", "expected"), [
    (D(40), D(85), 80),  # 50 and 80 reached: the highest
    (D(10), D(150), 100),
    (None, D(50), 50),  # first sight of the counter
    (None, D(49), None),
    (D(50), D(60), None),  # 50 was already reached
    (D("79.99"), D(80), 80),  # reaching counts, not only passing
    (D(80), D(80), None),
    (D(90), D(70), None),  # going down crosses nothing
    (D(40), None, None),
])
def test_crossed(before: Decimal | None, after: Decimal | None, expected: int | None) -> None:
    assert crossed(before, after, (50, 80, 100)) == expected


def test_crossed_without_thresholds() -> None:
    assert crossed(D(0), D(500), ()) is None


def test_decide_reads_only_its_own_counters() -> None:
    mine = counter(budget(per="user"), "u1")
    other = counter(budget(per="user"), "u2")
    found: Mapping[str, CounterUsage] = usage(other, "5.00", 50)
    assert decide([ask("0.10", mine)], found).outcome == "allow"
