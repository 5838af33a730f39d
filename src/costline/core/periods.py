"""Calendar periods in a time zone (today, this ISO week, this month) and the one before each, half-open.

The dashboard compares spend "today / this week / this month" with the period before. Peers get this wrong in
the same few ways (days keyed in UTC for a user elsewhere, an inclusive end that drops or doubles a day, "last
7 days" meaning a calendar week), so the arithmetic lives here once: every period is ``[start, end)`` in UTC,
its bounds are local midnights of ``tz``, and the previous period ends exactly where the current one starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final

PERIODS: Final = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class Period:
    kind: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    previous_start: datetime  # UTC; the previous period is [previous_start, start)

    @property
    def previous_end(self) -> datetime:
        return self.start


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def _month_start(day: date, months_ahead: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + months_ahead
    return date(index // 12, index % 12 + 1, 1)


def period(kind: str, now: datetime, tz: tzinfo) -> Period:
    """The ``kind`` (day, week, month) period containing ``now`` in ``tz``, and where the previous one starts."""
    today = now.astimezone(tz).date()
    if kind == "day":
        first, following, before = today, today + timedelta(days=1), today - timedelta(days=1)
    elif kind == "week":  # ISO week: Monday to Monday
        first = today - timedelta(days=today.weekday())
        following, before = first + timedelta(days=7), first - timedelta(days=7)
    elif kind == "month":
        first, following, before = _month_start(today), _month_start(today, 1), _month_start(today, -1)
    else:
        raise ValueError(f"unknown period {kind!r}; use one of {', '.join(PERIODS)}")
    return Period(kind, _midnight(first, tz), _midnight(following, tz), _midnight(before, tz))


def days_back(now: datetime, tz: tzinfo, days: int) -> tuple[datetime, datetime]:
    """The ``days`` whole local days up to and including today, as ``[start, end)`` in UTC."""
    today = now.astimezone(tz).date()
    return _midnight(today - timedelta(days=days - 1), tz), _midnight(today + timedelta(days=1), tz)
