"""Month-end projections of a scope's spend, for the API, the reports and forecast alerts.

The store answers the month's daily costs in the scope's time zone (one query of the core query model);
``core.forecast.forecast_month`` projects them (docs/forecast.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from costline.control.check import CheckError
from costline.core.budgets import scope_filter
from costline.core.forecast import Forecast, forecast_month
from costline.core.query import Metric, Query, QueryResult
from costline.core.timebuckets import zone
from costline.errors import CostlineError
from costline.store.base import Store


def forecast_from_days(result: QueryResult, now: datetime, tz: tzinfo) -> Forecast:
    """The projection from a query's answer by day (``granularity: day``, ``sum:cost``) in ``tz``."""
    daily: dict[date, Decimal] = {}
    for row in result.rows:
        if row.get("sum_cost") is not None:  # the bucket label is the day's local start
            daily[datetime.fromisoformat(row["time"]).date()] = Decimal(row["sum_cost"])
    return forecast_month(daily, now, tz)


def month_forecast(store: Store, project_id: str, scope: Mapping[str, str], per: str | None, subject: str, tz_name: str,
              now: datetime, limit: Decimal | None) -> dict[str, Any]:
    """The month-end projection of the scope's daily costs in ``tz_name`` (docs/forecast.md)."""
    try:
        tz = zone(tz_name)
    except CostlineError as exc:
        raise CheckError(f"timezone: {exc}") from None
    local = now.astimezone(tz)
    start = datetime(local.year, local.month, 1, tzinfo=tz).astimezone(UTC)
    following = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=tz).astimezone(UTC)
    filters = [scope_filter(k, v) for k, v in scope.items()]
    if per is not None and subject:
        filters.append(scope_filter(per, subject))
    query = Query(view="observations", start=start, end=following, dimensions=(), metrics=(Metric("cost", "sum"),),
                  filters=tuple(filters), granularity="day", timezone=tz_name, project_id=project_id, limit=40,
                  tz=tz)
    found = forecast_from_days(store.query(query), now, tz).to_json()
    if limit is not None:
        found["limit"] = str(limit)
        found["projected_over_limit"] = Decimal(found["projected"]) > limit
    return found

