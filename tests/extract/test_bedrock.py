"""AWS Bedrock Converse / ConverseStream: inputTokens EXCLUDES cache reads and writes."""

from __future__ import annotations

import pytest

from costline.core.usage import Usage
from costline.errors import ExtractionError, UsageError
from costline.extract import extract_stream_usage, extract_usage


def test_plain(load):
    got = extract_usage(load("bedrock_converse_plain"), "bedrock")
    assert got.usage == Usage.of(input_tokens=15, output_tokens=41)
    assert got.provider == "aws"
    assert got.model is None  # Converse does not echo the model id


def test_cached_with_ttl_details(load):
    got = extract_usage(load("bedrock_converse_cached"), "aws")
    # Bedrock inputTokens excludes cache: 24 + 3100 read + 1200 written = 4324 (+ 120 output = 4444 total)
    assert got.usage == Usage.of(
        input_tokens=4324,
        cache_read_tokens=3100,
        cache_write_tokens=1200,
        cache_write_1h_tokens=1200,
        output_tokens=120,
    )


def test_invoke_model_with_claude_uses_anthropic_rules(load):
    got = extract_usage(load("bedrock_invoke_claude"), "bedrock")
    # Anthropic body: 25 uncached + 0 written + 1800 read = 1825
    assert got.usage == Usage.of(input_tokens=1825, cache_read_tokens=1800, output_tokens=40)
    assert got.provider == "aws"
    assert got.model == "claude-3-7-sonnet-20250219"


def test_metadata_event_alone(load):
    event = load("bedrock_converse_stream")[-1]
    # 30 + 2048 + 0 = 2078
    assert extract_usage(event, "bedrock_converse").usage["input_tokens"] == 2078


def test_stream_metadata_event(load):
    got = extract_stream_usage(load("bedrock_converse_stream"), "bedrock")
    # 30 uncached + 2048 read = 2078 input; 2078 + 12 = 2090 = totalTokens
    assert got.usage == Usage.of(input_tokens=2078, cache_read_tokens=2048, output_tokens=12)


def test_stream_raw_event_payloads(load):
    # without boto3's event-name wrapper the metadata event is just {"usage": ..., "metrics": ...}
    events = [
        {"contentBlockIndex": 0, "delta": {"text": "Hi"}},
        load("bedrock_converse_stream")[-1]["metadata"],
    ]
    assert extract_stream_usage(events, "bedrock").usage["output_tokens"] == 12


def test_stream_without_metadata(load):
    with pytest.raises(ExtractionError, match="stream contained no usage"):
        extract_stream_usage(load("bedrock_converse_stream")[:-1], "bedrock")


# -- bad input ---------------------------------------------------------------------------------------------


def test_missing_usage(load):
    body = load("bedrock_converse_plain")
    del body["usage"]
    with pytest.raises(ExtractionError, match=r"^usage: required field is missing"):
        extract_usage(body, "bedrock")


def test_missing_output_tokens(load):
    body = load("bedrock_converse_plain")
    del body["usage"]["outputTokens"]
    with pytest.raises(ExtractionError, match=r"^usage\.outputTokens: required field is missing"):
        extract_usage(body, "bedrock")


def test_negative_cache_read(load):
    body = load("bedrock_converse_cached")
    body["usage"]["cacheReadInputTokens"] = -3
    with pytest.raises(
        ExtractionError, match=r"^usage\.cacheReadInputTokens: expected a non-negative integer, got -3$"
    ):
        extract_usage(body, "bedrock")


def test_wrong_type_in_cache_details(load):
    body = load("bedrock_converse_cached")
    body["usage"]["cacheDetails"][0]["inputTokens"] = "1200"
    with pytest.raises(ExtractionError, match=r"^usage\.cacheDetails\[0\]\.inputTokens: .* got '1200'$"):
        extract_usage(body, "bedrock")


def test_stream_error_names_chunk(load):
    events = load("bedrock_converse_stream")
    events[-1]["metadata"]["usage"]["inputTokens"] = 1.5
    with pytest.raises(ExtractionError, match=r"^chunk\[5\]\.metadata\.usage\.inputTokens: .* got 1\.5$"):
        extract_stream_usage(events, "bedrock")


def test_ttl_detail_above_cache_write(load):
    body = load("bedrock_converse_cached")
    body["usage"]["cacheDetails"][0]["inputTokens"] = 1500
    with pytest.raises(
        UsageError, match=r"cache_write_1h_tokens \(1500\) exceeds cache_write_tokens \(1200\)"
    ):
        extract_usage(body, "bedrock")
