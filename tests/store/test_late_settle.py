"""A budget hold that expires before its settle: the settle still records the call, its cost counts against the
budget, and the answer says the hold had expired. In-process over both stores, with a clock the test moves.

Figures: 50 calls are held at $0.01 each; settled late with actual costs $0.01, $0.02, $0.03, $0.04, $0.05 in
turn, ten times over: 10 × (0.01 + 0.02 + 0.03 + 0.04 + 0.05) = 10 × 0.15 = $1.50 on a $1.00 daily limit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from costline.control.alerts import AlertEngine
from costline.control.budgets import BudgetNotFoundError, BudgetService, budget_object
from costline.control.check import parse_check
from costline.core.budgets import parse_budget
from costline.core.resolve import PriceBook
from costline.ingest.pipeline import Pipeline
from costline.store.base import ApiKey, Project, Store

START = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_late_settles_are_recorded_and_count(store: Store, bundled_book: PriceBook) -> None:
    store.create_project(Project("p", "p", START), ApiKey("p", "pk", "hash", START))
    clock = Clock()
    service = BudgetService(store, Pipeline(store, bundled_book, clock), clock, ttl=timedelta(seconds=60))
    budget = parse_budget({"id": "day", "name": "day", "window": "day", "per": "user", "limit": "1.00",
                           "action": "block"})
    store.put_control(budget_object("p", budget, "api", START))

    def check(cost: str) -> dict[str, object]:
        return service.check("p", parse_check({"model": "gpt-4o", "user": "alice", "estimated_cost": cost})).to_json()

    held = [check("0.01") for _ in range(50)]
    assert all(h["decision"] == "allow" for h in held)
    assert service.standing("p", budget, "alice").used == D("0.50")

    clock.now = START + timedelta(seconds=61)  # every hold has expired
    assert service.standing("p", budget, "alice").used == D("0")
    # with the holds gone, a big call is allowed in their place: this is what lets a late settle overshoot
    big = check("0.80")
    assert big["decision"] == "allow"

    costs = [D("0.01") * (i % 5 + 1) for i in range(50)]
    for h, cost in zip(held, costs, strict=True):
        settled = service.settle("p", str(h["reservation_id"]), cost=cost)
        assert settled.hold_expired and settled.expires_at == START + timedelta(seconds=60)
        assert settled.result.observations[0].total_cost == cost
    assert store.count_observations("p") == 50
    # recorded $1.50, plus the live $0.80 hold
    assert service.standing("p", budget, "alice").used == D("1.50") + D("0.80")
    assert check("0.01")["decision"] == "deny"  # over the limit: the next checks are denied
    assert service.cancel("p", str(big["reservation_id"]))
    status = service.standing("p", budget, "alice")
    assert status.used == D("1.50") and status.requests_used == 50 and status.over

    with pytest.raises(BudgetNotFoundError, match="already settled"):  # a second settle of the same hold
        service.settle("p", str(held[0]["reservation_id"]), cost=D("0.01"))
    assert store.count_observations("p") == 50


def test_expired_holds_are_kept_for_late_settles_then_purged(store: Store, bundled_book: PriceBook) -> None:
    store.create_project(Project("p", "p", START), ApiKey("p", "pk", "hash", START))
    clock = Clock()
    service = BudgetService(store, Pipeline(store, bundled_book, clock), clock, ttl=timedelta(seconds=60))
    store.put_control(budget_object("p", parse_budget({"id": "d", "name": "d", "window": "lifetime", "limit": "5"}),
                                    "api", START))
    engine = AlertEngine(store, service, clock, reservation_keep=timedelta(days=1))
    try:
        kept, purged = (service.check("p", parse_check({"model": "gpt-4o", "estimated_cost": "0.02"})).reservation
                        for _ in range(2))
        assert kept is not None and purged is not None
        clock.now = START + timedelta(hours=23)
        assert engine.tick()  # purges holds expired more than a day ago: none yet
        assert service.settle("p", kept.id, cost=D("0.03")).hold_expired
        clock.now = START + timedelta(days=1, minutes=2)
        assert engine.tick()
        with pytest.raises(BudgetNotFoundError, match="COSTLINE_RESERVATION_KEEP"):
            service.settle("p", purged.id, cost=D("0.03"))
    finally:
        engine.stop()
