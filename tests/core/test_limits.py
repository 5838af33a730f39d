"""The input limits (core/limits.py): each bound holds at its edge and names the field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from costline.core import limits
from costline.core.events import ObservationEvent
from costline.core.money import to_decimal
from costline.core.usage import Usage
from costline.errors import CostlineError, UsageError


def test_counts_stop_at_int64() -> None:
    assert Usage({"input_tokens": 2**63 - 1}).get("input_tokens") == 2**63 - 1
    with pytest.raises(UsageError, match=r"input_tokens: 9223372036854775808 is out of range"):
        Usage({"input_tokens": 2**63})
    with pytest.raises(UsageError, match="out of range"):
        Usage({"input_tokens": 1.8446744073709552e19})  # what orjson makes of 2^64


@pytest.mark.parametrize("text", ["9e999999999", "-9e999999999", "1e-999999999", "1e101"])
def test_exponent_is_capped_before_arithmetic(text: str) -> None:
    with pytest.raises(CostlineError, match=r"cost\.total: .* is out of range \(exponent beyond ±100\)"):
        to_decimal(text, field="cost.total")
    with pytest.raises(UsageError, match="out of range"):
        Usage({"input_tokens": text})


def test_money_bound_counts_the_rounding() -> None:
    assert limits.check_money(Decimal("999999999999999.9999999999994"), "x")  # rounds to below 10^15
    for bad in ("999999999999999.9999999999995", "1e15", "-1e15"):
        with pytest.raises(limits.LimitError, match=r"^x: .* below 10\^15"):
            limits.check_money(Decimal(bad), "x")


def test_parse_count_takes_ascii_digits_only() -> None:
    assert limits.parse_count(" 42 ") == 42
    assert limits.parse_count("²") is None and limits.parse_count("١٢") is None and limits.parse_count("-1") is None
    assert limits.parse_count("1" * 39) == int("1" * 39)  # parsed, then refused by range where it is used
    assert limits.parse_count("1" * 5000) is None  # int() would raise past 4300 digits


def test_json_bounds() -> None:
    limits.check_json({"a": [1, 2.5, "x", None, True, {"b": Decimal("0.1")}]}, "metadata")
    deep: object = 1
    for _ in range(limits.MAX_JSON_DEPTH):
        deep = {"a": deep}
    limits.check_json(deep, "metadata")
    with pytest.raises(limits.LimitError, match=r"^metadata(\.a)*: nested deeper than 20 levels"):
        limits.check_json({"a": deep}, "metadata")
    cases = [
        ({"k": "a\x00b"}, r"^metadata\.k: contains a NUL"),
        ({"a\x00": 1}, r"^metadata: key 'a\\x00': contains a NUL"),
        ({"k": "\ud800"}, r"^metadata\.k: contains a lone surrogate"),
        ({"k": 2**63}, r"^metadata\.k: 9223372036854775808 is out of range"),
        ({"k": float("nan")}, r"^metadata\.k: nan is not a finite number"),
        ({"k": Decimal("1e400")}, r"^metadata\.k: .* is out of range"),
        ({str(i): i for i in range(1001)}, r"^metadata: more than 1000 keys"),
        ({"k": "y" * 65_537}, r"^metadata: larger than 65536 bytes"),
        ({"k": ["é" * 40] * 900}, r"^metadata: larger than 65536 bytes as JSON \(\d+\)"),
    ]
    for value, message in cases:
        with pytest.raises(limits.LimitError, match=message):
            limits.check_json(value, "metadata")


def test_observation_fields_are_named_as_the_protocol_names_them() -> None:
    t0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
    names = {"user_id": "userId", "end_time": "endTime", "start_time": "startTime"}
    limits.check_observation(ObservationEvent(id="a" * 256, user_id="u" * 512, tags=("t" * 256,) * 100), names)
    cases = [
        (ObservationEvent(id="a" * 257), r"^id: longer than 256 characters \(257\)"),
        (ObservationEvent(id="x", user_id="u" * 513), r"^userId: longer than 512"),
        (ObservationEvent(id="x", tags=("t",) * 101), r"^tags: more than 100 tags"),
        (ObservationEvent(id="x", tags=("t" * 257,)), r"^tags\[0\]: longer than 256"),
        (ObservationEvent(id="x", name="a\x00"), r"^name: contains a NUL"),
        (ObservationEvent(id="x", provided_cost={"total": Decimal("1e20")}), r"^cost\.total: .* below 10\^15"),
        (ObservationEvent(id="x", start_time=t0, end_time=t0.replace(hour=11)),
         r"^endTime: 2026-11-01T11:00:00\+00:00 is before startTime 2026-11-01T12:00:00\+00:00"),
    ]
    for event, message in cases:
        with pytest.raises(limits.LimitError, match=message):
            limits.check_observation(event, names)


def test_times_outside_years_1000_to_9000_are_refused() -> None:
    assert limits.iso_utc("8999-12-31T23:59:59Z").year == 8999
    assert limits.iso_utc("1000-01-01T00:00:00Z").year == 1000
    assert limits.iso_utc("2026-11-01T12:00:00") == datetime(2026, 11, 1, 12, tzinfo=UTC)
    for text in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z",
                 "0999-12-31T23:59:59Z"):
        with pytest.raises(limits.TimeRangeError):
            limits.iso_utc(text)


def test_preview_never_echoes_a_huge_value() -> None:
    assert len(limits.preview("x" * 100_000)) < 80
    assert limits.preview(10**5000) == f"an integer of {(10**5000).bit_length()} bits"
