"""The command starts without loading what it does not need (no timing: the modules a process imported).

``costline --help`` and ``import costline.cli`` must not load the server stack, the store drivers or the
tokenizer; ``costline cost`` must not either, and once the compiled catalog is cached it does not import
genai-prices. The command list of ``costline --help`` is written without importing the commands, from texts
that must match each command's own help.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from costline.cli import COMMANDS, cli

HEAVY = ("fastapi", "uvicorn", "starlette", "duckdb", "psycopg", "bpe_openai", "apprise", "prometheus_client")


def _imported(args: list[str], data_dir: Path) -> set[str]:
    """The top-level packages a ``costline`` process imported (from ``python -X importtime``)."""
    done = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COSTLINE_DATA_DIR": str(data_dir)}, check=False)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "costline" in names  # the parsing found the imports at all
    return names


def test_import_cli_loads_nothing_heavy(tmp_path: Path) -> None:
    code = ("import json, sys, costline.cli; "
            f"print(json.dumps(sorted(m for m in {(*HEAVY, 'genai_prices', 'jsonschema')!r} if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == []


def test_help_loads_nothing_heavy(tmp_path: Path) -> None:
    loaded = _imported(["-m", "costline", "--help"], tmp_path)
    assert loaded.isdisjoint({*HEAVY, "genai_prices", "jsonschema", "rich"}), sorted(loaded)


def test_cost_loads_no_server_store_or_tokenizer_and_reads_the_cached_catalog(tmp_path: Path) -> None:
    args = ["-m", "costline", "cost", "--model", "gpt-4o", "--input-tokens", "1000", "--output-tokens", "100"]
    first = _imported(args, tmp_path)  # compiles the catalog and caches it
    assert first.isdisjoint(HEAVY), sorted(first & set(HEAVY))
    assert "genai_prices" in first
    assert list((tmp_path / "cache").glob("genai-catalog-*.pickle"))
    second = _imported(args, tmp_path)
    assert second.isdisjoint({*HEAVY, "genai_prices"}), sorted(second & {*HEAVY, "genai_prices"})


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_help_is_the_commands_own(name: str) -> None:
    module, attribute, text = COMMANDS[name]
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command) and command.name == name
    assert text == " ".join((command.help or "").split("\n\n")[0].split())
    for limit in (30, 45, 80):
        assert click.Command(name, help=text).get_short_help_str(limit) == command.get_short_help_str(limit)


def test_every_command_runs_from_the_lazy_group() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        assert cli.get_command(ctx, name) is getattr(importlib.import_module(COMMANDS[name][0]), COMMANDS[name][1])
    assert cli.get_command(ctx, "no-such-command") is None
