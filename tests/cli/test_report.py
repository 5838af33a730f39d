"""``costline report`` and ``costline top`` over a real store (DuckDB file and PostgreSQL), run through click.

The dataset and the cost of every observation are in tests/export/sample.py; the expected numbers below are
added up by hand from it (each sum is spelled out in a comment).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.export.sample import fill, store_url_for

from costline.cli import cli, report
from costline.cli.query_render import number_text, places

NOV2 = ("--from", "2026-11-02", "--to", "2026-11-03")


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path, data_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A store holding the sample dataset; TZ unset so the default zone is UTC."""
    monkeypatch.delenv("TZ", raising=False)
    for found in store_url_for(request.param, tmp_path):
        fill(found)
        yield found


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def report_json(url: str, *args: str) -> dict[str, Any]:
    code, out, err = invoke("report", "--store", url, "--format", "json", *args)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_report_by_model_all_projects(url: str) -> None:
    data = report_json(url, *NOV2, "--by", "model")
    assert data["columns"] == ["model", "sum_cost", "count", "unpriced", "sum_input_tokens", "sum_output_tokens"]
    rows = by(data["rows"], "model")
    # gpt-4o on Nov 2 (UTC): o1 0.0045 + o2 0.0125 + o5 0.025 + o8 (p2) 0.005 = 0.047
    assert rows["gpt-4o"] == {"model": "gpt-4o", "sum_cost": "0.047", "count": 4, "unpriced": 0,
                              "sum_input_tokens": 1000 + 3000 + 10000 + 2000, "sum_output_tokens": 200 + 500}
    assert rows["claude-sonnet-4-5"]["sum_cost"] == "0.0075"  # o3 only: o4 is on Nov 1 in UTC
    # the unpriced model has no cost (null), not 0, and is counted as unpriced
    assert rows["mystery-1"] == {"model": "mystery-1", "sum_cost": None, "count": 1, "unpriced": 1,
                                 "sum_input_tokens": 500, "sum_output_tokens": 50}
    assert rows[None]["sum_cost"] is None and rows[None]["count"] == 1 and rows[None]["unpriced"] == 0  # o7
    assert [r["model"] for r in data["rows"]] == ["gpt-4o", "claude-sonnet-4-5", "mystery-1", None]
    # 0.047 + 0.0075 = 0.0545; 7 observations; 16000 + 2000 + 500 input tokens
    assert data["total"] == {"sum_cost": "0.0545", "count": 7, "unpriced": 1, "sum_input_tokens": 18500,
                             "sum_output_tokens": 850}
    assert data["query"]["timezone"] == "UTC"
    assert data["query"]["from"] == "2026-11-02T00:00:00+00:00"


def test_report_project_and_zone_move_the_day(url: str) -> None:
    utc = by(report_json(url, *NOV2, "--by", "model", "--project", "p1")["rows"], "model")
    assert utc["gpt-4o"]["sum_cost"] == "0.042"  # 0.0045 + 0.0125 + 0.025, without p2's o8
    # Nov 2 in Berlin (UTC+1) is 2026-11-01T23:00Z → 2026-11-02T23:00Z: o4 (23:30Z Nov 1) is in, o5 is out
    berlin = report_json(url, *NOV2, "--by", "model", "--project", "p1", "--tz", "Europe/Berlin")
    rows = by(berlin["rows"], "model")
    assert rows["gpt-4o"]["sum_cost"] == "0.017"  # 0.0045 + 0.0125
    assert rows["claude-sonnet-4-5"]["sum_cost"] == "0.0255"  # 0.0075 + 0.018
    assert berlin["total"]["sum_cost"] == "0.0425"
    assert berlin["query"]["from"] == "2026-11-01T23:00:00+00:00"
    assert berlin["query"]["to"] == "2026-11-02T23:00:00+00:00"


