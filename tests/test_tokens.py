"""Token counting: exact OpenAI encodings, labelled estimates for other models, long text."""

from __future__ import annotations

import warnings
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costline import tokens
from costline.tokens import TokenCount, count_chat_tokens, count_tokens, encoding_for_model

with warnings.catch_warnings():  # bpe-openai 0.1.4 uses the deprecated importlib.resources.open_binary
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai


def raw_ids(text: str, encoding: str) -> list[int]:
    """The encoder without costline in between (special-token text counted as plain text)."""
    return list(bpe_openai.get_encoding(encoding).encode(text, disallowed_special=()))


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3-pro", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-oss-120b", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("azure/gpt-4.1", "o200k_base"),
        ("OpenAI/GPT-4o", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-32k", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("azure/gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("claude-sonnet-4-5", None),
        ("anthropic/claude-3-5-haiku", None),
        ("gemini-2.5-pro", None),
        ("meta-llama/llama-3.1-8b-instruct", None),
        ("o1x", None),
        ("gpt-40", None),
        ("", None),
    ],
)
def test_encoding_for_model(model: str, encoding: str | None) -> None:
    assert encoding_for_model(model) == encoding


# Token ids published in the OpenAI cookbook "How to count tokens with tiktoken" (tiktoken's output), an
# independent check that the shipped encodings are OpenAI's.
COOKBOOK_IDS = [
    ("tiktoken is great!", "o200k_base", [83, 8251, 2488, 382, 2212, 0]),
    ("antidisestablishmentarianism", "cl100k_base", [519, 85342, 34500, 479, 8997, 2191]),
    ("antidisestablishmentarianism", "o200k_base", [493, 129901, 376, 160388, 21203, 2367]),
    ("2 + 2 = 4", "cl100k_base", [17, 489, 220, 17, 284, 220, 19]),
    ("2 + 2 = 4", "o200k_base", [17, 659, 220, 17, 314, 220, 19]),
    ("お誕生日おめでとう", "cl100k_base", [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699]),
    ("お誕生日おめでとう", "o200k_base", [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]),
]
MODEL_FOR = {"o200k_base": "gpt-4o", "cl100k_base": "gpt-4"}


@pytest.mark.parametrize(("text", "encoding", "ids"), COOKBOOK_IDS)
def test_published_token_ids(text: str, encoding: str, ids: list[int]) -> None:
    assert raw_ids(text, encoding) == ids
    counted = count_tokens(text, MODEL_FOR[encoding])
    assert counted == TokenCount(len(ids), True, encoding, f"exact ({encoding})")


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_short_known_counts(model: str) -> None:
    # "Hello", ",", " world", "!" are pre-tokens of their own and each one is a single token in both
    # vocabularies; "hello world" is "hello" + " world".
    assert count_tokens("Hello, world!", model).tokens == 4
    assert count_tokens("hello world", model).tokens == 2
    # cl100k_base: the cookbook's ["t", "ik", "token", " is", " great", "!"]; o200k_base: the 6 ids above
    assert count_tokens("tiktoken is great!", model).tokens == 6


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "claude-sonnet-4-5"])
def test_empty_text_is_zero(model: str) -> None:
    assert count_tokens("", model).tokens == 0


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world!",
        "  leading and trailing spaces  ",
        "line one\nline two\r\n\r\n\tindented\n",
        "def f(x):\n    return x ** 2  # comment\n",
        "naïve café — ünïcödé, 日本語のテキスト, emoji 🎉👍🏽, math ∑∫√",
        "<|endoftext|> is plain text here, as is <|fim_prefix|>",
        "1234567890 12,345.678 3.14159",
        "lone surrogate \ud800 inside",
    ],
)
@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_count_equals_raw_encoder(text: str, encoding: str) -> None:
    assert count_tokens(text, MODEL_FOR[encoding]).tokens == len(raw_ids(text, encoding))


def test_special_token_text_does_not_raise() -> None:
    # encoded as ordinary text: "<", "|", "endo", ... never the single special token, never an error
    counted = count_tokens("<|endoftext|>", "gpt-4o")
    assert counted.tokens > 1
    assert counted.exact


