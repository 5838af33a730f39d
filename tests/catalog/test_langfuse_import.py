"""Importing Langfuse model definitions: patterns, dates, usage keys, pricing tiers, and golden costs.

``tests/data/prices/langfuse-subset.json`` holds models copied verbatim from Langfuse's
``worker/src/constants/default-model-prices.json`` (MIT, see ``LICENSE-langfuse`` beside it). Every golden
total below is computed in a comment from the per-token prices published in that file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costline.catalog.imported import ImportResult, read_price_json
from costline.catalog.langfuse import USAGE_KEYS, import_langfuse, infer_provider, usage_condition_units
from costline.core.cost import PricingStatus, calc_cost
from costline.core.price import Condition, PriceRecord, Source, TieredRate
from costline.core.resolve import PriceBook
from costline.core.usage import Usage
from costline.errors import PriceDataError

AT = datetime(2026, 11, 1, tzinfo=UTC)
PRICES = Path(__file__).parents[1] / "data" / "prices"
SUBSET = PRICES / "langfuse-subset.json"
#: the full sample files live next to the repository (../shared), not in it
SHARED = Path(__file__).parents[3] / "shared/data/prices"

D = Decimal


@pytest.fixture(scope="module")
def result() -> ImportResult:
    return import_langfuse(read_price_json(SUBSET), source_name=SUBSET.name)


@pytest.fixture(scope="module")
def by_model(result: ImportResult) -> dict[str, PriceRecord]:
    return {r.model: r for r in result.records}


def cost(record: PriceRecord, attributes: dict[str, str] | None = None, **quantities: int) -> Decimal:
    breakdown = calc_cost(Usage(quantities), record, at=AT, attributes=attributes)
    assert breakdown.status is PricingStatus.PRICED, breakdown.reason
    return breakdown.total


def model(name: str, prices: dict[str, Any], *, pattern: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Langfuse model definition with one default tier."""
    return {
        "id": f"id-{name}",
        "modelName": name,
        "matchPattern": pattern if pattern is not None else f"(?i)^({name})$",
        "pricingTiers": [
            {
                "id": "t0",
                "name": "Standard",
                "isDefault": True,
                "priority": 0,
                "conditions": [],
                "prices": prices,
            }
        ],
        **extra,
    }


def test_subset_is_a_verbatim_copy_of_the_shared_file() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present (the shared sample files live outside the repository)")
    full = {m["modelName"]: m for m in read_price_json(SHARED / "langfuse-default-model-prices.json")}
    subset = read_price_json(SUBSET)
    assert len(subset) >= 15
    for entry in subset:
        assert entry == full[entry["modelName"]], entry["modelName"]


# -- records ---------------------------------------------------------------------------------------------


def test_record_shape(result: ImportResult, by_model: dict[str, PriceRecord]) -> None:
    assert result.format == "langfuse"
    assert result.skipped == ()
    assert len(result.records) == len(read_price_json(SUBSET))
    gpt = by_model["gpt-4o"]
    assert gpt.id == "langfuse:b9854a5c92dc496b997d99d20"
    assert gpt.source is Source.IMPORTED
    assert gpt.source_name == "langfuse-subset.json"
    assert gpt.provider == "openai"
    assert gpt.valid_from is None  # no startDate
    # "(?i)^(openai\/)?(gpt-4o)$" in the file (JSON "\/" is "/"): the (?i) becomes the case flag
    assert gpt.match.kind == "regex"
    assert not gpt.match.case_sensitive
    assert gpt.match.value == "^(openai/)?(gpt-4o)$"
    for name in ("gpt-4o", "GPT-4o", "openai/gpt-4o"):
        assert gpt.match.matches(name, name.lower())
    assert not gpt.match.matches("gpt-4o-mini", "gpt-4o-mini")
    # the equal-price alias family collapses into one unit per bucket
    assert dict(gpt.rates) == {
        "input_tokens": D("2.5"),
        "cache_read_tokens": D("1.25"),
        "output_tokens": D(10),
    }