def test_report_daily_buckets_in_a_zone(url: str) -> None:
    data = report_json(url, "--from", "2026-11-01", "--to", "2026-11-04", "--tz", "Europe/Berlin",
                       "--granularity", "day", "--project", "p1", "--metric", "sum:cost,count")
    assert data["columns"] == ["time", "sum_cost", "count"]
    # Berlin Nov 2: o4 0.018 + o1 0.0045 + o2 0.0125 + o3 0.0075 (+ o6, o7 uncosted) = 0.0425; Nov 3: o5 0.025
    assert data["rows"] == [
        {"time": "2026-11-02T00:00:00+01:00", "sum_cost": "0.0425", "count": 6},
        {"time": "2026-11-03T00:00:00+01:00", "sum_cost": "0.025", "count": 1},
    ]
    assert data["total"] == {"sum_cost": "0.0675", "count": 7}


def test_report_calendar_ranges_use_now_in_the_zone(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "_now", lambda: datetime(2026, 11, 2, 23, 45, tzinfo=UTC))
    p1 = ("--project", "p1", "--metric", "sum:cost")
    # UTC today = Nov 2 00:00Z → 23:45Z: o1 + o2 + o3 + o5 = 0.0045 + 0.0125 + 0.0075 + 0.025
    assert report_json(url, "--today", *p1)["rows"] == [{"sum_cost": "0.0495"}]
    # in Berlin it is already Nov 3 00:45: today began at 23:00Z, so only o5 (23:30Z)
    berlin = report_json(url, "--today", "--tz", "Europe/Berlin", *p1)
    assert berlin["rows"] == [{"sum_cost": "0.025"}]
    assert berlin["query"]["from"] == "2026-11-02T23:00:00+00:00"
    # Mon 2026-11-02 starts the ISO week: Sunday's o4 is out; the month has it: 0.0495 + 0.018
    assert report_json(url, "--week", *p1)["rows"] == [{"sum_cost": "0.0495"}]
    assert report_json(url, "--month", *p1)["rows"] == [{"sum_cost": "0.0675"}]
    monkeypatch.setattr(report, "_now", lambda: datetime(2026, 11, 4, 10, tzinfo=UTC))  # a Wednesday
    assert report_json(url, "--week", *p1)["query"]["from"] == "2026-11-02T00:00:00+00:00"


