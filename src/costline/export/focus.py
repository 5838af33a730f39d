"""FOCUS 1.2 cost rows from observations: one Usage row per UTC day, project, provider, model, currency and
tag set (docs/exports.md explains every column).

Only observations with a cost are charged. An unpriced observation is never a $0 charge: it is left out of
the cost rows, counted per model for the caller to report, and counted in ``x_UnpricedObservations`` of the
row whose key it shares when that row exists. A model call with a cost but no provider is left out too
(``ProviderName`` may not be null and FOCUS forbids placeholders) and reported; a price id names a provider
only when it is a catalog's (``openai:gpt-4o@...``), never a price source (``project:...``, ``user:...``).

A cost with no model (a service cost the SDK's ``add_cost`` records: Lambda, DynamoDB, ...) is a Usage row of
its own per service and operation: ``ServiceName`` is the service, ``ProviderName`` the provider when one was
sent (else the service), ``SkuId`` ``service:operation``, the quantity and unit those the application gave,
``ServiceCategory``/``ServiceSubcategory`` ``Other``.

The tag set is part of the key so that ``Tags`` can hold every tag of the row's observations, as FOCUS asks
("Tags MUST include all user-defined and provider-defined tags"); costline tags are labels without values, so
each is a key with the value ``true``. Costs are summed as exact decimals.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from costline.export.records import Field

SERVICE_CATEGORY = "AI and Machine Learning"
SERVICE_SUBCATEGORY = "Generative AI"

#: the 21 mandatory FOCUS 1.2 columns, then the recommended/conditional ones costline fills, then ``x_``
FOCUS_FIELDS: tuple[Field, ...] = (
    Field("BilledCost", "money"), Field("BillingAccountId"), Field("BillingAccountName"),
    Field("BillingCurrency"), Field("BillingPeriodStart", "time"), Field("BillingPeriodEnd", "time"),
    Field("ChargeCategory"), Field("ChargeClass"), Field("ChargeDescription"), Field("ChargePeriodStart", "time"),
    Field("ChargePeriodEnd", "time"), Field("ContractedCost", "money"), Field("EffectiveCost", "money"),
    Field("InvoiceIssuerName"), Field("ListCost", "money"), Field("PricingQuantity", "decimal"),
    Field("PricingUnit"), Field("ProviderName"), Field("PublisherName"), Field("ServiceCategory"),
    Field("ServiceName"),
    Field("ChargeFrequency"), Field("ConsumedQuantity", "decimal"), Field("ConsumedUnit"),
    Field("ServiceSubcategory"), Field("SkuId"), Field("Tags", "json"),
    Field("RegionId"), Field("SubAccountId"),
    Field("x_Model"), Field("x_InputTokens", "int"), Field("x_OutputTokens", "int"), Field("x_Observations", "int"),
    Field("x_UnpricedObservations", "int"), Field("x_PartiallyPricedObservations", "int"),
)
MANDATORY = FOCUS_FIELDS[:21]


class _Key(NamedTuple):
    day: date
    project_id: str
    provider: str | None
    model: str | None
    currency: str
    tags: tuple[str, ...]
    #: a service cost (no model): (service, operation, unit); for an imported billing line (service, charge
    #: category, pricing unit)
    service: tuple[str, str, str] | None = None
    #: an imported billing line (docs/cloud.md): its FOCUS/CUR columns come back out
    cloud: tuple[str, str, str, str] | None = None  # (service category, region, sub account, tags as JSON)


@dataclass
class _Charge:
    cost: Decimal = Decimal(0)
    quantity: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    observations: int = 0
    partially_priced: int = 0
    skus: set[str] = field(default_factory=set)
    effective_cost: Decimal = Decimal(0)
    list_cost: Decimal = Decimal(0)


@dataclass
class FocusAggregator:
    """Folds export records (``costline.export.records``) into FOCUS rows."""

    #: project id → name, for BillingAccountName
    project_names: Mapping[str, str] = field(default_factory=dict)
    charges: dict[_Key, _Charge] = field(default_factory=dict)
    unpriced: Counter[_Key] = field(default_factory=Counter)
    #: unpriced observations per model as sent (None: no model)
    unpriced_by_model: Counter[str | None] = field(default_factory=Counter)
    #: observations with a cost that cannot be charged: reason → (count, cost)
    left_out: dict[str, tuple[int, Decimal]] = field(default_factory=dict)

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        for r in records:
            key = _key(r)
            if r["total_cost"] is None:
                if r["pricing_status"] == "unpriced":
                    self.unpriced[key] += 1
                    self.unpriced_by_model[key.model] += 1
                continue
            if r.get("type") == "cloud":
                key, quantity = _cloud_key(key, r)
                charge = self.charges.get(key)
                if charge is None:
                    charge = self.charges[key] = _Charge()
                meta = r.get("metadata") or {}
                charge.cost += r["total_cost"]
                charge.quantity += quantity
                charge.effective_cost += _decimal(meta.get("effective_cost"), r["total_cost"])
                charge.list_cost += _decimal(meta.get("list_cost"), r["total_cost"])
                charge.observations += 1
                continue
            if key.model is None:
                key, quantity = _service_key(key, r)
                charge = self.charges.get(key)
                if charge is None:
                    charge = self.charges[key] = _Charge()
                charge.cost += r["total_cost"]
                charge.quantity += quantity
                charge.observations += 1
                continue
            if key.provider is None:
                reason = "no provider"
                count, cost = self.left_out.get(reason, (0, Decimal(0)))
                self.left_out[reason] = (count + 1, cost + r["total_cost"])
                continue
            charge = self.charges.get(key)
            if charge is None:
                charge = self.charges[key] = _Charge()
            charge.cost += r["total_cost"]
            charge.input_tokens += _tokens(r["input_tokens"])
            charge.output_tokens += _tokens(r["output_tokens"])
            charge.observations += 1
            charge.partially_priced += r["pricing_status"] == "partially_priced"
            charge.skus.add(r["resolved_model"] or key.model)

    def rows(self) -> list[dict[str, Any]]:
        """The FOCUS rows, ordered by day, account, provider, model, currency and tags."""
        out = []
        for key in sorted(self.charges, key=lambda k: (k.day, k.project_id, k.provider or "", k.model or "",
                                                       k.currency, k.tags, k.service or ("", "", ""))):
            row = self._row(key, self.charges[key])
            if key.cloud is not None:
                row.update(_cloud_columns(key, self.charges[key]))
            elif key.service is not None:
                row.update(_service_columns(key, self.charges[key]))
            out.append(row)
        return out

    def _row(self, key: _Key, charge: _Charge) -> dict[str, Any]:
        day = datetime(key.day.year, key.day.month, key.day.day, tzinfo=UTC)
        month = day.replace(day=1)
        next_month = (month + timedelta(days=32)).replace(day=1)
        tokens = charge.input_tokens + charge.output_tokens
        quantity, unit = (tokens, "Tokens") if tokens else (charge.observations, "Requests")
        calls = f"{charge.observations} priced call{'s' if charge.observations != 1 else ''}"
        return {
            "BilledCost": charge.cost,
            "BillingAccountId": key.project_id,
            "BillingAccountName": self.project_names.get(key.project_id) or None,
            "BillingCurrency": key.currency,
            "BillingPeriodStart": month,
            "BillingPeriodEnd": next_month,
            "ChargeCategory": "Usage",
            "ChargeClass": None,
            "ChargeDescription": (f"{key.model} from {key.provider}: {calls} on {key.day.isoformat()} (UTC), "
                                  f"{charge.input_tokens} input and {charge.output_tokens} output tokens"),
            "ChargePeriodStart": day,
            "ChargePeriodEnd": day + timedelta(days=1),
            "ContractedCost": charge.cost,
            "EffectiveCost": charge.cost,
            "InvoiceIssuerName": key.provider,
            "ListCost": charge.cost,
            "PricingQuantity": quantity,
            "PricingUnit": unit,
            "ProviderName": key.provider,
            "PublisherName": key.provider,
            "ServiceCategory": SERVICE_CATEGORY,
            "ServiceName": f"{key.provider} API",
            "ChargeFrequency": "Usage-Based",
            "ConsumedQuantity": quantity,
            "ConsumedUnit": unit,
            "ServiceSubcategory": SERVICE_SUBCATEGORY,
            "SkuId": next(iter(charge.skus)) if len(charge.skus) == 1 else key.model,
            "Tags": dict.fromkeys(key.tags, True) or None,
            "RegionId": None,
            "SubAccountId": None,
            "x_Model": key.model,
            "x_InputTokens": charge.input_tokens,
            "x_OutputTokens": charge.output_tokens,
            "x_Observations": charge.observations,
            "x_UnpricedObservations": self.unpriced.get(key, 0),
            "x_PartiallyPricedObservations": charge.partially_priced,
        }


def _key(r: Mapping[str, Any]) -> _Key:
    start: datetime = r["start_time"]
    provider = r["provider"] or _provider_of(r["price_id"])
    return _Key(start.astimezone(UTC).date(), r["project_id"], provider, r["model"] or r["resolved_model"] or None,
                r["currency"], tuple(sorted(set(r["tags"]))))


#: price id prefixes that name where a price came from, not a provider
_SOURCES = frozenset({"override", "project", "user", "imported", "bundled", "litellm", "langfuse"})


def _provider_of(price_id: str | None) -> str | None:
    """The provider a catalog price id names (``openai:gpt-4o:...`` → ``openai``); None for a price source's
    id (``project:p1:my-price``): the call's provider is then unknown, not "project"."""
    if not price_id or ":" not in price_id:
        return None
    prefix = price_id.split(":", 1)[0]
    return None if not prefix or prefix in _SOURCES else prefix


