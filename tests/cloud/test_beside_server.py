"""`costline cloud import|report|lint` while `costline serve` owns the DuckDB file: through the server, with the
same answers as the direct path (checked against the FOCUS sample's published figures)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from tests.server.harness import make_server

SAMPLE = Path(__file__).parent.parent / "data" / "focus" / "focus-1.0-sample.csv"


def test_cloud_commands_work_beside_a_running_server(tmp_path: Path) -> None:
    srv, _ = make_server("duckdb", tmp_path / "srv")
    srv.start()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "costline", "--data-dir", str(srv.data_dir), *args],
                              capture_output=True, text=True, env=srv.env, timeout=300)

    try:
        imported = run("cloud", "import", str(SAMPLE), "--store", srv.store_url, "--json")
        assert imported.returncode == 0, imported.stderr
        assert Decimal(json.loads(imported.stdout)["billed_cost"]) == Decimal("20.52022672899")
        report = run("cloud", "report", "--from", "2024-09-01", "--to", "2024-10-01", "--by", "provider",
                     "--store", srv.store_url, "--format", "json")
        assert report.returncode == 0, report.stderr
        data = json.loads(report.stdout)
        assert Decimal(data["total"]) == Decimal("20.52022672899")
        credits = {r["charge_category"]: Decimal(r["cost"]) for r in data["credits_and_refunds"]}
        assert credits == {"Credit": Decimal("-2.6137"), "Adjustment": Decimal("0.272")}
        as_csv = run("cloud", "report", "--from", "2024-09-01", "--to", "2024-10-01", "--by", "provider",
                     "--store", srv.store_url, "--format", "csv")
        rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
        assert rows[-1]["provider"] == "total" and Decimal(rows[-1]["cost"]) == Decimal("20.52022672899")
        assert {r["charge_category"] for r in rows} == {"", "Credit", "Adjustment"}
        # `Project` is a tag of Azure lines only in the sample: Cost Explorer answers AWS lines, so it warns
        filter_file = tmp_path / "cost-filter.json"
        filter_file.write_text(json.dumps({"Filter": {"And": [
            {"Tags": {"Key": "Project", "Values": ["Langfuse"]}},
            {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon ECS"]}}]}}))
        lint = run("cloud", "lint", str(filter_file), "--store", srv.store_url, "--format", "json")
        assert lint.returncode == 1, lint.stderr
        warnings = json.loads(lint.stdout)["warnings"]
        assert any("'Amazon ECS' is not a SERVICE value" in w for w in warnings)
        assert any("tag key 'Project'" in w for w in warnings)
    finally:
        srv.stop()


def test_report_csv_cells_are_neutralised(tmp_path: Path) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    header = next(csv.reader([lines[0]]))
    row = next(csv.reader([lines[1]]))
    row[header.index("ServiceName")] = '=HYPERLINK("http://x")'
    bill = tmp_path / "bill.csv"
    out = io.StringIO()
    csv.writer(out).writerows([header, row])
    bill.write_text(out.getvalue())
    env = {"COSTLINE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "costline", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    assert run("projects", "create", "p").returncode == 0
    assert run("cloud", "import", str(bill)).returncode == 0
    report = run("cloud", "report", "--from", "2024-09-01", "--to", "2024-10-01", "--format", "csv")
    first = next(iter(csv.DictReader(io.StringIO(report.stdout))))
    assert first["service"] == "'=HYPERLINK(\"http://x\")"
