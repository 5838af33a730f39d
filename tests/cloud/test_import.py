"""Billing imports into a real store (DuckDB file and PostgreSQL): FOCUS sample, CUR legacy and 2.0 files built
from the published column names, CSV.gz with several gzip members, Parquet, currency conversion, errors."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costline.cloud.importer import BillingImportError, import_billing
from costline.store.base import ApiKey, Project, Store

SAMPLE = Path(__file__).parent.parent / "data" / "focus" / "focus-1.0-sample.csv"
NOW = datetime(2026, 12, 1, tzinfo=UTC)

LEGACY = ["identity/LineItemId", "bill/PayerAccountId", "bill/BillingPeriodStartDate", "bill/BillingPeriodEndDate",
          "lineItem/UsageAccountId", "lineItem/LineItemType", "lineItem/UsageStartDate", "lineItem/UsageEndDate",
          "lineItem/ProductCode", "lineItem/UsageType", "lineItem/Operation", "lineItem/UsageAmount",
          "lineItem/CurrencyCode", "lineItem/UnblendedCost", "lineItem/NetUnblendedCost",
          "product/ProductName", "product/region", "resourceTags/user:Project"]


def legacy_row(kind: str, service: str, cost: str, net: str, project: str, day: str = "2026-11-03") -> list[str]:
    return ["id", "111122223333", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "444455556666", kind,
            f"{day}T10:00:00Z", f"{day}T11:00:00Z", "AWSLambda", "Lambda-GB-Second", "Invoke", "3600",
            "USD", cost, net, service, "us-east-1", project]


@pytest.fixture
def project(store: Store) -> str:
    store.create_project(Project("p1", "p1", NOW), ApiKey("p1", "pk-1", "h1", NOW))
    return "p1"


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def test_focus_sample_totals_and_reimport(store: Store, project: str) -> None:
    first = import_billing(store, project, [SAMPLE], now=NOW)
    # totals published with the sample (reference/cloud-costs.md §B.4)
    assert first.lines == 1000
    assert first.billed_cost == Decimal("20.52022672899")
    by_provider = {}
    for g in first.groups:
        by_provider[g.provider] = by_provider.get(g.provider, Decimal(0)) + g.billed_cost
    assert by_provider == {"aws": Decimal("18.00663861840"), "azure": Decimal("1.97651418586"),
                           "oci": Decimal("0.53707392473")}
    again = import_billing(store, project, [SAMPLE], now=NOW)
    assert again.replaced == 1000
    assert store.count_observations(project) == 1000


def test_cur_legacy_gzip_members_and_amortized(store: Store, project: str, tmp_path: Path) -> None:
    header = _csv([LEGACY])
    part1 = _csv([legacy_row("Usage", "AWS Lambda", "1.25", "1.20", "Langfuse")])
    part2 = _csv([legacy_row("Credit", "AWS Lambda", "-0.50", "-0.50", ""),
                  legacy_row("Tax", "AWS Lambda", "0.10", "0.10", "Langfuse")])
    path = tmp_path / "cur.csv.gz"
    path.write_bytes(gzip.compress(header + part1) + gzip.compress(part2))  # two gzip members
    summary = import_billing(store, project, [path], "cur", now=NOW)
    assert summary.lines == 3
    assert summary.billed_cost == Decimal("0.85")  # 1.25 - 0.50 + 0.10
    found = sorted(store.iter_observations(project_id=project, type_is="cloud"), key=lambda o: o.total_cost or 0)
    assert [o.metadata["charge_category"] for o in found] == ["Credit", "Tax", "Usage"]
    usage = found[2]
    assert usage.name == "AWS Lambda" and usage.provider == "aws"
    assert usage.metadata["tags"] == {"Project": "Langfuse"}
    assert usage.metadata["usage_type"] == "Lambda-GB-Second" and usage.metadata["operation"] == "Invoke"
    assert Decimal(usage.metadata["net_unblended_cost"]) == Decimal("1.20")


def test_cur2_parquet_with_map_columns(store: Store, project: str, tmp_path: Path) -> None:
    path = tmp_path / "cur2.parquet"
    conn = duckdb.connect()
    conn.execute(
        "COPY (SELECT '111122223333' AS bill_payer_account_id, TIMESTAMP '2026-11-01' AS "
        "bill_billing_period_start_date, TIMESTAMP '2026-12-01' AS bill_billing_period_end_date, "
        "'444455556666' AS line_item_usage_account_id, 'Usage' AS line_item_line_item_type, "
        "TIMESTAMP '2026-11-05 00:00:00' AS line_item_usage_start_date, "
        "'AmazonDynamoDB' AS line_item_product_code, CAST(0.000000625 * 3 AS DECIMAL(20, 12)) AS "
        "line_item_unblended_cost, 'USD' AS line_item_currency_code, "
        "MAP {'product_name': 'Amazon DynamoDB', 'region_code': 'eu-west-1'} AS product, "
        "MAP {'user_project': 'Langfuse'} AS resource_tags) TO ? (FORMAT parquet)", [str(path)])
    conn.close()
    summary = import_billing(store, project, [path], now=NOW)
    assert summary.format == "cur"
    [line] = list(store.iter_observations(project_id=project, type_is="cloud"))
    assert line.total_cost == Decimal("0.000001875")  # 3 write request units × $0.625 per million
    assert line.name == "Amazon DynamoDB"
    assert line.metadata["region_id"] == "eu-west-1"
    assert line.metadata["tags"] == {"project": "Langfuse"}


def test_non_usd_lines_use_the_ecb_rate_of_the_day(store: Store, project: str, tmp_path: Path) -> None:
    rows = list(csv.reader(SAMPLE.read_text(encoding="utf-8").splitlines()[:2]))
    header, row = rows
    row[header.index("BillingCurrency")] = "EUR"
    row[header.index("BilledCost")] = "10"
    row[header.index("ChargePeriodStart")] = "2024-09-01 10:00:00"  # a Sunday: Friday 30 August's rate applies
    path = tmp_path / "eur.csv"
    path.write_bytes(_csv([header, row]))
    import_billing(store, project, [path], now=NOW)
    [line] = list(store.iter_observations(project_id=project, type_is="cloud"))
    # ECB reference rate of 2024-08-30: 1 EUR = 1.1087 USD
    assert line.total_cost == Decimal("11.087")
    assert line.metadata["original_cost"] == "10" and line.metadata["original_currency"] == "EUR"
    assert line.metadata["fx_date"] == "2024-08-30"


def test_bad_rows_stop_the_import_and_name_file_line_column(store: Store, project: str, tmp_path: Path) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    header = next(csv.reader([lines[0]]))
    bad = [next(csv.reader([lines[i]])) for i in (1, 2, 3)]
    bad[0][header.index("ChargePeriodStart")] = "yesterday"
    bad[2][header.index("BilledCost")] = "9e999999999"
    path = tmp_path / "bad.csv"
    path.write_bytes(_csv([header, *bad]))
    with pytest.raises(BillingImportError) as caught:
        import_billing(store, project, [path], now=NOW)
    assert caught.value.errors == [
        f"{path}:2: column ChargePeriodStart: 'yesterday' is not a date-time (ISO 8601, e.g. 2024-09-01T00:00:00Z)",
        f"{path}:4: column BilledCost: '9e999999999' is out of range",
    ]
    assert store.count_observations(project) == 0


def test_cli_import_report_and_lint(tmp_path: Path) -> None:
    env = {"COSTLINE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "costline", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    assert run("projects", "create", "demo").returncode == 0
    imported = run("cloud", "import", str(SAMPLE), "--json")
    assert imported.returncode == 0, imported.stderr
    assert Decimal(json.loads(imported.stdout)["billed_cost"]) == Decimal("20.52022672899")
    report = run("cloud", "report", "--from", "2024-09-01", "--to", "2024-10-01", "--by", "provider",
                 "--format", "json")
    data = json.loads(report.stdout)
    # the one AWS credit (-2.6137) is its own line, not netted into the AWS usage row
    assert {r["charge_category"] for r in data["credits_and_refunds"]} == {"Credit", "Adjustment"}
    # every charge period of the sample starts in September 2024 (one Oracle line is billed in October's period)
    assert Decimal(data["total"]) == Decimal("20.52022672899")
    filter_file = tmp_path / "cost-filter.json"
    filter_file.write_text(json.dumps({"And": [{"Tags": {"Key": "Project", "Values": ["Langfuse*"]}},
                                               {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon ECS"]}}]}))
    lint = run("cloud", "lint", str(filter_file))
    assert lint.returncode == 1
    assert "'Langfuse*' is a literal" in lint.stdout
    assert "'Amazon ECS' is not a SERVICE value" in lint.stdout


def test_cloud_lines_answer_the_query_model_beside_llm_calls(store: Store, project: str) -> None:
    from costline.core.events import Observation
    from costline.core.query import parse_query

    import_billing(store, project, [SAMPLE], now=NOW)
    # one LLM call in the same month: gpt-4o-mini 1,000,000 input tokens at $0.15 per million = $0.15
    store.write([Observation(project_id=project, id="llm-1", trace_id="t1", type="generation",
                             start_time=datetime(2024, 9, 10, tzinfo=UTC), model="gpt-4o-mini", provider="openai",
                             cost={"input_tokens": Decimal("0.15")}, total_cost=Decimal("0.15"),
                             pricing_status="priced")])
    period = {"from": "2024-09-01T00:00:00Z", "to": "2024-10-01T00:00:00Z"}
    result = store.query(parse_query({"dimensions": ["source"], "metrics": ["sum:cost"], **period}, now=NOW,
                                     project_id=project))
    by_source = {row["source"]: row["sum_cost"] for row in result.rows}
    assert by_source == {"cloud": Decimal("20.52022672899"), "llm": Decimal("0.15")}
    services = store.query(parse_query({"dimensions": ["metadata.service"], "metrics": ["sum:cost"],
                                        "filters": [{"field": "provider", "operator": "=", "value": "aws"}],
                                        "order_by": [{"field": "sum_cost", "direction": "desc"}], "limit": 1,
                                        **period}, now=NOW, project_id=project))
    # the EC2 usage lines minus the one AWS credit, as the sample's published per-service figure
    assert services.rows[0]["metadata.service"] == "Amazon Elastic Compute Cloud"
    assert services.rows[0]["sum_cost"] == Decimal("16.04169305050")


def test_imported_bill_exports_as_focus_with_its_categories(store: Store, project: str, tmp_path: Path) -> None:
    from costline.export import export_observations

    import_billing(store, project, [SAMPLE], now=NOW)
    out = tmp_path / "focus.csv"
    export_observations(store, out, "focus", start=datetime(2024, 9, 1, tzinfo=UTC),
                        end=datetime(2024, 10, 1, tzinfo=UTC), project_id=project)
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    by_category: dict[str, Decimal] = {}
    for row in rows:
        by_category[row["ChargeCategory"]] = by_category.get(row["ChargeCategory"], Decimal(0)) + \
            Decimal(row["BilledCost"])
    # the sample's published figures per ChargeCategory, and its EffectiveCost total
    assert by_category == {"Usage": Decimal("22.86192672899"), "Credit": Decimal("-2.61370000000"),
                           "Adjustment": Decimal("0.27200000000")}
    assert sum(Decimal(r["EffectiveCost"]) for r in rows) == Decimal("14.97651418586")
    assert {r["ProviderName"] for r in rows} == {"AWS", "Microsoft", "Oracle"}