def _service_key(key: _Key, r: Mapping[str, Any]) -> tuple[_Key, Decimal]:
    meta = r.get("metadata") or {}
    service = str(meta.get("service") or r.get("name") or r.get("type") or "service")
    operation = str(meta.get("operation") or r.get("name") or service)
    unit = str(meta.get("unit") or "Requests")
    try:
        quantity = Decimal(str(meta.get("quantity", 1)))
    except ArithmeticError:
        quantity = Decimal(1)
    if not quantity.is_finite() or quantity < 0:
        quantity = Decimal(1)
    provider = key.provider if r["provider"] else (str(meta["provider"]) if meta.get("provider") else service)
    return key._replace(provider=provider, service=(service, operation, unit)), quantity


def _service_columns(key: _Key, charge: _Charge) -> dict[str, Any]:
    """The columns of a service-cost row that differ from a model call's."""
    assert key.service is not None
    service, operation, unit = key.service
    calls = f"{charge.observations} cost item{'s' if charge.observations != 1 else ''}"
    return {
        "ChargeDescription": f"{service} {operation}: {calls} on {key.day.isoformat()} (UTC), "
                             f"{charge.quantity.normalize():f} {unit}",
        "PricingQuantity": charge.quantity, "PricingUnit": unit, "ConsumedQuantity": charge.quantity,
        "ConsumedUnit": unit, "ServiceName": service, "ServiceCategory": "Other", "ServiceSubcategory": "Other",
        "SkuId": f"{service}:{operation}", "x_Model": None,
    }


