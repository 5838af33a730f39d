"""CSV cells a spreadsheet would run as formulas (OWASP "CSV injection") start with ``'``, in ``costline export
--format csv`` and ``costline report --format csv``; plain numbers, negative ones included, are left alone."""

from __future__ import annotations

import csv
import io
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.export.sample import at, fill, generation

from costline.cli import cli
from costline.export.records import Field, csv_cell
from costline.export.writers import CsvWriter

HOSTILE = {
    "=HYPERLINK(\"http://127.0.0.1/x\",\"y\")": "'=HYPERLINK(\"http://127.0.0.1/x\",\"y\")",
    "+cmd|' /C calc'!A0": "'+cmd|' /C calc'!A0",
    "-2+3": "'-2+3",
    "@SUM(1+1)": "'@SUM(1+1)",
    "\tx": "'\tx",
    "\rx": "'\rx",
}
PLAIN = ("-1.50", "+2", "-0.000000000001", "1e5", "-3E-2", "alice", "", "a=b", "0.0045")


def test_csv_cell() -> None:
    for given, expected in HOSTILE.items():
        assert csv_cell(given) == expected
    for given in PLAIN:
        assert csv_cell(given) == given
    assert csv_cell("-1.50x") == "'-1.50x"
    assert csv_cell("--1") == "'--1"


def test_writer_keeps_negative_money_a_number(tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    writer = CsvWriter(out, [Field("name"), Field("amount", "money"), Field("note")])
    writer.write([{"name": "=1+1", "amount": D("-1.50"), "note": "-1.50"}])
    writer.close()
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))
    assert rows == [["name", "amount", "note"], ["'=1+1", "-1.5", "-1.50"]]  # exact decimal text, no quote


@pytest.fixture
def url(tmp_path: Path, data_dir: Path) -> str:
    found = f"duckdb:///{tmp_path / 'store.duckdb'}"
    extra = [generation(f"h{i}", at(2, 14, i), "gpt-4o", 1000, 0, trace=f"h{i}", user_id=text, name=text,
                        environment=text, tags=(text,), metadata={"team": text})
             for i, text in enumerate([*HOSTILE, "-1.50"])]
    fill(found, extra)
    return found


def test_export_csv_neutralises_formulas(url: str, tmp_path: Path) -> None:
    out = tmp_path / "obs.csv"
    result = CliRunner().invoke(cli, ["export", "--store", url, "--from", "2026-11-02", "--to", "2026-11-03",
                                      "--project", "p1", "--format", "csv", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"), newline=""))}
    for i, expected in enumerate(HOSTILE.values()):
        row = rows[f"h{i}"]
        assert (row["user_id"], row["name"], row["environment"]) == (expected, expected, expected)
        assert row["total_cost"] == "0.0025"  # 1000 × 2.50 / 1M: money stays a plain number
    number = rows[f"h{len(HOSTILE)}"]
    assert (number["user_id"], number["name"]) == ("-1.50", "-1.50")  # a plain number is not text to defuse


def test_report_csv_neutralises_formulas(url: str) -> None:
    result = CliRunner().invoke(cli, ["report", "--store", url, "--from", "2026-11-02", "--to", "2026-11-03",
                                      "--project", "p1", "--by", "user", "--format", "csv"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    rows = {r["user"]: r for r in csv.DictReader(io.StringIO(result.stdout, newline=""))}
    for expected in HOSTILE.values():
        assert rows[expected]["sum_cost"] == "0.0025"
    assert rows["-1.50"]["sum_cost"] == "0.0025"
    assert not any(user.startswith(("=", "+", "@", "\t", "\r")) for user in rows)
