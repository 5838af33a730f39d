"""Google Gemini usageMetadata: candidates EXCLUDE thoughts, prompt INCLUDES cached content."""

from __future__ import annotations

import pytest

from costline.core.usage import Usage
from costline.errors import ExtractionError, UsageError
from costline.extract import extract_stream_usage, extract_usage


def test_plain(load):
    got = extract_usage(load("google_plain"), "google")
    # TEXT output details are not kept (they leave out thinking text); TEXT input details are
    assert got.usage == Usage.of(input_tokens=9, input_text_tokens=9, output_tokens=16)
    assert got.model == "gemini-2.0-flash"
    assert got.provider == "google"


def test_cached_with_modalities(load):
    got = extract_usage(load("google_cached"), "gemini")
    # promptTokenCount 40500 includes cachedContentTokenCount 32768 (= TEXT 768 + AUDIO 32000)
    assert got.usage == Usage.of(
        input_tokens=40500,
        input_text_tokens=8500,
        input_audio_tokens=32000,
        cache_read_tokens=32768,
        cache_text_read_tokens=768,
        cache_audio_read_tokens=32000,
        output_tokens=420,
    )


def test_thinking_and_tool_use_prompt(load):
    got = extract_usage(load("google_thinking_search"), "vertex_ai")
    # input = prompt 12 + toolUsePrompt 335 = 347; output = candidates 95 + thoughts 1200 = 1295
    # (347 + 1295 = 1642 = totalTokenCount)
    assert got.usage == Usage.of(
        input_tokens=347,
        input_text_tokens=347,
        output_tokens=1295,
        output_reasoning_tokens=1200,
    )
    assert got.model == "gemini-2.5-pro"


def test_image_output(load):
    got = extract_usage(load("google_image_output"), "google")
    assert got.usage == Usage.of(
        input_tokens=1300,
        input_text_tokens=10,
        input_image_tokens=1290,
        output_tokens=1300,
        output_image_tokens=1290,
    )


def test_python_sdk_snake_case(load):
    got = extract_usage(load("google_sdk_snake"), "google")
    # output = candidates 4 + thoughts 30 = 34; the null fields read as absent
    assert got.usage == Usage.of(
        input_tokens=1100,
        input_text_tokens=1100,
        cache_read_tokens=1024,
        output_tokens=34,
        output_reasoning_tokens=30,
    )
    assert got.model == "gemini-2.5-flash-lite"


def test_bare_usage_metadata(load):
    meta = load("google_thinking_search")["usageMetadata"]
    assert extract_usage(meta, "google").usage["output_tokens"] == 1295  # 95 + 1200


def test_stream_last_usage_metadata_wins(load):
    got = extract_stream_usage(load("google_stream"), "google")
    # last chunk: prompt 8, candidates 40 + thoughts 510 = 550 output
    assert got.usage == Usage.of(
        input_tokens=8, input_text_tokens=8, output_tokens=550, output_reasoning_tokens=510
    )
    assert got.model == "gemini-2.5-flash"


# -- bad input ---------------------------------------------------------------------------------------------


def test_missing_usage_metadata(load):
    body = load("google_plain")
    del body["usageMetadata"]
    with pytest.raises(ExtractionError, match=r"^usageMetadata: required field is missing"):
        extract_usage(body, "google")


def test_missing_prompt_token_count(load):
    body = load("google_plain")
    del body["usageMetadata"]["promptTokenCount"]
    with pytest.raises(ExtractionError, match=r"^usageMetadata\.promptTokenCount: required field is missing"):
        extract_usage(body, "google")


def test_negative_thoughts(load):
    body = load("google_thinking_search")
    body["usageMetadata"]["thoughtsTokenCount"] = -1200
    with pytest.raises(ExtractionError, match=r"^usageMetadata\.thoughtsTokenCount: .* got -1200$"):
        extract_usage(body, "google")


def test_wrong_type_in_modality_details(load):
    body = load("google_cached")
    body["usageMetadata"]["promptTokensDetails"][1]["tokenCount"] = 3.5
    with pytest.raises(
        ExtractionError, match=r"^usageMetadata\.promptTokensDetails\[1\]\.tokenCount: .* got 3\.5$"
    ):
        extract_usage(body, "google")


def test_snake_case_error_names_snake_field(load):
    body = load("google_sdk_snake")
    body["usage_metadata"]["cached_content_token_count"] = "1024"
    with pytest.raises(ExtractionError, match=r"^usage_metadata\.cached_content_token_count: "):
        extract_usage(body, "google")


def test_snake_case_missing_field_named_in_snake_case(load):
    body = load("google_sdk_snake")
    del body["usage_metadata"]["prompt_token_count"]
    with pytest.raises(ExtractionError, match=r"^usage_metadata\.prompt_token_count: required field"):
        extract_usage(body, "google")


def test_cached_above_prompt(load):
    body = load("google_plain")
    body["usageMetadata"]["cachedContentTokenCount"] = 50
    with pytest.raises(UsageError, match=r"cache_read_tokens \(50\) exceeds input_tokens \(9\)"):
        extract_usage(body, "google")
