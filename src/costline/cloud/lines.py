"""One billing line, read from a FOCUS or CUR row: the columns costline uses, exact amounts, UTC times.

FOCUS 1.0–1.3 and AWS CUR (legacy ``lineItem/UnblendedCost`` headers, their Athena snake_case form and CUR 2.0)
map onto the same ``CloudLine``; docs/cloud.md has the column table. Every error names the column; the
importer adds the file and line. Pure: no I/O.
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from costline.core.limits import LimitError, check_money
from costline.errors import CostlineError

FORMATS: Final = ("focus", "cur")

_NULLS: Final = frozenset({"", "null", "none", "nan", "n/a"})

#: ProviderName / ServiceProviderName → the provider name costline uses
PROVIDER_KEYS: Final[Mapping[str, str]] = {
    "aws": "aws", "amazon web services": "aws", "amazon web services, inc.": "aws", "amazon": "aws",
    "microsoft": "azure", "azure": "azure", "microsoft azure": "azure",
    "google": "gcp", "google cloud": "gcp", "gcp": "gcp",
    "oracle": "oci", "oci": "oci", "oracle cloud infrastructure": "oci",
}

#: CUR LineItemType → FOCUS ChargeCategory (FinOps Foundation converter rules, FOCUS ≥ 1.0 for credits)
CUR_CHARGE_CATEGORY: Final[Mapping[str, str]] = {
    "Usage": "Usage", "SavingsPlanCoveredUsage": "Usage", "SavingsPlanNegation": "Usage",
    "DiscountedUsage": "Usage", "BundledDiscount": "Usage", "Discount": "Usage", "PrivateRateDiscount": "Usage",
    "EdpDiscount": "Usage", "Fee": "Purchase", "RIFee": "Purchase", "SavingsPlanUpfrontFee": "Purchase",
    "SavingsPlanRecurringFee": "Purchase", "Tax": "Tax", "Credit": "Credit", "Refund": "Adjustment",
}
_FREQUENCIES: Final = {"one-time": "One-Time", "recurring": "Recurring", "usage-based": "Usage-Based"}


class LineError(CostlineError):
    """A row that cannot be read; the message starts with the column's name."""


@dataclass(frozen=True, slots=True)
class CloudLine:
    """A billing line in the billing currency (amounts converted later by the importer)."""

    provider: str  # aws, azure, gcp, oci, or the lower-cased provider name
    provider_name: str
    billing_account_id: str
    billing_period_start: datetime
    billing_period_end: datetime | None
    charge_period_start: datetime
    charge_period_end: datetime | None
    charge_category: str
    service_name: str
    billed_cost: Decimal
    currency: str
    effective_cost: Decimal | None = None
    list_cost: Decimal | None = None
    contracted_cost: Decimal | None = None
    net_unblended_cost: Decimal | None = None
    blended_cost: Decimal | None = None
    consumed_quantity: Decimal | None = None
    consumed_unit: str | None = None
    pricing_quantity: Decimal | None = None
    pricing_unit: str | None = None
    billing_account_name: str | None = None
    sub_account_id: str | None = None
    sub_account_name: str | None = None
    charge_class: str | None = None
    charge_frequency: str | None = None
    charge_description: str | None = None
    service_category: str | None = None
    region_id: str | None = None
    region_name: str | None = None
    availability_zone: str | None = None
    resource_id: str | None = None
    resource_type: str | None = None
    sku_id: str | None = None
    usage_type: str | None = None
    operation: str | None = None
    record_type: str | None = None  # CUR LineItemType, else the ChargeCategory
    instance_type: str | None = None
    invoice_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


