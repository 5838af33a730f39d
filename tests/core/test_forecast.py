"""The month-end forecast: expected values worked out by hand in the comments, invariants by hypothesis."""

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costline.core.forecast import Forecast, ForecastError, forecast_month
from costline.errors import CostlineError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def nov(day: int) -> date:
    return date(2026, 11, day)


def flat(days: range, amount: str) -> dict[date, D]:
    return {nov(d): D(amount) for d in days}


def test_flat_two_dollars_a_day_projects_sixty_with_no_range() -> None:
    # November has 30 days; noon on the 11th: days 1..10 complete at $2, $1 spent today so far.
    # all pairwise slopes are 0, intercept = median(2) = 2, residuals 0 -> MAD 0; 12 of 24 hours left.
    # projected = 20 + 1 + 2 * 0.5 + 19 days * 2 = 60, and the percentile slopes are 0 too: low = high = 60.
    daily = flat(range(1, 11), "2") | {nov(11): D("1")}
    found = forecast_month(daily, datetime(2026, 11, 11, 12, tzinfo=UTC), UTC)
    assert found == Forecast(
        period_start=nov(1), period_end=nov(30), as_of=datetime(2026, 11, 11, 12, tzinfo=UTC), spent=D("21"),
        projected=D("60"), low=D("60"), high=D("60"), method="theil-sen", days_observed=10, daily_trend=D("0"),
    )
    assert found.to_json() == {
        "period_start": "2026-11-01", "period_end": "2026-11-30", "as_of": "2026-11-11T12:00:00+00:00",
        "spent": "21", "projected": "60.000000", "low": "60.000000", "high": "60.000000", "method": "theil-sen",
        "days_observed": 10, "daily_trend": "0.000000",
    }


def test_linear_ramp_is_recovered_exactly() -> None:
    # y = day for days 1..10 (55 in all), today (day 11) $5.50 so far, noon.
    # every pairwise slope is 1, intercept = median(y - x) = 0, residuals 0, percentiles 1 -> no range.
    # today: 11 * 0.5 = 5.5; days 12..30: 12 + ... + 30 = (12 + 30) * 19 / 2 = 399.
    # projected = 55 + 5.5 + 5.5 + 399 = 465.
    daily = {nov(d): D(d) for d in range(1, 11)} | {nov(11): D("5.5")}
    found = forecast_month(daily, datetime(2026, 11, 11, 12, tzinfo=UTC), UTC)
    assert (found.spent, found.projected, found.low, found.high) == (D("60.5"), D("465"), D("465"), D("465"))
    assert found.daily_trend == D("1")
    assert found.method == "theil-sen"


def test_a_spike_day_barely_moves_the_estimate_unlike_least_squares() -> None:
    # $2 a day on days 1..9, $50 on day 10 (the last complete day); noon on the 11th with $1 spent today.
    # spent = 18 + 50 + 1 = 69.
    # Theil-Sen: 45 pairwise slopes, 36 are 0 and 9 involve day 10: 48/(10-i) for i = 1..9, all positive;
    # the median (23rd) is 0, intercept = median(y) = 2, residuals 0 x9 and 48 -> MAD = 0.
    # point: 69 + 2 * 0.5 + 19 * 2 = 108 (the spike is spent, the trend is not bent by it).
    # Least squares would give: mean x = 5.5, mean y = 6.8, Sxx = 82.5, Sxy = 48 * (10 - 5.5) = 216,
    # slope = 216 / 82.5 = 2.618181..., intercept = 6.8 - 2.618181... * 5.5 = -7.6, so
    # today 11: 21.2 * 0.5 = 10.6; days 12..30: 19 * -7.6 + 2.618181... * 399 = 900.254545...
    # least squares total = 69 + 10.6 + 900.254545... = 979.854545...
    daily = flat(range(1, 10), "2") | {nov(10): D("50"), nov(11): D("1")}
    found = forecast_month(daily, datetime(2026, 11, 11, 12, tzinfo=UTC), UTC)
    least_squares = D(69) + D("10.6") + 19 * D("-7.6") + D(216) / D("82.5") * 399
    assert found.projected == D("108")
    # what is still to come is exactly what a spike-free $2/day month adds (1 + 38 = 39); least squares adds 910.85
    assert found.projected - found.spent == D(39)
    assert least_squares - found.spent > 20 * (found.projected - found.spent)
    # range: P10 of the sorted slopes sits at position 4.4 -> 0, so low = 108.
    # P90 at position 39.6: sorted positives 48/9, 6, 48/7, 8, 9.6, ... are positions 36..44 -> 8 + 0.6 * 1.6 = 8.96.
    # intercept = median(y - 8.96x): the 5th and 6th smallest are 2 - 8.96*5 = -42.8 and 50 - 89.6 = -39.6 -> -41.2.
    # today: (-41.2 + 8.96 * 11) * 0.5 = 57.36 * 0.5 = 28.68; days 12..30: 19 * -41.2 + 8.96 * 399 = 2792.24.
    # high = 69 + 28.68 + 2792.24 = 2889.92.
    assert found.low == D("108")
    assert found.high == D("2889.92")


