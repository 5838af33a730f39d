"""Calendar periods for the dashboard's "today / this week / this month" cards: local midnights, half-open."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from costline.core.periods import days_back, period

BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")


def test_today_is_the_local_day_not_the_utc_day() -> None:
    now = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)  # 01:30 on the 11th in Kolkata (+05:30)
    day = period("day", now, KOLKATA)
    assert day.start == datetime(2026, 3, 10, 18, 30, tzinfo=UTC)
    assert day.end == datetime(2026, 3, 11, 18, 30, tzinfo=UTC)
    assert day.previous_start == datetime(2026, 3, 9, 18, 30, tzinfo=UTC) and day.previous_end == day.start


def test_week_is_iso_monday_to_monday() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)  # a Sunday
    week = period("week", now, UTC)
    assert week.start == datetime(2026, 11, 30, tzinfo=UTC) and week.end == datetime(2026, 12, 7, tzinfo=UTC)
    assert week.previous_start == datetime(2026, 11, 23, tzinfo=UTC)


def test_month_across_a_daylight_saving_change_and_a_year_end() -> None:
    march = period("month", datetime(2026, 3, 31, 23, 30, tzinfo=UTC), BERLIN)  # already April 1st in Berlin
    assert march.start == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # April 1st 00:00 CEST
    assert march.previous_start == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)  # March 1st 00:00 CET
    january = period("month", datetime(2027, 1, 15, tzinfo=UTC), UTC)
    assert january.previous_start == datetime(2026, 12, 1, tzinfo=UTC)
    assert period("month", datetime(2026, 12, 15, tzinfo=UTC), UTC).end == datetime(2027, 1, 1, tzinfo=UTC)


def test_days_back_includes_today() -> None:
    start, end = days_back(datetime(2026, 12, 6, 12, tzinfo=UTC), UTC, 30)
    assert start == datetime(2026, 11, 7, tzinfo=UTC) and end == datetime(2026, 12, 7, tzinfo=UTC)


def test_unknown_period_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown period 'year'"):
        period("year", datetime(2026, 1, 1, tzinfo=UTC), UTC)
