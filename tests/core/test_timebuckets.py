"""Zone offset tables and local buckets, checked against ``zoneinfo`` conversions done independently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from costline.core.timebuckets import (
    Offset,
    auto_granularity,
    bucket_count,
    bucket_label,
    epoch_us,
    local_bucket_us,
    offsets,
    zone,
)
from costline.errors import CostlineError

HOUR_US = 3_600_000_000


def _us(text: str) -> int:
    delta = datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(microseconds=1)


def _transitions(tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, timedelta]]:
    """Every instant in [start, end) whose offset differs from the second before, by a minute-by-minute walk
    refined to the second (zone changes happen on whole seconds)."""
    found = []
    moment = start
    previous = start.astimezone(tz).utcoffset()
    while moment < end:
        following = moment + timedelta(minutes=1)
        if following.astimezone(tz).utcoffset() != previous:
            second = moment
            while second.astimezone(tz).utcoffset() == previous:
                second += timedelta(seconds=1)
            offset = second.astimezone(tz).utcoffset()
            assert offset is not None
            found.append((second, offset))
            previous = offset
        moment = following
    return found


@pytest.mark.parametrize(("name", "year"), [
    ("Europe/Berlin", 2026), ("America/New_York", 2026), ("Australia/Sydney", 2026), ("Australia/Lord_Howe", 2026),
    ("America/Santiago", 2026), ("Europe/Dublin", 2026), ("Asia/Kolkata", 2026), ("Asia/Kathmandu", 2026),
])
def test_offsets_find_every_change_to_the_second(name: str, year: int) -> None:
    tz = ZoneInfo(name)
    start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    table = offsets(tz, start, end)
    first = start.astimezone(tz).utcoffset()
    assert first is not None
    assert table[0] == Offset(None, first // timedelta(microseconds=1))
    expected = [Offset(epoch_us(at), offset // timedelta(microseconds=1))
                for at, offset in _transitions(tz, start, end)]
    assert table[1:] == expected


def test_offsets_of_the_2026_dst_ends() -> None:
    berlin = offsets(ZoneInfo("Europe/Berlin"), datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC))
    assert berlin == [Offset(None, 2 * HOUR_US), Offset(_us("2026-10-25T01:00:00+00:00"), HOUR_US)]
    new_york = offsets(ZoneInfo("America/New_York"), datetime(2026, 10, 20, tzinfo=UTC),
                       datetime(2026, 11, 5, tzinfo=UTC))
    assert new_york == [Offset(None, -4 * HOUR_US), Offset(_us("2026-11-01T06:00:00+00:00"), -5 * HOUR_US)]
    spring = offsets(ZoneInfo("Europe/Berlin"), datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert spring == [Offset(None, HOUR_US), Offset(_us("2026-03-29T01:00:00+00:00"), 2 * HOUR_US)]


def test_offsets_of_fixed_and_fractional_zones() -> None:
    span = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert offsets(UTC, *span) == [Offset(None, 0)]
    assert offsets(ZoneInfo("Asia/Kolkata"), *span) == [Offset(None, 5 * HOUR_US + 30 * 60_000_000)]
    assert offsets(ZoneInfo("Asia/Kathmandu"), *span) == [Offset(None, 5 * HOUR_US + 45 * 60_000_000)]
    # a change at the start of the range is the first entry; one a second in is the second
    berlin = ZoneInfo("Europe/Berlin")
    change = datetime(2026, 10, 25, 1, tzinfo=UTC)
    assert offsets(berlin, change - timedelta(hours=3), change)[0] == Offset(None, 2 * HOUR_US)
    assert offsets(berlin, change, change + timedelta(hours=3)) == [Offset(None, HOUR_US)]
    just_before = offsets(berlin, change - timedelta(seconds=1), change + timedelta(seconds=1))
    assert just_before == [Offset(None, 2 * HOUR_US), Offset(epoch_us(change), HOUR_US)]


def _reference_bucket(moment: datetime, granularity: str, tz: ZoneInfo | type[UTC] | object) -> str:
    """The bucket's label computed with zoneinfo: local wall time truncated, first occurrence."""
    local = moment.astimezone(tz).replace(tzinfo=None, fold=0)  # type: ignore[arg-type]
    if granularity == "hour":
        wall = local.replace(minute=0, second=0, microsecond=0)
    elif granularity == "minute":
        wall = local.replace(second=0, microsecond=0)
    else:
        wall = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if granularity == "week":
            wall -= timedelta(days=wall.weekday())
        elif granularity == "month":
            wall = wall.replace(day=1)
    return wall.replace(tzinfo=tz).isoformat()  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu",
                                  "Australia/Lord_Howe", "Pacific/Chatham"])
