"""The tracker's fast usage path agrees with ``Usage(...)``: same quantities, or the same error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costline.core.usage import Usage
from costline.errors import UsageError
from costline.sdk.fastusage import fast_usage

UNITS = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_5m_tokens",
         "cache_write_1h_tokens", "input_audio_tokens", "cache_audio_read_tokens", "output_reasoning_tokens",
         "input_text_tokens", "requests", "bogus_unit"]

quantity = st.one_of(st.integers(min_value=-3, max_value=2000), st.just(True), st.just("12"), st.just(1.5))


def _outcome(fn: Any, raw: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", dict(fn(raw).quantities)
    except UsageError as exc:
        return "error", str(exc)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(UNITS), quantity, max_size=6))
def test_same_result_as_usage(raw: dict[str, Any]) -> None:
    assert _outcome(fast_usage, raw) == _outcome(Usage, raw)


def test_common_case() -> None:
    usage = fast_usage({"input_tokens": 1000, "cache_read_tokens": 200, "output_tokens": 0})
    assert dict(usage.quantities) == {"input_tokens": 1000, "cache_read_tokens": 200}
    assert usage.units == frozenset({"input_tokens", "cache_read_tokens"})
    with pytest.raises(UsageError, match="cache_read_tokens"):
        fast_usage({"input_tokens": 10, "cache_read_tokens": 20})
