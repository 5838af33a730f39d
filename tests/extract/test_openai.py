"""OpenAI and OpenAI-compatible payloads: Chat Completions, Responses, embeddings, realtime, streams."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from costline.core.usage import Usage
from costline.errors import ExtractionError, UsageError
from costline.extract import extract_stream_usage, extract_usage


def test_chat_plain(load):
    got = extract_usage(load("openai_chat_plain"), "openai")
    # every detail is 0, so only the two roots remain
    assert got.usage == Usage.of(input_tokens=19, output_tokens=10)
    assert got.model == "gpt-4o-2024-08-06"
    assert got.provider == "openai"
    assert got.provided_cost is None


def test_chat_cached(load):
    got = extract_usage(load("openai_chat_cached"), "openai")
    # prompt_tokens already includes cached_tokens: 2006 input of which 1920 cached
    assert got.usage == Usage.of(input_tokens=2006, cache_read_tokens=1920, output_tokens=300)
    assert got.model == "gpt-4o-mini-2024-07-18"


def test_chat_reasoning_and_predictions(load):
    got = extract_usage(load("openai_chat_reasoning"), "openai")
    # completion_tokens 1846 already includes reasoning 1600 and accepted (12) / rejected (30) predictions:
    # they are billed as output and not added again
    assert got.usage == Usage.of(
        input_tokens=1117, cache_read_tokens=1024, output_tokens=1846, output_reasoning_tokens=1600
    )


def test_chat_audio_modalities(load):
    got = extract_usage(load("openai_chat_audio"), "openai")
    # prompt 88 = audio 64 + text 24; completion 412 = audio 380 + text 32
    assert got.usage == Usage.of(
        input_tokens=88,
        input_audio_tokens=64,
        input_text_tokens=24,
        output_tokens=412,
        output_audio_tokens=380,
        output_text_tokens=32,
    )


def test_bare_usage_object_is_accepted(load):
    usage = load("openai_chat_cached")["usage"]
    assert extract_usage(usage, "openai").usage == Usage.of(
        input_tokens=2006, cache_read_tokens=1920, output_tokens=300
    )
    assert extract_usage(usage, "openai").model is None


def test_responses_api_reasoning_cache_and_web_search(load):
    got = extract_usage(load("openai_responses_reasoning"), "openai")
    # input_tokens 5210 includes 4096 cached; output_tokens 1375 includes 1088 reasoning;
    # the output list holds two web_search_call items -> 2 web searches
    assert got.usage == Usage.of(
        input_tokens=5210,
        cache_read_tokens=4096,
        output_tokens=1375,
        output_reasoning_tokens=1088,
        web_searches=2,
    )
    assert got.model == "o4-mini-2025-04-16"


def test_embeddings_have_input_only(load):
    got = extract_usage(load("openai_embeddings"), "openai")
    assert got.usage == Usage.of(input_tokens=8)
    assert got.model == "text-embedding-3-small"
    # a bare embeddings usage object (total == prompt, no completion_tokens) is accepted too
    assert extract_usage({"prompt_tokens": 8, "total_tokens": 8}, "openai").usage == Usage.of(input_tokens=8)


def test_realtime_response_done_with_cached_modalities(load):
    got = extract_usage(load("openai_realtime_response_done"), "openai")
    # input 1200 = text 400 + audio 800; cached 768 = text 256 + audio 512; output 330 = text 60 + audio 270
    assert got.usage == Usage.of(
        input_tokens=1200,
        input_text_tokens=400,
        input_audio_tokens=800,
        cache_read_tokens=768,
        cache_text_read_tokens=256,
        cache_audio_read_tokens=512,
        output_tokens=330,
        output_text_tokens=60,
        output_audio_tokens=270,
    )


def test_whisper_duration_usage():
    got = extract_usage({"text": "Hello.", "usage": {"type": "duration", "seconds": 3}}, "openai")
    assert got.usage == Usage.of(input_audio_seconds=3)


def test_openrouter_cost_is_decimal_via_repr(load):
    got = extract_usage(load("openrouter_chat_cost"), "openrouter")
    assert got.usage == Usage.of(input_tokens=3120, cache_read_tokens=2800, output_tokens=250)
    # the float 0.0081648 converted through repr, not its binary expansion
    assert got.provided_cost == {"total": Decimal("0.0081648")}
    assert got.provider == "openrouter"
    assert got.model == "anthropic/claude-sonnet-4"


def test_xai_reasoning_outside_completion_is_added(load):
    got = extract_usage(load("xai_chat_reasoning"), "xai")
    # xAI: total 135 = prompt 32 + completion 9 + reasoning 94, so reasoning is additive:
    # output_tokens = 9 + 94 = 103
    assert got.usage == Usage.of(
        input_tokens=32,
        input_text_tokens=32,
        cache_read_tokens=6,
        output_tokens=103,
        output_reasoning_tokens=94,
    )
    # 2553000 ticks / 10^10 ticks per USD = 0.0002553 USD
    assert got.provided_cost == {"total": Decimal("0.0002553")}
    assert got.provider == "x-ai"


def test_deepseek_cache_hit_tokens(load):
    got = extract_usage(load("deepseek_chat_cache"), "deepseek")
    # prompt_tokens 1530 = hit 1280 + miss 250;
    # reasoning 700 is inside completion 820 (total 2350 = 1530 + 820)
    assert got.usage == Usage.of(
        input_tokens=1530, cache_read_tokens=1280, output_tokens=820, output_reasoning_tokens=700
    )
    assert got.provider == "deepseek"


def test_azure_provider_id_and_case_insensitive_name(load):
    assert extract_usage(load("openai_chat_plain"), "Azure_OpenAI").provider == "azure"


def test_stream_takes_last_usage(load):
    got = extract_stream_usage(load("openai_chat_stream"), "openai")
    # usage is null on every chunk but the last: 1536 input of which 1408 cached, 4 output
    assert got.usage == Usage.of(input_tokens=1536, cache_read_tokens=1408, output_tokens=4)
    assert got.model == "gpt-4.1-mini-2025-04-14"


def test_responses_stream_completed_event(load):
    got = extract_stream_usage(load("openai_responses_stream"), "openai")
    # response.completed: 13 input, 203 output of which 192 reasoning
    assert got.usage == Usage.of(input_tokens=13, output_tokens=203, output_reasoning_tokens=192)
    assert got.model == "gpt-5-mini-2025-08-07"


def test_groq_stream_usage_in_x_groq(load):
    got = extract_stream_usage(load("groq_chat_stream"), "groq")
    # the float timings (queue_time, prompt_time ...) are ignored
    assert got.usage == Usage.of(input_tokens=48, output_tokens=5)
    assert got.provider == "groq"


def test_stream_without_usage_says_how_to_fix(load):
    with pytest.raises(ExtractionError, match=r"stream_options=\{'include_usage': True\}"):
        extract_stream_usage(load("openai_chat_stream_no_usage"), "openai")


def test_stream_error_names_the_chunk(load):
    chunks = load("openai_chat_stream")
    chunks[-1]["usage"]["completion_tokens"] = "4"
    with pytest.raises(ExtractionError, match=r"^chunk\[4\]\.usage\.completion_tokens: .*'4'"):
        extract_stream_usage(chunks, "openai")


# -- bad input ---------------------------------------------------------------------------------------------


def test_missing_usage(load):
    body = load("openai_chat_plain")
    del body["usage"]
    with pytest.raises(ExtractionError, match=r"^usage: required field is missing"):
        extract_usage(body, "openai")


def test_missing_prompt_tokens(load):
    body = load("openai_chat_plain")
    del body["usage"]["prompt_tokens"]
    with pytest.raises(ExtractionError, match=r"^usage\.prompt_tokens: required field is missing"):
        extract_usage(body, "openai")


def test_missing_completion_tokens_on_chat(load):
    body = load("openai_chat_plain")
    del body["usage"]["completion_tokens"]
    with pytest.raises(ExtractionError, match=r"^usage\.completion_tokens: required field is missing"):
        extract_usage(body, "openai")


def test_negative_cached_tokens(load):
    body = load("openai_chat_cached")
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = -3
    with pytest.raises(
        ExtractionError,
        match=r"^usage\.prompt_tokens_details\.cached_tokens: expected a non-negative integer, got -3$",
    ):
        extract_usage(body, "openai")


@pytest.mark.parametrize(
    ("value", "shown"),
    [("2006", "'2006'"), (2006.5, "2006.5"), (True, "a boolean"), ([2006], "list"), (float("nan"), "nan")],
)
def test_wrong_types(load, value, shown):
    body = load("openai_chat_cached")
    body["usage"]["prompt_tokens"] = value
    with pytest.raises(
        ExtractionError, match=rf"^usage\.prompt_tokens: expected a non-negative integer, got {shown}"
    ):
        extract_usage(body, "openai")


def test_integer_valued_float_is_accepted(load):
    body = load("openai_chat_cached")
    body["usage"]["prompt_tokens"] = 2006.0
    got = extract_usage(body, "openai").usage
    assert got["input_tokens"] == 2006
    assert type(got["input_tokens"]) is int


def test_details_of_wrong_type(load):
    body = load("openai_chat_cached")
    body["usage"]["prompt_tokens_details"] = [1920]
    with pytest.raises(ExtractionError, match=r"^usage\.prompt_tokens_details: expected an object, got list"):
        extract_usage(body, "openai")


def test_subset_above_parent_names_both_numbers(load):
    body = copy.deepcopy(load("openai_chat_cached"))
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = 5000
    with pytest.raises(UsageError, match=r"cache_read_tokens \(5000\) exceeds input_tokens \(2006\)"):
        extract_usage(body, "openai")


def test_reasoning_above_completion_with_inclusive_total_is_an_error(load):
    body = load("openai_chat_reasoning")
    # total stays prompt + completion (2963 = 1117 + 1846), so reasoning cannot be additive here
    body["usage"]["completion_tokens_details"]["reasoning_tokens"] = 2000
    with pytest.raises(UsageError, match=r"output_reasoning_tokens \(2000\) exceeds output_tokens \(1846\)"):
        extract_usage(body, "openai")


def test_openrouter_cost_of_wrong_type(load):
    body = load("openrouter_chat_cost")
    body["usage"]["cost"] = "cheap"
    with pytest.raises(ExtractionError, match=r"^usage\.cost: 'cheap' is not a number"):
        extract_usage(body, "openrouter")