def test_every_rate_is_a_finite_non_negative_decimal(result: ImportResult) -> None:
    _assert_rates_valid(result.records)


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("gpt-4o", "openai"),
        ("o3", "openai"),
        ("o4-mini", "openai"),
        ("text-embedding-3-small", "openai"),
        ("text-ada-001", "openai"),
        ("davinci-002", "openai"),
        ("ft:gpt-3.5-turbo-1106", "openai"),
        ("chatgpt-4o-latest", "openai"),
        ("whisper-1", "openai"),
        ("tts-1", "openai"),
        ("claude-opus-4-8", "anthropic"),
        ("gemini-2.5-pro", "google"),
        ("gemma-3", "google"),
        ("chat-bison", "google"),
        ("codechat-bison", "google"),
        ("code-gecko", "google"),
        ("text-bison-32k", "google"),
        ("textembedding-gecko", "google"),
        ("llama-3", None),
        ("mistral", None),
    ],
)
def test_infer_provider(name: str, provider: str | None) -> None:
    assert infer_provider(name) == provider


# -- matching and dates ----------------------------------------------------------------------------------


def test_pattern_without_case_flag_is_case_sensitive() -> None:
    data = [
        model("exact-case", {"input": D("1E-6"), "output": D("2E-6")}, pattern="^(openai/)?(Exact-Case)$"),
        model("any-case", {"input": D("1E-6"), "output": D("2E-6")}, pattern="(?i)^(Any-Case)$"),
    ]
    got = import_langfuse(data, source_name="x")
    exact, any_case = got.records
    assert exact.match.case_sensitive
    assert not any_case.match.case_sensitive
    book = PriceBook(got.records)
    assert book.resolve("Exact-Case", at=AT) is exact
    assert book.resolve("openai/Exact-Case", at=AT) is exact
    assert book.resolve("exact-case", at=AT) is None  # Postgres `~` without (?i) is case-sensitive
    assert book.resolve("ANY-case", at=AT) is any_case


def test_start_date_becomes_valid_from() -> None:
    old = model("dated", {"input": D("1E-6"), "output": D("2E-6")}, startDate=None)
    new = model("dated", {"input": D("2E-6"), "output": D("4E-6")}, startDate="2026-06-01T00:00:00.000Z")
    new["id"] = "id-dated-2026"
    naive = model("naive", {"input": D("1E-6")}, startDate="2025-01-02T03:04:05")
    got = import_langfuse([old, new, naive], source_name="x")
    assert got.records[1].valid_from == datetime(2026, 6, 1, tzinfo=UTC)
    assert got.records[2].valid_from == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert got.records[2].valid_from.tzinfo is not None
    book = PriceBook(got.records)
    # before the start date the older price applies, from it on the newer one
    assert book.resolve("dated", at=datetime(2026, 5, 31, tzinfo=UTC)) is got.records[0]
    assert book.resolve("dated", at=AT) is got.records[1]
    # 1000 input × 2e-06 + 100 output × 4e-06 = 0.002 + 0.0004 = 0.0024
    assert cost(got.records[1], input_tokens=1000, output_tokens=100) == D("0.0024")


def test_bad_start_date_is_skipped() -> None:
    got = import_langfuse([model("m", {"input": D(1)}, startDate="next tuesday")], source_name="x")
    assert got.records == ()
    assert "startDate" in got.skipped[0][1]


# -- golden costs ----------------------------------------------------------------------------------------


def test_gpt_4o_golden(by_model: dict[str, PriceRecord]) -> None:
    # gpt-4o: input 2.5e-06, input_cached_tokens 1.25e-06, output 1e-05 (Langfuse's disjoint buckets)
    # 1000 input of which 400 cached, 200 output:
    # 600×2.5e-06 + 400×1.25e-06 + 200×1e-05 = 0.0015 + 0.0005 + 0.002 = 0.004
    assert cost(by_model["gpt-4o"], input_tokens=1000, cache_read_tokens=400, output_tokens=200) == D("0.004")


