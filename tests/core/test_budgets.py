"""Budgets as data: parsing (every error names its field), window bounds worked out by hand (DST days, Monday
weeks, year ends, leap Februaries, rolling and lifetime windows), which counter a call falls in, and the spend
query each counter asks the store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from costline.core.budgets import (
    Attributes,
    Budget,
    BudgetError,
    Window,
    counter_key,
    parse_budget,
    parse_window,
    scope_filter,
    spend_query,
    subject_of,
)
from costline.core.query import Filter, Metric
from costline.errors import CostlineError

D = Decimal
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def raw(**changes: object) -> dict[str, Any]:
    """A valid budget mapping as YAML would load it (floats included), with ``changes`` applied; a change
    to ``...`` removes the field."""
    base: dict[str, Any] = {"name": "daily", "window": "day", "limit": 1.0}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def in_utc(bounds: tuple[datetime | None, datetime | None]) -> tuple[datetime | None, datetime | None]:
    return tuple(None if b is None else b.astimezone(UTC) for b in bounds)  # type: ignore[return-value]


# happy paths ---------------------------------------------------------------------------------------------------

def test_tier_budget_is_per_user_with_the_defaults() -> None:
    budget = parse_budget({"name": "free-daily", "tier": "free", "window": "day", "limit": 0.50})
    assert budget.id == "free-daily"  # the id defaults to the name
    assert budget.name == "free-daily"
    assert budget.tier == "free"
    assert budget.per == "user"
    assert budget.limit == D("0.5")
    assert str(budget.limit) == "0.5"  # the float's shortest repr, not 0.5000000000000000277...
    assert budget.window == Window("day", "UTC")
    assert budget.max_requests is None
    assert budget.currency == "USD"
    assert budget.thresholds == (50, 80, 100)
    assert budget.action == "alert"
    assert budget.downgrade_to is None
    assert budget.exempt_zero_cost is True
    assert budget.on_unknown_cost == "closed"
    assert budget.notify == ()
    assert budget.source == "api"
    assert dict(budget.scope) == {}


def test_float_limit_becomes_the_decimal_the_user_wrote() -> None:
    assert parse_budget(raw(limit=0.1)).limit == D("0.1")
    assert str(parse_budget(raw(limit=0.1)).limit) == "0.1"
    assert parse_budget(raw(limit=0.3)).limit == D("0.3")
    assert parse_budget(raw(limit="12.345678901234")).limit == D("12.345678901234")
    assert parse_budget(raw(limit=5)).limit == D(5)
    assert parse_budget(raw(limit=D("0.07"))).limit == D("0.07")
    assert parse_budget(raw(limit=0)).limit == D(0)  # a zero limit: only zero-cost calls go through


def test_request_quota_alone_or_beside_a_limit() -> None:
    quota = parse_budget(raw(limit=..., max_requests=100))
    assert quota.limit is None
    assert quota.max_requests == 100
    assert parse_budget(raw(limit=..., requests=5)).max_requests == 5  # the short spelling
    both = parse_budget(raw(max_requests=0))
    assert both.limit == D("1.0")
    assert both.max_requests == 0


def test_downgrade_with_its_model() -> None:
    budget = parse_budget(raw(action="downgrade", downgrade_to="gpt-4o-mini", scope={"model": "gpt-4o"}))
    assert budget.action == "downgrade"
    assert budget.downgrade_to == "gpt-4o-mini"
    assert budget.scope == {"model": "gpt-4o"}


def test_action_and_policy_are_case_insensitive_and_currency_upper_cased() -> None:
    budget = parse_budget(raw(action="BLOCK", on_unknown_cost="Open", currency="eur"))
    assert (budget.action, budget.on_unknown_cost, budget.currency) == ("block", "open", "EUR")


@pytest.mark.parametrize(("text", "hours", "label"), [
    ("24h", 24, "1d"), ("7d", 168, "7d"), ("36h", 36, "36h"), ("rolling 24h", 24, "1d"), ("rolling_7d", 168, "7d"),
    ("2 days", 48, "2d"), ("1 hour", 1, "1h"), ("12 HOURS", 12, "12h"),
])
def test_rolling_windows(text: str, hours: int, label: str) -> None:
    budget = parse_budget(raw(window=text))
    assert budget.window.kind == "rolling"
    assert budget.window.hours == hours
    assert budget.window.label == label


@pytest.mark.parametrize("text", ["day", "week", "month", "lifetime", " Day ", "MONTH"])
def test_calendar_and_lifetime_windows(text: str) -> None:
    window = parse_budget(raw(window=text)).window
    assert window.kind == text.strip().lower()
    assert window.label == text.strip().lower()
    assert window.hours is None


def test_timezone_is_kept() -> None:
    window = parse_budget(raw(timezone="Europe/Berlin")).window
    assert window.timezone == "Europe/Berlin"
    assert window.tz.utcoffset(datetime(2026, 1, 15)) == timedelta(hours=1)


def test_scope_keys_and_metadata() -> None:
    budget = parse_budget(raw(scope={"environment": "prod", "metadata.feature": "chat", "tag": "beta",
                                     "trace_name": "checkout", "release": 7}, per="metadata.customer"))
    assert dict(budget.scope) == {"environment": "prod", "metadata.feature": "chat", "tag": "beta",
                                  "trace_name": "checkout", "release": "7"}
    assert budget.per == "metadata.customer"
    assert isinstance(budget.scope, MappingProxyType)  # a frozen budget cannot be changed through its scope


def test_thresholds_are_sorted_and_deduplicated_notify_deduplicated() -> None:
    budget = parse_budget(raw(thresholds=[100, 50, 80, 50, 150], notify=["ops", "slack", "ops"]))
    assert budget.thresholds == (50, 80, 100, 150)
    assert budget.notify == ("ops", "slack")
    assert parse_budget(raw(notify="ops")).notify == ("ops",)
    assert parse_budget(raw(thresholds=[])).thresholds == ()


def test_explicit_id_path_and_to_json() -> None:
    budget = parse_budget(raw(id="team-a:daily@v2", name="Team A daily", limit="2.50", exempt_zero_cost=False,
                              source="file:budgets.yaml", timezone="Europe/Berlin", per="user"))
    assert budget.to_json() == {
        "id": "team-a:daily@v2", "name": "Team A daily", "scope": {}, "per": "user", "tier": None,
        "window": "day", "timezone": "Europe/Berlin", "limit": "2.50", "currency": "USD", "max_requests": None,
        "thresholds": [50, 80, 100], "action": "alert", "downgrade_to": None, "exempt_zero_cost": False,
        "on_unknown_cost": "closed", "notify": [], "source": "file:budgets.yaml",
    }
    # to_json is a valid input: it parses back to the same budget
    assert parse_budget(budget.to_json()) == budget


def test_default_id_is_used_when_no_id_is_given() -> None:
    assert parse_budget(raw(name="x"), default_id="from-url").id == "from-url"
    assert parse_budget(raw(name="x", id="given"), default_id="from-url").id == "given"


# errors name their field --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "path", "words"), [
    (raw(colour="red"), "budget.colour", "unknown field"),
    (raw(name=...), "budget.name", "needs a name"),
    (raw(name=""), "budget.name", "non-empty"),
    (raw(name="   "), "budget.name", "non-empty"),
    (raw(name=5), "budget.name", "non-empty string"),
    (raw(name="x" * 201), "budget.name", "200"),
    (raw(window=...), "budget.window", "expected day"),
    (raw(window="fortnight"), "budget.window", "unknown window"),
    (raw(window=7), "budget.window", "expected day"),
    (raw(window="0h"), "budget.window", "1 hour to 10 years"),
    (raw(window="99999d"), "budget.window", "1 hour to 10 years"),
    (raw(window="-5h"), "budget.window", "unknown window"),
    (raw(timezone="Mars/Olympus_Mons"), "budget.timezone", "Mars/Olympus_Mons"),
    (raw(timezone=1), "budget.timezone", "IANA"),
    (raw(timezone=""), "budget.timezone", ""),
    (raw(limit=-0.01), "budget.limit", "from 0"),
    (raw(limit="-1"), "budget.limit", "from 0"),
    (raw(limit=True), "budget.limit", "boolean"),
    (raw(limit=False), "budget.limit", "boolean"),
    (raw(limit="ten"), "budget.limit", "not a number"),
    (raw(limit="NaN"), "budget.limit", "finite"),
    (raw(limit=float("inf")), "budget.limit", "finite"),
    (raw(limit=[1]), "budget.limit", "expected a number"),
    (raw(limit=1e15), "budget.limit", "below 1e15"),
    (raw(limit="1" + "0" * 40), "budget.limit", "below 1e15"),
    (raw(limit=..., max_requests=...), "budget.limit", "cost limit (limit) or a request quota"),
    (raw(max_requests=-1), "budget.max_requests", "whole number"),
    (raw(max_requests=True), "budget.max_requests", "whole number"),
    (raw(max_requests=2.5), "budget.max_requests", "whole number"),
    (raw(max_requests="10"), "budget.max_requests", "whole number"),
    (raw(currency="dollars"), "budget.currency", "ISO 4217"),
    (raw(currency=5), "budget.currency", "non-empty string"),
    (raw(thresholds=[0]), "budget.thresholds[0]", "1 to 1000"),
    (raw(thresholds=[50, 1001]), "budget.thresholds[1]", "1 to 1000"),
    (raw(thresholds=[50, 80.5]), "budget.thresholds[1]", "whole percentage"),
    (raw(thresholds=[True]), "budget.thresholds[0]", "whole percentage"),
    (raw(thresholds=-5), "budget.thresholds", "list of percentages"),
    (raw(thresholds="50,80"), "budget.thresholds", "list of percentages"),
    (raw(action="throttle"), "budget.action", "unknown action"),
    (raw(action="downgrade"), "budget.downgrade_to", "needs the model"),
    (raw(action="block", downgrade_to="gpt-4o-mini"), "budget.downgrade_to", "only the downgrade action"),
    (raw(downgrade_to="gpt-4o-mini"), "budget.downgrade_to", "'alert'"),
    (raw(on_unknown_cost="maybe"), "budget.on_unknown_cost", "closed"),
    (raw(exempt_zero_cost="yes"), "budget.exempt_zero_cost", "true or false"),
    (raw(exempt_zero_cost=1), "budget.exempt_zero_cost", "true or false"),
    (raw(per="tag"), "budget.per", "several tags"),
    (raw(per="colour"), "budget.per", "unknown scope key"),
    (raw(per=5), "budget.per", "scope key"),
    (raw(per="metadata.bad key"), "budget.per", "unknown scope key"),
    (raw(tier="free", per="session"), "budget.per", "tier budget is per user"),
    (raw(tier=""), "budget.tier", "non-empty"),
    (raw(id="has space"), "budget.id", "letters, digits"),
    (raw(id="../etc/passwd"), "budget.id", "letters, digits"),
    (raw(id="-leading-dash"), "budget.id", "letters, digits"),
    (raw(id="x" * 129), "budget.id", "128"),
    (raw(id="é"), "budget.id", "letters, digits"),
    (raw(scope=["user", "u1"]), "budget.scope", "expected a mapping"),
    (raw(scope={"colour": "red"}), "budget.scope.colour", "unknown scope key"),
    (raw(scope={"metadata.": "x"}), "budget.scope.metadata.", "unknown scope key"),
    (raw(scope={"metadata.a b": "x"}), "budget.scope.metadata.a b", "unknown scope key"),
    (raw(scope={"user": True}), "budget.scope.user", "non-empty string"),
    (raw(scope={"user": ""}), "budget.scope.user", "non-empty string"),
    (raw(scope={"user": None}), "budget.scope.user", "non-empty string"),
    (raw(scope={"user": ["a"]}), "budget.scope.user", "non-empty string"),
    (raw(scope={"user": "u" * 1001}), "budget.scope.user", "1,000 characters"),
    (raw(notify=5), "budget.notify", "list of channel names"),
    (raw(notify=["ops", ""]), "budget.notify[1]", "channel name"),
    (raw(notify=["ops", 3]), "budget.notify[1]", "channel name"),
    (raw(source=""), "budget.source", "non-empty"),
])
def test_errors_start_with_the_field_path(given: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(BudgetError) as caught:
        parse_budget(given)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert words in message


@pytest.mark.parametrize("given", [None, [], ["name", "x"], "name: x", 5, b"{}"])
def test_non_mapping_input_is_refused(given: object) -> None:
    with pytest.raises(BudgetError, match=r"^budget: expected a mapping"):
        parse_budget(given)


def test_the_caller_chooses_the_path_prefix() -> None:
    with pytest.raises(BudgetError, match=r"^budgets\[3\]\.limit: "):
        parse_budget(raw(limit=-1), "budgets[3]")
    with pytest.raises(BudgetError, match=r"^budgets\[3\]\.scope\.colour: "):
        parse_budget(raw(scope={"colour": "x"}), "budgets[3]")


def test_budget_error_is_a_costline_error_and_a_value_error() -> None:
    with pytest.raises(CostlineError):
        parse_budget(raw(limit=-1))
    with pytest.raises(ValueError):  # noqa: PT011 (the root-class contract is the point)
        parse_budget(raw(limit=-1))


def test_requests_alias_error_names_the_field_the_user_wrote() -> None:
    """``requests`` is accepted as the short spelling of ``max_requests``; a bad value must be reported under
    the name the user wrote, or they look for a field that is not in their file."""
    with pytest.raises(BudgetError) as caught:
        parse_budget(raw(limit=..., requests=-1))
    assert str(caught.value).startswith("budget.requests: "), str(caught.value)


def test_largest_amount_below_the_cap_is_kept_exactly() -> None:
    assert parse_budget(raw(limit="999999999999999.999999999999")).limit == D("999999999999999.999999999999")
    assert parse_budget(raw(window="3660d")).window.hours == 3660 * 24  # ten years is the longest


# window bounds, worked out by hand ------------------------------------------------------------------------------

def window(kind: str, zone: str = "UTC") -> Window:
    return parse_window(kind, zone, "budget")


def test_berlin_day_on_the_spring_forward_sunday_is_23_hours() -> None:
    # 2026-03-29: Berlin moves from CET (+01:00) to CEST (+02:00) at 02:00 local. The day starts at local
    # midnight CET = 2026-03-28T23:00Z and ends at the next local midnight, CEST = 2026-03-29T22:00Z.
    day = window("day", "Europe/Berlin")
    start, reset = day.bounds(utc("2026-03-29T12:00"))
    assert start == utc("2026-03-28T23:00")
    assert reset == utc("2026-03-29T22:00")
    assert start is not None and reset is not None
    # measured between instants (both ends carry the Berlin zone: Python subtracts same-zone datetimes as wall
    # clocks and would say 24 hours)
    assert reset.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)
    # 23:30Z on the 28th is already 00:30 on the 29th in Berlin
    assert day.bounds(utc("2026-03-28T23:30")) == (start, reset)
    # 22:59Z on the 28th is still the 28th there (23:59 CET): that day runs 27T23:00Z to 28T23:00Z
    assert day.bounds(utc("2026-03-28T22:59")) == (utc("2026-03-27T23:00"), utc("2026-03-28T23:00"))
    # the reset instant itself belongs to the next day (00:00 CEST on the 30th, a 24-hour day)
    assert day.bounds(utc("2026-03-29T22:00")) == (utc("2026-03-29T22:00"), utc("2026-03-30T22:00"))


def test_berlin_day_on_the_fall_back_sunday_is_25_hours() -> None:
    # 2026-10-25: CEST (+02:00) → CET (+01:00) at 03:00 local. Midnight CEST = 24T22:00Z, next midnight CET =
    # 25T23:00Z.
    start, reset = window("day", "Europe/Berlin").bounds(utc("2026-10-25T10:00"))
    assert (start, reset) == (utc("2026-10-24T22:00"), utc("2026-10-25T23:00"))


def test_a_day_that_skips_midnight_starts_at_one_in_the_morning() -> None:
    # Chile springs forward at midnight: on 2026-09-06 local time goes 23:59:59 (-04:00) → 01:00 (-03:00).
    # That day starts at 01:00 -03:00 = 04:00Z and ends at midnight of the 7th, -03:00 = 03:00Z.
    day = window("day", "America/Santiago")
    assert day.bounds(utc("2026-09-06T12:00")) == (utc("2026-09-06T04:00"), utc("2026-09-07T03:00"))
    # the day before (-04:00 all day) starts at 04:00Z on the 5th and ends where the 6th begins
    assert day.bounds(utc("2026-09-05T12:00")) == (utc("2026-09-05T04:00"), utc("2026-09-06T04:00"))


def test_a_day_whose_midnight_repeats_starts_at_the_first_one() -> None:
    # Havana falls back at 01:00 CDT (-04:00) to 00:00 CST (-05:00) on 2026-11-01: local midnight happens at
    # 04:00Z and again at 05:00Z. The day starts at the first (04:00Z) and ends at midnight CST of the 2nd
    # (05:00Z): 25 hours. Both midnights belong to it.
    day = window("day", "America/Havana")
    expected = (utc("2026-11-01T04:00"), utc("2026-11-02T05:00"))
    assert in_utc(day.bounds(utc("2026-11-01T04:30"))) == expected
    assert in_utc(day.bounds(utc("2026-11-01T05:30"))) == expected
    assert in_utc(day.bounds(utc("2026-11-01T03:59"))) == (utc("2026-10-31T04:00"), utc("2026-11-01T04:00"))


def test_bounds_compare_and_subtract_as_the_instants_they_are() -> None:
    """Window bounds go into SQL, JSON, comparisons and arithmetic. Returned in the window's own zone, Python
    treats them as wall-clock times: two ends in the same zone subtract as wall clocks (Berlin's 23-hour day
    reads as 24 hours), and a time in a repeated hour is never equal to the same instant in another zone
    (PEP 495), so Havana's first midnight != 04:00Z. UTC bounds have neither trap."""
    start, reset = window("day", "Europe/Berlin").bounds(utc("2026-03-29T12:00"))
    assert start is not None and reset is not None
    assert reset - start == timedelta(hours=23)
    start, _ = window("day", "America/Havana").bounds(utc("2026-11-01T12:00"))
    assert start == utc("2026-11-01T04:00")
    assert {start: "counter"}.get(utc("2026-11-01T04:00")) == "counter"


