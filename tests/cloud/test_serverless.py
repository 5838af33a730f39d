"""Serverless request costing: the region price table, quantities priced by hand-worked figures, and the
seed's response shape through the real ASGI middleware on a uvicorn server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.sdk.test_middleware import serving

from costline.cloud.serverless import ServerlessPriceError, load_table, parse_table, price_request
from costline.sdk import Tracker
from costline.sdk.config import ENV_VARS
from costline.sdk.middleware import install
from costline.sdk.serverless import add_usage


@pytest.fixture
def tracker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Tracker]:
    for name in ENV_VARS.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COSTLINE_DATA_DIR", str(tmp_path / "costline-data"))
    t = Tracker()  # local mode: events kept in memory
    yield t
    t.shutdown()


def test_table_rows_carry_source_and_as_of_for_both_regions() -> None:
    table = load_table()
    assert {"us-east-1", "eu-west-1"} <= set(table.regions)
    for row in table.rows:
        assert row.source and row.as_of
    services = {(r.service, r.operation) for r in table.rows}
    for needed in [("AWS Lambda", "requests"), ("AWS Lambda", "duration"), ("Amazon API Gateway", "REST API requests"),
                   ("Amazon API Gateway", "HTTP API requests"), ("Amazon DynamoDB", "read request units"),
                   ("Amazon DynamoDB", "write request units"), ("Amazon S3", "GET/SELECT requests"),
                   ("Amazon S3", "Standard storage"), ("Amazon Transcribe", "standard transcription"),
                   ("Amazon CloudWatch", "custom metrics")]:
        assert needed in services


def test_a_request_priced_by_hand() -> None:
    lines = price_request(load_table(), "us-east-1", lambda_ms=1199.2, memory_mb=512, dynamodb_reads=2,
                          dynamodb_writes=1, apigw_rest_requests=1, transcribe_seconds=10, s3_get_requests=3)
    got = {(line.service, line.operation): (line.quantity, line.cost) for line in lines}
    # Lambda: 1 request at $0.20/M; 1199.2 ms billed as 1200 ms × 512 MB = 0.6 GB-s at $0.0000166667
    assert got["AWS Lambda", "requests"] == (1, D("0.0000002"))
    assert got["AWS Lambda", "duration"] == (D("0.6"), D("0.00001000002"))
    # DynamoDB on-demand after the Nov 2024 cut: $0.125/M reads, $0.625/M writes
    assert got["Amazon DynamoDB", "read request units"] == (2, D("0.00000025"))
    assert got["Amazon DynamoDB", "write request units"] == (1, D("0.000000625"))
    assert got["Amazon API Gateway", "REST API requests"] == (1, D("0.0000035"))  # $3.50/M
    assert got["Amazon Transcribe", "standard transcription"] == (15, D("0.006"))  # 15 s minimum × $0.0004
    assert got["Amazon S3", "GET/SELECT requests"] == (3, D("0.0000012"))  # $0.0004 per 1,000


def test_arm_http_api_payload_and_eu_west_1() -> None:
    lines = price_request(load_table(), "eu-west-1", lambda_ms=1000, memory_mb=1024, arch="arm64",
                          lambda_requests=1, apigw_http_payload_kb=1300)
    got = {(line.service, line.operation): (line.quantity, line.cost) for line in lines}
    assert got["AWS Lambda", "duration"] == (1, D("0.0000133334"))  # 1 GB-s arm64
    assert got["AWS Lambda", "requests"] == (1, D("0.0000002"))
    assert got["Amazon API Gateway", "HTTP API requests"][0] == 3  # 1300 KB = 3 × 512 KB increments


@pytest.mark.parametrize(("quantities", "message"), [
    ({"lambda_ms": 10}, "memory_mb: required"),
    ({"lambda_ms": 10, "memory_mb": 64}, "memory_mb: Lambda memory is 128 to 10240 MB"),
    ({"dynamodb_reads": -1}, "dynamodb_reads: must not be negative"),
    ({"dynamodb_reads": "9e999999999"}, "dynamodb_reads: '9e999999999' is out of range"),
    ({"lambda_gb": 1}, "unknown quantity 'lambda_gb'"),
    ({"lambda_ms": 1, "memory_mb": 128, "arch": "sparc"}, "arch: one of x86_64, arm64"),
])
def test_bad_quantities_name_the_field(quantities: dict[str, Any], message: str) -> None:
    with pytest.raises(ServerlessPriceError, match=message):
        price_request(load_table(), "us-east-1", **quantities)


def test_unknown_region_lists_the_regions() -> None:
    with pytest.raises(ServerlessPriceError, match="no price for AWS Lambda requests in 'ap-south-9'"):
        price_request(load_table(), "ap-south-9", lambda_requests=1)


def test_a_price_file_of_ones_own(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("version: x\nprices:\n  - {service: AWS Lambda, operation: requests, unit: requests, "
                    "per: 1000000, price: '0.25', region: ap-south-1, source: contract, as_of: '2026-12-01'}\n")
    [line] = price_request(load_table(path), "ap-south-1", lambda_requests=4)
    assert line.cost == D("0.000001")
    with pytest.raises(ServerlessPriceError, match=r"prices\[0\]: missing source"):
        parse_table({"prices": [{"service": "s", "operation": "o", "unit": "u", "region": "r", "price": "1",
                                 "per": 1, "as_of": "x"}]}, "f")


def test_the_seed_response_shape_through_the_middleware(tracker: Tracker) -> None:
    app = FastAPI()

    def standing(scope: Any, cost: Any) -> dict[str, Any]:
        return {"daily": {"used": "0.50", "limit": "1.00"}, "monthly": {"used": "3.00", "limit": "20.00"}}

    install(app, tracker, inject_json=True, usage=standing)

    @app.post("/transcribe")
    def transcribe() -> dict[str, str]:
        add_usage("us-east-1", lambda_ms=1200, memory_mb=512, dynamodb_reads=2, transcribe_seconds=40)
        return {"text": "hello"}

    with serving(app) as url:
        reply = httpx.post(f"{url}/transcribe")
    body = reply.json()
    cost = body["cost"]
    # 0.0000002 + 0.00001000002 + 0.00000025 + 40 × 0.0004 = 0.00001045002 + 0.016 = 0.01601045002
    assert D(cost["total_cost"]) == D("0.01601045002") == D(reply.headers["x-cost-usd"])
    assert cost["currency"] == "USD" and cost["operation"] == "POST /transcribe"
    assert {"request_id", "timestamp", "cost_breakdown"} <= set(cost)
    assert [(i["service"], i["operation"], i["unit"]) for i in cost["cost_breakdown"]] == [
        ("AWS Lambda", "requests", "requests"), ("AWS Lambda", "duration", "GB-seconds"),
        ("Amazon DynamoDB", "read request units", "RRU"), ("Amazon Transcribe", "standard transcription", "seconds"),
    ]
    assert body["usage"]["daily"] == {"used": "0.50", "limit": "1.00"}
    assert body["text"] == "hello"


def test_add_usage_never_raises(tracker: Tracker) -> None:
    assert add_usage("us-east-1", tracker=tracker, dynamodb_reads=-3) is None


def test_cloudwatch_embedded_metric_format_after_each_request(tracker: Tracker) -> None:
    from costline.sdk.emf import EmfOptions

    lines: list[str] = []
    app = FastAPI()
    install(app, tracker, emf=EmfOptions(namespace="Transcriber", dimensions={"Stage": "prod"}, write=lines.append))

    @app.post("/transcribe")
    def transcribe() -> dict[str, str]:
        add_usage("us-east-1", lambda_ms=1000, memory_mb=1024, dynamodb_writes=2)
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": 1000, "output_tokens": 100},
                                  provider="openai")
        return {"text": "hi"}

    with serving(app) as url:
        assert httpx.post(f"{url}/transcribe").status_code == 200
    docs = [json.loads(line) for line in lines]
    request = next(d for d in docs if "RequestCostUSD" in d)
    # Lambda 0.0000002 + 1 GB-s 0.0000166667 + 2 WRU 0.00000125 + gpt-4o 1000 × $2.50/M + 100 × $10/M = 0.0035181167
    assert request["RequestCostUSD"] == pytest.approx(0.0035181167)
    assert request["InputTokens"] == 1000 and request["OutputTokens"] == 100
    meta = request["_aws"]["CloudWatchMetrics"][0]
    assert meta["Namespace"] == "Transcriber"
    assert meta["Dimensions"] == [["Stage", "Operation"]]
    assert request["Operation"] == "POST /transcribe" and request["Stage"] == "prod"
    services = {d["CostService"]: d["ServiceCostUSD"] for d in docs if "ServiceCostUSD" in d}
    assert services["Amazon DynamoDB"] == pytest.approx(0.00000125)
    assert services["AWS Lambda"] == pytest.approx(0.0000168667)
