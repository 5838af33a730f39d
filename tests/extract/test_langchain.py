"""LangChain AIMessage dicts: usage_metadata is INCLUSIVE and preferred over response_metadata."""

from __future__ import annotations

import pytest

from costline.core.usage import Usage
from costline.errors import ExtractionError, UsageError
from costline.extract import extract_stream_usage, extract_usage


def test_openai_reasoning_usage_metadata(load):
    got = extract_usage(load("langchain_openai_reasoning"), "langchain")
    # usage_metadata is inclusive: 1117 input with 1024 cache_read; 1846 output with 1600 reasoning
    assert got.usage == Usage.of(
        input_tokens=1117, cache_read_tokens=1024, output_tokens=1846, output_reasoning_tokens=1600
    )
    assert got.model == "o3-mini-2025-01-31"
    assert got.provider == "openai"  # from response_metadata.model_provider


def test_anthropic_cache_ttl_split(load):
    got = extract_usage(load("langchain_anthropic_cached"), "langchain")
    # LangChain already added the cache back: 100 + 500 + 2000 = 2600; newer langchain-anthropic zeroes
    # cache_creation when the TTL split is given, so cache write = max(0, 1500 + 500) = 2000
    assert got.usage == Usage.of(
        input_tokens=2600,
        cache_read_tokens=500,
        cache_write_tokens=2000,
        cache_write_5m_tokens=1500,
        cache_write_1h_tokens=500,
        output_tokens=250,
    )
    assert got.provider == "anthropic"
    assert got.model == "claude-opus-4-1-20250805"


def test_anthropic_old_style_ttl_split_is_not_double_counted(load):
    msg = load("langchain_anthropic_cached")
    msg["usage_metadata"]["input_token_details"]["cache_creation"] = 2000  # older langchain-anthropic
    # max(2000, 1500 + 500) = 2000, not 4000
    assert extract_usage(msg, "langchain").usage["cache_write_tokens"] == 2000


def test_prefers_usage_metadata_over_response_metadata(load):
    msg = load("langchain_anthropic_cached")
    msg["response_metadata"]["usage"]["output_tokens"] = 999_999
    assert extract_usage(msg, "langchain").usage["output_tokens"] == 250


def test_token_usage_fallback_is_openai_style(load):
    got = extract_usage(load("langchain_openai_token_usage_only"), "langchain")
    # prompt_tokens 900 includes 512 cached; null details read as absent
    assert got.usage == Usage.of(input_tokens=900, cache_read_tokens=512, output_tokens=50)
    assert got.model == "gpt-4o-2024-08-06"
    assert got.provider is None  # no model_provider in response_metadata


def test_anthropic_usage_fallback_is_exclusive(load):
    got = extract_usage(load("langchain_anthropic_usage_only"), "langchain")
    # raw Anthropic usage excludes the cache: 20 + 1000 written + 0 read = 1020
    assert got.usage == Usage.of(input_tokens=1020, cache_write_tokens=1000, output_tokens=30)
    assert got.model == "claude-3-5-sonnet-20241022"


def test_dumpd_form(load):
    got = extract_usage(load("langchain_google_dumpd"), "langchain")
    assert got.usage == Usage.of(
        input_tokens=1100, cache_read_tokens=1024, output_tokens=34, output_reasoning_tokens=30
    )
    assert got.provider == "google"
    assert got.model == "gemini-2.5-flash-lite"


def test_bare_usage_metadata(load):
    meta = load("langchain_openai_reasoning")["usage_metadata"]
    assert extract_usage(meta, "langchain").usage["output_reasoning_tokens"] == 1600


def test_stream_chunks_are_summed(load):
    got = extract_stream_usage(load("langchain_anthropic_stream"), "langchain")
    # AIMessageChunk addition sums usage_metadata: input 3472 + 0 = 3472, output 0 + 89 = 89
    assert got.usage == Usage.of(input_tokens=3472, cache_read_tokens=3000, output_tokens=89)
    assert got.model == "claude-3-5-haiku-20241022"
    assert got.provider == "anthropic"


# -- bad input ---------------------------------------------------------------------------------------------


def test_missing_usage(load):
    msg = load("langchain_openai_token_usage_only")
    del msg["response_metadata"]["token_usage"]
    with pytest.raises(ExtractionError, match=r"^usage_metadata: required field is missing"):
        extract_usage(msg, "langchain")


def test_missing_output_tokens(load):
    msg = load("langchain_openai_reasoning")
    del msg["usage_metadata"]["output_tokens"]
    with pytest.raises(ExtractionError, match=r"^usage_metadata\.output_tokens: required field is missing"):
        extract_usage(msg, "langchain")


def test_negative_reasoning(load):
    msg = load("langchain_openai_reasoning")
    msg["usage_metadata"]["output_token_details"]["reasoning"] = -1
    with pytest.raises(
        ExtractionError, match=r"^usage_metadata\.output_token_details\.reasoning: .* got -1$"
    ):
        extract_usage(msg, "langchain")


def test_wrong_type_in_dumpd_names_kwargs(load):
    msg = load("langchain_google_dumpd")
    msg["kwargs"]["usage_metadata"]["input_tokens"] = "1100"
    with pytest.raises(ExtractionError, match=r"^kwargs\.usage_metadata\.input_tokens: .* got '1100'$"):
        extract_usage(msg, "langchain")


def test_cache_read_above_input(load):
    msg = load("langchain_openai_reasoning")
    msg["usage_metadata"]["input_token_details"]["cache_read"] = 2000
    with pytest.raises(UsageError, match=r"cache_read_tokens \(2000\) exceeds input_tokens \(1117\)"):
        extract_usage(msg, "langchain")