def test_attribute_tier_golden(by_model: dict[str, PriceRecord]) -> None:
    # gpt-4o "Fast mode" tier (service_tier in [fast, priority]):
    # input 4.25e-06, cached 2.125e-06, output 1.7e-05
    # 600×4.25e-06 + 400×2.125e-06 + 200×1.7e-05 = 0.00255 + 0.00085 + 0.0034 = 0.0068
    gpt = by_model["gpt-4o"]
    for tier in ("fast", "priority"):
        got = cost(gpt, {"service_tier": tier}, input_tokens=1000, cache_read_tokens=400, output_tokens=200)
        assert got == D("0.0068")
    assert cost(
        gpt, {"service_tier": "flex"}, input_tokens=1000, cache_read_tokens=400, output_tokens=200
    ) == D("0.004")
    # claude-opus-4-8 "Fast mode" (speed in [fast]): input 1e-05, output 5e-05
    # 1000×1e-05 + 100×5e-05 = 0.01 + 0.005 = 0.015
    assert cost(by_model["claude-opus-4-8"], {"speed": "fast"}, input_tokens=1000, output_tokens=100) == D(
        "0.015"
    )


def test_six_tiers_golden(by_model: dict[str, PriceRecord]) -> None:
    sol = by_model["gpt-5.6-sol"]
    assert [v.name for v in sol.variants] == [
        "Fast mode · Large context (>272K)",
        "Flex · Large context (>272K)",
        "Fast mode",
        "Flex",
        "Large Context (>272K)",
    ]
    large = Condition("usage", units=("input_tokens",), op="gt", threshold=D(272000))
    assert sol.variants[0].conditions == (
        Condition("attribute", key="service_tier", values=("fast", "priority")),
        large,
    )
    usage = {"input_tokens": 300_000, "cache_read_tokens": 100_000, "output_tokens": 10_000}
    # Standard would be input 5e-06, cached 5e-07, output 3e-05; over 272K prompt tokens:
    # Flex · Large context: 200000×5e-06 + 100000×5e-07 + 10000×2.25e-05 = 1 + 0.05 + 0.225 = 1.275
    assert cost(sol, {"service_tier": "flex"}, **usage) == D("1.275")
    # Fast mode · Large context: 200000×2e-05 + 100000×2e-06 + 10000×9e-05 = 4 + 0.2 + 0.9 = 5.1
    assert cost(sol, {"service_tier": "priority"}, **usage) == D("5.1")
    # Large Context (>272K), no tier: 200000×1e-05 + 100000×1e-06 + 10000×4.5e-05 = 2 + 0.1 + 0.45 = 2.55
    assert cost(sol, None, **usage) == D("2.55")
    # small prompt, flex: 1000×2.5e-06 + 100×1.5e-05 = 0.0025 + 0.0015 = 0.004
    assert cost(sol, {"service_tier": "flex"}, input_tokens=1000, output_tokens=100) == D("0.004")
    # (input|cache_write) counts cache writes: 272001 prompt tokens of which 100000 cache writes is large;
    # 172001×1e-05 + 100000×1.25e-05 = 1.72001 + 1.25 = 2.97001
    assert cost(sol, input_tokens=272_001, cache_write_tokens=100_000) == D("2.97001")
    # exactly 272000 is not > 272000: 272000×5e-06 = 1.36
    assert cost(sol, input_tokens=272_000) == D("1.36")


def test_usage_condition_tier_golden(by_model: dict[str, PriceRecord]) -> None:
    gemini = by_model["gemini-2.5-pro"]
    assert gemini.variants[0].conditions == (
        Condition("usage", units=("input_tokens",), op="gt", threshold=D(200000)),
    )
    # "Large Context" (input|prompt|cached) > 200000: input 2.5e-06, cached 2.5e-07, output 1.5e-05
    # 250000 input of which 50000 cached, 1000 output:
    # 200000×2.5e-06 + 50000×2.5e-07 + 1000×1.5e-05 = 0.5 + 0.0125 + 0.015 = 0.5275
    assert cost(gemini, input_tokens=250_000, cache_read_tokens=50_000, output_tokens=1000) == D("0.5275")
    # 150000 uncached + 60000 cached = 210000 > 200000: the cached tokens count toward the condition
    # 150000×2.5e-06 + 60000×2.5e-07 = 0.375 + 0.015 = 0.39
    assert cost(gemini, input_tokens=210_000, cache_read_tokens=60_000) == D("0.39")
    # standard: 1000×1.25e-06 + 100×1e-05 (output incl. thoughts) = 0.00125 + 0.001 = 0.00225
    assert cost(gemini, input_tokens=1000, output_tokens=100, output_reasoning_tokens=40) == D("0.00225")


