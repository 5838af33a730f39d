from decimal import Decimal

import pytest

from costline.core.usage import Usage
from costline.errors import UsageError


def test_inclusive_usage_keeps_quantities_and_drops_zeros() -> None:
    usage = Usage.of(input_tokens=1000, cache_read_tokens=400, cache_write_tokens=0, output_tokens=200)
    assert usage.to_dict() == {"input_tokens": 1000, "cache_read_tokens": 400, "output_tokens": 200}
    assert usage.units == frozenset({"input_tokens", "cache_read_tokens", "output_tokens"})


def test_subset_above_parent_names_both_numbers() -> None:
    with pytest.raises(UsageError, match=r"cache_read_tokens \(150\) exceeds input_tokens \(100\)"):
        Usage.of(input_tokens=100, cache_read_tokens=150)


def test_reasoning_above_output_names_both_numbers() -> None:
    with pytest.raises(UsageError, match=r"output_reasoning_tokens \(60\) exceeds output_tokens \(50\)"):
        Usage.of(output_tokens=50, output_reasoning_tokens=60)


def test_disjoint_subsets_summing_above_parent() -> None:
    # cache reads and cache writes are disjoint parts of the input: 80 + 30 = 110 > 100
    with pytest.raises(UsageError, match=r"cache_read_tokens \(80\) \+ cache_write_tokens \(30\) = 110 exceeds"):
        Usage.of(input_tokens=100, cache_read_tokens=80, cache_write_tokens=30)


def test_ttl_parts_cannot_exceed_cache_write() -> None:
    with pytest.raises(UsageError, match="exceeds cache_write_tokens"):
        Usage.of(input_tokens=100, cache_write_tokens=10, cache_write_5m_tokens=6, cache_write_1h_tokens=6)


def test_subset_without_its_root_is_an_error() -> None:
    with pytest.raises(UsageError, match=r"cache_read_tokens .50. was given without input_tokens"):
        Usage.of(cache_read_tokens=50)


@pytest.mark.parametrize("bad", [-1, "ten", True, float("nan"), float("inf"), None])
def test_bad_quantities(bad: object) -> None:
    with pytest.raises(UsageError, match="input_tokens"):
        Usage.of(input_tokens=bad)


def test_fractional_tokens_refused_but_fractional_seconds_kept() -> None:
    with pytest.raises(UsageError, match="whole number"):
        Usage.of(input_tokens=Decimal("10.5"))
    usage = Usage.of(audio_seconds=2.4, input_audio_seconds=2.4)
    # a float from outside is converted once through repr: 2.4, not 2.399999...
    assert usage["audio_seconds"] == Decimal("2.4")


def test_integral_float_becomes_int() -> None:
    assert Usage.of(input_tokens=12.0)["input_tokens"] == 12
    assert isinstance(Usage.of(input_tokens=12.0)["input_tokens"], int)


def test_unknown_unit() -> None:
    with pytest.raises(UsageError, match="unknown usage unit 'prompt_tokens'"):
        Usage({"prompt_tokens": 3})


def test_addition_sums_per_unit() -> None:
    a = Usage.of(input_tokens=10, cache_read_tokens=5, output_tokens=1)
    b = Usage.of(input_tokens=20, output_tokens=2, output_reasoning_tokens=1)
    assert (a + b).to_dict() == {
        "input_tokens": 30, "cache_read_tokens": 5, "output_tokens": 3, "output_reasoning_tokens": 1,
    }
