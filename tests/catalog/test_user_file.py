"""User price files: schema validation with clear errors, exact decimals, every match kind."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from costline.catalog.book import load_price_book
from costline.catalog.user_file import load_price_file
from costline.core.cost import PricingStatus, calc_cost
from costline.core.price import Source
from costline.core.usage import Usage
from costline.errors import PriceDataError
from costline.settings import Settings

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

GOOD = """\
version: 1
prices:
  - model: acme-large
    provider: acme
    valid_from: 2026-01-01
    rates: {input_tokens: 0.1, cache_read_tokens: 0.01, output_tokens: 0.3}
    tiers:
      - name: long context
        when: [{usage: {units: [input_tokens], op: gt, value: 128000}}]
        rates: {input_tokens: 0.2, output_tokens: 0.6}
      - name: priority
        when: [{attribute: {key: service_tier, values: [priority]}}]
        rates: {input_tokens: 0.15}
  - model: acme-large
    provider: acme
    valid_to: 2026-01-01
    rates: {input_tokens: 1, output_tokens: 3}
  - alias: prod-chat
    provider: azure
    target: gpt-4o
  - model: llama-local
    match: {regex: "^llama-3[.0-9]*-local$", case_sensitive: false}
    free: true
  - model: ft-acme
    match: {prefix: "ft:acme-"}
    aliases: [acme-finetune]
    rates: {input_tokens: 2, output_tokens: 4}
"""


def write(tmp_path: Path, text: str, name: str = "prices.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def test_good_file_compiles_with_exact_decimals(tmp_path: Path) -> None:
    records = load_price_file(write(tmp_path, GOOD))
    assert [r.model for r in records] == ["acme-large", "acme-large", "prod-chat", "llama-local", "ft-acme"]
    assert records[0].rates["input_tokens"] == D("0.1")  # from the text, not the float 0.1000000000000000055
    assert all(r.source is Source.USER for r in records)


def test_prices_from_a_user_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", bundled_prices=True)
    book = load_price_book(settings, extra_files=[write(tmp_path, GOOD)])
    usage = Usage.of(input_tokens=100_000, cache_read_tokens=50_000, output_tokens=100_000)
    new = book.resolve("acme-large", "acme", at=AT)
    # 50k × 0.1 + 50k × 0.01 + 100k × 0.3 (per 1M) = 0.005 + 0.0005 + 0.03 = 0.0355
    assert calc_cost(usage, new, at=AT).total == D("0.0355")
    old = book.resolve("acme-large", "acme", at=datetime(2025, 6, 1, tzinfo=UTC))
    # the old price: 100k × 1 + 100k × 3 = 0.4 (no cache rate: cached tokens pay the input rate)
    assert calc_cost(usage, old, at=AT).total == D("0.4")
    # long-context tier: input 200k > 128k → 200k × 0.2 + 10k output × 0.6 = 0.04 + 0.006 = 0.046
    assert calc_cost(Usage.of(input_tokens=200_000, output_tokens=10_000), new, at=AT).total == D("0.046")
    # priority only overrides input: 100k × 0.15 + 100k × 0.3 = 0.015 + 0.03 = 0.045
    priority = calc_cost(Usage.of(input_tokens=100_000, output_tokens=100_000), new, at=AT,
                         attributes={"service_tier": "priority"})
    assert priority.total == D("0.045")
    # alias → gpt-4o through azure's fallback to openai: 1M × 2.5 = 2.5
    aliased = book.resolve("prod-chat", "azure", at=AT)
    assert aliased is not None and aliased.model == "gpt-4o"
    # regex with an explicit case flag; free models are priced at zero, not unpriced
    free = calc_cost(Usage.of(input_tokens=10), book.resolve("LLAMA-3.1-local", at=AT), at=AT)
    assert free.status is PricingStatus.PRICED and free.total == 0
    assert book.resolve("acme-finetune", at=AT).model == "ft-acme"  # type: ignore[union-attr]
    assert book.resolve("ft:acme-7b:org", at=AT).model == "ft-acme"  # type: ignore[union-attr]


def test_user_prices_take_precedence_over_bundled(tmp_path: Path) -> None:
    path = write(tmp_path, "prices:\n  - model: gpt-4o\n    rates: {input_tokens: 1, output_tokens: 1}\n")
    book = load_price_book(Settings(data_dir=tmp_path / "d"), extra_files=[path])
    record = book.resolve("gpt-4o", "openai", at=AT)
    assert record is not None and record.source is Source.USER


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prices:\n  - model: x\n    rates: {input_tokens: -1}\n",
         r"prices\[0\]\.rates\.input_tokens: -1 is less than"),
        ("prices:\n  - model: x\n    rates: {input_tokens: abc}\n", r"prices\[0\]\.rates\.input_tokens: 'abc' is not"),
        ("prices:\n  - model: x\n    rates: {prompt: 1}\n", r"rates\.prompt: unknown unit"),
        ("prices:\n  - model: x\n", r"prices\[0\]"),
        ("prices:\n  - model: x\n    match: {regex: 'gpt'}\n    rates: {input_tokens: 1}\n",
         r"prices\[0\]\.match: 'case_sensitive' is a dependency of 'regex'"),
        ("prices:\n  - model: x\n    match: {regex: 'gpt(', case_sensitive: true}\n    rates: {input_tokens: 1}\n",
         r"prices\[0\]: match.regex: 'gpt\(' is not a pattern costline can use \(missing \)"),
        ("prices:\n  - model: x\n    valid_from: yesterday\n    rates: {input_tokens: 1}\n", r"valid_from"),
        ("prices:\n  - model: x\n    rates: {input_tokens: 1}\n    colour: red\n",
         r"prices\[0\]: Additional properties"),
        ("prices: [\n", r"not valid YAML: line"),
        ("- just a list\n", r"expected a mapping"),
        ("prices:\n  - model: x\n    rates: {input_tokens: .inf}\n", r"not a finite number"),
    ],
)
def test_bad_files_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PriceDataError, match=message):
        load_price_file(write(tmp_path, text))


def test_json_price_file_and_bad_json(tmp_path: Path) -> None:
    ok = write(tmp_path, '{"prices": [{"model": "j", "rates": {"input_tokens": 0.3, "output_tokens": 1e-1}}]}',
               "p.json")
    (record,) = load_price_file(ok)
    assert record.rates["output_tokens"] == D("0.1")
    bad = write(tmp_path, '{"prices": [}', "bad.json")
    with pytest.raises(PriceDataError, match=r"bad.json: not valid JSON: line 1 column 13"):
        load_price_file(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PriceDataError, match="cannot read"):
        load_price_file(tmp_path / "nope.yaml")
