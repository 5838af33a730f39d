"""``parse_query``: every bad part of a query is named by its path; the defaults are the documented ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from costline.core.query import (
    DEFAULT_LIMIT,
    Dimension,
    Filter,
    Metric,
    Order,
    QueryError,
    parse_query,
)
from costline.core.query_values import finish_value

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
RANGE = {"from": "2026-11-01", "to": "2026-11-08"}

#: (query, path the message starts with, words the message contains)
BAD: list[tuple[Any, str, str]] = [
    ([], "query", "expected a JSON object"),
    ({"view": "spans"}, "view", "unknown view 'spans'"),
    ({"view": "traces", "dimensions": ["model"]}, "dimensions[0]", "unknown dimension 'model' for the traces view"),
    ({"dimensions": ["model", "colour"]}, "dimensions[1]", "unknown dimension 'colour'"),
    ({"dimensions": "model"}, "dimensions", "expected a list"),
    ({"dimensions": ["model", ""]}, "dimensions[1]", "expected a dimension name"),
    ({"dimensions": ["model", "metadata.team'; DROP TABLE observations; --"]}, "dimensions[1]",
     "must be 1-100 letters"),
    ({"dimensions": ["metadata.a\"b"]}, "dimensions[0]", "metadata key"),
    ({"dimensions": ["metadata.x;y"]}, "dimensions[0]", "metadata key"),
    ({"dimensions": ["metadata."]}, "dimensions[0]", "metadata key"),
    ({"dimensions": [f"metadata.{'k' * 101}"]}, "dimensions[0]", "metadata key"),
    ({"metrics": ["sum:cost", "sum:price"]}, "metrics[1]", "unknown measure 'price'"),
    ({"metrics": ["median:cost"]}, "metrics[0]", "unknown aggregation 'median'"),
    ({"metrics": [{"measure": "cost", "aggregation": "mode"}]}, "metrics[0]", "unknown aggregation 'mode'"),
    ({"metrics": ["sum:usage.gallons"]}, "metrics[0]", "unknown unit 'gallons'"),
    ({"metrics": ["sum:cost.gallons"]}, "metrics[0]", "unknown cost component 'gallons'"),
    ({"metrics": ["sum:weight.input_tokens"]}, "metrics[0]", "unknown measure 'weight.input_tokens'"),
    ({"metrics": ["count", "p95:count"]}, "metrics[1]", "count is a count; its aggregation can only be count"),
    ({"metrics": ["avg:users"]}, "metrics[0]", "users is a count"),
    ({"view": "traces", "metrics": ["traces"]}, "metrics[0]", "unknown measure 'traces' for the traces view"),
    ({"metrics": [{"aggregation": "sum"}]}, "metrics[0].measure", "expected a measure name"),
    ({"metrics": [{"measure": "cost", "aggregation": 95}]}, "metrics[0].aggregation", "expected an aggregation"),
    ({"metrics": [42]}, "metrics[0]", "expected \"aggregation:measure\""),
    ({"filters": [{"field": "model", "operator": "like", "value": "x"}]}, "filters[0].operator",
     "unknown operator 'like'"),
    ({"filters": [{"field": "tags", "operator": "starts with", "value": "x"}]}, "filters[0].operator",
     "unknown tags operator 'starts with'"),
    ({"filters": [{"field": "cost", "operator": "contains", "value": "1"}]}, "filters[0].operator",
     "'contains' does not apply to numbers"),
    ({"filters": [{"field": "model", "value": "x"}]}, "filters[0].operator", "expected an operator"),
    ({"filters": [{"field": "model", "operator": "=", "value": "x"},
                  {"field": "cost", "operator": ">", "value": "abc"}]}, "filters[1].value", "'abc' is not a number"),
    ({"filters": [{"field": "cost", "operator": ">", "value": True}]}, "filters[0].value", "got a boolean"),
    ({"filters": [{"field": "cost", "operator": ">", "value": "NaN"}]}, "filters[0].value", "not a finite number"),
    ({"filters": [{"field": "latency", "operator": "<", "value": None}]}, "filters[0].value", "expected a number"),
    ({"filters": [{"field": "cost", "operator": ">", "value": "1e25"}]}, "filters[0].value", "out of range"),
    ({"filters": [{"field": "provider", "operator": "in", "value": []}]}, "filters[0].value",
     "expected a non-empty list of strings"),
    ({"filters": [{"field": "tags", "operator": "any of", "value": []}]}, "filters[0].value",
     "expected a non-empty list of strings"),
    ({"filters": [{"field": "provider", "operator": "in", "value": ["a", 3]}]}, "filters[0].value[1]",
     "expected a string"),
    ({"filters": [{"field": "model", "operator": "=", "value": None}]}, "filters[0].value", "expected a string"),
    ({"filters": [{"field": "colour", "operator": "=", "value": "red"}]}, "filters[0].field", "unknown field 'colour'"),
    ({"filters": [{"field": "metadata.a'b", "operator": "=", "value": "x"}]}, "filters[0].field", "metadata key"),
    ({"filters": [{"field": "metadata", "key": "a b", "operator": "=", "value": "x"}]}, "filters[0].field",
     "metadata key"),
    ({"filters": [{"field": "count", "operator": ">", "value": 1}]}, "filters[0].field", "cannot be filtered on"),
    ({"filters": ["model = gpt-4o"]}, "filters[0]", "expected {\"field\""),
    ({"from": "2026-11-08", "to": "2026-11-01"}, "from", "is not before to"),
    ({"from": "2026-11-01T10:00:00Z", "to": "2026-11-01T10:00:00Z"}, "from", "is not before to"),
    ({"from": "yesterday"}, "from", "'yesterday' is not an ISO 8601 date or time"),
    ({"to": "2026-11-31"}, "to", "is not an ISO 8601 date or time"),
    ({"from": 20261101}, "from", "expected an ISO 8601 date or time"),
    ({"all_time": True, "from": "2026-11-01"}, "all_time", "either all_time or from/to"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone 'Mars/Olympus_Mons'"),
    ({"timezone": "../../etc/passwd"}, "timezone", "unknown time zone"),
    ({"timezone": ""}, "timezone", "unknown time zone"),
    ({"timezone": 2}, "timezone", "expected an IANA time zone name"),
    ({"granularity": "minute", "from": "2025-01-01", "to": "2026-01-01"}, "granularity",
     "minute buckets over this range would exceed 20000"),
    ({"granularity": "fortnight"}, "granularity", "unknown granularity 'fortnight'"),
    ({"granularity": "auto", "all_time": True}, "granularity", "auto needs a time range"),
    ({"limit": 0}, "limit", "expected an integer from 1 to 10000"),
    ({"limit": 10001}, "limit", "expected an integer from 1 to 10000"),
    ({"limit": "5"}, "limit", "expected an integer from 1 to 10000"),
    ({"limit": True}, "limit", "expected an integer from 1 to 10000"),
    ({"limit": 5.0}, "limit", "expected an integer from 1 to 10000"),
    ({"colour": "red"}, "colour", "unknown query field"),
    ({"order_by": ["colour desc"]}, "order_by[0]", "cannot order by 'colour'; use one of the result columns: sum_cost"),
    ({"dimensions": ["model"], "order_by": ["model", "time"]}, "order_by[1]", "cannot order by 'time'"),
    ({"dimensions": ["model"], "order_by": ["model sideways"]}, "order_by[0]", "direction must be asc or desc"),
    ({"order_by": [7]}, "order_by[0]", "expected \"field [asc|desc]\""),
]


@pytest.mark.parametrize(("raw", "path", "words"), BAD, ids=[f"{p}:{w[:30]}" for _, p, w in BAD])
def test_a_bad_part_is_named_by_its_path(raw: Any, path: str, words: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(raw, now=NOW)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert words in message


def test_query_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^view: "):
        parse_query({"view": 3}, now=NOW)


def test_defaults() -> None:
    q = parse_query({}, now=NOW)
    assert (q.view, q.dimensions, q.metrics, q.filters) == ("observations", (), (Metric("cost", "sum"),), ())
    assert (q.granularity, q.timezone, q.limit, q.project_id) == (None, "UTC", DEFAULT_LIMIT, None)
    assert DEFAULT_LIMIT == 100
    # no range: the 7 days up to now, and the response says so
    assert (q.start, q.end, q.range_defaulted) == (NOW - timedelta(days=7), NOW, True)
    assert q.describe() == {"view": "observations", "from": "2026-11-13T12:30:00+00:00",
                            "to": "2026-11-20T12:30:00+00:00", "range_defaulted": True, "timezone": "UTC",
                            "granularity": None, "limit": 100}
    assert q.columns == ("sum_cost",)
    assert q.order_by == (Order("sum_cost", True),)


def test_partial_ranges() -> None:
    only_to = parse_query({"to": "2026-11-10T00:00:00Z"}, now=NOW)
    assert (only_to.start, only_to.end, only_to.range_defaulted) == (
        datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC), True)
    only_from = parse_query({"from": "2026-11-10T00:00:00Z"}, now=NOW)
    assert (only_from.start, only_from.end, only_from.range_defaulted) == (
        datetime(2026, 11, 10, tzinfo=UTC), NOW, False)
    everything = parse_query({"all_time": True}, now=NOW, project_id="p1")
    assert (everything.start, everything.end, everything.range_defaulted, everything.project_id) == (
        None, None, False, "p1")
    assert everything.describe()["from"] is None


@pytest.mark.parametrize(("zone", "day", "utc"), [
    ("UTC", "2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("America/New_York", "2026-11-01", datetime(2026, 11, 1, 4, tzinfo=UTC)),  # still EDT at midnight
    ("America/New_York", "2026-11-02", datetime(2026, 11, 2, 5, tzinfo=UTC)),  # EST from 1 November 06:00Z
    ("Europe/Berlin", "2026-10-25", datetime(2026, 10, 24, 22, tzinfo=UTC)),  # CEST at midnight
    ("Europe/Berlin", "2026-10-26", datetime(2026, 10, 25, 23, tzinfo=UTC)),
    ("Asia/Kolkata", "2026-11-01", datetime(2026, 10, 31, 18, 30, tzinfo=UTC)),
    ("Asia/Kathmandu", "2026-11-01", datetime(2026, 10, 31, 18, 15, tzinfo=UTC)),
])
def test_a_date_is_local_midnight_in_the_query_zone(zone: str, day: str, utc: datetime) -> None:
    q = parse_query({"from": day, "to": "2026-12-01", "timezone": zone}, now=NOW)
    assert q.start == utc
    assert q.start is not None and q.start.tzinfo is UTC
    assert q.end == datetime(2026, 12, 1, tzinfo=ZoneInfo(zone) if zone != "UTC" else UTC)


def test_times_with_and_without_offsets() -> None:
    q = parse_query({"from": "2026-11-01T08:00:00", "to": "2026-11-01T09:00:00+01:00", "timezone": "Asia/Tokyo"},
                    now=NOW)
    assert q.start == datetime(2026, 10, 31, 23, tzinfo=UTC)  # a time without offset is Tokyo wall time
    assert q.end == datetime(2026, 11, 1, 8, tzinfo=UTC)  # an explicit offset wins over the zone
    z = parse_query({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00z"}, now=NOW)
    assert (z.start, z.end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))


@pytest.mark.parametrize(("span", "expected"), [
    (timedelta(hours=2), "minute"), (timedelta(minutes=200), "minute"), (timedelta(minutes=201), "hour"),
    (timedelta(days=1), "hour"), (timedelta(days=7), "hour"), (timedelta(days=9), "day"),
    (timedelta(days=200), "day"), (timedelta(days=365), "week"), (timedelta(days=3650), "month"),
])
def test_auto_granularity_keeps_about_200_buckets(span: timedelta, expected: str) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    raw = {"from": start.isoformat(), "to": (start + span).isoformat(), "granularity": "auto"}
    assert parse_query(raw, now=NOW).granularity == expected


def test_default_order_is_complete_and_deterministic() -> None:
    q = parse_query({"dimensions": ["model", "user"], "metrics": ["count", "sum:cost"], "granularity": "day",
                     **RANGE}, now=NOW)
    assert q.columns == ("time", "model", "user", "count", "sum_cost")
    assert q.order_by == (Order("time", False), Order("count", True), Order("model", False), Order("user", False))
    given = parse_query({"dimensions": ["model", "user"], "metrics": ["count", "sum:cost"], "granularity": "day",
                         "order_by": ["sum_cost asc", {"field": "user", "direction": "DESC"}], **RANGE}, now=NOW)
    # a given order comes first, then time and the remaining dimensions (not the first metric)
    assert given.order_by == (Order("sum_cost", False), Order("user", True), Order("time", False),
                              Order("model", False))
    assert parse_query({"order_by": ["sum_cost"]}, now=NOW).order_by == (Order("sum_cost", True),)


def test_metric_forms_and_labels() -> None:
    q = parse_query({"metrics": ["count", "cost", "p95:latency", {"measure": "input_tokens", "aggregation": "avg"},
                                 "sum:usage.cache_read_tokens", "tokens.output_tokens", "max:cost.input_tokens",
                                 "unpriced", "count:users", "sum:traces"]}, now=NOW)
    assert q.metrics == (Metric("count", "count"), Metric("cost", "sum"), Metric("latency", "p95"),
                         Metric("input_tokens", "avg"), Metric("usage", "sum", "cache_read_tokens"),
                         Metric("usage", "sum", "output_tokens"), Metric("cost", "max", "input_tokens"),
                         Metric("unpriced", "count"), Metric("users", "count"), Metric("traces", "count"))
    assert q.columns == ("count", "sum_cost", "p95_latency", "avg_input_tokens", "sum_usage.cache_read_tokens",
                         "sum_usage.output_tokens", "max_cost.input_tokens", "unpriced", "users", "traces")
    traces = parse_query({"view": "traces", "metrics": ["sum:observations", "p99:cost"]}, now=NOW)
    assert traces.columns == ("sum_observations", "p99_cost")


def test_dimension_aliases_and_metadata() -> None:
    q = parse_query({"dimensions": ["tags", "user_id", "project_id", {"field": "metadata.app:feature-x_1"}]},
                    now=NOW)
    assert q.dimensions == (Dimension("tag"), Dimension("user"), Dimension("project"),
                            Dimension("metadata", "app:feature-x_1"))
    assert q.columns[:4] == ("tag", "user", "project", "metadata.app:feature-x_1")
    traces = parse_query({"view": "traces", "dimensions": ["trace_name", "trace_id"]}, now=NOW)
    assert traces.dimensions == (Dimension("name"), Dimension("id"))


def test_filter_forms() -> None:
    q = parse_query({"filters": [
        {"field": "model", "operator": "  Starts With ", "value": "gpt"},
        {"column": "provider", "op": "in", "value": "openai"},
        {"field": "tags", "operator": "contains", "value": "prod"},
        {"field": "tag", "operator": "none of", "value": ["dev", "eval"]},
        {"field": "metadata", "key": "team", "operator": "=", "value": "core"},
        {"field": "metadata.team", "operator": "is null"},
        {"field": "cost", "operator": ">", "value": 0.1},
        {"field": "latency", "operator": "<=", "value": "2.5"},
        {"field": "usage.cache_read_tokens", "operator": ">=", "value": 1000},
        {"field": "user", "operator": "=", "value": 42},
    ]}, now=NOW)
    assert q.filters == (
        Filter("model", "starts with", "gpt"), Filter("provider", "in", ("openai",)),
        Filter("tag", "any of", ("prod",), kind="tags"), Filter("tag", "none of", ("dev", "eval"), kind="tags"),
        Filter("metadata", "=", "core", "team"), Filter("metadata", "is null", None, "team"),
        Filter("cost", ">", D("0.1"), kind="number"), Filter("latency", "<=", D("2.5"), kind="number"),
        Filter("usage", ">=", D(1000), "cache_read_tokens", "number"), Filter("user", "=", "42"),
    )
    assert q.filters[6].value == D("0.1")  # a float goes through its repr, not its binary value


def test_finish_value_rounds_averages_half_even_in_the_result_unit() -> None:
    assert finish_value(Metric("cost", "avg"), D("0.000000000005"), 2) == D("0.000000000002")
    assert finish_value(Metric("cost", "avg"), D("0.000000000007"), 2) == D("0.000000000004")
    assert finish_value(Metric("cost", "avg"), None, 0) is None
    assert finish_value(Metric("cost", "sum"), D("1.500000000000"), None) == D("1.5")
    assert isinstance(finish_value(Metric("cost", "sum"), D("2.000000000000"), None), D)  # money stays Decimal
    assert finish_value(Metric("input_tokens", "sum"), D("1200.000000000000"), None) == 1200
    assert type(finish_value(Metric("input_tokens", "sum"), D("1200.000000000000"), None)) is int
    # latency comes in microseconds; its average is rounded to 12 places of a second
    assert finish_value(Metric("latency", "avg"), 10, 3) == D("0.000003333333")
    assert finish_value(Metric("latency", "sum"), 2_500_000, None) == D("2.5")
    assert finish_value(Metric("latency", "max"), 3_000_000, None) == 3
    assert finish_value(Metric("count", "count"), None, None) == 0