def test_noisy_days_use_percentile_slopes_and_the_mad() -> None:
    # February 2026 (28 days), UTC; midnight starting the 5th, nothing spent today: all of today is left.
    # y = 1, 3, 2, 4 on days 1..4 (spent 10).
    # slopes: (1,2) 2, (1,3) 0.5, (1,4) 1, (2,3) -1, (2,4) 0.5, (3,4) 2 -> sorted -1, .5, .5, 1, 2, 2
    # median slope = (0.5 + 1) / 2 = 0.75; y - 0.75x = .25, 1.5, -.25, 1 -> intercept (0.25 + 1) / 2 = 0.625
    # residuals -.375, .875, -.875, .375 -> median 0, MAD = (0.375 + 0.875) / 2 = 0.625
    # point: day 5 = 0.625 + 3.75 = 4.375; days 6..28 (23 days, sum of days 391): 23 * .625 + .75 * 391 = 307.625
    #   projected = 10 + 4.375 + 307.625 = 322
    # low: P10 at position 0.5 -> -1 + 0.5 * 1.5 = -0.25; y + 0.25x = 1.25, 3.5, 2.75, 5 -> intercept 3.125;
    #   daily = 3.125 - 0.25x - 0.625 = 2.5 - 0.25x, at >= 0: day 5 1.25; days 6..10: 1 + .75 + .5 + .25 + 0 = 2.5
    #   low = 10 + 1.25 + 2.5 = 13.75
    # high: P90 at position 4.5 -> 2; y - 2x = -1, -1, -4, -4 -> intercept -2.5; daily = 2x - 2.5 + 0.625
    #   day 5: 8.125; days 6..28: 2 * 391 - 23 * 1.875 = 738.875; high = 10 + 8.125 + 738.875 = 757
    daily = {date(2026, 2, 1): D(1), date(2026, 2, 2): D(3), date(2026, 2, 3): D(2), date(2026, 2, 4): D(4)}
    found = forecast_month(daily, datetime(2026, 2, 5, tzinfo=UTC), UTC)
    assert (found.period_start, found.period_end) == (date(2026, 2, 1), date(2026, 2, 28))
    assert (found.spent, found.low, found.projected, found.high) == (D(10), D("13.75"), D(322), D(757))
    assert found.daily_trend == D("0.75")
    assert found.days_observed == 4


def test_fewer_than_three_complete_days_use_their_mean_min_and_max() -> None:
    # 06:00 on the 3rd: days 1, 2 complete ($3, $5), $1 today, 18 of 24 hours left, 27 full days left (4..30).
    # mean 4: 9 + 4 * 0.75 + 27 * 4 = 120; min 3: 9 + 2.25 + 81 = 92.25; max 5: 9 + 3.75 + 135 = 147.75
    daily = {nov(1): D(3), nov(2): D(5), nov(3): D(1)}
    found = forecast_month(daily, datetime(2026, 11, 3, 6, tzinfo=UTC), UTC)
    assert (found.spent, found.low, found.projected, found.high) == (D(9), D("92.25"), D(120), D("147.75"))
    assert (found.method, found.days_observed, found.daily_trend) == ("mean", 2, D(0))


def test_first_hour_of_the_month_extrapolates_today_over_its_real_length() -> None:
    # New York leaves daylight time on 2026-11-01: that day is 25 hours long.
    # 00:30 local (EDT): half an hour gone = 1/50 of the day; $0.10 spent -> $5 a day.
    # projected = 0.10 + 5 * 49/50 + 29 * 5 = 0.10 + 4.90 + 145 = 150; low = spent (nothing else is known),
    # high = the extrapolation.
    now = datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK)
    found = forecast_month({nov(1): D("0.10")}, now, NEW_YORK)
    assert (found.spent, found.low, found.projected, found.high) == (D("0.10"), D("0.10"), D(150), D(150))
    assert (found.method, found.days_observed) == ("mean", 0)


