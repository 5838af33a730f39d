"""`--format table|json|csv` on every command that prints data (`--json` an alias), and tables written to a pipe
or a file keep their full width (never cut to 80 columns).

Amounts from published prices: gpt-4o input 2.50, output 10 USD per 1M tokens.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.export.sample import at, fill, generation

from costline.cli import cli

P1 = ("--project", "p1")
LONG_MODEL = "acme-" + "x" * 190 + "-v1"  # 200 characters
PRICE_FILE = f"""version: 1
prices:
  - model: {LONG_MODEL}
    provider: acme
    rates: {{input_tokens: 1, output_tokens: 2}}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def store(data_dir: Path) -> str:
    """A DuckDB store with the sample dataset (tests/export/sample.py) and an observation of a model with a
    200-character name; a budget and an alert rule in p1; a price file for the long model."""
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"duckdb:///{data_dir / 'store.duckdb'}"
    fill(url, [generation("long", at(20, 10), LONG_MODEL, 1000, 0, trace="tl")])
    assert invoke("budgets", "create", "--name", "daily", "--window", "day", "--limit", "5", *P1, "--store",
                  url)[0] == 0
    assert invoke("alerts", "create", "--name", "big", "--kind", "request_cost", "--threshold", "1", *P1,
                  "--store", url)[0] == 0
    (data_dir / "prices.yaml").write_text(PRICE_FILE)
    return url


def _commands(data_dir: Path, url: str) -> list[tuple[str, ...]]:
    return [
        ("cost", "--model", "gpt-4o", "--input-tokens", "1000", "--output-tokens", "100"),
        ("estimate", "--model", "gpt-4o", "--prompt", "hello", "--cheapest", "2"),
        ("prices", "list", "--provider", "openai", "--search", "gpt-4o-mini", "--limit", "3"),
        ("prices", "explain", "gpt-4o", "--at", "2026-11-01"),
        ("prices", "units"),
        ("projects", "list", "--store", url),
        ("reprice", "--from", "2026-11-01", "--to", "2026-12-01", "--dry-run", "--store", url),
        ("purge", "--older-than", "3650", "--store", url),
        ("budgets", "list", *P1, "--store", url),
        ("budgets", "show", "daily", *P1, "--store", url),
        ("alerts", "list", *P1, "--store", url),
        ("alerts", "history", *P1, "--store", url),
        ("channels", "list", *P1, "--store", url),
        ("report", "--from", "2026-11-01", "--to", "2026-12-01", "--store", url),
        ("top", "models", "--from", "2026-11-01", "--to", "2026-12-01", "--store", url),
    ]


def test_every_data_command_prints_table_json_and_csv(store: str, data_dir: Path) -> None:
    for command in _commands(data_dir, store):
        shown: dict[str, Any] = {}
        for fmt in ("table", "json", "csv"):
            code, out, err = invoke(*command, "--format", fmt)
            assert code == 0, (command, fmt, err)
            shown[fmt] = out
        if json.loads(shown["json"]) != []:  # an empty list has no rows and no known columns
            header = next(csv.reader(io.StringIO(shown["csv"])))
            assert header and all(header), (command, header)
            assert shown["table"].strip(), command
        assert not shown["table"].lstrip().startswith(("{", "[")), command
        # --json is --format json (times that come from the clock aside)
        assert _shape(json.loads(invoke(*command, "--json")[1])) == _shape(json.loads(shown["json"])), command
        code, _, err = invoke(*command, "--json", "--format", "csv")
        assert code == 2 and "--json is --format json" in err


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def test_csv_values_are_exact(data_dir: Path) -> None:
    code, out, _ = invoke("cost", "--model", "gpt-4o", "--input-tokens", "1000", "--output-tokens", "100",
                          "--at", "2026-11-01", "--format", "csv")
    assert code == 0
    rows = {r["unit"]: r for r in csv.DictReader(io.StringIO(out))}
    # 1000 × 2.5/M = 0.0025; 100 × 10/M = 0.001; total 0.0035
    assert (rows["input_tokens"]["amount"], rows["output_tokens"]["amount"], rows["total"]["amount"]) == (
        "0.0025", "0.001", "0.0035")
    assert rows["input_tokens"]["rate"] == "2.5" and rows["input_tokens"]["per"] == "1000000"


def test_prices_import_prints_with_output_format(data_dir: Path) -> None:
    code, out, err = invoke("prices", "import", str(data_dir.parent / "p.yaml"), "--format", "costline")
    assert code == 2  # no such file: the file format flag still names the file's format
    (data_dir.parent / "p.yaml").write_text(PRICE_FILE)
    code, out, err = invoke("prices", "import", str(data_dir.parent / "p.yaml"), "--format", "costline",
                            "--dry-run", "--output-format", "csv")
    assert code == 0, err
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["records"] == "1" and row["format"] == "costline" and row["stored_as"] == ""


def _piped(args: list[str], data_dir: Path, target: Path) -> str:
    """Run ``costline`` with standard output going to a file (not a terminal); what it wrote."""
    env = {**os.environ, "COSTLINE_DATA_DIR": str(data_dir), "TZ": "UTC", "COLUMNS": "80"}
    with target.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "costline", *args], stdout=out, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return target.read_text()


def test_a_wide_table_to_a_file_is_not_cut(store: str, data_dir: Path, tmp_path: Path) -> None:
    """A 200-character model name: the table row keeps it whole on one line, in `prices list` and `report`."""
    listed = _piped(["--prices", str(data_dir / "prices.yaml"), "prices", "list", "--provider", "acme"],
                    data_dir, tmp_path / "prices.txt")
    line = next(line for line in listed.splitlines() if LONG_MODEL in line)
    assert len(line) > 200 and "…" not in listed

    report = _piped(["report", "--by", "model", "--from", "2026-11-01", "--to", "2026-12-01", "--store", store],
                    data_dir, tmp_path / "report.txt")
    assert any(LONG_MODEL in line for line in report.splitlines()), report
