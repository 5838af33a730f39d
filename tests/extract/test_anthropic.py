"""Anthropic Messages payloads: input_tokens EXCLUDES the cache, output_tokens includes thinking."""

from __future__ import annotations

import pytest

from costline.core.usage import Usage
from costline.errors import ExtractionError, UsageError
from costline.extract import extract_stream_usage, extract_usage


def test_plain(load):
    got = extract_usage(load("anthropic_plain"), "anthropic")
    assert got.usage == Usage.of(input_tokens=12, output_tokens=6)
    assert got.model == "claude-sonnet-4-20250514"
    assert got.provider == "anthropic"


def test_cached_with_ttl_split(load):
    got = extract_usage(load("anthropic_cached"), "anthropic")
    # Anthropic input_tokens excludes cache: 100 + 2000 + 500 = 2600
    assert got.usage == Usage.of(
        input_tokens=2600,
        cache_write_tokens=2000,
        cache_write_5m_tokens=1500,  # 1500 + 500 = 2000 written
        cache_write_1h_tokens=500,
        cache_read_tokens=500,
        output_tokens=250,
    )


def test_thinking_is_inside_output_and_web_searches_counted(load):
    got = extract_usage(load("anthropic_thinking_web_search"), "anthropic")
    # no separate thinking count: output_tokens 931 already includes it; 2 web_search_requests
    assert got.usage == Usage.of(input_tokens=6039, output_tokens=931, web_searches=2)


def test_bare_usage_object(load):
    usage = load("anthropic_cached")["usage"]
    # 100 + 2000 + 500 = 2600
    assert extract_usage(usage, "anthropic").usage["input_tokens"] == 2600


def test_stream_message_start_and_delta(load):
    got = extract_stream_usage(load("anthropic_stream"), "anthropic")
    # message_start: 472 uncached + 0 written + 3000 read = 3472 input; message_delta's cumulative
    # output_tokens 89 replaces message_start's 2
    assert got.usage == Usage.of(input_tokens=3472, cache_read_tokens=3000, output_tokens=89)
    assert got.model == "claude-3-5-haiku-20241022"


def test_stream_delta_repeats_input_fields(load):
    got = extract_stream_usage(load("anthropic_stream_delta_usage"), "anthropic")
    # the message_delta values win over message_start's: 10682 + 1200 + 4000 = 15882 input
    assert got.usage == Usage.of(
        input_tokens=15882,
        cache_write_tokens=1200,
        cache_read_tokens=4000,
        output_tokens=510,
        web_searches=1,
    )


def test_stream_bad_delta_names_the_chunk(load):
    events = load("anthropic_stream")
    events[6]["usage"]["output_tokens"] = -1
    with pytest.raises(ExtractionError, match=r"^chunk\[6\]\.usage\.output_tokens: .* got -1$"):
        extract_stream_usage(events, "anthropic")


def test_stream_without_usage(load):
    events = [e for e in load("anthropic_stream") if e["type"] not in ("message_start", "message_delta")]
    with pytest.raises(ExtractionError, match="stream contained no usage"):
        extract_stream_usage(events, "anthropic")


# -- bad input ---------------------------------------------------------------------------------------------


def test_missing_usage(load):
    body = load("anthropic_plain")
    del body["usage"]
    with pytest.raises(ExtractionError, match=r"^usage: required field is missing"):
        extract_usage(body, "anthropic")


def test_missing_output_tokens(load):
    body = load("anthropic_plain")
    del body["usage"]["output_tokens"]
    with pytest.raises(ExtractionError, match=r"^usage\.output_tokens: required field is missing"):
        extract_usage(body, "anthropic")


def test_negative_cache_read(load):
    body = load("anthropic_cached")
    body["usage"]["cache_read_input_tokens"] = -500
    with pytest.raises(
        ExtractionError, match=r"^usage\.cache_read_input_tokens: expected a non-negative integer, got -500$"
    ):
        extract_usage(body, "anthropic")


def test_wrong_type_in_cache_creation(load):
    body = load("anthropic_cached")
    body["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] = "500"
    with pytest.raises(
        ExtractionError, match=r"^usage\.cache_creation\.ephemeral_1h_input_tokens: .* got '500'$"
    ):
        extract_usage(body, "anthropic")


def test_ttl_split_above_cache_write(load):
    body = load("anthropic_cached")
    body["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] = 900
    # 1500 + 900 = 2400 written by TTL, but only 2000 written in all
    with pytest.raises(UsageError, match=r"= 2400 exceeds cache_write_tokens \(2000\)"):
        extract_usage(body, "anthropic")
