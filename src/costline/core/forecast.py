"""Month-end spend forecast: where a scope's spend will land by the end of the month, with a range.

Budgets and alerts need a number before the month is over ("at this pace the month ends at $412, between
$380 and $455"). The projection is a robust trend through the month's complete days (Theil–Sen: one
spike day barely moves it) plus what the trend predicts for the rest of today and every remaining day; the
range comes from the spread of the pairwise slopes and of the residuals. Everything is exact ``Decimal``
arithmetic on the daily costs the caller read from a store; the results are estimates quantized to six
decimal places. The rules and a worked example are in docs/forecast.md.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, Final

from costline.core.money import MONEY_CONTEXT, ZERO, decimal_str
from costline.errors import CostlineError

METHODS: Final = ("theil-sen", "mean", "complete")
#: fewer complete days than this and the forecast uses their mean instead of a trend
MIN_TREND_DAYS: Final = 3
#: percentiles of the pairwise slopes that bound the range
LOW_PERCENTILE: Final = Decimal("0.1")
HIGH_PERCENTILE: Final = Decimal("0.9")
#: estimates are quantized to this (half-even); they are estimates, not amounts to book
PLACES: Final = Decimal("0.000001")
_MICROSECOND: Final = timedelta(microseconds=1)


class ForecastError(CostlineError, ValueError):
    """Input the forecast cannot use; the message starts with the bad field (``now``, ``daily[<day>]``)."""


@dataclass(frozen=True, slots=True)
class Forecast:
    """The month-end projection of one scope's spend as of ``as_of`` (see docs/forecast.md)."""

    period_start: date
    period_end: date
    as_of: datetime
    spent: Decimal
    projected: Decimal
    low: Decimal
    high: Decimal
    method: str
    days_observed: int
    daily_trend: Decimal

    def to_json(self) -> dict[str, Any]:
        """Money as decimal strings (estimates with their six places), dates and the instant in ISO 8601."""
        return {
            "period_start": self.period_start.isoformat(), "period_end": self.period_end.isoformat(),
            "as_of": self.as_of.isoformat(), "spent": decimal_str(self.spent),
            "projected": format(self.projected, "f"), "low": format(self.low, "f"), "high": format(self.high, "f"),
            "method": self.method, "days_observed": self.days_observed,
            "daily_trend": format(self.daily_trend, "f"),
        }


@dataclass(frozen=True, slots=True)
class _Line:
    """A predicted daily cost ``intercept + slope * day + shift`` (day = day of the month), never below 0."""

    intercept: Decimal
    slope: Decimal = ZERO
    shift: Decimal = ZERO

    def at(self, day: int) -> Decimal:
        return max(ZERO, self.intercept + self.slope * day + self.shift)


def forecast_month(daily: Mapping[date, Decimal], now: datetime, tz: tzinfo) -> Forecast:
    """Project the spend of ``now``'s month in ``tz`` to the month's end.

    Args:
        daily: exact cost per local calendar day of that month (absent days cost 0); days after today count
            in ``spent`` but not in the fit.
        now: an aware instant; the month, today and the fraction of today left are taken in ``tz``.
        tz: the zone whose calendar days ``daily`` uses.

    Raises:
        ForecastError: a naive ``now``, or a day of ``daily`` outside the month, not a date, or whose cost is
            not a finite non-negative ``Decimal``; the message names it.
    """
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ForecastError("now: expected an aware datetime (with a time zone), got a naive one")
    today = now.astimezone(tz).date()
    first = today.replace(day=1)
    last = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    costs = _validated(daily.items(), first, last)
    with localcontext(MONEY_CONTEXT):
        spent = sum(costs.values(), ZERO)
        elapsed, left = _fractions_of_today(now, today, tz)
        complete = [(day, costs.get(first.replace(day=day), ZERO)) for day in range(1, today.day)]
        trend = ZERO
        if len(complete) >= MIN_TREND_DAYS:
            method = "theil-sen"
            point, low, high = _theil_sen(complete)
            trend = point.slope
        elif complete:
            method = "mean"
            ys = [y for _, y in complete]
            point, low, high = _Line(sum(ys, ZERO) / len(ys)), _Line(min(ys)), _Line(max(ys))
        else:
            method = "mean"
            today_cost = costs.get(today, ZERO)
            rate = today_cost / elapsed if elapsed > 0 else ZERO
            point, low, high = _Line(rate), _Line(ZERO), _Line(rate)
        if left == 0 and today == last:  # no time left: nothing to project (a `now` in its month always has some)
            method = "complete"

        def project(line: _Line) -> Decimal:
            rest = sum((line.at(day) for day in range(today.day + 1, last.day + 1)), ZERO)
            return spent + line.at(today.day) * left + rest

        projected = project(point)
        # already ordered: a projected day d lies after every fitted day, and a smaller slope s' raises the
        # re-fitted intercept by at most (s - s') * (last fitted day), so low(d) <= point(d) <= high(d);
        # min/max only guard the invariant
        low_total = min(project(low), projected)
        high_total = max(project(high), projected)

        def estimate(value: Decimal) -> Decimal:
            # rounding is monotone, so the order survives; never round an estimate below what is spent
            return max(value.quantize(PLACES, rounding=ROUND_HALF_EVEN), spent)

        return Forecast(
            period_start=first, period_end=last, as_of=now, spent=spent, projected=estimate(projected),
            low=estimate(low_total), high=estimate(high_total), method=method, days_observed=len(complete),
            daily_trend=trend.quantize(PLACES, rounding=ROUND_HALF_EVEN),
        )