def test_cache_ttl_golden(by_model: dict[str, PriceRecord]) -> None:
    # claude-sonnet-4-5-20250929: input 3e-06, input_cache_creation_5m 3.75e-06,
    # input_cache_creation_1h 6e-06, input_cache_read 3e-07, output 1.5e-05
    # 10000 input = 5000 uncached + 1000 5m writes + 1000 1h writes + 3000 cached; 500 output:
    # 5000×3e-06 + 1000×3.75e-06 + 1000×6e-06 + 3000×3e-07 + 500×1.5e-05
    # = 0.015 + 0.00375 + 0.006 + 0.0009 + 0.0075 = 0.03315
    sonnet = by_model["claude-sonnet-4-5-20250929"]
    assert sonnet.provider == "anthropic"
    got = cost(
        sonnet,
        input_tokens=10_000,
        cache_write_5m_tokens=1000,
        cache_write_1h_tokens=1000,
        cache_write_tokens=2000,
        cache_read_tokens=3000,
        output_tokens=500,
    )
    assert got == D("0.03315")
    # Bedrock ids in the same pattern
    assert sonnet.match.matches("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "")


def test_modalities_and_grounding_golden(by_model: dict[str, PriceRecord]) -> None:
    # gpt-4o-realtime-preview: input_text_tokens 5e-06, input_cached_text_tokens 2.5e-06,
    # input_audio_tokens 1e-04, input_cached_audio_tokens 2e-05, output_text_tokens 2e-05,
    # output_audio_tokens 2e-04
    # 3000 input = 1000 text + 500 cached text + 1000 audio + 500 cached audio; 300 output of which 200 audio:
    # 1000×5e-06 + 500×2.5e-06 + 1000×1e-04 + 500×2e-05 + 100×2e-05 + 200×2e-04
    # = 0.005 + 0.00125 + 0.1 + 0.01 + 0.002 + 0.04 = 0.15825
    got = cost(
        by_model["gpt-4o-realtime-preview"],
        input_tokens=3000,
        cache_read_tokens=1000,
        input_audio_tokens=1500,
        cache_audio_read_tokens=500,
        output_tokens=300,
        output_audio_tokens=200,
    )
    assert got == D("0.15825")
    # gemini-3.5-flash: input 1.5e-06, output 9e-06, grounding_queries 0.014 per query
    # 1000×1.5e-06 + 100×9e-06 + 2×0.014 = 0.0015 + 0.0009 + 0.028 = 0.0304
    flash = by_model["gemini-3.5-flash"]
    assert flash.rates["web_searches"] == D(14)
    assert cost(flash, input_tokens=1000, output_tokens=100, web_searches=2) == D("0.0304")
    # gemini-live-2.5-flash-native-audio: input_image 3e-06 → input_image_tokens
    assert by_model["gemini-live-2.5-flash-native-audio"].rates["input_image_tokens"] == D(3)


def test_legacy_total_golden(by_model: dict[str, PriceRecord]) -> None:
    # text-ada-001 has only "total": 4e-06 for every token, input or output
    # 1000×4e-06 + 500×4e-06 = 0.004 + 0.002 = 0.006
    ada = by_model["text-ada-001"]
    assert dict(ada.rates) == {"input_tokens": D(4), "output_tokens": D(4)}
    assert cost(ada, input_tokens=1000, output_tokens=500) == D("0.006")


def test_legacy_flat_prices() -> None:
    chars = {
        "id": "c1",
        "modelName": "legacy-chars",
        "matchPattern": "(?i)^legacy-chars$",
        "unit": "CHARACTERS",
        "inputPrice": D("0.000001"),
        "outputPrice": D("0.000002"),
    }
    tokens = {
        "id": "t1",
        "modelName": "legacy-tokens",
        "matchPattern": "(?i)^legacy-tokens$",
        "unit": "TOKENS",
        "totalPrice": D("0.00002"),
    }
    images = {
        "id": "i1",
        "modelName": "legacy-images",
        "matchPattern": "(?i)^legacy-images$",
        "unit": "IMAGES",
        "totalPrice": D("0.04"),
    }
    got = import_langfuse([chars, tokens, images], source_name="x")
    assert dict(got.records[0].rates) == {"input_characters": D(1), "output_characters": D(2)}
    # 2000 characters in × 1e-06 + 500 out × 2e-06 = 0.002 + 0.001 = 0.003
    assert cost(got.records[0], input_characters=2000, output_characters=500) == D("0.003")
    assert dict(got.records[1].rates) == {"input_tokens": D(20), "output_tokens": D(20)}
    assert got.skipped == (
        ("legacy-images", "unit 'IMAGES': only TOKENS and CHARACTERS prices can be represented"),
    )


# -- usage conditions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "keys", "units"),
    [
        # the three patterns of the default file, over the keys of the models that use them
        (
            "(input|prompt|cached)",
            [
                "input",
                "input_text",
                "prompt_token_count",
                "promptTokenCount",
                "input_cached_tokens",
                "cached_content_token_count",
                "output",
                "thoughtsTokenCount",
            ],
            ("input_tokens",),
        ),
        (
            "(input)",
            [
                "input",
                "input_cached_tokens",
                "input_cache_read",
                "cache_read_input_tokens",
                "output",
                "output_reasoning_tokens",
                "reasoning_tokens",
            ],
            ("input_tokens",),
        ),
        (
            "(input|cache_write)",
            [
                "input",
                "input_cached_tokens",
                "input_cache_read",
                "cache_read_input_tokens",
                "input_cache_creation",
                "cache_write_tokens",
                "output",
                "reasoning_tokens",
            ],
            ("input_tokens",),
        ),
        # a cached-only pattern is the cache-read unit
        ("^input_cached_tokens$", ["input", "input_cached_tokens", "output"], ("cache_read_tokens",)),
        ("^(output|reasoning_tokens)$", ["input", "output", "reasoning_tokens"], ("output_tokens",)),
    ],
)
def test_usage_condition_units(pattern: str, keys: list[str], units: tuple[str, ...]) -> None:
    assert usage_condition_units(pattern, usage_keys=keys) == units


