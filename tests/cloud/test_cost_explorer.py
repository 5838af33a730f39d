"""The Cost Explorer endpoint through the unmodified boto3 ``ce`` client against a real ``costline serve``.

Expected figures are computed here independently of costline: a plain ``csv`` + ``Decimal`` pass over the
FOCUS sample (tests/data/focus, CC BY 4.0), plus the totals published with the sample (reference: AWS
BilledCost 18.00663861840, all providers 20.52022672899).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from tests.server.harness import Server, served

SAMPLE = Path(__file__).parent.parent / "data" / "focus" / "focus-1.0-sample.csv"


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def imported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"ce-{request.param}")
    with served(request.param, tmp) as srv:
        with srv.client() as client:
            reply = client.post("/v1/cloud/imports", params={"format": "focus", "filename": SAMPLE.name},
                                content=SAMPLE.read_bytes())
        assert reply.status_code == 200, reply.text
        assert Decimal(reply.json()["billed_cost"]) == Decimal("20.52022672899")
        yield srv


def ce(srv: Server, secret: str | None = None) -> Any:
    return boto3.client(
        "ce", endpoint_url=f"{srv.url}/aws/ce", aws_access_key_id=srv.public_key,
        aws_secret_access_key=secret or srv.secret_key, region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def independent(group: str | None = None, tag: tuple[str, str] | None = None) -> dict[tuple[str, str], Decimal]:
    """AWS BilledCost by (UTC day, group value), summed with csv + Decimal only."""
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in sample_rows():
        if row["ProviderName"] != "AWS":
            continue
        tags = json.loads(row["Tags"]) if row["Tags"] not in ("", "NULL") else {}
        if tag is not None and tags.get(tag[0]) != tag[1]:
            continue
        value = row[group] if group else ""
        out[(row["ChargePeriodStart"][:10], value)] += Decimal(row["BilledCost"])
    return out


def test_monthly_total_equals_the_published_aws_figure(imported: Server) -> None:
    reply = ce(imported).get_cost_and_usage(TimePeriod={"Start": "2024-09-01", "End": "2024-10-01"},
                                            Granularity="MONTHLY", Metrics=["UnblendedCost"])
    [month] = reply["ResultsByTime"]
    assert month["TimePeriod"] == {"Start": "2024-09-01", "End": "2024-10-01"}
    assert Decimal(month["Total"]["UnblendedCost"]["Amount"]) == Decimal("18.00663861840")
    assert month["Total"]["UnblendedCost"]["Unit"] == "USD"


def test_daily_by_service_matches_an_independent_sum(imported: Server) -> None:
    client = ce(imported)
    request: dict[str, Any] = {"TimePeriod": {"Start": "2024-09-01", "End": "2024-10-01"}, "Granularity": "DAILY",
                               "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}]}
    got: dict[tuple[str, str], Decimal] = {}
    pages = 0
    while True:
        reply = client.get_cost_and_usage(**request)
        pages += 1
        for period in reply["ResultsByTime"]:
            for group in period["Groups"]:
                got[(period["TimePeriod"]["Start"], group["Keys"][0])] = Decimal(
                    group["Metrics"]["UnblendedCost"]["Amount"])
        if "NextPageToken" not in reply:
            break
        request["NextPageToken"] = reply["NextPageToken"]
    assert got == independent("ServiceName")
    assert reply["GroupDefinitions"] == [{"Type": "DIMENSION", "Key": "SERVICE"}]


def test_tag_filter_and_tag_groups(imported: Server) -> None:
    client = ce(imported)
    period = {"Start": "2024-09-01", "End": "2024-10-01"}
    dev = client.get_cost_and_usage(TimePeriod=period, Granularity="MONTHLY", Metrics=["UnblendedCost"],
                                    Filter={"Tags": {"Key": "environment", "Values": ["dev"]}})
    expected_dev = sum(independent(tag=("environment", "dev")).values(), Decimal(0))
    assert Decimal(dev["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == expected_dev
    grouped = client.get_cost_and_usage(TimePeriod=period, Granularity="MONTHLY", Metrics=["UnblendedCost"],
                                        GroupBy=[{"Type": "TAG", "Key": "environment"}])
    keys = {g["Keys"][0]: Decimal(g["Metrics"]["UnblendedCost"]["Amount"])
            for g in grouped["ResultsByTime"][0]["Groups"]}
    assert keys["environment$dev"] == expected_dev
    # untagged spend is the key with an empty value, and the groups add up to the total
    assert "environment$" in keys
    assert sum(keys.values(), Decimal(0)) == Decimal("18.00663861840")
    absent = client.get_cost_and_usage(TimePeriod=period, Granularity="MONTHLY", Metrics=["UnblendedCost"],
                                       Filter={"Tags": {"Key": "environment", "MatchOptions": ["ABSENT"]}})
    assert Decimal(absent["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == keys["environment$"]
    # a value is a literal: no wildcards in Cost Explorer
    star = client.get_cost_and_usage(TimePeriod=period, Granularity="MONTHLY", Metrics=["UnblendedCost"],
                                     Filter={"Tags": {"Key": "environment", "Values": ["de*"]}})
    assert Decimal(star["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == 0


def test_not_and_or_and_case(imported: Server) -> None:
    client = ce(imported)
    period = {"Start": "2024-09-01", "End": "2024-10-01"}
    ec2 = "Amazon Elastic Compute Cloud"

    def total(expr: dict[str, Any]) -> Decimal:
        reply = client.get_cost_and_usage(TimePeriod=period, Granularity="MONTHLY", Metrics=["UnblendedCost"],
                                          Filter=expr)
        return Decimal(reply["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"])

    by_service = defaultdict(Decimal)
    for (_, service), amount in independent("ServiceName").items():
        by_service[service] += amount
    assert total({"Dimensions": {"Key": "SERVICE", "Values": [ec2]}}) == by_service[ec2]
    assert total({"Not": {"Dimensions": {"Key": "SERVICE", "Values": [ec2]}}}) == \
        Decimal("18.00663861840") - by_service[ec2]
    assert total({"Dimensions": {"Key": "SERVICE", "Values": [ec2.upper()]}}) == 0  # EQUALS is case-sensitive
    rds = "Amazon Relational Database Service"
    assert total({"Or": [{"Dimensions": {"Key": "SERVICE", "Values": [ec2]}},
                         {"Dimensions": {"Key": "SERVICE", "Values": [rds]}}]}) == by_service[ec2] + by_service[rds]


@pytest.mark.parametrize(("expr", "message"), [
    ({"Dimensions": {"Key": "SERVICE", "Values": ["x"]}, "Tags": {"Key": "a", "Values": ["b"]}},
     "Expression has more than one roots. Only one root operator is allowed for each expression: And, Or, Not, "
     "Dimensions, Tags, CostCategories"),
    ({"Tags": {"Key": "aws:cloudformation:stack-name", "Values": ["x"], "MatchOptions": ["STARTS_WITH"]}},
     "MatchOptions contain not allowed match option. Allowed MatchOptions:CASE_SENSITIVE, EQUALS, ABSENT"),
])
def test_validation_exceptions_carry_the_services_texts(imported: Server, expr: dict[str, Any], message: str) -> None:
    with pytest.raises(ClientError) as caught:
        ce(imported).get_cost_and_usage(TimePeriod={"Start": "2024-09-01", "End": "2024-10-01"},
                                        Granularity="MONTHLY", Metrics=["UnblendedCost"], Filter=expr)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert caught.value.response["Error"]["Message"] == message


def test_end_is_exclusive_and_start_before_end(imported: Server) -> None:
    client = ce(imported)
    one_day = client.get_cost_and_usage(TimePeriod={"Start": "2024-09-18", "End": "2024-09-19"},
                                        Granularity="DAILY", Metrics=["UnblendedCost"])
    expected = sum((v for (day, _), v in independent().items() if day == "2024-09-18"), Decimal(0))
    assert len(one_day["ResultsByTime"]) == 1
    assert Decimal(one_day["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == expected
    with pytest.raises(ClientError) as caught:
        client.get_cost_and_usage(TimePeriod={"Start": "2024-09-19", "End": "2024-09-19"}, Granularity="DAILY",
                                  Metrics=["UnblendedCost"])
    assert caught.value.response["Error"]["Message"] == "Start date (and hour) should be before end date (and hour)"


def test_dimension_values_and_tags(imported: Server) -> None:
    client = ce(imported)
    period = {"Start": "2024-09-01", "End": "2024-10-01"}
    services = client.get_dimension_values(TimePeriod=period, Dimension="SERVICE")
    expected = sorted({r["ServiceName"] for r in sample_rows() if r["ProviderName"] == "AWS"})
    assert [v["Value"] for v in services["DimensionValues"]] == expected
    keys = client.get_tags(TimePeriod=period)["Tags"]
    assert {"application", "environment", "business_unit"} <= set(keys)
    values = client.get_tags(TimePeriod=period, TagKey="environment")["Tags"]
    assert "dev" in values


def test_a_wrong_secret_is_refused(imported: Server) -> None:
    with pytest.raises(ClientError) as caught:
        ce(imported, secret="sk-cl-wrong").get_cost_and_usage(
            TimePeriod={"Start": "2024-09-01", "End": "2024-10-01"}, Granularity="MONTHLY", Metrics=["UnblendedCost"])
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_reimport_replaces_the_period(imported: Server) -> None:
    with imported.client() as client:
        again = client.post("/v1/cloud/imports", params={"filename": "again.csv"}, content=SAMPLE.read_bytes())
        assert again.status_code == 200, again.text
        assert again.json()["replaced"] == 1000
    reply = ce(imported).get_cost_and_usage(TimePeriod={"Start": "2024-09-01", "End": "2024-10-01"},
                                            Granularity="MONTHLY", Metrics=["UnblendedCost"])
    assert Decimal(reply["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == Decimal("18.00663861840")


def test_bad_files_name_line_and_column(imported: Server) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    header = next(csv.reader([lines[0]]))
    row = next(csv.reader([lines[1]]))
    row[header.index("BilledCost")] = "12,5"
    broken = "\n".join([lines[0], ",".join(f'"{c}"' for c in row)]) + "\n"
    reply = httpx.post(f"{imported.url}/v1/cloud/imports", params={"filename": "bill.csv"}, content=broken,
                       headers=imported.headers)
    assert reply.status_code == 400
    assert reply.json()["errors"] == ["bill.csv:2: column BilledCost: '12,5' is not a number"]


def test_budgets_and_metrics_watch_cloud_spend(imported: Server) -> None:
    """One ledger: a budget scoped to a service or a tag of the imported bill counts its lines, as the
    query API does (lifetime windows, since the sample is from September 2024)."""
    ec2 = "Amazon Elastic Compute Cloud"
    by_service: dict[str, Decimal] = defaultdict(Decimal)
    for (_, service), amount in independent("ServiceName").items():
        by_service[service] += amount
    dev = sum(independent(tag=("environment", "dev")).values(), Decimal(0))
    with imported.client() as client:
        made = client.post("/v1/budgets", json={"name": "ec2", "window": "lifetime", "limit": "100",
                                                "scope": {"metadata.service": ec2}})
        assert made.status_code == 201, made.text
        shown = client.get("/v1/budgets/ec2").json()
        assert Decimal(shown["status"]["used"]) == by_service[ec2]  # usage minus the one AWS credit
        made = client.post("/v1/budgets", json={"name": "aws-dev", "window": "lifetime", "limit": "100",
                                                "scope": {"provider": "aws", "tag": "environment:dev"}})
        assert made.status_code == 201, made.text
        assert Decimal(client.get("/v1/budgets/aws-dev").json()["status"]["used"]) == dev
        query = {"dimensions": ["source"], "metrics": ["sum:cost"], "from": "2024-09-01T00:00:00Z",
                 "to": "2024-10-01T00:00:00Z"}
        rows = client.get("/v1/metrics", params={"query": json.dumps(query)}).json()["data"]
        assert [(r["source"], Decimal(r["sum_cost"])) for r in rows] == [("cloud", Decimal("20.52022672899"))]


@pytest.mark.parametrize(("period", "granularity"), [
    ({"Start": "2024-09-01", "End": "9999-12-31"}, "MONTHLY"),  # a month step past year 9999 used to overflow
    ({"Start": "2000-01-01T00:00:00Z", "End": "2024-01-01T00:00:00Z"}, "HOURLY"),  # 210,000 periods
])
def test_extreme_ranges_are_validation_errors(imported: Server, period: dict[str, str], granularity: str) -> None:
    with pytest.raises(ClientError) as caught:
        ce(imported).get_cost_and_usage(TimePeriod=period, Granularity=granularity, Metrics=["UnblendedCost"])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
