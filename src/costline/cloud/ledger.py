"""Billing lines in the one ledger: each line is an observation of type ``cloud``.

So cloud spend answers the same query model as LLM calls (``/v1/metrics`` with ``source``, daily metrics,
exports), and budgets, alerts and forecasts watch it with the same scopes (``metadata.service``,
``provider``, ``tag``, ``metadata.tags.<key>``). A billing period of one account and provider is one group:
its lines share a trace id, so importing the period again replaces the group whole (never doubles).

The observation's cost is the line's BilledCost in USD (``total``); the other FOCUS cost columns
(EffectiveCost, ListCost, ContractedCost) and the CUR net/blended costs are kept in metadata, converted the same
way, for Cost Explorer's metrics. The original amount and currency stay beside a converted amount.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from costline.cloud.currency import Rate, convert
from costline.cloud.lines import CloudLine
from costline.core.events import Observation

OBSERVATION_TYPE: Final = "cloud"
#: the metadata key of each optional cost column
COST_KEYS: Final[Mapping[str, str]] = {
    "effective_cost": "effective_cost", "list_cost": "list_cost", "contracted_cost": "contracted_cost",
    "net_unblended_cost": "net_unblended_cost", "blended_cost": "blended_cost",
}
_TEXT_KEYS: Final = (
    "provider_name", "billing_account_id", "billing_account_name", "sub_account_id", "sub_account_name",
    "charge_category", "charge_class", "charge_frequency", "charge_description", "service_category", "region_id",
    "region_name", "availability_zone", "resource_id", "resource_type", "sku_id", "usage_type", "operation",
    "record_type", "instance_type", "invoice_id", "consumed_unit", "pricing_unit",
)
_ENV_TAGS: Final = ("environment", "env")
MAX_ENVIRONMENT: Final = 64


def group_id(line: CloudLine) -> str:
    """The trace id shared by the lines of one (provider, billing account, billing period)."""
    key = f"{line.provider}\x1f{line.billing_account_id}\x1f{line.billing_period_start.isoformat()}"
    return "cloud-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _money(value: Decimal | None, rate: Rate | None) -> Decimal | None:
    if value is None:
        return None
    return convert(value, rate) if rate is not None else value


def _environment(tags: Mapping[str, str]) -> str:
    for key, value in tags.items():
        if key.strip().lower() in _ENV_TAGS and value and len(value) <= MAX_ENVIRONMENT:
            return value
    return "default"


def to_observation(line: CloudLine, project_id: str, seq: int, rate: Rate | None, source: str) -> Observation:
    """``line`` as the ``seq``-th observation of its group; ``rate`` converts a non-USD line to USD."""
    group = group_id(line)
    billed = _money(line.billed_cost, rate)
    assert billed is not None
    metadata: dict[str, Any] = {"service": line.service_name, "source_file": source}
    for key in _TEXT_KEYS:
        value = getattr(line, key)
        if value is not None:
            metadata[key] = value
    metadata["billing_period_start"] = line.billing_period_start.isoformat()
    for attr, key in COST_KEYS.items():
        value = _money(getattr(line, attr), rate)
        if value is not None:
            metadata[key] = format(value, "f")
    for attr in ("consumed_quantity", "pricing_quantity"):
        quantity = getattr(line, attr)
        if quantity is not None:
            metadata[attr] = format(quantity, "f")
    if rate is not None:
        metadata.update(original_cost=format(line.billed_cost, "f"), original_currency=line.currency,
                        fx_rate=format(rate.rate, "f"), fx_date=rate.day.isoformat(), fx_source=rate.source)
    if line.tags:
        metadata["tags"] = dict(line.tags)
    return Observation(
        project_id=project_id,
        id=f"{group}-{seq:08d}",
        trace_id=group,
        start_time=line.charge_period_start,
        end_time=line.charge_period_end,
        type=OBSERVATION_TYPE,
        name=line.service_name,
        provider=line.provider,
        cost={"total": billed},
        total_cost=billed,
        currency="USD",
        pricing_status="provided",
        provided_cost={"total": billed},
        tags=tuple(sorted(f"{k}:{v}" for k, v in line.tags.items())),
        metadata=metadata,
        environment=_environment(line.tags),
    )