def test_usage_condition_units_of_every_pattern_in_the_subset() -> None:
    seen = set()
    for entry in read_price_json(SUBSET):
        keys = [k for k in entry["pricingTiers"][0]["prices"] if k in USAGE_KEYS]
        for tier in entry["pricingTiers"]:
            for condition in tier["conditions"]:
                if "usageDetailPattern" in condition:
                    pattern = condition["usageDetailPattern"]
                    assert usage_condition_units(pattern, usage_keys=keys) == ("input_tokens",)
                    seen.add(pattern)
    assert seen == {"(input|prompt|cached)", "(input)", "(input|cache_write)"}


def test_usage_condition_units_refuses_inexact_sums() -> None:
    # uncached input alone is not a sum of inclusive units
    with pytest.raises(PriceDataError, match="without its part"):
        usage_condition_units("^input$", usage_keys=["input", "input_cached_tokens", "output"])
    with pytest.raises(PriceDataError, match="none of the priced"):
        usage_condition_units("nothing", usage_keys=["input", "output"])
    with pytest.raises(PriceDataError, match="usageDetailPattern: '\\(' is not a pattern costline can use"):
        usage_condition_units("(", usage_keys=["input"])


def test_unrepresentable_condition_skips_the_model() -> None:
    entry = model("m", {"input": D("1E-6"), "input_cached_tokens": D("1E-7"), "output": D("2E-6")})
    entry["pricingTiers"].append(
        {
            "id": "t1",
            "name": "Big",
            "isDefault": False,
            "priority": 1,
            "conditions": [
                {"usageDetailPattern": "^input$", "operator": "gt", "value": 1000, "caseSensitive": False}
            ],
            "prices": {"input": D("2E-6"), "input_cached_tokens": D("2E-7"), "output": D("4E-6")},
        }
    )
    got = import_langfuse([entry], source_name="x")
    assert got.records == ()
    assert "without its part" in got.skipped[0][1]


