"""Importing LiteLLM's price map: key mapping, variants, tiers, skips, and golden costs worked out by hand.

``tests/data/prices/litellm-subset.json`` holds entries copied verbatim from LiteLLM's
``model_prices_and_context_window.json`` (MIT, see ``LICENSE-litellm`` beside it). Every golden total below is
computed in a comment from the per-token prices published in that file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costline.catalog.imported import (
    Conflict,
    ImportResult,
    find_conflicts,
    per_unit_to_rate,
    read_price_json,
)
from costline.catalog.litellm import import_litellm, parse_key
from costline.core.cost import PricingStatus, calc_cost
from costline.core.price import Match, PriceRecord, Source, TieredRate
from costline.core.resolve import PriceBook
from costline.core.usage import Usage
from costline.errors import PriceDataError

AT = datetime(2026, 11, 1, tzinfo=UTC)
PRICES = Path(__file__).parents[1] / "data" / "prices"
SUBSET = PRICES / "litellm-subset.json"
#: the full sample files live next to the repository (../shared), not in it
SHARED = Path(__file__).parents[3] / "shared/data/prices"

D = Decimal


@pytest.fixture(scope="module")
def result() -> ImportResult:
    return import_litellm(read_price_json(SUBSET), source_name=SUBSET.name)


@pytest.fixture(scope="module")
def by_model(result: ImportResult) -> dict[str, PriceRecord]:
    return {r.model: r for r in result.records}


def cost(record: PriceRecord, attributes: dict[str, str] | None = None, **quantities: int) -> Decimal:
    breakdown = calc_cost(Usage(quantities), record, at=AT, attributes=attributes)
    assert breakdown.status is PricingStatus.PRICED, breakdown.reason
    return breakdown.total


def skip_reason(result: ImportResult, model: str) -> str:
    reasons = [reason for name, reason in result.skipped if name == model]
    assert reasons, f"{model} was not skipped"
    return reasons[0]


# -- reading ---------------------------------------------------------------------------------------------


def test_read_price_json_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"m": {"input_cost_per_token": 2.5e-06, "max_input_tokens": 128000}}')
    data = read_price_json(path)
    assert data["m"]["input_cost_per_token"] == D("0.0000025")
    assert isinstance(data["m"]["input_cost_per_token"], Decimal)
    assert data["m"]["max_input_tokens"] == 128000
    assert isinstance(data["m"]["max_input_tokens"], int)


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "gpt-4o": {\n    "input_cost_per_token": 2.5e-06,\n  }\n}\n')
    with pytest.raises(PriceDataError, match=r"broken\.json: not valid JSON: line 4 column 3"):
        read_price_json(path)


def test_unreadable_file_is_a_price_data_error(tmp_path: Path) -> None:
    with pytest.raises(PriceDataError, match="cannot read"):
        read_price_json(tmp_path / "missing.json")
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"caf\xe9": {}}')
    with pytest.raises(PriceDataError, match="not UTF-8"):
        read_price_json(latin1)


def test_subset_is_a_verbatim_copy_of_the_shared_file() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present (the shared sample files live outside the repository)")
    full = read_price_json(SHARED / "litellm-model-prices.json")
    subset = read_price_json(SUBSET)
    assert len(subset) >= 40
    for name, entry in subset.items():
        assert entry == full[name], name


# -- conversion and key parsing --------------------------------------------------------------------------


def test_per_token_prices_scale_exactly() -> None:
    assert per_unit_to_rate(D("2.5E-6"), "input_tokens") == D("2.5")
    assert per_unit_to_rate(D("1.0003E-7"), "input_tokens") == D("0.10003")
    assert str(per_unit_to_rate(D("0.00001"), "output_tokens")) == "10"
    assert per_unit_to_rate(D("0.0001"), "input_audio_seconds") == D("0.36")  # per second → per hour
    assert per_unit_to_rate(D("0.01"), "web_searches") == D("10")  # per query → per 1,000
    assert per_unit_to_rate(D("0.04"), "output_images") == D("0.04")  # per image


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("input_cost_per_token", ("input_cost_per_token", None, None)),
        ("input_cost_per_token_batches", ("input_cost_per_token", None, "batches")),
        (
            "cache_read_input_token_cost_above_200k_tokens_priority",
            ("cache_read_input_token_cost", 200000, "priority"),
        ),
        ("input_cost_per_token_priority_above_200k_tokens", ("input_cost_per_token", 200000, "priority")),
        (
            "cache_creation_input_token_cost_above_1hr",
            ("cache_creation_input_token_cost_above_1hr", None, None),
        ),
        (
            "cache_creation_input_token_cost_above_1hr_above_200k_tokens",
            ("cache_creation_input_token_cost_above_1hr", 200000, None),
        ),
        ("output_cost_per_image_1024", ("output_cost_per_image_1024", None, None)),
        ("input_cost_per_token_above_128_tokens", ("input_cost_per_token", 128, None)),
    ],
)
def test_parse_key(key: str, parsed: tuple[str, int | None, str | None]) -> None:
    assert parse_key(key) == parsed


# -- records ---------------------------------------------------------------------------------------------


def test_record_shape(by_model: dict[str, PriceRecord]) -> None:
    gpt = by_model["gpt-4o"]
    assert gpt.id == "litellm:gpt-4o"
    assert gpt.source is Source.IMPORTED
    assert gpt.source_name == "litellm-subset.json"
    assert gpt.match == Match("exact", "gpt-4o")
    assert gpt.match.matches("GPT-4o", "gpt-4o")  # case-insensitive
    assert gpt.provider == "openai"
    assert gpt.context_window == 128000
    assert dict(gpt.rates) == {
        "input_tokens": D("2.5"),
        "cache_read_tokens": D("1.25"),
        "output_tokens": D(10),
    }


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("azure/gpt-4o", "azure"),
        ("claude-sonnet-4-5", "anthropic"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "aws"),  # bedrock
        ("us.writer.palmyra-x4-v1:0", "aws"),  # bedrock_converse
        ("gemini/gemini-2.5-pro", "google"),  # gemini
        ("vertex_ai/claude-3-5-haiku", "google"),  # vertex_ai-anthropic_models
        ("xai/grok-4.20-0309-reasoning", "x-ai"),
        ("mistral/codestral-latest", "mistral"),
        ("cohere/embed-v4.0", "cohere"),
        ("perplexity/sonar-deep-research", "perplexity"),
        ("together-ai-4.1b-8b", "together"),
        ("groq/llama-guard-3-8b", "groq"),
        ("deepseek/deepseek-chat", "deepseek"),
        ("kyma/qwen3.7-flash", "kyma"),  # no genai-prices id: LiteLLM's name is kept
    ],
)
def test_providers(by_model: dict[str, PriceRecord], model: str, provider: str) -> None:
    assert by_model[model].provider == provider


def test_counts_and_sample_spec(result: ImportResult) -> None:
    data = read_price_json(SUBSET)
    assert len(result.records) + len(result.skipped) == len(data)
    assert result.format == "litellm"
    spec = import_litellm({"sample_spec": {"input_cost_per_token": 0.0}}, source_name="x")
    assert spec.records == ()
    assert spec.skipped == ()


def test_every_rate_is_a_finite_non_negative_decimal(result: ImportResult) -> None:
    _assert_rates_valid(result.records)


# -- golden costs (by hand, from the per-token prices in the file) ------------------------------------------


def test_gpt_4o_golden(by_model: dict[str, PriceRecord]) -> None:
    # gpt-4o: input 2.5e-06, cache_read 1.25e-06, output 1e-05 per token
    # 1000 input of which 400 cached, 200 output:
    # 600×2.5e-06 + 400×1.25e-06 + 200×1e-05 = 0.0015 + 0.0005 + 0.002 = 0.004
    assert cost(by_model["gpt-4o"], input_tokens=1000, cache_read_tokens=400, output_tokens=200) == D("0.004")


def test_batch_variant_golden(by_model: dict[str, PriceRecord]) -> None:
    # gpt-4o _batches: input 1.25e-06, output 5e-06; no cache_read_input_token_cost_batches, so cached input
    # keeps the standard 1.25e-06:
    # 600×1.25e-06 + 400×1.25e-06 + 200×5e-06 = 0.00075 + 0.0005 + 0.001 = 0.00225
    record = by_model["gpt-4o"]
    batch = {"processing": "batch"}
    assert cost(record, batch, input_tokens=1000, cache_read_tokens=400, output_tokens=200) == D("0.00225")
    breakdown = calc_cost(Usage.of(input_tokens=1000, output_tokens=200), record, at=AT, attributes=batch)
    assert breakdown.variants == ("processing=batch",)


def test_priority_variant_golden(by_model: dict[str, PriceRecord]) -> None:
    # gpt-4o _priority (service_tier priority, and "fast" as LiteLLM bills it):
    # input 4.25e-06, cache_read 2.125e-06, output 1.7e-05
    # 600×4.25e-06 + 400×2.125e-06 + 200×1.7e-05 = 0.00255 + 0.00085 + 0.0034 = 0.0068
    record = by_model["gpt-4o"]
    for tier in ("priority", "fast"):
        got = cost(
            record, {"service_tier": tier}, input_tokens=1000, cache_read_tokens=400, output_tokens=200
        )
        assert got == D("0.0068")
    # an unknown tier is the standard price
    assert cost(record, {"service_tier": "default"}, input_tokens=1000, output_tokens=0) == D("0.0025")


def test_above_200k_golden(by_model: dict[str, PriceRecord]) -> None:
    gemini = by_model["gemini/gemini-2.5-pro"]
    assert gemini.rates["input_tokens"] == TieredRate(D("1.25"), ((200000, D("2.5")),), "input_tokens")
    # above 200k prompt tokens every token pays the _above_200k_tokens price:
    # input 2.5e-06, cache_read 2.5e-07, output 1.5e-05
    # 250000 input of which 50000 cached, 1000 output:
    # 200000×2.5e-06 + 50000×2.5e-07 + 1000×1.5e-05 = 0.5 + 0.0125 + 0.015 = 0.5275
    assert cost(gemini, input_tokens=250_000, cache_read_tokens=50_000, output_tokens=1000) == D("0.5275")
    # exactly 200000 is not above: 200000×1.25e-06 = 0.25 (LiteLLM compares with a strict >)
    assert cost(gemini, input_tokens=200_000) == D("0.25")
    # priority above 200k: input_cost_per_token_above_200k_tokens_priority 4.5e-06,
    # output_cost_per_token_above_200k_tokens_priority 2.7e-05:
    # 250000×4.5e-06 + 1000×2.7e-05 = 1.125 + 0.027 = 1.152
    assert cost(gemini, {"service_tier": "priority"}, input_tokens=250_000, output_tokens=1000) == D("1.152")
    # flex has no above-200k flex key: LiteLLM falls back to the standard above-200k price
    # 250000×2.5e-06 + 1000×1.5e-05 = 0.625 + 0.015 = 0.64 (below 200k flex is 6.25e-07 / 5e-06)
    assert cost(gemini, {"service_tier": "flex"}, input_tokens=250_000, output_tokens=1000) == D("0.64")
    # 1000×6.25e-07 + 100×5e-06 = 0.000625 + 0.0005 = 0.001125
    assert cost(gemini, {"service_tier": "flex"}, input_tokens=1000, output_tokens=100) == D("0.001125")


def test_batch_above_200k_golden(by_model: dict[str, PriceRecord]) -> None:
    # gemini-2.5-pro _above_200k_tokens_batches: input 1.25e-06, output 7.5e-06
    # 300000×1.25e-06 + 2000×7.5e-06 = 0.375 + 0.015 = 0.39
    got = cost(
        by_model["gemini/gemini-2.5-pro"], {"processing": "batch"}, input_tokens=300_000, output_tokens=2000
    )
    assert got == D("0.39")


def test_xai_threshold_is_inclusive(by_model: dict[str, PriceRecord]) -> None:
    # LiteLLM bills xAI's long-context price from 200k prompt tokens on (>=):
    # 200000×2.5e-06 = 0.5 ; 199999×1.25e-06 = 0.24999875
    grok = by_model["xai/grok-4.20-0309-reasoning"]
    assert cost(grok, input_tokens=200_000) == D("0.5")
    assert cost(grok, input_tokens=199_999) == D("0.24999875")


def test_cache_writes_and_web_search_golden(by_model: dict[str, PriceRecord]) -> None:
    # claude-sonnet-4-5: input 3e-06, cache write (5 min) 3.75e-06, 1h cache write 6e-06, cache read 3e-07,
    # output 1.5e-05, web search (search_context_size_medium) 0.01 per query
    # 10000 input = 5000 uncached + 1000 5-min writes + 1000 1h writes + 3000 cached; 500 output; 2 searches:
    # 5000×3e-06 + 1000×3.75e-06 + 1000×6e-06 + 3000×3e-07 + 500×1.5e-05 + 2×0.01
    # = 0.015 + 0.00375 + 0.006 + 0.0009 + 0.0075 + 0.02 = 0.05315
    got = cost(
        by_model["claude-sonnet-4-5"],
        input_tokens=10_000,
        cache_write_tokens=2000,
        cache_write_1h_tokens=1000,
        cache_read_tokens=3000,
        output_tokens=500,
        web_searches=2,
    )
    assert got == D("0.05315")


def test_tiered_pricing_golden(by_model: dict[str, PriceRecord]) -> None:
    # dashscope/qwen-flash tiered_pricing: (0, 256000] input 5e-08 output 4e-07;
    # (256000, 1000000] input 2.5e-07 output 2e-06; the tier is chosen by prompt tokens and applies to every
    # token of the request
    qwen = by_model["dashscope/qwen-flash"]
    # 300000×2.5e-07 + 1000×2e-06 = 0.075 + 0.002 = 0.077
    assert cost(qwen, input_tokens=300_000, output_tokens=1000) == D("0.077")
    # exactly 256000 stays in the first range: 256000×5e-08 + 1000×4e-07 = 0.0128 + 0.0004 = 0.0132
    assert cost(qwen, input_tokens=256_000, output_tokens=1000) == D("0.0132")
    # qwen-plus: reasoning 4e-06 in the first range, 1.2e-05 above 256k
    # 1000×4e-07 + (300-100)×1.2e-06 + 100×4e-06 = 0.0004 + 0.00024 + 0.0004 = 0.00104
    plus = by_model["dashscope/qwen-plus-2025-07-28"]
    assert cost(plus, input_tokens=1000, output_tokens=300, output_reasoning_tokens=100) == D("0.00104")


def test_two_thresholds(by_model: dict[str, PriceRecord]) -> None:
    kyma = by_model["kyma/qwen3.7-flash"]
    rate = kyma.rates["input_tokens"]
    assert isinstance(rate, TieredRate)
    assert [t for t, _ in rate.tiers] == [32000, 256000]


def test_media_units_golden(by_model: dict[str, PriceRecord]) -> None:
    # whisper-1 (audio_transcription): input_cost_per_second 0.0001 → 60 s × 0.0001 = 0.006
    assert cost(by_model["whisper-1"], input_audio_seconds=60) == D("0.006")
    # tts-1: input_cost_per_character 1.5e-05 → 1000 × 1.5e-05 = 0.015
    assert cost(by_model["tts-1"], input_characters=1000) == D("0.015")
    # amazon.rerank-v1:0 (rerank): input_cost_per_query 0.001 → 2 searches × 0.001 = 0.002
    assert cost(by_model["amazon.rerank-v1:0"], rerank_searches=2) == D("0.002")
    # dataforseo/search (search): input_cost_per_query 0.003, one request per call → 0.003
    assert cost(by_model["dataforseo/search"]) == D("0.003")
    # fal_ai/fal-ai/nano-banana-2: output_cost_per_image 0.08 → 3 images = 0.24
    # (the per-size prices are left out)
    assert cost(by_model["fal_ai/fal-ai/nano-banana-2"], output_images=3) == D("0.24")
    # dashscope/wan3.0-video (video_generation): output_cost_per_second 0.165025 → 5 s = 0.825125
    assert cost(by_model["dashscope/wan3.0-video"], output_video_seconds=5) == D("0.825125")
    # azure_ai/mistral-ocr-4-0: ocr_cost_per_page 0.004, annotation_cost_per_page 0.005
    # 10 pages of which 2 annotated: 8×0.004 + 2×0.005 = 0.032 + 0.01 = 0.042
    ocr = by_model["azure_ai/mistral-ocr-4-0"]
    assert cost(ocr, input_document_pages=10, input_annotated_document_pages=2) == D("0.042")


def test_image_output_tokens_golden(by_model: dict[str, PriceRecord]) -> None:
    # gpt-image-1 has output_cost_per_image_token 4e-05 and no output_cost_per_token: LiteLLM bills every
    # output token at the image price.
    # 100 text input × 5e-06 + 1056 output × 4e-05 = 0.0005 + 0.04224 = 0.04274
    assert cost(by_model["gpt-image-1"], input_tokens=100, output_tokens=1056) == D("0.04274")


def test_audio_and_citation_golden(by_model: dict[str, PriceRecord]) -> None:
    # azure/eu/gpt-4o-realtime-preview-2024-12-17: text in 5.5e-06, cached text 2.75e-06, audio in 4.4e-05,
    # cached audio 2.5e-06, text out 2.2e-05, audio out 8.8e-05
    # 3000 input = 1000 text + 500 cached text + 1000 audio + 500 cached audio; 300 output of which 200 audio
    # 1000×5.5e-06 + 500×2.75e-06 + 1000×4.4e-05 + 500×2.5e-06 + 100×2.2e-05 + 200×8.8e-05
    # = 0.0055 + 0.001375 + 0.044 + 0.00125 + 0.0022 + 0.0176 = 0.071925
    got = cost(
        by_model["azure/eu/gpt-4o-realtime-preview-2024-12-17"],
        input_tokens=3000,
        cache_read_tokens=1000,
        input_audio_tokens=1500,
        cache_audio_read_tokens=500,
        output_tokens=300,
        output_audio_tokens=200,
    )
    assert got == D("0.071925")
    # perplexity/sonar-deep-research: input 2e-06, output 8e-06, reasoning 3e-06, citation 2e-06, search 0.005
    # 1000×2e-06 + 1200×8e-06 + 500×3e-06 + 300×2e-06 + 3×0.005
    # = 0.002 + 0.0096 + 0.0015 + 0.0006 + 0.015 = 0.0287
    got = cost(
        by_model["perplexity/sonar-deep-research"],
        input_tokens=1000,
        output_tokens=2000,
        output_reasoning_tokens=500,
        output_citation_tokens=300,
        web_searches=3,
    )
    assert got == D("0.0287")


def test_zero_is_a_real_price(by_model: dict[str, PriceRecord]) -> None:
    embed = by_model["text-embedding-3-small"]
    assert embed.rates["output_tokens"] == 0
    # 1000 × 2e-08 = 0.00002
    assert cost(embed, input_tokens=1000, output_tokens=0) == D("0.00002")
    # int 0 values (gemini-flash-experimental) are free prices too, as Decimals
    free = by_model["gemini-flash-experimental"]
    assert free.is_free
    assert all(isinstance(r, Decimal) for r in free.rates.values())


def test_cache_hit_alias(by_model: dict[str, PriceRecord]) -> None:
    # deepseek-chat: input_cost_per_token_cache_hit 2.8e-08 equals cache_read_input_token_cost
    assert by_model["deepseek/deepseek-chat"].rates["cache_read_tokens"] == D("0.028")
    data = {
        "m": {
            "input_cost_per_token": D("1E-6"),
            "output_cost_per_token": D("2E-6"),
            "input_cost_per_token_cache_hit": D("1E-7"),
        }
    }
    assert import_litellm(data, source_name="x").records[0].rates["cache_read_tokens"] == D("0.1")


# -- what cannot be represented --------------------------------------------------------------------------


def test_skips_with_reasons(result: ImportResult) -> None:
    assert "no prices" in skip_reason(result, "dashscope/qwen-image-3.0-pro")
    # image generation priced per pixel only
    assert "input_cost_per_pixel" in skip_reason(result, "azure/high/1024-x-1024/gpt-image-1")
    # dall-e-3 has output_cost_per_token 0.0 and a per-pixel price: never silently $0
    assert "$0" in skip_reason(result, "azure/hd/1024-x-1024/dall-e-3")
    assert "input_cost_per_second" in skip_reason(
        result, "bedrock/us-east-1/1-month-commitment/anthropic.claude-v2:1"
    )
    assert "input_cost_per_second" in skip_reason(result, "gpt-live-1")  # realtime, per second
    assert "tiered_pricing" in skip_reason(result, "exa_ai/search")  # tiers by result count
    assert "variant" in skip_reason(result, "fireworks_ai/accounts/fireworks/models/minimax-m2p7")
    # a subset price (audio tokens) without an input price: PriceRecord refuses it
    assert "none for input_tokens" in skip_reason(result, "scaleway/openai/whisper-large-v3")


def test_size_only_image_entry_is_skipped() -> None:
    data = {
        "img": {"litellm_provider": "x", "mode": "image_generation", "output_cost_per_image_1024": D("0.3")}
    }
    got = import_litellm(data, source_name="x")
    assert got.records == ()
    assert got.skipped[0][0] == "img"
    assert "output_cost_per_image_1024" in got.skipped[0][1]


def test_warnings_name_left_out_keys(result: ImportResult) -> None:
    text = "\n".join(result.warnings)
    for key in (
        "google_maps_grounding_cost_per_query",
        "off_peak_pricing",
        "output_cost_per_image_1K",
        "cache_creation_input_token_cost_above_12hr",
        "input_dbu_cost_per_token",
        "input_cost_per_token_decisions",
    ):
        assert key in text, key
    assert "gemini/gemini-2.5-pro" in text


def test_negative_price_is_skipped_naming_model_and_key() -> None:
    data = {
        "good": {"input_cost_per_token": D("1E-6"), "output_cost_per_token": D("2E-6")},
        "bad": {"input_cost_per_token": D("-1E-6"), "output_cost_per_token": D("2E-6")},
        "nan": {"input_cost_per_token": D("NaN"), "output_cost_per_token": D("2E-6")},
        "bool": {"input_cost_per_token": True, "output_cost_per_token": D("2E-6")},
        "notobj": [1, 2],
    }
    got = import_litellm(data, source_name="x")
    assert [r.model for r in got.records] == ["good"]
    reasons = dict(got.skipped)
    assert "input_cost_per_token" in reasons["bad"]
    assert "negative" in reasons["bad"]
    assert "finite" in reasons["nan"]
    assert "input_cost_per_token" in reasons["bool"]
    assert "not a JSON object" in reasons["notobj"]


def test_negative_price_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "neg.json"
    path.write_text(json.dumps({"m": {"input_cost_per_token": -0.5, "output_cost_per_token": 1}}))
    got = import_litellm(read_price_json(path), source_name=path.name)
    assert got.skipped == (("m", "input_cost_per_token: a price must not be negative, got -0.5"),)


def test_null_price_is_absent_not_zero() -> None:
    data = {"m": {"input_cost_per_token": None, "output_cost_per_token": D("2E-6")}}
    record = import_litellm(data, source_name="x").records[0]
    assert "input_tokens" not in record.rates
    assert (
        calc_cost(Usage.of(input_tokens=10, output_tokens=1), record, at=AT).status
        is not PricingStatus.PRICED
    )


# -- conflicts -------------------------------------------------------------------------------------------


def test_find_conflicts(by_model: dict[str, PriceRecord]) -> None:
    existing = PriceRecord(
        id="openai:gpt-4o",
        model="gpt-4o",
        match=Match("exact", "gpt-4o"),
        rates={
            "input_tokens": D("2.50"),
            "output_tokens": D(12),
            "cache_read_tokens": TieredRate(D("1.25"), ()),
        },
        provider="openai",
    )
    other = PriceRecord(
        id="openai:o1",
        model="o1",
        match=Match("exact", "o1"),
        rates={"input_tokens": D(1)},
        provider="openai",
    )
    book = PriceBook([existing, other])
    conflicts = find_conflicts([by_model["gpt-4o"], by_model["claude-sonnet-4-5"]], book, AT)
    # 2.5 == 2.50 and the tiered cache price compares its base: only output differs
    assert conflicts == [Conflict("gpt-4o", "output_tokens", D(10), D(12), "openai:gpt-4o")]
    # another provider's record is not a conflict
    azure = by_model["azure/gpt-4o"]
    assert find_conflicts([azure], book, AT) == []


def test_find_conflicts_against_the_bundled_catalog(
    by_model: dict[str, PriceRecord], bundled_book: PriceBook
) -> None:
    conflicts = find_conflicts(by_model.values(), bundled_book, AT)
    assert all(c.new_rate != c.existing_rate for c in conflicts)
    assert not [c for c in conflicts if c.model == "gpt-4o"]  # LiteLLM and genai-prices agree on gpt-4o


# -- the full file ---------------------------------------------------------------------------------------


def test_full_litellm_file() -> None:
    path = SHARED / "litellm-model-prices.json"
    if not path.is_file():
        pytest.skip(f"{path} not present (the shared sample files live outside the repository)")
    data = read_price_json(path)
    got = import_litellm(data, source_name=path.name)
    assert len(got.records) + len(got.skipped) == 4552 == len(data) - 1  # minus sample_spec
    assert len(got.records) > 4300
    _assert_rates_valid(got.records)
    assert len({r.id for r in got.records}) == len(got.records)
    for record in got.records:
        calc_cost(Usage.of(input_tokens=1000, output_tokens=100), record, at=AT)


def _assert_rates_valid(records: Any) -> None:
    for record in records:
        rate_sets = [record.rates, *(v.rates for v in record.variants)]
        for rates in rate_sets:
            for unit, rate in rates.items():
                values = [rate.base, *(r for _, r in rate.tiers)] if isinstance(rate, TieredRate) else [rate]
                for value in values:
                    assert isinstance(value, Decimal), (record.id, unit)
                    assert value.is_finite(), (record.id, unit)
                    assert value >= 0, (record.id, unit)