def test_week_starts_on_monday() -> None:
    # 2026-03-29 is a Sunday. In UTC its week runs Monday 2026-03-23 to Monday 2026-03-30.
    week = window("week")
    assert week.bounds(utc("2026-03-29T23:59:59")) == (utc("2026-03-23T00:00"), utc("2026-03-30T00:00"))
    assert week.bounds(utc("2026-03-23T00:00")) == (utc("2026-03-23T00:00"), utc("2026-03-30T00:00"))
    assert week.bounds(utc("2026-03-30T00:00")) == (utc("2026-03-30T00:00"), utc("2026-04-06T00:00"))
    # in Berlin the same week starts at Monday 00:00 CET (22T23:00Z) and resets at Monday 00:00 CEST
    # (29T22:00Z): the DST change inside makes it 167 hours
    start, reset = window("week", "Europe/Berlin").bounds(utc("2026-03-25T12:00"))
    assert (start, reset) == (utc("2026-03-22T23:00"), utc("2026-03-29T22:00"))


def test_week_across_a_year_end() -> None:
    # 2027-01-01 is a Friday: its week started Monday 2026-12-28
    assert window("week").bounds(utc("2027-01-01T08:00")) == (utc("2026-12-28T00:00"), utc("2027-01-04T00:00"))


def test_month_of_december_resets_in_january_of_the_next_year() -> None:
    assert window("month").bounds(utc("2026-12-15T12:00")) == (utc("2026-12-01T00:00"), utc("2027-01-01T00:00"))
    assert window("month").bounds(utc("2026-12-31T23:59:59")) == (utc("2026-12-01T00:00"), utc("2027-01-01T00:00"))
    # Berlin is +01:00 in winter: local midnights are 23:00Z the evening before
    assert window("month", "Europe/Berlin").bounds(utc("2026-12-15T12:00")) == (
        utc("2026-11-30T23:00"), utc("2026-12-31T23:00"))
    # 23:30Z on Dec 31 is already January in Berlin
    assert window("month", "Europe/Berlin").bounds(utc("2026-12-31T23:30")) == (
        utc("2026-12-31T23:00"), utc("2027-01-31T23:00"))