def test_first_instant_with_nothing_spent_projects_nothing() -> None:
    found = forecast_month({}, datetime(2026, 11, 1, tzinfo=UTC), UTC)
    assert (found.spent, found.low, found.projected, found.high) == (D(0), D(0), D(0), D(0))
    # spend at the very first instant: no time has elapsed to extrapolate from, so nothing is added
    found = forecast_month({nov(1): D("0.5")}, datetime(2026, 11, 1, tzinfo=UTC), UTC)
    assert (found.low, found.projected, found.high) == (D("0.5"), D("0.5"), D("0.5"))


def test_last_minute_of_the_month_adds_a_tiny_remainder() -> None:
    # $2 a day on days 1..29 and $2 today; 23:59 on the 30th: 1/1440 of the day left.
    # projected = 60 + 2/1440 = 60.0013888... -> 60.001389 at six places.
    daily = flat(range(1, 31), "2")
    found = forecast_month(daily, datetime(2026, 11, 30, 23, 59, tzinfo=UTC), UTC)
    assert found.spent == D(60)
    assert (found.low, found.projected, found.high) == (D("60.001389"),) * 3
    assert found.method == "theil-sen"


def test_todays_spend_above_its_prediction_is_not_subtracted() -> None:
    # flat $2 history, $30 already today at noon: the rest of today still adds 2 * 0.5 = 1 (never negative),
    # projected = 20 + 30 + 1 + 19 * 2 = 89.
    daily = flat(range(1, 11), "2") | {nov(11): D(30)}
    found = forecast_month(daily, datetime(2026, 11, 11, 12, tzinfo=UTC), UTC)
    assert found.projected == D(89)


def test_a_falling_trend_is_clamped_at_zero_per_day() -> None:
    # y = 10 - day on days 1..5 (9 + 8 + 7 + 6 + 5 = 35), start of day 6: slope -1, intercept 10,
    # predictions 4, 3, 2, 1, 0 on days 6..10, then 0 (clamped, not negative): 35 + 10 = 45.
    daily = {nov(d): D(10 - d) for d in range(1, 6)}
    found = forecast_month(daily, datetime(2026, 11, 6, tzinfo=UTC), UTC)
    assert (found.low, found.projected, found.high) == (D(45), D(45), D(45))
    assert found.daily_trend == D(-1)


def test_dst_autumn_day_in_berlin_uses_25_hours() -> None:
    # 2026-10-25: Berlin goes from CEST to CET, the day lasts 25 h (22:00 UTC on the 24th to 23:00 UTC on the 25th).
    # noon CET = 11:00 UTC: 13 h gone, 12 of 25 h left -> 0.48. October has 31 days.
    # flat $2 on days 1..24 (48), $1 today: 48 + 1 + 2 * 0.48 + 6 * 2 = 61.96
    daily = {date(2026, 10, d): D(2) for d in range(1, 25)} | {date(2026, 10, 25): D(1)}
    found = forecast_month(daily, datetime(2026, 10, 25, 11, tzinfo=UTC), BERLIN)
    assert found.projected == D("61.96")


def test_dst_spring_day_in_berlin_uses_23_hours() -> None:
    # 2026-03-29 lasts 23 h (23:00 UTC on the 28th to 22:00 UTC on the 29th); noon CEST = 10:00 UTC:
    # 11 h gone, 12 of 23 h left. flat $2 on days 1..28 (56), nothing today, 2 days left (30, 31):
    # 56 + 2 * 12/23 + 4 = 60 + 1.0434782608... -> 61.043478
    daily = {date(2026, 3, d): D(2) for d in range(1, 29)}
    found = forecast_month(daily, datetime(2026, 3, 29, 12, tzinfo=BERLIN), BERLIN)
    assert found.projected == D("61.043478")


def test_month_and_days_are_local_to_the_zone() -> None:
    # 23:30 UTC on 31 October is already 1 November 00:30 in Berlin (CET, +1): the month is November.
    found = forecast_month({nov(1): D(1)}, datetime(2026, 10, 31, 23, 30, tzinfo=UTC), BERLIN)
    assert (found.period_start, found.period_end, found.spent) == (nov(1), nov(30), D(1))
    # and a `now` in another fixed offset is converted, not read as wall-clock time
    found = forecast_month({}, datetime(2026, 11, 11, 12, tzinfo=timezone(timedelta(hours=14))), UTC)
    assert found.period_start == nov(1)
    assert found.days_observed == 9  # it is 22:00 on the 10th in UTC


def test_days_after_today_count_as_spent_but_not_in_the_trend() -> None:
    # flat $2 for days 1..10, noon on the 11th, nothing today, and $5 dated the 20th (a clock ahead):
    # spent 25, trend still 2/day: 25 + 1 + 19 * 2 = 64
    daily = flat(range(1, 11), "2") | {nov(20): D(5)}
    found = forecast_month(daily, datetime(2026, 11, 11, 12, tzinfo=UTC), UTC)
    assert (found.spent, found.projected) == (D(25), D(64))


