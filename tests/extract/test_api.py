"""The public API: format names, dispatch, and that no extraction ever yields a float quantity."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costline.errors import ExtractionError
from costline.extract import FORMATS, Extracted, extract_stream_usage, extract_usage

PAYLOADS = Path(__file__).resolve().parent.parent / "data" / "payloads"
_PREFIX_FORMAT = {
    "openai": "openai",
    "openrouter": "openrouter",
    "xai": "xai",
    "deepseek": "deepseek",
    "groq": "groq",
    "anthropic": "anthropic",
    "google": "google",
    "bedrock": "bedrock",
    "cohere": "cohere",
    "mistral": "mistral",
    "langchain": "langchain",
    "langfuse": "langfuse",
}


def test_formats_lists_every_accepted_name():
    expected = {
        "openai", "azure", "azure_openai", "openrouter", "deepseek", "groq", "together", "xai", "x-ai",
        "fireworks", "anthropic", "google", "gemini", "vertex", "vertex_ai", "aws", "bedrock",
        "bedrock_converse", "cohere", "mistral", "langchain", "langfuse",
    }  # fmt: skip
    assert set(FORMATS) == expected


def test_unknown_provider_lists_accepted_names():
    with pytest.raises(
        ExtractionError, match=r"unknown provider format 'ollama'; accepted: openai, azure, .*langfuse"
    ):
        extract_usage({"usage": {}}, "ollama")


def test_payload_must_be_a_mapping():
    with pytest.raises(ExtractionError, match=r"^payload: expected a JSON object"):
        extract_usage([1, 2], "openai")  # type: ignore[arg-type]


def test_stream_needs_an_iterable_of_chunks():
    with pytest.raises(ExtractionError, match=r"^chunks: expected an iterable"):
        extract_stream_usage({"usage": {"prompt_tokens": 1, "completion_tokens": 1}}, "openai")  # type: ignore[arg-type]
    with pytest.raises(ExtractionError, match=r"^chunk\[0\]: expected a JSON object"):
        extract_stream_usage(["data: {}"], "openai")  # type: ignore[list-item]


def test_empty_stream():
    with pytest.raises(ExtractionError, match="stream contained no usage"):
        extract_stream_usage(iter(()), "anthropic")


def _fixtures() -> list[Path]:
    return sorted(p for p in PAYLOADS.glob("*.json") if not p.stem.endswith("_no_usage"))


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.stem)
def test_no_fixture_yields_a_float(path):
    payload = json.loads(path.read_text(encoding="utf-8"))
    fmt = _PREFIX_FORMAT[path.stem.split("_", 1)[0]]
    got = extract_stream_usage(payload, fmt) if isinstance(payload, list) else extract_usage(payload, fmt)
    assert isinstance(got, Extracted)
    assert got.usage, f"{path.stem}: no usage extracted"
    for unit, value in got.usage.quantities.items():
        assert isinstance(value, int | Decimal), (unit, value)
        assert not isinstance(value, bool), (unit, value)
        if unit.endswith("_tokens"):
            assert type(value) is int, (unit, value)
    for value in (got.provided_cost or {}).values():
        assert isinstance(value, Decimal)


_counts = st.integers(min_value=0, max_value=10**9)


@given(prompt=_counts, cached_share=st.floats(0, 1), completion=_counts, as_float=st.booleans())
def test_openai_counts_are_ints_even_from_integer_floats(prompt, cached_share, completion, as_float):
    cached = int(prompt * cached_share)

    def num(n: int) -> int | float:
        return float(n) if as_float else n

    body = {
        "usage": {
            "prompt_tokens": num(prompt),
            "completion_tokens": num(completion),
            "total_tokens": num(prompt + completion),
            "prompt_tokens_details": {"cached_tokens": num(cached)},
        }
    }
    usage = extract_usage(body, "openai").usage
    assert usage["input_tokens"] == prompt
    assert usage["cache_read_tokens"] == cached
    assert usage["output_tokens"] == completion
    assert all(type(v) is int for v in usage.quantities.values())


@given(
    uncached=_counts,
    written=_counts,
    read=_counts,
    output=_counts,
)
def test_anthropic_and_bedrock_sum_the_disjoint_parts(uncached, written, read, output):
    anthropic = {
        "input_tokens": uncached,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": output,
    }
    bedrock = {
        "inputTokens": uncached,
        "cacheWriteInputTokens": written,
        "cacheReadInputTokens": read,
        "outputTokens": output,
    }
    for payload, fmt in ((anthropic, "anthropic"), ({"usage": bedrock}, "bedrock")):
        usage = extract_usage(payload, fmt).usage
        assert usage["input_tokens"] == uncached + written + read
        assert usage["cache_write_tokens"] == written
        assert usage["cache_read_tokens"] == read
        assert all(type(v) is int for v in usage.quantities.values())