def test_non_openai_model_is_an_estimate() -> None:
    text = "The quick brown fox jumps over the lazy dog."
    counted = count_tokens(text, "claude-sonnet-4-5")
    assert counted.exact is False
    assert counted.encoding == "o200k_base"
    assert counted.method.startswith("estimate")
    assert "claude-sonnet-4-5" in counted.method
    assert counted.tokens == len(raw_ids(text, "o200k_base"))


def test_one_megabyte_text() -> None:
    line = "The quick brown fox jumps over the lazy dog, 42 times; naïve café.\n"
    repeats = 1_000_000 // len(line) + 1
    text = line * repeats
    assert len(text) > 1_000_000  # past what bpe_openai encodes in one call (1,000,000 characters)
    counted = count_tokens(text, "gpt-4o")
    # every line ends in "\n" and the next starts with a letter: a pre-token boundary, so the lines' tokens
    # are independent and the total is repeats × the tokens of one line
    expected = repeats * len(raw_ids(line, "o200k_base"))
    assert counted == TokenCount(expected, True, "o200k_base", "exact (o200k_base)")
    assert count_tokens(text, "gpt-4").tokens == repeats * len(raw_ids(line, "cl100k_base"))


def test_long_text_without_whitespace_is_counted_and_flagged() -> None:
    text = "a" * 1_000_000
    counted = count_tokens(text, "gpt-4o")
    assert counted.tokens > 0
    assert counted.exact is False  # cut where the tokenizer has no boundary
    assert counted.method.startswith("estimate")
    # the tokens of a 1-character-wide alphabet cover at least one and at most all characters each
    assert 0 < counted.tokens <= len(text)


_ALPHABET = st.sampled_from(
    ["a", "B", "z", "é", "日", "7", "0", " ", " ", "  ", "\n", "\r\n", "\t", "/", ".", ",", "'s", "'", "!",
     "\u00a0", "\u0301", "🎉", "-", "_", "(", ")", "ll", "Hello", " world", "\n/", ".\n"]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_ALPHABET, max_size=80), piece=st.integers(min_value=2, max_value=24))
def test_cutting_at_boundaries_keeps_the_count(parts: list[str], piece: int) -> None:
    text = "".join(parts)
    with mock.patch.object(tokens, "_MAX_PIECE", piece):
        for encoding in ("o200k_base", "cl100k_base"):
            count, clean = tokens._count(text, encoding)
            if clean:
                assert count == len(raw_ids(text, encoding)), (text, encoding)
            for cut, _ in tokens._split_points(text):
                assert 0 < cut < len(text)


def test_pieces_respect_the_size_limit() -> None:
    text = ("word " * 30_000) + ("x" * 120_000) + ("\nline" * 20_000)
    start = 0
    for cut, _ in tokens._split_points(text):
        assert 0 < cut - start <= tokens._MAX_PIECE
        start = cut
    assert len(text) - start <= tokens._MAX_PIECE


# The OpenAI cookbook's example conversation, with the prompt_tokens the OpenAI API reported for it:
# 129 for gpt-3.5-turbo and gpt-4 (cl100k_base), 124 for gpt-4o and gpt-4o-mini (o200k_base).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into "
        "plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)]
)
def test_chat_tokens_match_openai_api(model: str, expected: int) -> None:
    counted = count_chat_tokens(COOKBOOK_MESSAGES, model)
    assert counted.tokens == expected
    assert counted.exact


def test_chat_framing_arithmetic() -> None:
    # 3 (reply) + 2 messages × 3 + 1 name + the text of every value
    messages = [{"role": "user", "content": "Hello, world!"}, {"role": "user", "name": "bob", "content": ""}]
    text_tokens = sum(len(raw_ids(v, "o200k_base")) for m in messages for v in m.values())
    counted = count_chat_tokens(messages, "gpt-4o")
    assert counted.tokens == 3 + 2 * 3 + 1 + text_tokens
    assert counted.method.startswith("exact (o200k_base)")
    assert count_chat_tokens([], "gpt-4o").tokens == 3


def test_chat_tokens_for_other_models_are_estimates() -> None:
    counted = count_chat_tokens([{"role": "user", "content": "Hi there"}], "claude-sonnet-4-5")
    assert counted.exact is False
    assert counted.method.startswith("estimate")
    assert counted.encoding == "o200k_base"