@pytest.mark.parametrize("granularity", ["minute", "hour", "day", "week", "month"])
def test_local_buckets_match_zoneinfo(name: str, granularity: str) -> None:
    tz = zone(name)
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    table = offsets(tz, start, end)
    moments = []
    moment = start
    step = timedelta(hours=3, minutes=7, seconds=11, microseconds=13)  # walks through every hour of the day
    while moment < end:
        moments.append(moment)
        moment += step
    for change in table[1:]:  # and around every change: the repeated or skipped hour, both sides of it
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=change.since_us or 0)
        moments.extend(at + timedelta(minutes=m, microseconds=u) for m in range(-90, 91, 15) for u in (-1, 0))
    for moment in moments:
        label = bucket_label(local_bucket_us(moment, granularity, table), tz).isoformat()
        assert label == _reference_bucket(moment, granularity, tz), moment


@pytest.mark.parametrize(("instant", "granularity", "label"), [
    # Berlin: 03:00 CEST became 02:00 CET at 01:00Z on Sunday 25 October 2026
    ("2026-10-25T00:30:00+00:00", "hour", "2026-10-25T02:00:00+02:00"),
    ("2026-10-25T01:30:00+00:00", "hour", "2026-10-25T02:00:00+02:00"),  # the repeated hour: one bucket
    ("2026-10-25T02:00:00+00:00", "hour", "2026-10-25T03:00:00+01:00"),
    ("2026-10-24T21:59:59+00:00", "day", "2026-10-24T00:00:00+02:00"),
    ("2026-10-24T22:00:00+00:00", "day", "2026-10-25T00:00:00+02:00"),
    ("2026-10-25T22:59:59.999999+00:00", "day", "2026-10-25T00:00:00+02:00"),
    ("2026-10-25T23:00:00+00:00", "day", "2026-10-26T00:00:00+01:00"),
    ("2026-10-25T22:59:59+00:00", "week", "2026-10-19T00:00:00+02:00"),  # Sunday is the week's last day
    ("2026-10-25T23:00:00+00:00", "week", "2026-10-26T00:00:00+01:00"),  # Monday starts the week
    ("2026-10-31T22:59:59+00:00", "month", "2026-10-01T00:00:00+02:00"),
    ("2026-10-31T23:00:00+00:00", "month", "2026-11-01T00:00:00+01:00"),
    # Berlin in spring: 02:00 CET jumped to 03:00 CEST at 01:00Z on 29 March 2026
    ("2026-03-29T00:59:59+00:00", "hour", "2026-03-29T01:00:00+01:00"),
    ("2026-03-29T01:00:00+00:00", "hour", "2026-03-29T03:00:00+02:00"),
    ("2026-03-29T12:00:00+00:00", "day", "2026-03-29T00:00:00+01:00"),
])
def test_berlin_bucket_labels(instant: str, granularity: str, label: str) -> None:
    tz = ZoneInfo("Europe/Berlin")
    moment = datetime.fromisoformat(instant)
    table = offsets(tz, moment - timedelta(days=40), moment + timedelta(days=40))
    assert bucket_label(local_bucket_us(moment, granularity, table), tz).isoformat() == label


@pytest.mark.parametrize(("instant", "granularity", "label"), [
    # New York: 02:00 EDT became 01:00 EST at 06:00Z on Sunday 1 November 2026
    ("2026-11-01T05:30:00+00:00", "hour", "2026-11-01T01:00:00-04:00"),
    ("2026-11-01T06:30:00+00:00", "hour", "2026-11-01T01:00:00-04:00"),
    ("2026-11-01T07:00:00+00:00", "hour", "2026-11-01T02:00:00-05:00"),
    ("2026-11-01T03:59:59+00:00", "day", "2026-10-31T00:00:00-04:00"),
    ("2026-11-01T04:00:00+00:00", "day", "2026-11-01T00:00:00-04:00"),
    ("2026-11-02T04:59:59+00:00", "day", "2026-11-01T00:00:00-04:00"),  # a 25-hour day
    ("2026-11-02T05:00:00+00:00", "week", "2026-11-02T00:00:00-05:00"),
    ("2026-11-02T04:59:59+00:00", "week", "2026-10-26T00:00:00-04:00"),
    ("2026-12-01T04:59:59+00:00", "month", "2026-11-01T00:00:00-04:00"),
    ("2026-12-01T05:00:00+00:00", "month", "2026-12-01T00:00:00-05:00"),
])
def test_new_york_bucket_labels(instant: str, granularity: str, label: str) -> None:
    tz = ZoneInfo("America/New_York")
    moment = datetime.fromisoformat(instant)
    table = offsets(tz, moment - timedelta(days=40), moment + timedelta(days=40))
    assert bucket_label(local_bucket_us(moment, granularity, table), tz).isoformat() == label


