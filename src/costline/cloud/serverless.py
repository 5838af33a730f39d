"""What one request cost on AWS serverless services, from quantities the application measures.

The application passes quantities (``lambda_ms=1200, memory_mb=512, dynamodb_reads=2``) and costline prices
them from a versioned region price table (``cloud/data/aws-serverless-prices.yaml``: each row with its source
and ``as_of``), so the application never computes amounts itself. Bedrock calls are LLM calls: record them
with the tracker, priced by the LLM catalog. Pricing is exact decimal arithmetic: ``quantity × price / per``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final

from costline.core.money import MONEY_CONTEXT, decimal_str, to_decimal
from costline.errors import CostlineError

DEFAULT_REGION: Final = "us-east-1"
ARCHES: Final = ("x86_64", "arm64")
#: HTTP APIs meter a request per 512 KB of payload
HTTP_API_INCREMENT_KB: Final = 512

#: quantity name → (service, operation) of the table row that prices it
QUANTITIES: Final[Mapping[str, tuple[str, str]]] = {
    "lambda_requests": ("AWS Lambda", "requests"),
    "apigw_rest_requests": ("Amazon API Gateway", "REST API requests"),
    "apigw_http_requests": ("Amazon API Gateway", "HTTP API requests"),
    "dynamodb_reads": ("Amazon DynamoDB", "read request units"),
    "dynamodb_writes": ("Amazon DynamoDB", "write request units"),
    "s3_put_requests": ("Amazon S3", "PUT/COPY/POST/LIST requests"),
    "s3_get_requests": ("Amazon S3", "GET/SELECT requests"),
    "s3_storage_gb_months": ("Amazon S3", "Standard storage"),
    "transcribe_seconds": ("Amazon Transcribe", "standard transcription"),
    "cloudwatch_metric_months": ("Amazon CloudWatch", "custom metrics"),
    "cloudwatch_put_requests": ("Amazon CloudWatch", "PutMetricData requests"),
}
#: quantities that are not priced themselves but shape another one
MODIFIERS: Final = ("lambda_ms", "memory_mb", "arch", "apigw_http_payload_kb")


class ServerlessPriceError(CostlineError, ValueError):
    """A quantity or price that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class ServicePrice:
    service: str
    operation: str
    unit: str
    region: str
    price: Decimal
    per: int
    source: str
    as_of: str
    verified: bool
    arch: str | None = None
    minimum: Decimal | None = None  # per request, in ``unit``

    @property
    def id(self) -> str:
        arch = f":{self.arch}" if self.arch else ""
        return f"aws:{self.service}:{self.operation}{arch}@{self.region}/{self.as_of}"


@dataclass(frozen=True, slots=True)
class ServiceCost:
    """One line of a request's cost breakdown."""

    service: str
    operation: str
    unit: str
    quantity: Decimal
    cost: Decimal
    price_id: str
    verified: bool

    def as_json(self) -> dict[str, Any]:
        return {"service": self.service, "operation": self.operation, "unit": self.unit,
                "quantity": decimal_str(self.quantity), "cost": decimal_str(self.cost), "price_id": self.price_id}


@dataclass(frozen=True, slots=True)
class PriceTable:
    version: str
    currency: str
    rows: tuple[ServicePrice, ...]

    def find(self, service: str, operation: str, region: str, arch: str | None = None) -> ServicePrice:
        for row in self.rows:
            if row.service == service and row.operation == operation and row.region == region and \
                    (row.arch is None or row.arch == arch):
                return row
        regions = sorted({r.region for r in self.rows if r.service == service and r.operation == operation})
        raise ServerlessPriceError(f"no price for {service} {operation} in {region!r}; regions in the table "
                                   f"(version {self.version}): {', '.join(regions)}")

    @property
    def regions(self) -> list[str]:
        return sorted({r.region for r in self.rows})


def parse_table(data: Any, origin: str) -> PriceTable:
    if not isinstance(data, Mapping) or not isinstance(data.get("prices"), list):
        raise ServerlessPriceError(f"{origin}: expected a mapping with a `prices` list")
    rows = []
    for i, raw in enumerate(data["prices"]):
        where = f"{origin}: prices[{i}]"
        if not isinstance(raw, Mapping):
            raise ServerlessPriceError(f"{where}: expected a mapping")
        try:
            missing = [k for k in ("service", "operation", "unit", "region", "price", "per", "source", "as_of")
                       if raw.get(k) in (None, "")]
            if missing:
                raise ServerlessPriceError(f"{where}: missing {', '.join(missing)}")
            per = int(raw["per"])
            price = to_decimal(str(raw["price"]), field=f"{where}.price")
            if per <= 0 or price < 0:
                raise ServerlessPriceError(f"{where}: price must be >= 0 and per > 0")
            arch = raw.get("arch")
            if arch is not None and arch not in ARCHES:
                raise ServerlessPriceError(f"{where}.arch: one of {', '.join(ARCHES)}")
            minimum = raw.get("minimum")
            rows.append(ServicePrice(
                service=str(raw["service"]), operation=str(raw["operation"]), unit=str(raw["unit"]),
                region=str(raw["region"]), price=price, per=per, source=str(raw["source"]),
                as_of=str(raw["as_of"]), verified=bool(raw.get("verified", False)), arch=arch,
                minimum=None if minimum is None else to_decimal(str(minimum), field=f"{where}.minimum"),
            ))
        except (TypeError, ValueError, CostlineError) as exc:
            raise ServerlessPriceError(str(exc) if str(exc).startswith(origin) else f"{where}: {exc}") from None
    return PriceTable(str(data.get("version", "")), str(data.get("currency", "USD")), tuple(rows))


