"""Cost Explorer's read operations over imported AWS billing lines (GetCostAndUsage, GetDimensionValues,
GetTags, GetCostForecast), answering with the shapes and ValidationException texts of the real service.

Dimensions and metrics come from the FOCUS/CUR columns (docs/cloud.md has the table). Times: ``Start``
inclusive, ``End`` exclusive, days and months in UTC as Cost Explorer's are. Pure: the caller loads the lines.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from costline.cloud.expression import Line, ValidationException, matches, validate
from costline.core.events import Observation
from costline.core.limits import EARLIEST, LATEST
from costline.core.money import decimal_str

METRICS: Final = ("AmortizedCost", "BlendedCost", "NetAmortizedCost", "NetUnblendedCost", "NormalizedUsageAmount",
                  "UnblendedCost", "UsageQuantity")
FORECAST_METRICS: Final[Mapping[str, str]] = {
    "AMORTIZED_COST": "AmortizedCost", "BLENDED_COST": "BlendedCost", "NET_AMORTIZED_COST": "NetAmortizedCost",
    "NET_UNBLENDED_COST": "NetUnblendedCost", "UNBLENDED_COST": "UnblendedCost",
}
GROUP_BY_DIMENSIONS: Final = ("AZ", "INSTANCE_TYPE", "LEGAL_ENTITY_NAME", "INVOICING_ENTITY", "LINKED_ACCOUNT",
                              "OPERATION", "PLATFORM", "PURCHASE_TYPE", "SERVICE", "TENANCY", "RECORD_TYPE",
                              "USAGE_TYPE")
#: Cost Explorer dimension → the ledger's metadata key (FOCUS/CUR column, docs/cloud.md)
DIMENSION_KEYS: Final[Mapping[str, str]] = {
    "SERVICE": "service", "LINKED_ACCOUNT": "sub_account_id", "PAYER_ACCOUNT": "billing_account_id",
    "BILLING_ENTITY": "provider_name", "REGION": "region_id", "AZ": "availability_zone",
    "USAGE_TYPE": "usage_type", "OPERATION": "operation", "RECORD_TYPE": "record_type",
    "INSTANCE_TYPE": "instance_type", "RESOURCE_ID": "resource_id", "LINKED_ACCOUNT_NAME": "sub_account_name",
    "INVOICING_ENTITY": "provider_name", "LEGAL_ENTITY_NAME": "provider_name", "PURCHASE_TYPE": "charge_category",
}
PAGE_SIZE: Final = 500
#: the most periods one answer holds (an HOURLY range of years would otherwise build millions)
MAX_PERIODS: Final = 20_000
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}:\d{2}Z)?$")


@dataclass(frozen=True, slots=True)
class CostLine:
    """One billing line as Cost Explorer sees it."""

    start: datetime
    line: Line
    metrics: Mapping[str, Decimal]


def _meta_decimal(meta: Mapping[str, Any], key: str) -> Decimal | None:
    value = meta.get(key)
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def cost_line(obs: Observation) -> CostLine:
    meta = obs.metadata
    dims = {dim: str(meta[key]) for dim, key in DIMENSION_KEYS.items() if meta.get(key) is not None}
    dims.setdefault("LINKED_ACCOUNT", str(meta.get("billing_account_id", "")))
    billed = obs.total_cost if obs.total_cost is not None else Decimal(0)
    effective = _meta_decimal(meta, "effective_cost")
    usage = _meta_decimal(meta, "consumed_quantity")
    if usage is None:
        usage = _meta_decimal(meta, "pricing_quantity")
    metrics = {
        "UnblendedCost": billed,
        "NetUnblendedCost": _meta_decimal(meta, "net_unblended_cost") or billed,
        "BlendedCost": _meta_decimal(meta, "blended_cost") or billed,
        "AmortizedCost": effective if effective is not None else billed,
        "NetAmortizedCost": effective if effective is not None else billed,
        "UsageQuantity": usage or Decimal(0),
        "NormalizedUsageAmount": usage or Decimal(0),
    }
    tags = meta.get("tags")
    return CostLine(obs.start_time, Line(dims, dict(tags) if isinstance(tags, Mapping) else {}, {}), metrics)


# --- request parsing ------------------------------------------------------------------------------------------
def _instant(text: Any, name: str) -> datetime:
    if not isinstance(text, str) or not _DAY.match(text):
        raise ValidationException(f"1 validation error detected: Value '{text}' at 'timePeriod.{name.lower()}' "
                                  "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                                  "(\\d{4}-\\d{2}-\\d{2})(T\\d{2}:\\d{2}:\\d{2}Z)?")
    try:
        if "T" in text:
            moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        else:
            moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationException(f"Invalid {name} date {text}") from None
    if not EARLIEST <= moment <= LATEST:  # bucket steps past year 9999 would overflow
        raise ValidationException(f"Invalid {name} date {text}")
    return moment


def time_period(request: Mapping[str, Any]) -> tuple[datetime, datetime]:
    period = request.get("TimePeriod")
    if not isinstance(period, Mapping):
        raise ValidationException("1 validation error detected: Value null at 'timePeriod' failed to satisfy "
                                  "constraint: Member must not be null")
    start, end = _instant(period.get("Start"), "Start"), _instant(period.get("End"), "End")
    if start >= end:
        raise ValidationException("Start date (and hour) should be before end date (and hour)")
    return start, end


def _filter(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    expr = request.get("Filter")
    if expr is None:
        return None
    validate(expr)
    return expr  # type: ignore[no-any-return]


def _group_by(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    groups = request.get("GroupBy") or []
    if not isinstance(groups, list):
        raise ValidationException("GroupBy must be a list")
    if len(groups) > 2:
        raise ValidationException("You can only group by up to two different groups.")
    out: list[tuple[str, str]] = []
    for g in groups:
        if not isinstance(g, Mapping) or not isinstance(g.get("Type"), str) or not isinstance(g.get("Key"), str):
            raise ValidationException("Each GroupBy needs a Type and a Key")
        kind, key = g["Type"], g["Key"]
        if kind == "DIMENSION":
            if key not in GROUP_BY_DIMENSIONS:
                raise ValidationException(f"Group Definition dimension is invalid. Valid values are "
                                          f"{', '.join(GROUP_BY_DIMENSIONS)}")
        elif kind not in ("TAG", "COST_CATEGORY"):
            raise ValidationException(f"1 validation error detected: Value '{kind}' at 'groupBy.1.member.type' "
                                      "failed to satisfy constraint: Member must satisfy enum value set: "
                                      "[DIMENSION, TAG, COST_CATEGORY]")
        if (kind, key) in out:
            raise ValidationException("Group Definition contains duplicate entries.")
        out.append((kind, key))
    return out


def _metrics(request: Mapping[str, Any]) -> list[str]:
    metrics = request.get("Metrics")
    if not isinstance(metrics, list) or not metrics:
        raise ValidationException("Metrics is required")
    for name in metrics:
        if name not in METRICS:
            raise ValidationException(f"Invalid metric: {name}. Valid metrics are {', '.join(METRICS)}")
    return list(dict.fromkeys(metrics))


def _granularity(request: Mapping[str, Any], start: datetime, end: datetime) -> str:
    granularity = request.get("Granularity")
    if granularity not in ("DAILY", "MONTHLY", "HOURLY"):
        raise ValidationException(f"1 validation error detected: Value '{granularity}' at 'granularity' failed to "
                                  "satisfy constraint: Member must satisfy enum value set: [HOURLY, DAILY, MONTHLY]")
    if granularity != "HOURLY" and (start.time() != datetime.min.time() or end.time() != datetime.min.time()):
        raise ValidationException("Time period with hours is supported only for HOURLY granularity")
    return str(granularity)


def buckets(start: datetime, end: datetime, granularity: str) -> list[tuple[datetime, datetime]]:
    """The periods of ``[start, end)``; at most ``MAX_PERIODS`` (a longer range is a ValidationException)."""
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        if len(out) >= MAX_PERIODS:
            raise ValidationException(f"The time period holds more than {MAX_PERIODS} {granularity.lower()} "
                                      "periods; ask for a shorter range or a coarser granularity")
        if granularity == "HOURLY":
            nxt = cursor + timedelta(hours=1)
        elif granularity == "DAILY":
            nxt = cursor + timedelta(days=1)
        else:
            nxt = (cursor.replace(day=1) + timedelta(days=32)).replace(day=1)
        out.append((cursor, min(nxt, end)))
        cursor = min(nxt, end)
    return out


def _label(moment: datetime, granularity: str) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if granularity == "HOURLY" else moment.date().isoformat()


def _group_key(line: CostLine, kind: str, key: str) -> str:
    if kind == "DIMENSION":
        value = line.line.dimensions.get(key, "")
        return value or ("NoRegion" if key == "REGION" else f"No{key.title().replace('_', '')}")
    source = line.line.tags if kind == "TAG" else line.line.cost_categories
    return f"{key}${source.get(key, '')}"


def _amount(value: Decimal, metric: str) -> dict[str, str]:
    return {"Amount": decimal_str(value), "Unit": "N/A" if metric in ("UsageQuantity", "NormalizedUsageAmount")
            else "USD"}


def _token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "f": fingerprint}).encode()).decode()


def _offset(request: Mapping[str, Any], fingerprint: str) -> int:
    token = request.get("NextPageToken")
    if token is None:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        offset = int(data["o"])
        same = data["f"] == fingerprint
    except (ValueError, KeyError, TypeError):
        raise InvalidNextToken("The token is invalid.") from None
    if not same:
        raise RequestChanged("The request changed while paginating with the token.")
    if offset < 0:
        raise InvalidNextToken("The token is invalid.")
    return offset


class InvalidNextToken(ValidationException):
    """``InvalidNextTokenException``."""


class RequestChanged(ValidationException):
    """``RequestChangedException``."""


def _fingerprint(request: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in request.items() if k != "NextPageToken"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:24]


def filtered(lines: Iterable[CostLine], expr: Mapping[str, Any] | None) -> list[CostLine]:
    return [line for line in lines if expr is None or matches(expr, line.line)]


# --- operations ---------------------------------------------------------------------------------------------
def get_cost_and_usage(request: Mapping[str, Any], lines: Sequence[CostLine],
                       page_size: int = PAGE_SIZE) -> dict[str, Any]:
    start, end = time_period(request)
    granularity = _granularity(request, start, end)
    metrics = _metrics(request)
    groups = _group_by(request)
    expr = _filter(request)
    periods = buckets(start, end, granularity)
    starts = [p[0] for p in periods]
    sums: list[dict[tuple[str, ...], dict[str, Decimal]]] = [{} for _ in periods]
    for line in filtered(lines, expr):
        if not start <= line.start < end:
            continue
        index = _bisect(starts, line.start)
        key = tuple(_group_key(line, kind, k) for kind, k in groups)
        target = sums[index].setdefault(key, {m: Decimal(0) for m in metrics})
        for m in metrics:
            target[m] += line.metrics[m]
    fingerprint = _fingerprint(request)
    offset = _offset(request, fingerprint)
    labels = [{"Start": _label(a, granularity), "End": _label(b, granularity)} for a, b in periods]
    results: list[dict[str, Any]] = []
    more = False
    if not groups:
        for index in range(offset, min(len(periods), offset + page_size)):
            totals = sums[index].get((), {m: Decimal(0) for m in metrics})
            results.append({"TimePeriod": labels[index], "Total": {m: _amount(totals[m], m) for m in metrics},
                            "Groups": [], "Estimated": False})
        more = offset + page_size < len(periods)
    else:
        items = [(index, key) for index, found in enumerate(sums) for key in sorted(found)]
        page = items[offset:offset + page_size]
        more = offset + page_size < len(items)
        by_period: dict[int, list[dict[str, Any]]] = {}
        for index, key in page:
            by_period.setdefault(index, []).append(
                {"Keys": list(key), "Metrics": {m: _amount(sums[index][key][m], m) for m in metrics}})
        shown = range(len(periods)) if offset == 0 and not more else sorted(by_period)
        for index in shown:
            results.append({"TimePeriod": labels[index], "Total": {}, "Groups": by_period.get(index, []),
                            "Estimated": False})
    response: dict[str, Any] = {"GroupDefinitions": [{"Type": kind, "Key": key} for kind, key in groups],
                                "ResultsByTime": results, "DimensionValueAttributes": []}
    if not groups:
        del response["GroupDefinitions"]
    if more:
        response["NextPageToken"] = _token(offset + page_size, fingerprint)
    return response


def _bisect(starts: list[datetime], moment: datetime) -> int:
    low, high = 0, len(starts) - 1
    while low < high:
        mid = (low + high + 1) // 2
        if starts[mid] <= moment:
            low = mid
        else:
            high = mid - 1
    return low


def _search(request: Mapping[str, Any]) -> str | None:
    text = request.get("SearchString")
    if text is not None and (not isinstance(text, str) or len(text) > 1024):
        raise ValidationException("SearchString must be a string of at most 1024 characters")
    return text


def _page(values: list[str], request: Mapping[str, Any]) -> tuple[list[str], str | None]:
    limit = request.get("MaxResults")
    size = PAGE_SIZE if limit is None else limit
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValidationException("MaxResults must be a positive integer")
    fingerprint = _fingerprint(request)
    offset = _offset(request, fingerprint)
    page = values[offset:offset + size]
    token = _token(offset + size, fingerprint) if offset + size < len(values) else None
    return page, token


def get_dimension_values(request: Mapping[str, Any], lines: Sequence[CostLine]) -> dict[str, Any]:
    start, end = time_period(request)
    dimension = request.get("Dimension")
    if dimension not in DIMENSION_KEYS:
        raise ValidationException(f"Dimension {dimension} is not supported. Supported dimensions are "
                                  f"{', '.join(sorted(DIMENSION_KEYS))}")
    search = _search(request)
    expr = _filter(request)
    seen = sorted({v for line in filtered(lines, expr) if start <= line.start < end
                   and (v := line.line.dimensions.get(str(dimension), ""))
                   and (search is None or search.lower() in v.lower())})
    page, token = _page(seen, request)
    body: dict[str, Any] = {"DimensionValues": [{"Value": v, "Attributes": {}} for v in page],
                            "ReturnSize": len(page), "TotalSize": len(seen)}
    if token:
        body["NextPageToken"] = token
    return body


def get_tags(request: Mapping[str, Any], lines: Sequence[CostLine]) -> dict[str, Any]:
    start, end = time_period(request)
    tag_key = request.get("TagKey")
    if tag_key is not None and not isinstance(tag_key, str):
        raise ValidationException("TagKey must be a string")
    search = _search(request)
    expr = _filter(request)
    found: set[str] = set()
    for line in filtered(lines, expr):
        if not start <= line.start < end:
            continue
        if tag_key is None:
            found.update(line.line.tags)
        elif tag_key in line.line.tags:
            found.add(line.line.tags[tag_key])
    values = sorted(v for v in found if search is None or search.lower() in v.lower())
    page, token = _page(values, request)
    body: dict[str, Any] = {"Tags": page, "ReturnSize": len(page), "TotalSize": len(values)}
    if token:
        body["NextPageToken"] = token
    return body


def get_cost_forecast(request: Mapping[str, Any], lines: Sequence[CostLine], today: date) -> dict[str, Any]:
    """The mean daily cost of the last 30 complete days (through yesterday) carried forward; the interval
    from the spread of those days' costs at ``PredictionIntervalLevel`` (default 80)."""
    period = request.get("TimePeriod")
    if not isinstance(period, Mapping):
        raise ValidationException("1 validation error detected: Value null at 'timePeriod' failed to satisfy "
                                  "constraint: Member must not be null")
    start, end = _instant(period.get("Start"), "Start"), _instant(period.get("End"), "End")
    if start >= end:
        raise ValidationException(f"Requested Start: {start.date()} must be before requested End: {end.date()}")
    if start.date() < today:
        raise ValidationException("Start date must be equal to or later than the current date to avoid a mismatch "
                                  "between forecasted and actual values.")
    metric = FORECAST_METRICS.get(str(request.get("Metric")))
    if metric is None:
        raise ValidationException(f"1 validation error detected: Value '{request.get('Metric')}' at 'metric' failed "
                                  f"to satisfy constraint: Member must satisfy enum value set: "
                                  f"[{', '.join(FORECAST_METRICS)}, USAGE_QUANTITY, NORMALIZED_USAGE_AMOUNT]")
    granularity = request.get("Granularity")
    if granularity not in ("DAILY", "MONTHLY"):
        raise ValidationException("Granularity must be DAILY or MONTHLY for a forecast")
    level = request.get("PredictionIntervalLevel", 80)
    if not isinstance(level, int) or isinstance(level, bool) or not 51 <= level <= 99:
        raise ValidationException("PredictionIntervalLevel must be an integer from 51 to 99")
    expr = _filter(request)
    history_start = datetime.combine(today - timedelta(days=30), datetime.min.time(), UTC)
    history_end = datetime.combine(today, datetime.min.time(), UTC)
    daily = [Decimal(0)] * 30
    for line in filtered(lines, expr):
        if history_start <= line.start < history_end:
            daily[(line.start - history_start).days] += line.metrics[metric]
    if not any(daily):
        raise DataUnavailable("Insufficient amount of historical data to generate a forecast.")
    mean = sum(daily, Decimal(0)) / 30
    ordered = sorted(daily)
    tail = (100 - level) / 200
    low = ordered[int(tail * 29)]
    high = ordered[29 - int(tail * 29)]
    results = []
    total = Decimal(0)
    total_low = Decimal(0)
    total_high = Decimal(0)
    for b_start, b_end in buckets(start, end, str(granularity)):
        days = Decimal((b_end - b_start).days)
        total += mean * days
        total_low += low * days
        total_high += high * days
        results.append({"TimePeriod": {"Start": b_start.date().isoformat(), "End": b_end.date().isoformat()},
                        "MeanValue": _fixed(mean * days), "PredictionIntervalLowerBound": _fixed(low * days),
                        "PredictionIntervalUpperBound": _fixed(high * days)})
    return {"Total": {"Amount": _fixed(total), "Unit": "USD"}, "ForecastResultsByTime": results}


def _fixed(value: Decimal) -> str:
    return decimal_str(value.quantize(Decimal("1e-10")))


class DataUnavailable(ValidationException):
    """``DataUnavailableException``."""