def _decimal(value: Any, default: Decimal) -> Decimal:
    if value is None:
        return default
    try:
        parsed = Decimal(str(value))
    except ArithmeticError:
        return default
    return parsed if parsed.is_finite() else default


def _cloud_key(key: _Key, r: Mapping[str, Any]) -> tuple[_Key, Decimal]:
    """An imported billing line: grouped per day, provider, service, charge category, unit, category, region
    and sub account, so a bill exported again keeps its credits, categories and accounts apart."""
    meta = r.get("metadata") or {}
    service = str(meta.get("service") or r.get("name") or "service")
    category = str(meta.get("charge_category") or "Usage")
    unit = str(meta.get("pricing_unit") or meta.get("consumed_unit") or "Requests")
    quantity = _decimal(meta.get("pricing_quantity", meta.get("consumed_quantity")), Decimal(0))
    provider = str(meta.get("provider_name") or r["provider"] or "cloud")
    tags = meta.get("tags") if isinstance(meta.get("tags"), Mapping) else {}
    cloud = (str(meta.get("service_category") or "Other"), str(meta.get("region_id") or ""),
             str(meta.get("sub_account_id") or ""), json.dumps(tags, sort_keys=True) if tags else "")
    return key._replace(provider=provider, service=(service, category, unit), cloud=cloud), quantity


def _cloud_columns(key: _Key, charge: _Charge) -> dict[str, Any]:
    assert key.service is not None and key.cloud is not None
    service, category, unit = key.service
    service_category, region, account, tags = key.cloud
    lines = f"{charge.observations} billing line{'s' if charge.observations != 1 else ''}"
    return {
        "ChargeCategory": category, "ChargeFrequency": "Usage-Based" if category == "Usage" else "One-Time",
        "ChargeDescription": f"{service}: {lines} on {key.day.isoformat()} (UTC), imported",
        "EffectiveCost": charge.effective_cost, "ListCost": charge.list_cost, "ContractedCost": charge.cost,
        "PricingQuantity": charge.quantity, "PricingUnit": unit, "ConsumedQuantity": charge.quantity,
        "ConsumedUnit": unit, "ServiceName": service, "ServiceCategory": service_category,
        "ServiceSubcategory": None, "SkuId": None, "x_Model": None,
        "RegionId": region or None, "SubAccountId": account or None, "Tags": json.loads(tags) if tags else None,
    }


def _tokens(value: Any) -> int:
    return int(value) if value is not None else 0