# --- cell readers -------------------------------------------------------------------------------------------
def text(row: Mapping[str, Any], column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    value = value.strip()
    return None if value.lower() in _NULLS else value


def required_text(row: Mapping[str, Any], column: str) -> str:
    value = text(row, column)
    if value is None:
        raise LineError(f"{column}: required, but empty")
    return value


def amount(row: Mapping[str, Any], column: str) -> Decimal | None:
    raw = text(row, column)
    if raw is None:
        return None
    if len(raw) > 64:
        raise LineError(f"{column}: {raw[:20]!r}... is not a number")
    try:
        value = Decimal(raw)
    except decimal.InvalidOperation:
        raise LineError(f"{column}: {raw!r} is not a number") from None
    if not value.is_finite():
        raise LineError(f"{column}: {raw!r} is not a finite number")
    try:  # the money bound of every input path (core/limits.py), the exponent checked before any arithmetic
        check_money(value, column)
    except LimitError:
        raise LineError(f"{column}: {raw!r} is out of range") from None
    return value


def required_amount(row: Mapping[str, Any], column: str) -> Decimal:
    value = amount(row, column)
    if value is None:
        raise LineError(f"{column}: required, but empty")
    return value


def instant(row: Mapping[str, Any], column: str) -> datetime | None:
    """ISO 8601 with or without ``T``/``Z``/offset (``2024-09-18 22:00:00`` is UTC), or a date."""
    raw = text(row, column)
    if raw is None:
        return None
    value = raw.replace("Z", "+00:00") if raw.endswith("Z") else raw
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise LineError(f"{column}: {raw!r} is not a date-time (ISO 8601, e.g. 2024-09-01T00:00:00Z)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def required_instant(row: Mapping[str, Any], column: str) -> datetime:
    value = instant(row, column)
    if value is None:
        raise LineError(f"{column}: required, but empty")
    return value


def json_map(row: Mapping[str, Any], column: str) -> dict[str, str]:
    """A JSON object column (FOCUS ``Tags``, CUR 2.0 ``resource_tags``): values as text, ``true`` for a
    valueless tag kept as ``"true"``."""
    raw = row.get(column)
    if isinstance(raw, Mapping):
        data: Any = raw
    else:
        cell = text(row, column)
        if cell is None:
            return {}
        try:
            data = json.loads(cell)
        except ValueError:
            raise LineError(f"{column}: not a JSON object") from None
    if not isinstance(data, Mapping):
        raise LineError(f"{column}: expected a JSON object, got {type(data).__name__}")
    out: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        out[str(key)] = "true" if value is True else "false" if value is False else str(value)
    return out


def provider_key(name: str) -> str:
    return PROVIDER_KEYS.get(name.strip().lower(), name.strip().lower())


def charge_frequency(value: str | None) -> str | None:
    if value is None:
        return None
    return _FREQUENCIES.get(value.lower(), value)


# --- FOCUS --------------------------------------------------------------------------------------------------
def focus_line(row: Mapping[str, Any]) -> CloudLine:
    """A FOCUS 1.0–1.3 row (``ServiceProviderName`` preferred over the deprecated ``ProviderName``)."""
    provider_name = text(row, "ServiceProviderName") or text(row, "ProviderName")
    if provider_name is None:
        raise LineError("ServiceProviderName: required (or ProviderName before FOCUS 1.3), but empty")
    extras = {key: row.get(key) for key in row if key.startswith("x_")}
    return CloudLine(
        provider=provider_key(provider_name),
        provider_name=provider_name,
        billing_account_id=required_text(row, "BillingAccountId"),
        billing_account_name=text(row, "BillingAccountName"),
        billing_period_start=required_instant(row, "BillingPeriodStart"),
        billing_period_end=instant(row, "BillingPeriodEnd"),
        charge_period_start=required_instant(row, "ChargePeriodStart"),
        charge_period_end=instant(row, "ChargePeriodEnd"),
        charge_category=required_text(row, "ChargeCategory"),
        charge_class=text(row, "ChargeClass"),
        charge_frequency=charge_frequency(text(row, "ChargeFrequency")),
        charge_description=text(row, "ChargeDescription"),
        service_name=required_text(row, "ServiceName"),
        service_category=text(row, "ServiceCategory"),
        billed_cost=required_amount(row, "BilledCost"),
        currency=required_text(row, "BillingCurrency").upper(),
        effective_cost=amount(row, "EffectiveCost"),
        list_cost=amount(row, "ListCost"),
        contracted_cost=amount(row, "ContractedCost"),
        consumed_quantity=amount(row, "ConsumedQuantity"),
        consumed_unit=text(row, "ConsumedUnit"),
        pricing_quantity=amount(row, "PricingQuantity"),
        pricing_unit=text(row, "PricingUnit"),
        sub_account_id=text(row, "SubAccountId"),
        sub_account_name=text(row, "SubAccountName"),
        region_id=text(row, "RegionId"),
        region_name=text(row, "RegionName"),
        availability_zone=text(row, "AvailabilityZone"),
        resource_id=text(row, "ResourceId"),
        resource_type=text(row, "ResourceType"),
        sku_id=text(row, "SkuId"),
        usage_type=text(extras, "x_UsageType"),
        operation=text(extras, "x_Operation"),
        record_type=text(row, "ChargeCategory"),
        instance_type=text(extras, "x_InstanceType"),
        invoice_id=text(row, "InvoiceId"),
        tags=json_map(row, "Tags"),
    )


# --- CUR (legacy, Athena snake_case, 2.0) -------------------------------------------------------------------
def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).replace("/", "_").replace(":", "_").lower()


def cur_columns(header: list[str]) -> dict[str, str]:
    """Each CUR header cell → its CUR 2.0 snake_case name (``lineItem/UnblendedCost`` →
    ``line_item_unblended_cost``); resource tag columns keep their tag key: ``resourceTags/user:Project`` →
    ``tag:Project``, Athena's ``resource_tags_user_project`` → ``tag:project``."""
    out: dict[str, str] = {}
    for name in header:
        if name.startswith("resourceTags/"):
            key = name.split("/", 1)[1]
            out[name] = "tag:" + (key[5:] if key.startswith("user:") else key)
        elif name.startswith("resource_tags_user_"):
            out[name] = "tag:" + name[len("resource_tags_user_"):]
        elif "/" in name:
            category, column = name.split("/", 1)
            out[name] = f"{_snake(category)}_{_snake(column)}"
        else:
            out[name] = name
    return out


def _cur_tags(row: Mapping[str, Any]) -> dict[str, str]:
    tags = {key[4:]: str(value) for key, value in row.items() if key.startswith("tag:") and text(row, key)}
    for key, value in json_map(row, "resource_tags").items():
        name = key[5:] if key.startswith(("user:", "user_")) else key
        if value != "":
            tags[name] = value
    return tags


def _cur_product(row: Mapping[str, Any], key: str) -> str | None:
    flat = text(row, f"product_{key}")
    if flat is not None:
        return flat
    product = row.get("product")
    if isinstance(product, str) and product.strip().startswith("{"):
        try:
            product = json.loads(product)
        except ValueError:
            raise LineError("product: not a JSON object") from None
    if isinstance(product, Mapping):
        value = product.get(key)
        return str(value) if value not in (None, "") else None
    return None


def _cur_amortized(row: Mapping[str, Any], line_type: str, unblended: Decimal) -> Decimal:
    """AmortizedCost per line item type (the FinOps Foundation converter's EffectiveCost rule)."""
    if line_type == "SavingsPlanCoveredUsage":
        return amount(row, "savings_plan_savings_plan_effective_cost") or Decimal(0)
    if line_type == "DiscountedUsage":
        return amount(row, "reservation_effective_cost") or Decimal(0)
    if line_type in ("SavingsPlanNegation", "SavingsPlanUpfrontFee"):
        return Decimal(0)
    if line_type == "RIFee":
        upfront = amount(row, "reservation_unused_amortized_upfront_fee_for_billing_period") or Decimal(0)
        recurring = amount(row, "reservation_unused_recurring_fee") or Decimal(0)
        return upfront + recurring
    return unblended


def cur_line(row: Mapping[str, Any]) -> CloudLine:
    """A CUR row whose keys went through ``cur_columns``."""
    unblended = required_amount(row, "line_item_unblended_cost")
    line_type = text(row, "line_item_line_item_type") or "Usage"
    service = _cur_product(row, "product_name") or text(row, "line_item_product_code")
    if service is None:
        raise LineError("product/ProductName: required (or lineItem/ProductCode), but empty")
    region = _cur_product(row, "region_code") or _cur_product(row, "region")
    return CloudLine(
        provider="aws",
        provider_name="AWS",
        billing_account_id=text(row, "bill_payer_account_id") or required_text(row, "line_item_usage_account_id"),
        billing_account_name=text(row, "bill_payer_account_name"),
        billing_period_start=required_instant(row, "bill_billing_period_start_date"),
        billing_period_end=instant(row, "bill_billing_period_end_date"),
        charge_period_start=required_instant(row, "line_item_usage_start_date"),
        charge_period_end=instant(row, "line_item_usage_end_date"),
        charge_category=CUR_CHARGE_CATEGORY.get(line_type, "Usage"),
        charge_frequency=None,
        charge_description=text(row, "line_item_line_item_description"),
        service_name=service,
        service_category=None,
        billed_cost=unblended,
        currency=(text(row, "line_item_currency_code") or "USD").upper(),
        effective_cost=_cur_amortized(row, line_type, unblended),
        list_cost=amount(row, "pricing_public_on_demand_cost"),
        net_unblended_cost=amount(row, "line_item_net_unblended_cost"),
        blended_cost=amount(row, "line_item_blended_cost"),
        consumed_quantity=amount(row, "line_item_usage_amount"),
        consumed_unit=text(row, "pricing_unit"),
        pricing_quantity=amount(row, "line_item_usage_amount"),
        pricing_unit=text(row, "pricing_unit"),
        sub_account_id=text(row, "line_item_usage_account_id"),
        sub_account_name=text(row, "line_item_usage_account_name"),
        region_id=region,
        availability_zone=text(row, "line_item_availability_zone"),
        resource_id=text(row, "line_item_resource_id"),
        sku_id=_cur_product(row, "sku") or text(row, "product_sku"),
        usage_type=text(row, "line_item_usage_type"),
        operation=text(row, "line_item_operation"),
        record_type=line_type,
        instance_type=_cur_product(row, "instance_type"),
        invoice_id=text(row, "bill_invoice_id"),
        tags=_cur_tags(row),
    )
