"""The command line as a user runs it: real processes for the main paths, click's runner for the rest.

Expected amounts are worked out from the published prices (USD per 1M tokens) in the comments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner

from costline.cli import cli

PAYLOADS = Path(__file__).parents[1] / "data" / "payloads"


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``costline`` entry point in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "costline", *args], input=stdin, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cost_from_token_counts_json(data_dir: Path) -> None:
    proc = run("cost", "--model", "gpt-4o", "--input-tokens", "1200", "--cached-tokens", "1000",
               "--output-tokens", "300", "--at", "2026-11-01", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # gpt-4o: 200 uncached × 2.50 + 1000 cached × 1.25 + 300 × 10.00 = 500 + 1250 + 3000 = 4750 / 1M
    assert out["total"] == "0.00475"
    assert out["currency"] == "USD"
    assert out["status"] == "priced"
    assert out["model"] == "gpt-4o"
    assert out["provider"] == "openai"
    assert out["price_id"].startswith("openai:gpt-4o")
    assert {c["unit"]: (c["quantity"], c["rate"], c["amount"]) for c in out["components"]} == {
        "input_tokens": ("200", "2.5", "0.0005"),
        "cache_read_tokens": ("1000", "1.25", "0.00125"),
        "output_tokens": ("300", "10", "0.003"),
    }
    assert sum(D(c["amount"]) for c in out["components"]) == D(out["total"])


def test_cost_unknown_model_is_unpriced_not_zero(data_dir: Path) -> None:
    """The breakdown still says unpriced (never 0); the exit status says the model has no price."""
    code, out, err = invoke("cost", "--model", "no-such-model-x", "--input-tokens", "10", "--output-tokens", "1",
                            "--json")
    assert code == 1
    data = json.loads(out)
    assert data["status"] == "unpriced"
    assert "no-such-model-x" in data["reason"]
    assert data["price_id"] is None
    assert data["total"] is None  # never "0"
    assert err.startswith("error: no price for model 'no-such-model-x'")
    code, out, _ = invoke("cost", "--model", "no-such-model-x", "--input-tokens", "10")
    assert code == 1
    assert [line.split() for line in out.splitlines() if line.strip("│ ").startswith("total")] == [
        ["│", "total", "│", "│", "│", "unpriced", "│"]]


@pytest.mark.parametrize("command", [
    ("cost", "--model", "gpt-4p", "--input-tokens", "10"),
    ("estimate", "--model", "gpt-4p", "--prompt", "hello"),
    ("cost", "--model", "claude-sonet-4-5", "--input-tokens", "10", "--format", "csv"),
])
def test_a_mistyped_model_names_the_closest_catalog_names(data_dir: Path, command: tuple[str, ...]) -> None:
    code, _, err = invoke(*command)
    assert code == 1
    wanted = "gpt-4o" if "gpt-4p" in command else "claude-sonnet-4-5"
    assert err.startswith(f"error: no price for model {command[2]!r}; closest catalog names: ")
    assert wanted in err.split("closest catalog names: ")[1].split(" (")[0].split(", ")


def test_cost_table_output(data_dir: Path) -> None:
    code, out, _ = invoke("cost", "--model", "claude-sonnet-4-5", "--provider", "anthropic",
                          "--input-tokens", "1000", "--output-tokens", "100", "--at", "2026-11-01")
    assert code == 0
    # 1000 × 3 + 100 × 15 = 4500 / 1M = 0.0045
    assert "0.0045" in out
    assert "status: priced" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cost", "--model", "gpt-4o", "--input-tokens", "-5"], "-5 is not in the range x>=0"),
        (["cost", "--model", "gpt-4o"], "give --input-tokens and/or --output-tokens"),
        (["cost", "--input-tokens", "5"], "give --response FILE with --provider"),
        (["cost", "--model", "gpt-4o", "--input-tokens", "10", "--cached-tokens", "20"],
         "cache_read_tokens (20) exceeds input_tokens (10)"),
        (["cost", "--model", "gpt-4o", "--input-tokens", "10", "--at", "yesterday"], "'yesterday' is not an ISO"),
        (["cost", "--bogus"], "No such option '--bogus'"),
        (["cost", "--model", "m", "--input-tokens", "1", "--attribute", "flex"], "'flex' is not KEY=VALUE"),
        (["prices", "import", "/nonexistent.json", "--format", "litellm"], "does not exist"),
        (["estimate", "--model", "gpt-4o"], "exactly one of --prompt and --prompt-file"),
        (["estimate", "--model", "gpt-4o", "--prompt", "x", "--max-output-tokens", "-1"], "not in the range"),
    ],
)
def test_bad_input_gives_one_line_error(data_dir: Path, args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code != 0
    assert message in err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Traceback" not in err + out


def test_response_file_errors(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"usage": {"prompt_tokens": 1', "utf-8")
    code, _, err = invoke("cost", "--provider", "openai", "--response", str(bad))
    assert code == 1 and "not valid JSON: line 1" in err
    code, _, err = invoke("cost", "--provider", "openai", "--response", "-", stdin="")
    assert code == 1 and "empty input" in err
    code, _, err = invoke("cost", "--response", str(bad))
    assert code == 2 and "--response needs --provider" in err
    code, _, err = invoke("cost", "--provider", "openai", "--response", str(bad), "--input-tokens", "3")
    assert code == 2 and "cannot be combined with --input-tokens" in err


def test_cost_from_stdin_response(data_dir: Path) -> None:
    body = {
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2000, "completion_tokens": 100, "total_tokens": 2100,
                  "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
    }
    proc = run("cost", "--provider", "openai", "--response", "-", "--at", "2026-11-01", "--json",
               stdin=json.dumps(body))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # 976 uncached × 2.5 + 1024 cached × 1.25 + 100 × 10 = 2440 + 1280 + 1000 = 4720 / 1M
    assert out["total"] == "0.00472"
    assert out["requested_model"] == "gpt-4o-2024-08-06"


def test_prices_explain_and_history(data_dir: Path) -> None:
    proc = run("prices", "explain", "gpt-4o")
    assert proc.returncode == 0, proc.stderr
    assert "rule:" in proc.stdout and "source:    bundled:genai-prices@" in proc.stdout
    assert "input_tokens" in proc.stdout and "2.5" in proc.stdout
    _, out, _ = invoke("prices", "explain", "gpt-4o", "--json")
    data = json.loads(out)
    assert data["matched"]["rates"]["input_tokens"] == "2.5"
    assert data["matched"]["rates"]["output_tokens"] == "10"


def test_prices_explain_miss_suggests_nearest(data_dir: Path) -> None:
    code, out, _ = invoke("prices", "explain", "gpt4o-mini")
    assert code == 1
    assert "no price matches 'gpt4o-mini'" in out
    assert "nearest:" in out and "gpt-4o-mini" in out


def test_prices_list_filters(data_dir: Path) -> None:
    code, out, _ = invoke("prices", "list", "--provider", "anthropic", "--search", "sonnet", "--json")
    assert code == 0
    rows = json.loads(out)
    assert rows and all(r["provider"] == "anthropic" and "sonnet" in r["model"] for r in rows)


def test_user_prices_via_option_and_import(data_dir: Path, tmp_path: Path) -> None:
    prices = tmp_path / "mine.yaml"
    prices.write_text("prices:\n  - model: house-model\n    rates: {input_tokens: 1, output_tokens: 2}\n", "utf-8")
    _, out, _ = invoke("--prices", str(prices), "cost", "--model", "house-model", "--input-tokens",
                          "1000000", "--output-tokens", "500000", "--json")
    # 1M × 1 + 0.5M × 2 = 2 (per 1M)
    assert json.loads(out)["total"] == "2"
    code, out, _ = invoke("prices", "import", str(prices), "--format", "costline", "--json")
    assert code == 0
    assert json.loads(out)["records"] == 1
    assert (data_dir / "prices" / "user" / "mine.yaml").exists()
    code, out, _ = invoke("cost", "--model", "house-model", "--input-tokens", "1000000", "--json")
    assert json.loads(out)["total"] == "1"


def test_prices_import_bad_file(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("prices:\n  - model: x\n    rates: {input_tokens: -1}\n", "utf-8")
    code, _, err = invoke("prices", "import", str(bad), "--format", "costline")
    assert code == 1
    assert "prices[0].rates.input_tokens: -1 is less than the minimum of 0" in err
    assert not (data_dir / "prices" / "user" / "bad.yaml").exists()


def test_estimate_counts_and_prices(data_dir: Path) -> None:
    code, out, _ = invoke("estimate", "--model", "gpt-4o", "--prompt", "Hello, world!", "--max-output-tokens",
                          "1000", "--at", "2026-11-01", "--json")
    assert code == 0
    data = json.loads(out)
    # "Hello, world!" is 4 o200k_base tokens: 4 × 2.5 + 1000 × 10 = 10010 / 1M
    assert data["input_tokens"] == 4 and data["exact"] is True and data["encoding"] == "o200k_base"
    assert data["total"] == "0.01001"


def test_estimate_other_model_is_labelled_estimate(data_dir: Path, tmp_path: Path) -> None:
    prompt = tmp_path / "p.txt"
    prompt.write_text("Summarise the following text.", "utf-8")
    _, out, _ = invoke("estimate", "--model", "claude-sonnet-4-5", "--prompt-file", str(prompt), "--json",
                          "--cheapest", "3", "--allow-provider", "anthropic")
    data = json.loads(out)
    assert data["exact"] is False and "estimate" in data["count_method"]
    assert len(data["cheapest"]) == 3 and all(c["provider"] == "anthropic" for c in data["cheapest"])
    totals = [D(c["total"]) for c in data["cheapest"]]
    assert totals == sorted(totals)


def test_units_and_help(data_dir: Path) -> None:
    code, out, _ = invoke("prices", "units")
    assert code == 0 and "cache_read_tokens" in out
    code, out, _ = invoke("--help")
    assert code == 0 and "prices" in out and "cost" in out and "estimate" in out