def test_february_of_a_leap_year_has_29_days() -> None:
    start, reset = window("month").bounds(utc("2028-02-29T12:00"))
    assert (start, reset) == (utc("2028-02-01T00:00"), utc("2028-03-01T00:00"))
    assert start is not None and reset is not None
    assert reset - start == timedelta(days=29)
    start, reset = window("month").bounds(utc("2027-02-10T00:00"))
    assert start is not None and reset is not None
    assert reset - start == timedelta(days=28)


@pytest.mark.parametrize(("month", "days"), [(1, 31), (3, 31), (4, 30), (6, 30), (7, 31), (8, 31), (9, 30),
                                             (10, 31), (11, 30)])
def test_month_lengths(month: int, days: int) -> None:
    start, reset = window("month").bounds(datetime(2026, month, 1, tzinfo=UTC))
    assert start == datetime(2026, month, 1, tzinfo=UTC)
    assert reset == datetime(2026, month + 1, 1, tzinfo=UTC)
    assert reset - start == timedelta(days=days)


def test_rolling_window_starts_its_length_before_now_and_never_resets() -> None:
    assert window("24h").bounds(utc("2026-03-29T12:00")) == (utc("2026-03-28T12:00"), None)
    assert window("7d").bounds(utc("2026-03-29T12:00")) == (utc("2026-03-22T12:00"), None)
    # a zone does not change a rolling window: 24 hours are 24 hours across the DST change
    assert window("24h", "Europe/Berlin").bounds(utc("2026-03-29T12:00")) == (utc("2026-03-28T12:00"), None)


