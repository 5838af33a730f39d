"""Langfuse usage: keys are DISJOINT buckets; costline input/output are the sums of their buckets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costline.core.usage import Usage
from costline.errors import ExtractionError, UsageError
from costline.extract import extract_stream_usage, extract_usage


def test_legacy_usage_with_costs(load):
    got = extract_usage(load("langfuse_observation_legacy"), "langfuse")
    # total 275 = 230 + 45 is ignored (never added)
    assert got.usage == Usage.of(input_tokens=230, output_tokens=45)
    assert got.model == "gpt-3.5-turbo-0125"
    assert got.provider is None
    # inputCost / outputCost / totalCost floats converted through repr
    assert got.provided_cost == {
        "input": Decimal("0.000115"),
        "output": Decimal("0.0000675"),
        "total": Decimal("0.0001825"),
    }


def test_usage_details_cached_and_reasoning(load):
    got = extract_usage(load("langfuse_observation_cached"), "langfuse")
    # disjoint buckets: input = 400 uncached + 1600 cache read = 2000;
    # output = 120 + 380 reasoning = 500 (Langfuse prices both keys separately)
    assert got.usage == Usage.of(
        input_tokens=2000, cache_read_tokens=1600, output_tokens=500, output_reasoning_tokens=380
    )
    # no total in costDetails: it is the sum 0.00044 + 0.00044 + 0.000528 + 0.001672 = 0.00308
    assert got.provided_cost is not None
    assert got.provided_cost["total"] == Decimal("0.00308")
    assert got.provided_cost["output_reasoning"] == Decimal("0.001672")


def test_anthropic_style_keys_with_ttl(load):
    got = extract_usage(load("langfuse_usage_details_anthropic"), "langfuse")
    # input = 100 + 500 read + 1500 (5m) + 500 (1h) = 2600; cache write = 1500 + 500 = 2000
    assert got.usage == Usage.of(
        input_tokens=2600,
        cache_read_tokens=500,
        cache_write_tokens=2000,
        cache_write_5m_tokens=1500,
        cache_write_1h_tokens=500,
        output_tokens=250,
    )
    assert got.provided_cost == {"total": Decimal("0.0645")}


def test_openai_shaped_details_are_inclusive(load):
    got = extract_usage(load("langfuse_usage_details_openai_shape"), "langfuse")
    # nested OpenAI details: prompt/completion already include cached/reasoning (Langfuse does the same)
    assert got.usage == Usage.of(
        input_tokens=1117, cache_read_tokens=1024, output_tokens=1846, output_reasoning_tokens=1600
    )


def test_characters_unit(load):
    got = extract_usage(load("langfuse_usage_characters"), "langfuse")
    assert got.usage == Usage.of(input_characters=1234)
    assert got.model == "tts-1"


def test_bare_legacy_dict_and_aliases():
    got = extract_usage({"input": 50, "output": 10, "total": 999, "unit": "TOKENS"}, "langfuse")
    # the disagreeing total (999 vs 60) is ignored
    assert got.usage == Usage.of(input_tokens=50, output_tokens=10)
    got = extract_usage(
        {"input": 10, "input_cached_tokens": 90, "input_audio": 5, "output": 7, "output_audio_tokens": 3},
        "langfuse",
    )
    # input = 10 + 90 + 5 = 105; output = 7 + 3 = 10
    assert got.usage == Usage.of(
        input_tokens=105,
        cache_read_tokens=90,
        input_audio_tokens=5,
        output_tokens=10,
        output_audio_tokens=3,
    )


def test_langchain_handler_keys():
    # Langfuse's LangChain handler: input_token_details -> input_<key>, subtracted from input
    got = extract_usage(
        {"input": 100, "input_cache_read": 900, "output": 20, "output_reasoning": 80}, "langfuse"
    )
    # input = 100 + 900 = 1000; output = 20 + 80 = 100
    assert got.usage == Usage.of(
        input_tokens=1000, cache_read_tokens=900, output_tokens=100, output_reasoning_tokens=80
    )


def test_modality_keys():
    got = extract_usage(
        {"input": 10, "input_modality_AUDIO": 40, "cached_modality_TEXT": 50, "output": 5}, "langfuse"
    )
    # input = 10 + 40 + 50 = 100; the cached TEXT bucket is both cache_read and input text
    assert got.usage == Usage.of(
        input_tokens=100,
        input_audio_tokens=40,
        cache_read_tokens=50,
        cache_text_read_tokens=50,
        input_text_tokens=50,
        output_tokens=5,
    )


def test_seconds_requests_and_images():
    # Decimal via repr: 12.5 s of input audio
    assert extract_usage({"input": 12.5, "unit": "SECONDS"}, "langfuse").usage == Usage.of(
        input_audio_seconds=Decimal("12.5")
    )
    # 1500 ms = 1.5 s
    assert extract_usage({"input": 1500, "unit": "MILLISECONDS"}, "langfuse").usage == Usage.of(
        input_audio_seconds=Decimal("1.5")
    )
    # a bare total of seconds has no direction
    assert extract_usage({"total": 30, "unit": "SECONDS"}, "langfuse").usage == Usage.of(audio_seconds=30)
    assert extract_usage({"total": 1, "unit": "REQUESTS"}, "langfuse").usage == Usage.of(requests=1)
    assert extract_usage({"output": 2, "unit": "IMAGES"}, "langfuse").usage == Usage.of(output_images=2)


def test_non_token_costline_units_pass_through():
    got = extract_usage({"input": 10, "output": 5, "web_searches": 3}, "langfuse")
    assert got.usage == Usage.of(input_tokens=10, output_tokens=5, web_searches=3)


def test_stream_last_update_wins(load):
    updates = [{"usage_details": {"input": 10}}, load("langfuse_observation_cached")]
    assert extract_stream_usage(updates, "langfuse").usage["input_tokens"] == 2000  # 400 + 1600


# -- bad input ---------------------------------------------------------------------------------------------


def test_missing_usage():
    with pytest.raises(ExtractionError, match=r"^usage_details: required field is missing"):
        extract_usage({"model": "gpt-4o"}, "langfuse")


def test_total_only_tokens_cannot_be_priced():
    with pytest.raises(ExtractionError, match=r"^usage\.total: a token total without input/output"):
        extract_usage({"usage": {"total": 100, "unit": "TOKENS"}}, "langfuse")


def test_negative_bucket(load):
    obs = load("langfuse_observation_cached")
    obs["usageDetails"]["input_cache_read"] = -1600
    with pytest.raises(ExtractionError, match=r"^usageDetails\.input_cache_read: .* got -1600$"):
        extract_usage(obs, "langfuse")


def test_wrong_type_bucket(load):
    obs = load("langfuse_observation_legacy")
    obs["usage"]["output"] = 45.5
    with pytest.raises(ExtractionError, match=r"^usage\.output: expected a non-negative integer, got 45\.5$"):
        extract_usage(obs, "langfuse")


def test_unknown_key():
    with pytest.raises(ExtractionError, match=r"^usage_details\.foo: unknown Langfuse usage type"):
        extract_usage({"usage_details": {"input": 1, "foo": 2}}, "langfuse")


def test_unknown_unit():
    with pytest.raises(ExtractionError, match=r"^unit: unknown unit 'PARSECS'"):
        extract_usage({"input": 1, "unit": "PARSECS"}, "langfuse")


def test_subset_above_parent():
    # reasoning given through an OpenAI-shaped dict above its completion total
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "completion_tokens_details": {"reasoning_tokens": 9},
    }
    with pytest.raises(UsageError, match=r"output_reasoning_tokens \(9\) exceeds output_tokens \(5\)"):
        extract_usage(usage, "langfuse")