def load_table(path: Path | None = None) -> PriceTable:
    """The bundled table, or the YAML file at ``path`` (same format)."""
    import yaml

    if path is None:
        text = resources.files("costline.cloud").joinpath("data", "aws-serverless-prices.yaml").read_text("utf-8")
        origin = "aws-serverless-prices.yaml"
    else:
        text = path.read_text(encoding="utf-8")
        origin = str(path)
    return parse_table(yaml.safe_load(text), origin)


def _quantity(name: str, value: Any) -> Decimal:
    try:
        qty = to_decimal(value, field=name)
    except CostlineError as exc:
        raise ServerlessPriceError(str(exc)) from None
    if qty < 0:
        raise ServerlessPriceError(f"{name}: must not be negative, got {value!r}")
    if qty.adjusted() > 15:
        raise ServerlessPriceError(f"{name}: {value!r} is out of range")
    return qty


def _line(row: ServicePrice, quantity: Decimal) -> ServiceCost:
    cost = MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(quantity, row.price), Decimal(row.per))
    return ServiceCost(row.service, row.operation, row.unit, quantity, cost, row.id, row.verified)


def price_request(table: PriceTable, region: str = DEFAULT_REGION, **quantities: Any) -> list[ServiceCost]:
    """The cost lines of one request. ``lambda_ms`` + ``memory_mb`` (+ ``arch``, default x86_64) give Lambda
    GB-seconds (and one Lambda request unless ``lambda_requests`` says otherwise); ``apigw_http_payload_kb``
    turns into HTTP API requests (one per 512 KB); ``transcribe_seconds`` is one request's audio, billed at
    least the 15-second minimum; the other quantities are in the table's units (QUANTITIES)."""
    unknown = sorted(set(quantities) - set(QUANTITIES) - set(MODIFIERS))
    if unknown:
        raise ServerlessPriceError(f"unknown quantity {unknown[0]!r}; use {', '.join([*QUANTITIES, *MODIFIERS])}")
    lines: list[ServiceCost] = []
    arch = quantities.get("arch") or "x86_64"
    if arch not in ARCHES:
        raise ServerlessPriceError(f"arch: one of {', '.join(ARCHES)}, got {arch!r}")
    if quantities.get("lambda_ms") is not None:
        ms = _quantity("lambda_ms", quantities["lambda_ms"])
        if quantities.get("memory_mb") is None:
            raise ServerlessPriceError("memory_mb: required with lambda_ms (the function's configured memory)")
        memory = _quantity("memory_mb", quantities["memory_mb"])
        if not 128 <= memory <= 10240:
            raise ServerlessPriceError(f"memory_mb: Lambda memory is 128 to 10240 MB, got {memory}")
        billed_ms = Decimal(math.ceil(ms))  # Lambda bills duration rounded up to the millisecond
        gb_seconds = MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(billed_ms, memory), Decimal(1000 * 1024))
        if quantities.get("lambda_requests") is None:
            lines.append(_line(table.find("AWS Lambda", "requests", region), Decimal(1)))
        lines.append(_line(table.find("AWS Lambda", "duration", region, arch), gb_seconds))
    if quantities.get("apigw_http_payload_kb") is not None:
        if quantities.get("apigw_http_requests") is not None:
            raise ServerlessPriceError("apigw_http_payload_kb, apigw_http_requests: give one of them")
        kb = _quantity("apigw_http_payload_kb", quantities["apigw_http_payload_kb"])
        metered = max(1, math.ceil(kb / HTTP_API_INCREMENT_KB))
        lines.append(_line(table.find("Amazon API Gateway", "HTTP API requests", region), Decimal(metered)))
    for name, (service, operation) in QUANTITIES.items():
        value = quantities.get(name)
        if value is None:
            continue
        qty = _quantity(name, value)
        row = table.find(service, operation, region)
        if row.minimum is not None and 0 < qty < row.minimum:
            qty = row.minimum
        lines.append(_line(row, qty))
    return lines


def total(lines: Sequence[ServiceCost]) -> Decimal:
    return sum((line.cost for line in lines), Decimal(0))