def test_spent_stays_exact_and_estimates_never_round_below_it() -> None:
    # spent 0.0000004 (12 places from the store); at the first instant nothing is added, and rounding
    # 0.0000004 to six places (0.000000) would fall below it, so the estimates are the exact spend.
    found = forecast_month({nov(1): D("0.000000400000")}, datetime(2026, 11, 1, tzinfo=UTC), UTC)
    assert found.spent == D("0.0000004")
    assert found.low == found.projected == found.high == D("0.0000004")
    assert found.to_json()["spent"] == "0.0000004"


class _NoOffset(tzinfo):
    """A tzinfo that knows no offset: a datetime carrying it is still naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@pytest.mark.parametrize("now", [datetime(2026, 11, 11, 12), datetime(2026, 11, 11, 12, tzinfo=_NoOffset())])
def test_a_naive_now_is_refused(now: datetime) -> None:
    with pytest.raises(CostlineError, match=r"^now: expected an aware datetime"):
        forecast_month({}, now, UTC)


@pytest.mark.parametrize(("daily", "message"), [
    ({nov(3): D("-0.01")}, r"^daily\[2026-11-03\]: negative cost -0.01"),
    ({date(2026, 10, 31): D(1)}, r"^daily\[2026-10-31\]: outside the month of now \(2026-11, local\)"),
    ({date(2026, 12, 1): D(1)}, r"^daily\[2026-12-01\]: outside the month"),
    ({date(2025, 11, 3): D(1)}, r"^daily\[2025-11-03\]: outside the month"),
    ({nov(3): 1.5}, r"^daily\[2026-11-03\]: expected a Decimal cost, got float"),
    ({nov(3): "1"}, r"^daily\[2026-11-03\]: expected a Decimal cost, got str"),
    ({nov(3): None}, r"^daily\[2026-11-03\]: expected a Decimal cost, got NoneType"),
    ({nov(3): D("NaN")}, r"^daily\[2026-11-03\]: cost NaN is not a finite number"),
    ({nov(3): D("-Infinity")}, r"^daily\[2026-11-03\]: cost -Infinity is not a finite number"),
    ({datetime(2026, 11, 3, tzinfo=UTC): D(1)}, r"^daily\[2026-11-03T00:00:00\+00:00\]: expected a calendar date"),
    ({"2026-11-03": D(1)}, r"^daily\['2026-11-03'\]: expected a calendar date, got str"),
])
def test_bad_daily_costs_are_refused_by_day(daily: dict[object, object], message: str) -> None:
    with pytest.raises(ForecastError, match=message):
        forecast_month(daily, datetime(2026, 11, 11, 12, tzinfo=UTC), UTC)  # type: ignore[arg-type]


def test_forecast_error_is_a_costline_value_error() -> None:
    assert issubclass(ForecastError, CostlineError)
    assert issubclass(ForecastError, ValueError)


ZONES: list[tzinfo] = [UTC, BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Pacific/Chatham")]
costs = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False, allow_infinity=False)


@st.composite
def months(draw: st.DrawFn) -> tuple[dict[date, D], datetime, tzinfo]:
    tz = draw(st.sampled_from(ZONES))
    now = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31),
                            timezones=st.just(UTC)))
    today = now.astimezone(tz).date()
    shape = draw(st.sampled_from(["random", "sparse", "spiky"]))
    daily: dict[date, D] = {}
    for day in range(1, today.day + 1):
        if shape == "sparse" and draw(st.booleans()):
            continue
        cost = draw(costs)
        if shape == "spiky" and draw(st.integers(0, 9)) == 0:
            cost *= 1000
        daily[today.replace(day=day)] = cost
    return daily, now, tz


@settings(max_examples=300, deadline=None)
@given(months())
def test_the_range_always_holds_the_projection_above_the_spend(case: tuple[dict[date, D], datetime, tzinfo]) -> None:
    daily, now, tz = case
    found = forecast_month(daily, now, tz)
    assert found.spent == sum(daily.values(), D(0))
    assert D(0) <= found.spent <= found.low <= found.projected <= found.high
    assert found.method in ("theil-sen", "mean")
    assert found.days_observed == now.astimezone(tz).day - 1
    for estimate in (found.projected, found.low, found.high):
        exponent = estimate.as_tuple().exponent
        assert estimate == found.spent or (isinstance(exponent, int) and exponent >= -6)
