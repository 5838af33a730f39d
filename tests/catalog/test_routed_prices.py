"""Parity items of issue 12 on prices: a user price named the LiteLLM way (``openai/gpt-4o-mini``) wins over
the bundled catalog, ``free: true`` included; a model given without a provider resolves to the provider that
made it; usage that cannot be priced is ``unpriced`` with its reason and a ``None`` total, never $0.

The CLI runs as a real process (``python -m costline``). Figures by hand from published prices (USD per 1M):
bundled gpt-4o-mini is 0.15 input / 0.60 output, the user file says 0.10 / 0.40.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
from tests.conftest import AT

import costline
from costline.catalog.user_file import load_price_file
from costline.core.cost import PricingStatus
from costline.core.resolve import PriceBook

USER_FILE = """\
prices:
  - model: openai/gpt-4o-mini
    rates: {input_tokens: 0.10, output_tokens: 0.40}
  - model: gemini/gemini-2.5-flash-lite
    free: true
"""


@pytest.fixture
def price_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(USER_FILE)
    return path


def run_cost(price_file: Path, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "costline", "--prices", str(price_file), "cost", *args, "--at", "2026-11-01",
         "--json"], capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


@pytest.mark.parametrize("call", [
    ("--model", "openai/gpt-4o-mini"),
    ("--model", "gpt-4o-mini", "--provider", "openai"),
    ("--model", "gpt-4o-mini"),
    ("--model", "OpenAI/GPT-4o-mini"),
])
def test_user_price_with_routing_prefix_wins_in_costline_cost(data_dir: Path, price_file: Path,
                                                              call: tuple[str, ...]) -> None:
    out = run_cost(price_file, *call, "--input-tokens", "1000", "--output-tokens", "500")
    # user price: 1000 × 0.10 + 500 × 0.40 = 100 + 200 = 300 / 1M = 0.0003 (the bundled price would make
    # 1000 × 0.15 + 500 × 0.60 = 450 / 1M = 0.00045)
    assert out["total"] == "0.0003"
    assert out["status"] == "priced"
    assert out["price_id"] == "user:prices.yaml:openai/gpt-4o-mini"
    assert out["provider"] == "openai"


@pytest.mark.parametrize("call", [
    ("--model", "gemini/gemini-2.5-flash-lite"),
    ("--model", "gemini-2.5-flash-lite", "--provider", "google"),
    ("--model", "gemini-2.5-flash-lite"),
])
def test_free_user_price_with_routing_prefix_is_priced_zero(data_dir: Path, price_file: Path,
                                                            call: tuple[str, ...]) -> None:
    out = run_cost(price_file, *call, "--input-tokens", "1000", "--output-tokens", "500")
    # free because the user said so (bundled: 1000 × 0.10 + 500 × 0.40 = 300 / 1M = 0.0003)
    assert D(str(out["total"])) == 0
    assert out["status"] == "priced"
    assert out["price_id"] == "user:prices.yaml:gemini/gemini-2.5-flash-lite"


def test_without_the_user_file_the_bundled_price_applies(data_dir: Path, price_file: Path) -> None:
    empty = price_file.with_name("empty.yaml")
    empty.write_text("prices: []\n")
    out = run_cost(empty, "--model", "openai/gpt-4o-mini", "--input-tokens", "1000", "--output-tokens", "500")
    assert out["total"] == "0.00045"  # 1000 × 0.15 + 500 × 0.60 = 450 / 1M
    assert str(out["price_id"]).startswith("openai:gpt-4o-mini")


def test_explain_lists_the_user_price_first(data_dir: Path, price_file: Path, bundled_book: PriceBook) -> None:
    book = bundled_book.with_records(load_price_file(price_file))
    explained = book.explain("openai/gpt-4o-mini", at=AT)
    assert explained.record is not None and explained.record.id == "user:prices.yaml:openai/gpt-4o-mini"
    assert explained.candidates[0].record.id == explained.record.id
    assert any(c.record.id.startswith("openai:gpt-4o-mini") for c in explained.candidates[1:])


def test_embedding_model_without_provider_is_openai_not_azure(bundled_book: PriceBook) -> None:
    # genai-prices lists text-embedding-3-small under azure and openai (both 0.02 per 1M): the originator wins
    b = costline.cost(model="text-embedding-3-small", input_tokens=1000, at=AT, book=bundled_book)
    assert (b.provider, b.price_id, b.total) == ("openai", "openai:text-embedding-3-small", D("0.00002"))
    azure = costline.cost(model="text-embedding-3-small", provider="azure", input_tokens=1000, at=AT,
                          book=bundled_book)
    assert azure.provider == "azure" and azure.price_id == "azure:text-embedding-3-small"


def test_no_usage_is_unpriced_not_zero(bundled_book: PriceBook) -> None:
    b = costline.cost(model="gpt-4o", at=AT, book=bundled_book)
    assert b.status is PricingStatus.UNPRICED and b.reason == "no usage" and b.total is None
    assert b.price_id is None or b.price_id.startswith("openai:gpt-4o")


def test_characters_are_priced_per_character_or_unpriced(bundled_book: PriceBook) -> None:
    # tts-1 is priced per character: 1234 × 15 / 1M = 0.01851
    tts = costline.cost(model="tts-1", usage=costline.Usage.of(input_characters=1234), at=AT, book=bundled_book)
    assert (tts.status, tts.total) == (PricingStatus.PRICED, D("0.01851"))
    # text-embedding-3-small has only a per-token price: characters cannot be priced with it
    emb = costline.cost(model="text-embedding-3-small", usage=costline.Usage.of(input_characters=1234), at=AT,
                        book=bundled_book)
    assert emb.status is PricingStatus.UNPRICED and emb.total is None
    assert emb.reason == "no rate for input_characters in price 'openai:text-embedding-3-small'"