@pytest.mark.parametrize(("name", "instant", "granularity", "label"), [
    ("Asia/Kolkata", "2026-11-01T18:29:59+00:00", "day", "2026-11-01T00:00:00+05:30"),
    ("Asia/Kolkata", "2026-11-01T18:30:00+00:00", "day", "2026-11-02T00:00:00+05:30"),
    ("Asia/Kolkata", "2026-11-01T10:15:00+00:00", "hour", "2026-11-01T15:00:00+05:30"),
    ("Asia/Kolkata", "2026-11-01T10:45:00+00:00", "hour", "2026-11-01T16:00:00+05:30"),
    ("Asia/Kathmandu", "2026-11-01T10:14:59+00:00", "hour", "2026-11-01T15:00:00+05:45"),
    ("Asia/Kathmandu", "2026-11-01T10:15:00+00:00", "hour", "2026-11-01T16:00:00+05:45"),
    ("Asia/Kathmandu", "2026-11-01T18:15:00+00:00", "day", "2026-11-02T00:00:00+05:45"),
    ("Asia/Kathmandu", "2026-11-29T18:15:00+00:00", "week", "2026-11-30T00:00:00+05:45"),  # Monday 30 November
    ("Asia/Kathmandu", "2026-11-30T18:14:59+00:00", "month", "2026-11-01T00:00:00+05:45"),
    ("Asia/Kathmandu", "2026-11-30T18:15:00+00:00", "month", "2026-12-01T00:00:00+05:45"),
    ("UTC", "2026-01-01T00:00:00+00:00", "week", "2025-12-29T00:00:00+00:00"),
    ("UTC", "1970-01-01T12:00:00+00:00", "week", "1969-12-29T00:00:00+00:00"),  # before the epoch's Thursday
    ("UTC", "1969-12-31T23:59:59.999999+00:00", "day", "1969-12-31T00:00:00+00:00"),
])
def test_fractional_zone_and_utc_labels(name: str, instant: str, granularity: str, label: str) -> None:
    tz = zone(name)
    moment = datetime.fromisoformat(instant)
    table = offsets(tz, moment - timedelta(days=40), moment + timedelta(days=40))
    assert bucket_label(local_bucket_us(moment, granularity, table), tz).isoformat() == label


def test_bucket_label_is_an_aware_time_in_the_zone() -> None:
    tz = ZoneInfo("Europe/Berlin")
    local = _us("2026-10-25T02:00:00+00:00")  # wall-clock 02:00 on 25 October, as local epoch microseconds
    label = bucket_label(local, tz)
    assert label.tzinfo is tz and label.fold == 0
    assert label.isoformat() == "2026-10-25T02:00:00+02:00"
    assert bucket_label(0, UTC).isoformat() == "1970-01-01T00:00:00+00:00"


def test_zone_names() -> None:
    assert zone("UTC") is UTC and zone("utc") is UTC
    assert zone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    for bad in ("Mars/Olympus_Mons", "", "../etc/passwd", "Europe/Berlin\x00"):
        with pytest.raises(CostlineError, match="unknown time zone"):
            zone(bad)


def test_granularity_helpers() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert auto_granularity(start, start + timedelta(hours=3)) == "minute"
    assert auto_granularity(start, start + timedelta(days=30)) == "day"
    assert auto_granularity(start, start + timedelta(days=10 * 365)) == "month"
    assert auto_granularity(start, start + timedelta(days=100 * 365)) == "month"
    # an upper bound: never fewer than the buckets a range can touch
    assert bucket_count("hour", start, start + timedelta(hours=24)) >= 25
    assert bucket_count("day", start + timedelta(hours=12), start + timedelta(days=2)) >= 3