def test_rolling_window_counts_real_hours_when_now_carries_a_dst_zone() -> None:
    # now = 14:00 CEST on 2026-03-29 = 12:00Z. 24 hours earlier is 2026-03-28T12:00Z (13:00 CET). Subtracting
    # 24 hours from a datetime in its own zone moves the wall clock instead (to 14:00 CET = 13:00Z): 23 hours.
    now = datetime(2026, 3, 29, 14, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    start, _ = window("24h").bounds(now)
    assert start == utc("2026-03-28T12:00")


def test_lifetime_has_no_bounds() -> None:
    assert window("lifetime").bounds(NOW) == (None, None)


def test_bounds_of_a_non_utc_now_are_the_same_instants() -> None:
    # 2026-03-29T14:00+02:00 is 12:00Z
    now = datetime(2026, 3, 29, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert window("day", "Europe/Berlin").bounds(now) == (utc("2026-03-28T23:00"), utc("2026-03-29T22:00"))


# which counter a call falls in ----------------------------------------------------------------------------------

def budget(**changes: object) -> Budget:
    return parse_budget(raw(**changes))


def test_a_budget_not_split_has_one_counter() -> None:
    assert subject_of(budget(), Attributes()) == ""
    assert subject_of(budget(), Attributes(user="u1", model="gpt-4o")) == ""


def test_scope_mismatch_and_missing_attribute_do_not_apply() -> None:
    prod = budget(scope={"environment": "prod"})
    assert subject_of(prod, Attributes(environment="prod")) == ""
    assert subject_of(prod, Attributes(environment="staging")) is None
    assert subject_of(prod, Attributes()) is None
    both = budget(scope={"environment": "prod", "model": "gpt-4o"})
    assert subject_of(both, Attributes(environment="prod", model="gpt-4o")) == ""
    assert subject_of(both, Attributes(environment="prod", model="gpt-4o-mini")) is None


def test_tag_scope_is_membership() -> None:
    beta = budget(scope={"tag": "beta"})
    assert subject_of(beta, Attributes(tags=("prod", "beta"))) == ""
    assert subject_of(beta, Attributes(tags=("prod",))) is None
    assert subject_of(beta, Attributes()) is None
    assert subject_of(beta, Attributes(tags=("betamax",))) is None  # whole tags, not substrings


def test_metadata_scope_and_per_metadata_key() -> None:
    chat = budget(scope={"metadata.feature": "chat"}, per="metadata.customer")
    attrs = Attributes(metadata=MappingProxyType({"feature": "chat", "customer": "acme"}))
    assert subject_of(chat, attrs) == "acme"
    assert subject_of(chat, Attributes(metadata={"feature": "search", "customer": "acme"})) is None
    assert subject_of(chat, Attributes(metadata={"feature": "chat"})) is None  # no customer: no counter
    assert subject_of(chat, Attributes(metadata={"feature": "chat", "customer": ""})) is None


def test_per_attribute_is_the_subject_and_missing_means_no_counter() -> None:
    per_user = budget(per="user")
    assert subject_of(per_user, Attributes(user="u1")) == "u1"
    assert subject_of(per_user, Attributes(user="")) is None
    assert subject_of(per_user, Attributes(session="s1")) is None
    assert subject_of(budget(per="session"), Attributes(user="u1", session="s9")) == "s9"
    assert subject_of(budget(per="trace_name"), Attributes(trace_name="checkout")) == "checkout"


def test_tier_budget_applies_to_users_of_that_tier_only() -> None:
    free = budget(tier="free")
    assert subject_of(free, Attributes(user="u1", tier="free")) == "u1"
    assert subject_of(free, Attributes(user="u1", tier="pro")) is None
    assert subject_of(free, Attributes(user="u1")) is None
    assert subject_of(free, Attributes(tier="free")) is None  # a tier without a user has no counter


def test_counter_key_names_budget_and_subject() -> None:
    assert counter_key(budget(id="b1"), "u1") == "b1|u1"
    assert counter_key(budget(id="b1"), "") == "b1|"
    # a subject holding the separator cannot collide with another budget's key: ids never contain "|"
    assert counter_key(budget(id="b1"), "x|y") != counter_key(budget(id="b1x"), "y")


# spend queries ------------------------------------------------------------------------------------------------

def filters_of(query_filters: tuple[Filter, ...]) -> Mapping[str, Filter]:
    return {f.label: f for f in query_filters}


def test_spend_query_of_a_per_user_day_budget() -> None:
    b = budget(per="user", scope={"environment": "prod"})
    query = spend_query(b, "u1", "p1", NOW)
    assert query.view == "observations"
    assert query.project_id == "p1"
    assert query.start == utc("2026-11-01T00:00")
    assert query.end is None  # the window's spend so far, whatever the clock says
    # every cost in scope (service costs with no model too), and model calls counted as requests
    assert query.metrics == (Metric("cost", "sum"), Metric("calls", "count"))
    assert query.dimensions == ()
    assert query.granularity is None
    assert query.filters == (
        Filter("environment", "=", "prod"),
        Filter("user", "=", "u1"),
    )


def test_spend_query_filters_for_tags_metadata_and_extra() -> None:
    b = budget(scope={"tag": "beta", "metadata.feature": "chat"}, per="metadata.customer", window="lifetime")
    extra = Filter("provider", "=", "openai")
    query = spend_query(b, "acme", "p1", NOW, extra=(extra,))
    assert query.start is None  # lifetime: everything
    assert query.filters == (
        Filter("tag", "any of", ("beta",), kind="tags"),
        Filter("metadata", "=", "chat", "feature"),
        Filter("metadata", "=", "acme", "customer"),
        extra,
    )


def test_spend_query_of_a_rolling_window_starts_its_length_before_now() -> None:
    query = spend_query(budget(window="7d"), "", "p1", NOW)
    assert query.start == NOW - timedelta(days=7)
    assert query.filters == ()


def test_spend_query_in_a_zone_starts_at_local_midnight() -> None:
    query = spend_query(budget(timezone="Europe/Berlin"), "", "p1", utc("2026-03-29T12:00"))
    assert query.start == utc("2026-03-28T23:00")


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("user", "u1", Filter("user", "=", "u1")),
    ("session", "s1", Filter("session", "=", "s1")),
    ("model", "gpt-4o", Filter("model", "=", "gpt-4o")),
    ("provider", "openai", Filter("provider", "=", "openai")),
    ("environment", "prod", Filter("environment", "=", "prod")),
    ("trace_name", "checkout", Filter("trace_name", "=", "checkout")),
    ("name", "summarise", Filter("name", "=", "summarise")),
    ("release", "1.2", Filter("release", "=", "1.2")),
    ("tag", "beta", Filter("tag", "any of", ("beta",), kind="tags")),
    ("metadata.feature", "chat", Filter("metadata", "=", "chat", "feature")),
])
def test_scope_filter_for_every_key(key: str, value: str, expected: Filter) -> None:
    assert scope_filter(key, value) == expected
