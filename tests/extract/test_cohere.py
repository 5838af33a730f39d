"""Cohere payloads: billed_units (charged) are preferred over tokens (seen by the model)."""

from __future__ import annotations

import pytest

from costline.core.usage import Usage
from costline.errors import ExtractionError
from costline.extract import extract_stream_usage, extract_usage


def test_v2_chat_prefers_billed_units(load):
    got = extract_usage(load("cohere_v2_chat"), "cohere")
    # billed 17 in / 245 out (the 215 input "tokens" include Cohere's prompt template, not billed)
    assert got.usage == Usage.of(input_tokens=17, output_tokens=245)
    assert got.provider == "cohere"
    assert got.model is None


def test_v2_chat_falls_back_to_tokens(load):
    body = load("cohere_v2_chat")
    del body["usage"]["billed_units"]
    assert extract_usage(body, "cohere").usage == Usage.of(input_tokens=215, output_tokens=245)


def test_v1_chat_meta(load):
    assert extract_usage(load("cohere_v1_chat"), "cohere").usage == Usage.of(input_tokens=8, output_tokens=7)


def test_embed_input_only(load):
    assert extract_usage(load("cohere_embed"), "cohere").usage == Usage.of(input_tokens=2)


def test_rerank_search_units(load):
    assert extract_usage(load("cohere_rerank"), "cohere").usage == Usage.of(rerank_searches=1)


def test_bare_usage_object(load):
    usage = load("cohere_v2_chat")["usage"]
    assert extract_usage(usage, "cohere").usage == Usage.of(input_tokens=17, output_tokens=245)


def test_v2_stream_message_end(load):
    got = extract_stream_usage(load("cohere_v2_stream"), "cohere")
    assert got.usage == Usage.of(input_tokens=3, output_tokens=2)


def test_v1_stream_end(load):
    got = extract_stream_usage(load("cohere_v1_stream"), "cohere")
    assert got.usage == Usage.of(input_tokens=5, output_tokens=2)


# -- bad input ---------------------------------------------------------------------------------------------


def test_missing_usage(load):
    body = load("cohere_v2_chat")
    del body["usage"]
    with pytest.raises(ExtractionError, match=r"^usage: required field is missing"):
        extract_usage(body, "cohere")


def test_missing_input_in_tokens_fallback(load):
    body = load("cohere_v2_chat")
    del body["usage"]["billed_units"]
    del body["usage"]["tokens"]["input_tokens"]
    with pytest.raises(ExtractionError, match=r"^usage\.tokens\.input_tokens: required field is missing"):
        extract_usage(body, "cohere")


def test_negative_billed_output(load):
    body = load("cohere_v2_chat")
    body["usage"]["billed_units"]["output_tokens"] = -245
    with pytest.raises(ExtractionError, match=r"^usage\.billed_units\.output_tokens: .* got -245$"):
        extract_usage(body, "cohere")


def test_wrong_type_search_units(load):
    body = load("cohere_rerank")
    body["meta"]["billed_units"]["search_units"] = "1"
    with pytest.raises(ExtractionError, match=r"^meta\.billed_units\.search_units: .* got '1'$"):
        extract_usage(body, "cohere")


def test_stream_error_names_chunk(load):
    events = load("cohere_v2_stream")
    events[-1]["delta"]["usage"]["billed_units"]["input_tokens"] = 2.5
    with pytest.raises(
        ExtractionError, match=r"^chunk\[5\]\.delta\.usage\.billed_units\.input_tokens: .* 2\.5$"
    ):
        extract_stream_usage(events, "cohere")
