"""``usage_summary``: what a product shows its users per window is the budget that binds first."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from costline.control.budgets import usage_summary
from costline.core.budgets import counter_key, parse_budget
from costline.core.enforce import Counter, Status

NOW = datetime(2026, 11, 23, 15, tzinfo=UTC)


def status(spec: dict[str, object], used: str, requests: int = 0) -> Status:
    budget = parse_budget(spec)
    start, resets = budget.window.bounds(NOW)
    return Status(Counter(budget, "alice", counter_key(budget, "alice"), start, resets), Decimal(used), requests,
                  False, None)


def test_the_budget_with_least_left_binds_with_its_own_reset_time() -> None:
    team = status({"name": "team", "window": "day", "timezone": "Europe/Berlin", "limit": "50"}, "10")
    free = status({"name": "free", "window": "day", "limit": "0.5", "per": "user"}, "0.45")
    day = usage_summary([team, free])["day"]
    # left: team 50 - 10 = 40, free 0.5 - 0.45 = 0.05: free binds, and it resets at UTC midnight
    assert (day["used"], day["limit"], day["resets_at"]) == ("0.45", "0.5", "2026-11-24T00:00:00+00:00")


def test_a_bigger_limit_nearly_spent_binds_before_a_smaller_one() -> None:
    big = status({"name": "big", "window": "day", "limit": "1"}, "0.99")      # 0.01 left
    small = status({"name": "small", "window": "day", "limit": "0.5"}, "0.1")  # 0.4 left
    assert usage_summary([small, big])["day"]["limit"] == "1"


def test_quotas_and_windows_apart() -> None:
    quota = status({"name": "q", "window": "day", "max_requests": 200}, "0", requests=150)
    tight = status({"name": "t", "window": "day", "max_requests": 1000}, "0", requests=990)
    month = status({"name": "m", "window": "month", "timezone": "Europe/Berlin", "limit": "5"}, "1.25")
    found = usage_summary([quota, tight, month])
    # 200 - 150 = 50 left against 1000 - 990 = 10: the bigger quota binds; no cost limit on the day
    assert found["day"] == {"used": None, "limit": None, "requests_used": 990, "max_requests": 1000,
                            "resets_at": "2026-11-24T00:00:00+00:00", "currency": "USD"}
    assert found["month"]["resets_at"] == "2026-12-01T00:00:00+01:00" and found["month"]["used"] == "1.25"
