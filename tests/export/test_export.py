"""``costline export`` to CSV, JSON Lines and Parquet over real stores, read back and checked by hand.

The sample dataset (tests/export/sample.py) states every observation's cost; the trace attribution expected
here (user, tags, metadata) is the rule of costline.core.query's docstring applied by hand.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from tests.export.sample import child_env, fill, store_url_for

from costline.cli import cli
from costline.core.events import Observation
from costline.store.base import open_store

P1_RANGE = ("--from", "2026-11-01", "--to", "2026-11-04", "--project", "p1")
#: p1's observations in start-time order, with cost (None: unpriced or uncosted), effective user, tags
EXPECTED = [
    ("o4", "0.018", "carol", []),
    ("o1", "0.0045", "alice", ["beta"]),
    ("o2", "0.0125", "alice", []),
    ("o3", "0.0075", "bob", ["x", "beta", "prod"]),  # t2's user wins; tags: own first, then the trace's
    ("o6", None, "bob", ["beta", "prod"]),
    ("o7", None, "alice", []),
    ("o5", "0.025", "carol", []),
]


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path, data_dir: Path) -> Iterator[str]:
    for found in store_url_for(request.param, tmp_path):
        fill(found)
        yield found


def export(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["export", "--store", url, *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_csv_export(url: str, tmp_path: Path) -> None:
    out = tmp_path / "obs.csv"
    code, stdout, err = export(url, *P1_RANGE, "--format", "csv", "--out", str(out))
    assert code == 0, err
    assert stdout == ""
    assert err.strip() == f"wrote 7 observation(s) to {out}"
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["total_cost"] or None, r["user_id"], json.loads(r["tags"])) for r in rows] == EXPECTED
    assert sum(D(r["total_cost"]) for r in rows if r["total_cost"]) == D("0.0675")  # 0.018+0.0045+0.0125+0.0075+0.025
    o2 = next(r for r in rows if r["id"] == "o2")
    assert json.loads(o2["metadata"]) == {"team": "ads", "tier": "pro"}  # own key wins, the trace's tier added
    assert o2["trace_name"] == "chat" and o2["start_time"] == "2026-11-02T09:30:00Z"
    assert json.loads(o2["cost"]) == {"input_tokens": "0.0075", "output_tokens": "0.005"}  # exact strings
    assert (o2["input_tokens"], o2["output_tokens"]) == ("3000", "500")
    o6 = next(r for r in rows if r["id"] == "o6")
    assert (o6["total_cost"], o6["pricing_status"]) == ("", "unpriced")  # NULL, not 0
    assert not list(tmp_path.glob(".*partial"))


def test_jsonl_export(url: str, tmp_path: Path) -> None:
    out = tmp_path / "obs.jsonl"
    code, _, err = export(url, *P1_RANGE, "--format", "jsonl", "--out", str(out), "--quiet")
    assert code == 0 and err == ""
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [(r["id"], r["total_cost"], r["user_id"], r["tags"]) for r in rows] == EXPECTED
    o1 = rows[1]
    assert o1["metadata"] == {"team": "search", "tier": "pro"}
    assert o1["usage"] == {"input_tokens": 1000, "output_tokens": 200}
    assert o1["input_tokens"] == 1000 and o1["end_time"] is None and o1["release"] is None
    assert rows[4]["total_cost"] is None and rows[4]["pricing_status"] == "unpriced"


def test_parquet_export_reads_back_exactly(url: str, tmp_path: Path) -> None:
    out = tmp_path / "obs.parquet"
    code, _, err = export(url, *P1_RANGE, "--format", "parquet", "--out", str(out))
    assert code == 0, err
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    types = dict(conn.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{out}')").fetchall())
    assert types["total_cost"] == "DECIMAL(38,12)"
    assert types["start_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["tags"] == "VARCHAR[]" and types["input_tokens"] == "BIGINT"
    rows = conn.execute(
        f"SELECT id, total_cost, user_id, tags, start_time::VARCHAR, metadata, input_tokens FROM '{out}'"
    ).fetchall()
    assert [(r[0], None if r[1] is None else str(r[1].normalize()), r[2], r[3]) for r in rows] == [
        (i, None if c is None else str(D(c).normalize()), u, t) for i, c, u, t in EXPECTED
    ]
    assert rows[0][4] == "2026-11-01 23:30:00+00"
    assert json.loads(rows[2][5]) == {"team": "ads", "tier": "pro"}
    total = conn.execute(f"SELECT sum(total_cost), count(*) FROM '{out}'").fetchone()
    assert total == (D("0.0675"), 7)


def test_all_projects_and_bad_flags(url: str, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    code, _, _ = export(url, "--from", "2026-11-02", "--to", "2026-11-03", "--format", "jsonl", "--out", str(out))
    assert code == 0
    ids = [json.loads(line)["id"] for line in out.read_text("utf-8").splitlines()]
    assert ids == ["o1", "o2", "o3", "o8", "o6", "o7", "o5"]  # p2's o8 at 11:00 too
    for args, message in [
        (["--from", "2026-11-04", "--to", "2026-11-01"], "Invalid value for --from"),
        (["--from", "yesterday", "--to", "2026-11-01"], "'yesterday' is not an ISO 8601 date"),
        (["--from", "2026-11-01", "--to", "2026-11-04", "--out", str(tmp_path / "no" / "x.csv")], "does not exist"),
        (["--from", "2026-11-01", "--to", "2026-11-04", "--format", "xml"], "'xml' is not one of"),
        (["--from", "2026-11-01", "--to", "2026-11-04", "--project", "p9"], "no project 'p9'"),
    ]:
        full = {"--format": "csv", "--out": str(tmp_path / "x.csv")}
        full.update(dict(zip(args[::2], args[1::2], strict=True)))
        code, _, err = export(url, *[part for item in full.items() for part in item])
        assert code == 2, err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.csv").exists()


def big_dataset(url: str, count: int) -> D:
    """``count`` gpt-4o calls a minute apart from 2026-11-01; call i has (i % 7 + 1) × 1000 input tokens at
    2.50 per 1M. Returns the expected total: 2.50 / 1M × 1000 × Σ (i % 7 + 1)."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        tokens = 1000 * (i % 7 + 1)
        rows.append(Observation(
            project_id="big", id=f"b{i:05d}", trace_id=f"bt{i // 10}", start_time=start + timedelta(minutes=i),
            type="generation", model="gpt-4o", provider="openai", usage={"input_tokens": tokens},
            total_cost=tokens * D("2.50") / 1_000_000, pricing_status="priced",
        ))
    store = open_store(url)
    try:
        store.write(rows)
    finally:
        store.close()
    return D("2.50") / 1_000_000 * 1000 * sum(i % 7 + 1 for i in range(count))


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "costline", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_large_export_with_progress_bar(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'big.duckdb'}"
    expected = big_dataset(url, 3000)
    # Σ (i % 7 + 1) for i < 3000 = 428 cycles × (1 + ... + 7 = 28) + (1 + 2 + 3 + 4) = 11,994;
    # × 1000 tokens × 2.50 / 1M = 29.985
    assert expected == D("29.985")
    out = tmp_path / "big.parquet"
    args = ("export", "--store", url, "--from", "2026-11-01", "--to", "2026-11-10", "--format", "parquet",
            "--out", str(out))
    # rich draws the bar when it believes stderr is a terminal (TTY_COMPATIBLE=1 says so for a pipe)
    proc = run(*args, env=child_env(tmp_path, TTY_COMPATIBLE="1"))
    assert proc.returncode == 0, proc.stderr
    assert "exporting to big.parquet" in proc.stderr and "3000/3000" in proc.stderr
    assert proc.stdout == ""
    total = duckdb.connect().execute(f"SELECT sum(total_cost), count(*), count(DISTINCT id) FROM '{out}'").fetchone()
    assert total == (expected, 3000, 3000)
    # not a terminal: no bar, just the summary; --quiet: nothing at all
    plain = run(*args, env=child_env(tmp_path))
    assert plain.returncode == 0 and plain.stderr == f"wrote 3000 observation(s) to {out}\n"
    quiet = run(*args, "--quiet", env=child_env(tmp_path, TTY_COMPATIBLE="1"))
    assert quiet.returncode == 0 and quiet.stderr == ""