# -- malformed data --------------------------------------------------------------------------------------


def test_negative_price_is_skipped_naming_model_and_key() -> None:
    got = import_langfuse(
        [model("ok", {"input": D("1E-6")}), model("neg", {"input": D("1E-6"), "output": D("-2E-6")})],
        source_name="x",
    )
    assert [r.model for r in got.records] == ["ok"]
    name, reason = got.skipped[0]
    assert name == "neg"
    assert "output" in reason
    assert "negative" in reason
    assert "'Standard'" in reason


def test_malformed_models_are_skipped() -> None:
    got = import_langfuse(
        [
            "not an object",
            {"modelName": "no-pattern", "pricingTiers": []},
            model("bad-regex", {"input": D(1)}, pattern="(?i)^(unclosed$"),
            {
                "modelName": "no-default",
                "matchPattern": "x",
                "pricingTiers": [
                    {
                        "name": "a",
                        "isDefault": False,
                        "priority": 1,
                        "conditions": [],
                        "prices": {"input": D(1)},
                    }
                ],
            },
            model("unknown-only", {"image_generations": D("0.04")}),
        ],
        source_name="x",
    )
    reasons = dict(got.skipped)
    assert got.records == ()
    assert "not a JSON object" in reasons["[0]"]
    assert "matchPattern" in reasons["no-pattern"]
    assert "bad-regex" in reasons
    assert "is not a pattern costline can use" in reasons["bad-regex"]
    assert "default pricing tier" in reasons["no-default"]
    assert "no price" in reasons["unknown-only"]
    assert any("image_generations" in w for w in got.warnings)


def test_disagreeing_aliases_keep_the_preferred_key() -> None:
    got = import_langfuse(
        [model("m", {"input_tokens": D("2E-6"), "input": D("1E-6"), "output": D("1E-6")})], source_name="x"
    )
    assert got.records[0].rates["input_tokens"] == D(1)  # `input` wins
    assert any("input" in w and "differently" in w for w in got.warnings)


def test_bad_json_file(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text('[\n  {"modelName": "x",\n   "matchPattern": "x" "pricingTiers": []}\n]')
    with pytest.raises(
        PriceDataError, match=r"models\.json: not valid JSON: line 3 column 24: Expecting ',' delimiter"
    ):
        read_price_json(path)


# -- the full file ---------------------------------------------------------------------------------------


def test_full_langfuse_file() -> None:
    path = SHARED / "langfuse-default-model-prices.json"
    if not path.is_file():
        pytest.skip(f"{path} not present (the shared sample files live outside the repository)")
    got = import_langfuse(read_price_json(path), source_name=path.name)
    assert len(got.records) + len(got.skipped) == 167
    assert got.skipped == ()
    assert sum(len(r.variants) + 1 for r in got.records) == 251  # every pricing tier
    _assert_rates_valid(got.records)
    for record in got.records:
        calc_cost(Usage.of(input_tokens=1000, output_tokens=100), record, at=AT)


def test_litellm_and_langfuse_agree_on_gpt_4o(by_model: dict[str, PriceRecord]) -> None:
    from costline.catalog.litellm import import_litellm

    litellm = import_litellm(read_price_json(PRICES / "litellm-subset.json"), source_name="x")
    other = next(r for r in litellm.records if r.model == "gpt-4o")
    assert dict(other.rates) == dict(by_model["gpt-4o"].rates)


def _assert_rates_valid(records: Any) -> None:
    for record in records:
        for rates in [record.rates, *(v.rates for v in record.variants)]:
            for unit, rate in rates.items():
                values = [rate.base, *(r for _, r in rate.tiers)] if isinstance(rate, TieredRate) else [rate]
                for value in values:
                    assert isinstance(value, Decimal), (record.id, unit)
                    assert value.is_finite(), (record.id, unit)
                    assert value >= 0, (record.id, unit)
