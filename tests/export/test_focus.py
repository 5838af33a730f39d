"""``costline export --format focus``: FOCUS 1.2 rows checked against the spec's column rules and against
costs added up by hand from tests/export/sample.py (plus three observations added here).

Rules checked (FOCUS 1.2, specification/columns/*.md and attributes/*.md): the 21 mandatory columns are
present and non-null where the spec says so (PricingQuantity/PricingUnit and SkuId too, since every row is
a Usage charge); date/times are UTC ``YYYY-MM-DDTHH:mm:ssZ``; numbers are plain (no sign, commas, units);
no empty strings; allowed values for ChargeCategory, ChargeClass, ChargeFrequency, ServiceCategory and
ServiceSubcategory; charge and billing periods well formed; Tags a JSON object of scalars; columns the spec
does not define are prefixed ``x_``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from tests.export.sample import at, fill, store_url_for

from costline.cli import cli
from costline.core.events import Observation

MANDATORY = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
)
#: every column FOCUS 1.2 defines (git show v1.2:specification/columns/*.md)
SPEC_COLUMNS = {
    *MANDATORY,
    "AvailabilityZone", "BillingAccountType", "CapacityReservationId", "CapacityReservationStatus",
    "ChargeFrequency", "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit",
    "ConsumedQuantity", "ConsumedUnit", "ContractedUnitPrice", "InvoiceId", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags",
}
#: nullable mandatory columns; PricingQuantity/PricingUnit/SkuId must not be null on Usage rows
NULLABLE = {"BillingAccountName", "ChargeClass", "ChargeDescription"}
DECIMALS = ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity", "ConsumedQuantity")
DATETIMES = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
SERVICE_CATEGORIES = {
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
    "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
    "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other",
}
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?(E-?\d+)?$")

#: added to the sample: o9 shares o2/o5's row but is unpriced; o10 has a provided cost and no provider;
#: o11 is partially priced (1000 claude input tokens × 3.00 / 1M = 0.003; its output had no price)
EXTRA = [
    Observation(project_id="p1", id="o9", trace_id="t3", start_time=at(2, 13), type="generation", model="gpt-4o",
                provider="openai", usage={"input_tokens": 700}, pricing_status="unpriced"),
    Observation(project_id="p1", id="o10", trace_id="t3", start_time=at(2, 14), type="generation",
                model="homegrown", total_cost=D("0.5"), pricing_status="provided"),
    Observation(project_id="p1", id="o11", trace_id="t9", start_time=at(3, 1), type="generation",
                model="claude-sonnet-4-5", resolved_model="claude-sonnet-4-5", provider="anthropic",
                usage={"input_tokens": 1000, "output_tokens": 10}, total_cost=D("0.003"),
                pricing_status="partially_priced"),
]


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path, data_dir: Path) -> Iterator[str]:
    for found in store_url_for(request.param, tmp_path):
        fill(found, EXTRA)
        yield found


def export_focus(url: str, out: Path) -> str:
    result = CliRunner().invoke(cli, ["export", "--store", url, "--from", "2026-11-01", "--to", "2026-11-04",
                                      "--project", "p1", "--format", "focus", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result.stderr


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str | None]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
        return list(reader.fieldnames or []), rows


def check_focus_rules(columns: list[str], rows: list[dict[str, Any]]) -> None:
    assert set(MANDATORY) <= set(columns)
    assert all(c in SPEC_COLUMNS or c.startswith("x_") for c in columns), columns
    for row in rows:
        for column in columns:
            assert row[column] != "", f"{column} is an empty string"
        for column in (*MANDATORY, "SkuId", "ChargeFrequency", "ServiceSubcategory"):
            if column not in NULLABLE:
                assert row[column] is not None, f"{column} is null"
        for column in DATETIMES:
            assert DATETIME.match(row[column]), row[column]
        for column in DECIMALS:
            assert NUMBER.match(row[column]), (column, row[column])
        assert row["ChargeCategory"] in {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
        assert row["ChargeClass"] in (None, "Correction")
        assert row["ChargeFrequency"] in {"One-Time", "Recurring", "Usage-Based"}
        assert row["ServiceCategory"] in SERVICE_CATEGORIES
        assert (row["ServiceCategory"], row["ServiceSubcategory"]) == ("AI and Machine Learning", "Generative AI")
        assert re.fullmatch(r"[A-Z]{3}", row["BillingCurrency"])
        assert (row["PricingUnit"] is None) == (row["PricingQuantity"] is None)
        assert (row["ConsumedUnit"] is None) == (row["ConsumedQuantity"] is None)
        times = {c: datetime.fromisoformat(row[c]) for c in DATETIMES}
        assert times["BillingPeriodStart"] <= times["ChargePeriodStart"] < times["ChargePeriodEnd"]
        assert times["ChargePeriodEnd"] <= times["BillingPeriodEnd"]
        assert (times["ChargePeriodEnd"] - times["ChargePeriodStart"]).days == 1
        assert times["BillingPeriodStart"].day == 1 and times["BillingPeriodEnd"].day == 1
        if row["Tags"] is not None:
            tags = json.loads(row["Tags"])
            assert isinstance(tags, dict) and tags
            assert all(v is None or isinstance(v, str | int | float | bool) for v in tags.values())
        # no commitments or discounts: every cost column is the cost costline recorded
        assert row["EffectiveCost"] == row["ListCost"] == row["ContractedCost"] == row["BilledCost"]


def summary(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["ChargePeriodStart"][:10], r["ProviderName"], r["x_Model"], r["Tags"], D(r["BilledCost"]).normalize(),
             r["PricingQuantity"], r["PricingUnit"], r["x_Observations"], r["x_UnpricedObservations"],
             r["x_PartiallyPricedObservations"]) for r in rows]


#: the rows by hand; PricingQuantity = input + output tokens
EXPECTED = [
    ("2026-11-01", "anthropic", "claude-sonnet-4-5", None, D("0.018"), "2000", "Tokens", "1", "0", "0"),  # o4
    ("2026-11-02", "anthropic", "claude-sonnet-4-5", '{"beta":true,"prod":true,"x":true}', D("0.0075"), "2100",
     "Tokens", "1", "0", "0"),  # o3, whose tags are its own x and its trace's beta, prod
    ("2026-11-02", "openai", "gpt-4o", None, D("0.0375"), "13500", "Tokens", "2", "1", "0"),  # o2 + o5; o9 unpriced
    ("2026-11-02", "openai", "gpt-4o", '{"beta":true}', D("0.0045"), "1200", "Tokens", "1", "0", "0"),  # o1
    ("2026-11-03", "anthropic", "claude-sonnet-4-5", None, D("0.003"), "1010", "Tokens", "1", "0", "1"),  # o11
]


def test_focus_csv(url: str, tmp_path: Path) -> None:
    out = tmp_path / "focus.csv"
    err = export_focus(url, out)
    columns, rows = read_csv(out)
    check_focus_rules(columns, rows)
    assert summary(rows) == EXPECTED
    # 0.018 + 0.0075 + 0.0375 + 0.0045 + 0.003; o6, o9 (unpriced) and o10 (no provider) are not charged
    assert sum(D(r["BilledCost"]) for r in rows) == D("0.0705")
    first = rows[0]
    assert (first["BillingAccountId"], first["BillingAccountName"], first["BillingCurrency"]) == (
        "p1", "Search app", "USD")
    assert (first["BillingPeriodStart"], first["BillingPeriodEnd"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert (first["ChargePeriodStart"], first["ChargePeriodEnd"]) == ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
    assert (first["ChargeCategory"], first["ChargeClass"], first["SkuId"]) == ("Usage", None, "claude-sonnet-4-5")
    assert (first["ProviderName"], first["PublisherName"], first["InvoiceIssuerName"]) == ("anthropic",) * 3
    assert (first["x_InputTokens"], first["x_OutputTokens"]) == ("1000", "1000")
    assert "claude-sonnet-4-5" in first["ChargeDescription"]
    lines = err.splitlines()
    assert "left out 1 unpriced observation(s) of model 'gpt-4o': no price, so no cost row (not counted as 0)" in lines
    assert any(line.startswith("left out 1 unpriced observation(s) of model 'mystery-1'") for line in lines)
    assert any(line.startswith("left out 1 observation(s) costing 0.5 in total: no provider") for line in lines)
    assert lines[-1] == f"wrote 5 FOCUS 1.2 row(s) (csv) from 10 observation(s) to {out}"


def test_focus_parquet_and_report_agree(url: str, tmp_path: Path) -> None:
    out = tmp_path / "focus.parquet"
    export_focus(url, out)
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    types = dict(conn.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{out}')").fetchall())
    assert types["BilledCost"] == "DECIMAL(38,12)" and types["ChargePeriodStart"] == "TIMESTAMP WITH TIME ZONE"
    # times are real timestamps in Parquet: spell them as text for the rules (fetching TIMESTAMPTZ needs pytz)
    spelled = ", ".join(f"strftime({c}, '%Y-%m-%dT%H:%M:%SZ') AS {c}" for c in DATETIMES)
    cursor = conn.execute(f"SELECT * EXCLUDE ({', '.join(DATETIMES)}), {spelled} FROM '{out}'")
    names = [d[0] for d in cursor.description]
    rows = []
    for raw in cursor.fetchall():
        row: dict[str, Any] = dict(zip(names, raw, strict=True))
        for column, value in row.items():
            if isinstance(value, D):
                row[column] = format(value.normalize(), "f")
            elif isinstance(value, int):
                row[column] = str(value)
        rows.append(row)
    check_focus_rules(names, rows)
    assert summary(rows) == EXPECTED
    assert conn.execute(f"SELECT sum(BilledCost) FROM '{out}'").fetchone() == (D("0.0705"),)
    # the same costs per model as `costline report --by model` over the same range
    result = CliRunner().invoke(cli, ["report", "--store", url, "--from", "2026-11-01", "--to", "2026-11-04",
                                      "--tz", "UTC", "--project", "p1", "--by", "model", "--format", "json"])
    report = {r["model"]: r["sum_cost"] for r in json.loads(result.stdout)["rows"]}
    per_model = dict(conn.execute(f"SELECT x_Model, sum(BilledCost) FROM '{out}' GROUP BY 1").fetchall())
    assert {m: D(c) for m, c in report.items() if m in per_model} == per_model
    assert report["homegrown"] == "0.5" and "homegrown" not in per_model  # no provider: reported, not charged