def test_report_default_zone_comes_from_tz(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    data = report_json(url, *NOV2, "--project", "p1", "--metric", "sum:cost")
    assert data["query"]["timezone"] == "Europe/Berlin"
    assert data["rows"] == [{"sum_cost": "0.0425"}]
    monkeypatch.setenv("TZ", "EST+5")  # a POSIX rule, not an IANA zone: UTC
    assert report_json(url, *NOV2, "--project", "p1", "--metric", "sum:cost")["query"]["timezone"] == "UTC"


def test_report_user_attribution_and_filters(url: str) -> None:
    p1 = (*NOV2, "--project", "p1")
    users = by(report_json(url, *p1, "--by", "user")["rows"], "user")
    # o3 says carol but its trace t2 says bob: the trace wins; o5 has no trace row, so its own carol counts
    assert {u: (r["sum_cost"], r["count"], r["unpriced"]) for u, r in users.items()} == {
        "alice": ("0.017", 3, 0),  # o1 0.0045 + o2 0.0125, o7 uncosted
        "bob": ("0.0075", 2, 1),  # o3, o6 unpriced
        "carol": ("0.025", 1, 0),  # o5
    }
    # repeated KEY=VALUE matches any of the values: gpt-4o 0.042 + claude 0.0075
    either = report_json(url, *p1, "--filter", "model=gpt-4o", "--filter", "model=claude-sonnet-4-5")
    assert either["rows"][0]["sum_cost"] == "0.0495"
    # != keeps observations without a model (o7) and the unpriced o6
    other = report_json(url, *p1, "--filter", "model!=gpt-4o")["rows"][0]
    assert (other["sum_cost"], other["count"], other["unpriced"]) == ("0.0075", 3, 1)
    # the tag filter sees the trace's tags too: o1 (own), o3 and o6 (t2's) → 0.0045 + 0.0075
    assert report_json(url, *p1, "--filter", "tag=beta")["rows"][0]["sum_cost"] == "0.012"
    # metadata: o1's own team=search, o7 inherits t1's; o2's own team=ads wins over t1's
    team = report_json(url, *p1, "--filter", "metadata.team=search")["rows"][0]
    assert (team["sum_cost"], team["count"]) == ("0.0045", 2)
    big = report_json(url, *p1, "--filter", "cost>=0.01")["rows"][0]
    assert (big["sum_cost"], big["count"]) == ("0.0375", 2)  # o2 0.0125 + o5 0.025


def test_report_by_tag_has_no_total(url: str) -> None:
    data = report_json(url, *NOV2, "--project", "p1", "--by", "tag", "--metric", "sum:cost,count")
    assert by(data["rows"], "tag") == {
        "beta": {"tag": "beta", "sum_cost": "0.012", "count": 3},  # o1, o3, o6
        "prod": {"tag": "prod", "sum_cost": "0.0075", "count": 2},  # o3, o6
        "x": {"tag": "x", "sum_cost": "0.0075", "count": 1},  # o3
        None: {"tag": None, "sum_cost": "0.0375", "count": 3},  # o2, o5, o7
    }
    assert data["total"] is None
    code, out, _ = invoke("report", "--store", url, *NOV2, "--project", "p1", "--by", "tag")
    assert code == 0
    assert not any(line.strip("│ ").startswith("total") for line in out.splitlines())
    assert "counts under each" in out


def test_report_traces_view(url: str) -> None:
    data = report_json(url, *NOV2, "--project", "p1", "--view", "traces", "--by", "user",
                       "--metric", "sum:cost,count,sum:observations,unpriced")
    assert {r["user"]: (r["sum_cost"], r["count"], r["sum_observations"], r["unpriced"]) for r in data["rows"]} == {
        "carol": ("0.025", 1, 1, 0),  # t3 (no trace row): o5
        "alice": ("0.017", 1, 3, 0),  # t1: o1, o2, o7
        "bob": ("0.0075", 1, 2, 1),  # t2: o3, o6
    }
    assert data["total"] == {"sum_cost": "0.0495", "count": 3, "sum_observations": 6, "unpriced": 1}


def test_report_table_rounds_only_for_display(url: str) -> None:
    code, out, err = invoke("report", "--store", url, *NOV2, "--by", "model")
    assert code == 0, err
    lines = out.splitlines()
    total = next(line for line in lines if line.strip("│ ").startswith("total"))
    # the smallest amount, 0.0075, needs 4 places: 0.047 shows as 0.0470, the total 0.0545 as is
    assert "0.0545" in total and " 7 " in total and "18,500" in total
    assert any("gpt-4o" in line and "0.0470" in line for line in lines)
    assert any("mystery-1" in line and "unpriced" in line for line in lines)
    assert any("1 observation(s) could not be priced" in line for line in lines)


def test_report_csv_is_exact(url: str) -> None:
    code, out, _ = invoke("report", "--store", url, *NOV2, "--by", "model", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0] == {"model": "gpt-4o", "sum_cost": "0.047", "count": "4", "unpriced": "0",
                       "sum_input_tokens": "16000", "sum_output_tokens": "700"}
    assert rows[2]["model"] == "mystery-1" and rows[2]["sum_cost"] == ""  # null, never 0


def test_report_limit_total_covers_every_row(url: str) -> None:
    data = report_json(url, *NOV2, "--by", "model", "--limit", "1")
    assert data["truncated"] is True
    assert [r["model"] for r in data["rows"]] == ["gpt-4o"]
    assert data["total"]["sum_cost"] == "0.0545"  # from the store, not from the one row shown


def test_top(url: str) -> None:
    code, out, err = invoke("top", "traces", "--store", url, *NOV2, "--project", "p1", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [(r["id"], r["name"], r["user"], r["sum_cost"], r["sum_observations"], r["unpriced"]) for r in rows] == [
        ("t3", None, "carol", "0.025", 1, 0),
        ("t1", "chat", "alice", "0.017", 3, 0),
        ("t2", "summarize", "bob", "0.0075", 2, 1),
    ]
    code, out, _ = invoke("top", "users", "--store", url, *NOV2, "--project", "p1", "--limit", "2", "--format", "json")
    users = json.loads(out)
    assert [(r["user"], r["sum_cost"]) for r in users["rows"]] == [("carol", "0.025"), ("alice", "0.017")]
    assert users["total"]["sum_cost"] == "0.0495"  # all three users, though two are shown
    code, out, _ = invoke("top", "models", "--store", url, *NOV2, "--format", "json")
    models = json.loads(out)["rows"]
    assert [(r["model"], r["provider"], r["sum_cost"]) for r in models[:2]] == [
        ("gpt-4o", "openai", "0.047"), ("claude-sonnet-4-5", "anthropic", "0.0075")]
    code, out, _ = invoke("top", "models", "--store", url, *NOV2)
    assert code == 0 and "top models" in out and "gpt-4o" in out


@pytest.mark.parametrize(
    ("args", "flag", "message"),
    [
        (["--by", "model,nope"], "--by", "unknown dimension 'nope'"),
        (["--view", "traces", "--by", "model"], "--by", "unknown dimension 'model' for the traces view"),
        (["--from", "2026-13-01"], "--from", "is not an ISO 8601 date or time"),
        (["--from", "2026-11-03", "--to", "2026-11-02"], "--from", "is not before to"),
        (["--filter", "model"], "--filter", "expected KEY=VALUE"),
        (["--filter", "model="], "--filter", "expected KEY=VALUE"),
        (["--filter", "nosuch=1"], "--filter 'nosuch=1'", "unknown field 'nosuch'"),
        (["--filter", "cost>=cheap"], "--filter 'cost>=cheap'", "not a number"),
        (["--metric", "p95:nope"], "--metric", "unknown measure 'nope'"),
        (["--tz", "Mars/Olympus"], "--tz", "unknown time zone 'Mars/Olympus'"),
        (["--today", "--from", "2026-11-01"], "", "give only one of --today"),
        (["--granularity", "fortnight"], "--granularity", "'fortnight' is not one of"),
        (["--project", "nope"], "--project", "no project 'nope'"),
    ],
)
def test_report_bad_flags_are_one_line_errors(url: str, args: list[str], flag: str, message: str) -> None:
    code, out, err = invoke("report", "--store", url, *args)
    assert code == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert flag in err and message in err, err


def test_top_bad_choice(url: str) -> None:
    code, _, err = invoke("top", "sessions", "--store", url)
    assert code == 2 and err.startswith("error: ") and "'sessions' is not one of" in err


def test_display_rounding() -> None:
    amounts = [D("0.000123456789"), D("12.5"), D("1234")]
    digits = places(amounts, minimum=2)
    assert digits == 7  # 4 significant digits of the smallest amount
    assert [number_text(a, digits) for a in amounts] == ["0.0001235", "12.5000000", "1,234.0000000"]
    assert places([D("0.5"), D("2")], minimum=2) == 2
    assert number_text(18500, 0) == "18,500"


def test_month_report_carries_the_forecast(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "_now", lambda: datetime(2026, 11, 3, 12, tzinfo=UTC))
    data = report_json(url, "--month")
    forecast = data["query"]["forecast"]
    # daily costs (UTC, both projects): Nov 1 o4 0.018; Nov 2 o1 0.0045 + o2 0.0125 + o3 0.0075 + o5 0.025
    # + o8 0.005 = 0.0545; nothing yet on Nov 3. Two complete days: the mean method, (0.018 + 0.0545) / 2 =
    # 0.03625 a day; half of today and the 27 days from Nov 4 to 30 are left:
    # 0.0725 + 0.5 × 0.03625 + 27 × 0.03625 = 0.0725 + 0.018125 + 0.97875 = 1.069375;
    # the range uses the lowest and highest day: 0.0725 + 27.5 × 0.018 = 0.5675, 0.0725 + 27.5 × 0.0545 = 1.57125
    assert (forecast["spent"], forecast["method"]) == ("0.0725", "mean")
    assert (D(forecast["projected"]), D(forecast["low"]), D(forecast["high"])) == (
        D("1.069375"), D("0.5675"), D("1.57125"))
    code, out, _ = invoke("report", "--store", url, "--month")
    assert code == 0 and "month-end forecast: 1.069375" in out