def _validated(items: Iterable[tuple[object, object]], first: date, last: date) -> dict[date, Decimal]:
    costs: dict[date, Decimal] = {}
    for day, cost in items:
        label = day.isoformat() if isinstance(day, date) else repr(day)
        if isinstance(day, datetime) or not isinstance(day, date):
            raise ForecastError(f"daily[{label}]: expected a calendar date, got {type(day).__name__}")
        if not first <= day <= last:
            raise ForecastError(f"daily[{label}]: outside the month of now ({first:%Y-%m}, local)")
        if not isinstance(cost, Decimal):
            raise ForecastError(f"daily[{label}]: expected a Decimal cost, got {type(cost).__name__}")
        if not cost.is_finite():
            raise ForecastError(f"daily[{label}]: cost {cost} is not a finite number")
        if cost < 0:
            raise ForecastError(f"daily[{label}]: negative cost {cost}")
        costs[day] = cost
    return costs


def _fractions_of_today(now: datetime, today: date, tz: tzinfo) -> tuple[Decimal, Decimal]:
    """(elapsed, left) fractions of today's real length in ``tz`` (23 or 25 hours on DST change days)."""
    start = _local_midnight(today, tz)
    length = (_local_midnight(today + timedelta(days=1), tz) - start) // _MICROSECOND
    elapsed = min(max((now.astimezone(UTC) - start) // _MICROSECOND, 0), length)
    return Decimal(elapsed) / length, Decimal(length - elapsed) / length


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    """The first instant of ``day`` in ``tz``, in UTC (a skipped midnight lands on the end of the gap)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def _theil_sen(points: Sequence[tuple[int, Decimal]]) -> tuple[_Line, _Line, _Line]:
    """The point line (median pairwise slope) and the low/high lines (10th/90th percentile slopes, each
    re-fitted and moved down/up by the median absolute deviation of the point line's residuals)."""
    slopes = sorted((y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1:])
    point = _fit(points, _median(slopes))
    residuals = [y - (point.intercept + point.slope * x) for x, y in points]
    centre = _median(residuals)  # 0 by construction of the intercept
    mad = _median([abs(r - centre) for r in residuals])
    low = _fit(points, _percentile(slopes, LOW_PERCENTILE), -mad)
    high = _fit(points, _percentile(slopes, HIGH_PERCENTILE), mad)
    return point, low, high


def _fit(points: Sequence[tuple[int, Decimal]], slope: Decimal, shift: Decimal = ZERO) -> _Line:
    return _Line(_median([y - slope * x for x, y in points]), slope, shift)


def _median(values: Sequence[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _percentile(ordered: Sequence[Decimal], p: Decimal) -> Decimal:
    """Linear interpolation between order statistics at position ``p * (n - 1)`` (numpy's default)."""
    position = p * (len(ordered) - 1)
    k = int(position)
    fraction = position - k
    return ordered[k] if fraction == 0 else ordered[k] + (ordered[k + 1] - ordered[k]) * fraction
