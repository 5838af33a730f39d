"""A query's result values from the stores' raw values: exact Decimals, ints for counts and integral
quantities, averages finished from exact sums, latency in seconds (used by store/query_sql.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from costline.core.money import MONEY_CONTEXT
from costline.core.query import COUNT_MEASURES, MONEY_MEASURES, TIME_MEASURES, Metric

#: averages are rounded half-even to this many decimal places (the stores keep money to 12 places)
AVG_PLACES: Final = Decimal("1e-12")


def finish_value(metric: Metric, raw: Any, count: Any = None) -> Any:
    """A metric's result value from its raw store value(s): money and quantities as exact Decimals (integral
    quantities as ints), counts as ints, averages from the exact sum and count, latency in seconds."""
    if metric.measure in COUNT_MEASURES["observations"] or metric.aggregation == "count":
        return int(raw or 0)
    if raw is None:
        return None
    if metric.measure in TIME_MEASURES:
        return raw.astimezone(UTC).isoformat() if isinstance(raw, datetime) else str(raw)
    value = Decimal(raw) if not isinstance(raw, Decimal) else raw
    if metric.measure == "latency":  # stores answer in microseconds; round an average in seconds
        value = MONEY_CONTEXT.divide(value, Decimal(1_000_000))
    if metric.aggregation == "avg":
        if not count:
            return None
        value = MONEY_CONTEXT.divide(value, Decimal(count)).quantize(AVG_PLACES, context=MONEY_CONTEXT)
    return _tidy(value, money=metric.measure in MONEY_MEASURES or metric.measure == "cost")


def _tidy(value: Decimal, *, money: bool) -> Decimal | int:
    if value == value.to_integral_value() and not money:
        return int(value)
    normal = value.normalize(MONEY_CONTEXT)
    return normal if normal.as_tuple().exponent <= 0 else normal.quantize(Decimal(1))  # type: ignore[operator]
