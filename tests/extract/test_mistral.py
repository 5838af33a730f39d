"""Mistral payloads: OpenAI-shaped chat/embeddings, plus audio seconds and OCR pages."""

from __future__ import annotations

import pytest

from costline.core.usage import Usage
from costline.errors import ExtractionError, UsageError
from costline.extract import extract_stream_usage, extract_usage


def test_chat_plain(load):
    got = extract_usage(load("mistral_chat"), "mistral")
    assert got.usage == Usage.of(input_tokens=16, output_tokens=34)
    assert got.model == "mistral-large-latest"
    assert got.provider == "mistral"


def test_chat_cached(load):
    got = extract_usage(load("mistral_chat_cached"), "mistral")
    # prompt_tokens 4200 includes 4096 cached
    assert got.usage == Usage.of(input_tokens=4200, cache_read_tokens=4096, output_tokens=64)


def test_transcription_audio_seconds(load):
    got = extract_usage(load("mistral_transcription"), "mistral")
    assert got.usage == Usage.of(input_tokens=4, output_tokens=635, input_audio_seconds=203)
    assert got.model == "voxtral-mini-2507"


def test_ocr_pages(load):
    got = extract_usage(load("mistral_ocr"), "mistral")
    assert got.usage == Usage.of(input_document_pages=2)
    assert got.model == "mistral-ocr-2505-completion"


def test_embeddings(load):
    assert extract_usage(load("mistral_embeddings"), "mistral").usage == Usage.of(input_tokens=15)


def test_stream_sdk_events(load):
    got = extract_stream_usage(load("mistral_stream"), "mistral")
    assert got.usage == Usage.of(input_tokens=10, output_tokens=5)
    assert got.model == "mistral-small-latest"


def test_stream_raw_sse_chunks(load):
    chunks = [event["data"] for event in load("mistral_stream")]
    assert extract_stream_usage(chunks, "mistral").usage == Usage.of(input_tokens=10, output_tokens=5)


# -- bad input ---------------------------------------------------------------------------------------------


def test_missing_completion_tokens(load):
    body = load("mistral_chat")
    del body["usage"]["completion_tokens"]
    with pytest.raises(ExtractionError, match=r"^usage\.completion_tokens: required field is missing"):
        extract_usage(body, "mistral")


def test_negative_prompt_tokens(load):
    body = load("mistral_chat")
    body["usage"]["prompt_tokens"] = -16
    with pytest.raises(ExtractionError, match=r"^usage\.prompt_tokens: .* got -16$"):
        extract_usage(body, "mistral")


def test_audio_seconds_wrong_type(load):
    body = load("mistral_transcription")
    body["usage"]["prompt_audio_seconds"] = "203s"
    with pytest.raises(ExtractionError, match=r"^usage\.prompt_audio_seconds: '203s' is not a number"):
        extract_usage(body, "mistral")


def test_ocr_missing_pages(load):
    body = load("mistral_ocr")
    del body["usage_info"]["pages_processed"]
    with pytest.raises(ExtractionError, match=r"^usage_info\.pages_processed: required field is missing"):
        extract_usage(body, "mistral")


def test_cached_above_prompt(load):
    body = load("mistral_chat_cached")
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = 5000
    with pytest.raises(UsageError, match=r"\(5000\) exceeds input_tokens \(4200\)"):
        extract_usage(body, "mistral")
