"""Per-request costs of AWS serverless services in the SDK: ``add_usage(lambda_ms=..., memory_mb=...,
dynamodb_reads=...)`` prices the quantities from costline's region price table (docs/cloud.md, "Serverless")
and adds each line to the request being served (``costline.sdk.middleware``) and to the current trace, as
``add_cost`` does. The application never computes amounts itself.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from costline.cloud.serverless import DEFAULT_REGION, PriceTable, ServiceCost, load_table, price_request, total
from costline.sdk.request_costs import add_cost
from costline.sdk.tracker import Tracker

__all__ = ["add_usage", "price_usage"]

log = logging.getLogger("costline.sdk")
_TABLE: PriceTable | None = None
_LOCK = threading.Lock()


def _table(path: Path | None) -> PriceTable:
    global _TABLE
    if path is not None:
        return load_table(path)
    with _LOCK:
        if _TABLE is None:
            _TABLE = load_table()
        return _TABLE


def price_usage(region: str = DEFAULT_REGION, *, price_table: Path | None = None,
                **quantities: Any) -> list[ServiceCost]:
    """The cost lines of the quantities (raises ``ServerlessPriceError`` naming a bad one)."""
    return price_request(_table(price_table), region, **quantities)


def add_usage(region: str = DEFAULT_REGION, *, price_table: Path | None = None, tracker: Tracker | None = None,
              **quantities: Any) -> Decimal | None:
    """Price the quantities and add each line to the current request's cost (and trace); return the total.
    Bad input is logged and ignored (``None``), never raised: costing must not break the request."""
    try:
        lines = price_usage(region, price_table=price_table, **quantities)
    except Exception as exc:
        log.warning("costline: add_usage(%s) ignored: %s", ", ".join(sorted(quantities)), exc)
        return None
    for line in lines:
        add_cost(line.service, line.operation, line.unit, line.quantity, amount=line.cost, tracker=tracker,
                 metadata={"price_id": line.price_id, "region": region, "price_verified": line.verified})
    return total(lines)
