"""A reference answer for native queries, computed in plain Python from in-memory records.

It shares no code with ``costline.core.query`` or ``costline.store.query_sql``: it reads the raw query
object (the same JSON a client sends) and follows the rules as documented, with loops and dicts:

- observations view: ``user``/``session``/``release`` are the trace's value when the trace has one, else the
  observation's; ``trace_name`` is the trace's name; tags are the union of the observation's and the trace's;
  ``metadata.<key>`` is the observation's value, else the trace's.
- traces view: one row per (project, trace) over the observations in range; cost and quantities are sums,
  latency is the last end (or start) minus the first start, tags the union of everything, attributes are the
  trace's value else the largest of its observations' values.
- sums are exact Decimal sums; ``avg`` is the exact sum / count rounded half-even to 12 places (latency in
  seconds); percentiles are ``percentile_disc``: ``sorted(values)[ceil(p * n) - 1]``; NULLs are ignored by
  every aggregation and an aggregation of nothing is ``None``; counts are ints.
- ``!=``, ``not in`` and ``not contains`` keep rows whose value is missing; ``=``, ``in``, ``contains`` and
  ``starts with`` drop them; a numeric comparison drops a missing value except ``!=``.
- rows are ordered by the given order, then time ascending, then (only when no order was given) the first
  metric descending, then every dimension ascending; missing values last in either direction.
- time buckets: the observation's local wall-clock time in the zone (``zoneinfo``), truncated to the hour,
  day, Monday of the week or first of the month; the label is that wall-clock time in the zone (its first
  occurrence when clocks went back), as ISO 8601 with the offset.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from costline.core.events import Observation, Trace

#: the cost components under input and output in the test data (written out by hand, not from costline)
INPUT_PARTS = frozenset({"input_tokens", "cache_read_tokens", "cache_write_tokens"})
OUTPUT_PARTS = frozenset({"output_tokens", "output_reasoning_tokens"})
COUNTS = frozenset({"count", "unpriced", "users", "traces", "sessions"})
MONEY = frozenset({"cost", "input_cost", "output_cost"})
NUMERIC = frozenset({*MONEY, "input_tokens", "output_tokens", "total_tokens", "latency", "observations"})
EXACT = Context(prec=100, rounding=ROUND_HALF_EVEN)
TWELVE = Decimal("1e-12")
MICRO = Decimal(1_000_000)
#: other names a dimension is accepted under; results use the canonical name
ALIASES = {"tags": "tag", "user_id": "user", "session_id": "session", "project_id": "project"}


@dataclass
class Item:
    """One row the query groups: an observation (with its trace applied) or a trace."""

    start: datetime
    dims: dict[str, str | None]
    meta: dict[str, Any]
    tags: frozenset[str]
    measures: dict[str, Decimal | int | None]
    unpriced: int
    trace: tuple[str, str]  # (project, trace id)
    extra: dict[str, Any] = field(default_factory=dict)


def _sum(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    total: Any = 0
    for v in present:
        total = total + v
    return total


def _obs_measures(o: Observation) -> dict[str, Decimal | int | None]:
    m: dict[str, Decimal | int | None] = {}
    m["cost"] = o.total_cost
    if o.total_cost is None:
        m["input_cost"] = m["output_cost"] = None
    else:
        m["input_cost"] = sum((v for k, v in o.cost.items() if k in INPUT_PARTS), Decimal(0))
        m["output_cost"] = sum((v for k, v in o.cost.items() if k in OUTPUT_PARTS), Decimal(0))
    for unit, quantity in o.usage.items():
        m[f"usage.{unit}"] = quantity  # type: ignore[assignment]
    for part, amount in o.cost.items():
        m[f"cost.{part}"] = amount
    m["input_tokens"] = o.usage.get("input_tokens")  # type: ignore[assignment]
    m["output_tokens"] = o.usage.get("output_tokens")  # type: ignore[assignment]
    m["total_tokens"] = (o.usage.get("input_tokens") or 0) + (o.usage.get("output_tokens") or 0)  # type: ignore[assignment,operator]
    if o.end_time is not None:
        delta = o.end_time - o.start_time
        m["latency"] = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    else:
        m["latency"] = None
    return m


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _pick(first: Any, second: Any) -> Any:
    return first if first is not None else second


def observation_items(observations: Sequence[Observation], traces: Sequence[Trace]) -> list[Item]:
    by_key = {(t.project_id, t.id): t for t in traces}
    items = []
    for o in observations:
        t = by_key.get((o.project_id, o.trace_id))
        dims = {
            "model": o.model, "provider": o.provider, "pricing_status": o.pricing_status,
            "project": o.project_id, "name": o.name, "type": o.type, "environment": o.environment,
            "user": _pick(t.user_id if t else None, o.user_id),
            "session": _pick(t.session_id if t else None, o.session_id),
            "release": _pick(t.release if t else None, o.release),
            "trace_name": t.name if t else None,
            "source": "cloud" if o.type == "cloud" else "llm",
        }
        meta = {k: _text(v) for k, v in (t.metadata if t else {}).items()}
        meta.update({k: _text(v) for k, v in o.metadata.items()})
        tags = frozenset(o.tags) | frozenset(t.tags if t else ())
        items.append(Item(o.start_time, dims, meta, tags, _obs_measures(o),
                          1 if o.pricing_status == "unpriced" else 0, (o.project_id, o.trace_id)))
    return items


def trace_items(observations: Sequence[Observation], traces: Sequence[Trace]) -> list[Item]:
    """Per-trace rows from the (already range-selected) observations."""
    by_key = {(t.project_id, t.id): t for t in traces}
    groups: dict[tuple[str, str], list[Observation]] = {}
    for o in observations:
        groups.setdefault((o.project_id, o.trace_id), []).append(o)
    items = []
    for (project, trace_id), members in groups.items():
        t = by_key.get((project, trace_id))

        def first(trace_value: Any, attr: str, members: list[Observation] = members) -> Any:
            if trace_value is not None:
                return trace_value
            values = [getattr(o, attr) for o in members if getattr(o, attr) is not None]
            return max(values) if values else None

        dims = {
            "id": trace_id, "project": project, "name": t.name if t else None,
            "user": first(t.user_id if t else None, "user_id"),
            "session": first(t.session_id if t else None, "session_id"),
            "release": first(t.release if t else None, "release"),
        }
        keys = {k for o in members for k in o.metadata} | set(t.metadata if t else {})
        meta: dict[str, Any] = {}
        for key in keys:
            from_trace = _text((t.metadata if t else {}).get(key))
            from_obs = [_text(o.metadata[key]) for o in members if o.metadata.get(key) is not None]
            meta[key] = from_trace if from_trace is not None else (max(from_obs) if from_obs else None)
        tags = frozenset(tag for o in members for tag in o.tags) | frozenset(t.tags if t else ())
        per_obs = [_obs_measures(o) for o in members]
        names = {name for m in per_obs for name in m} - {"latency"}
        measures: dict[str, Decimal | int | None] = {name: _sum(m.get(name) for m in per_obs) for name in names}
        first_start = min(o.start_time for o in members)
        last = max((o.end_time or o.start_time) for o in members)
        delta = last - first_start
        measures["latency"] = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        measures["observations"] = len(members)
        unpriced = sum(1 for o in members if o.pricing_status == "unpriced")
        items.append(Item(first_start, dims, meta, tags, measures, unpriced, (project, trace_id)))
    return items


# filters --------------------------------------------------------------------------------------------------

def _dim(item: Item, name: str) -> str | None:
    if name.startswith("metadata."):
        value: str | None = item.meta.get(name.removeprefix("metadata."))
        return value
    return item.dims.get(name)


def _passes(item: Item, f: Mapping[str, Any]) -> bool:
    name, op, value = f["field"], f["operator"], f.get("value")
    if name == "metadata":
        name = f"metadata.{f['key']}"
    if name in ("tag", "tags"):
        wanted = {value} if isinstance(value, str) else set(value)
        if op in ("any of", "contains", "="):
            return bool(item.tags & wanted)
        if op == "all of":
            return wanted <= item.tags
        assert op == "none of"
        return not item.tags & wanted
    if name in NUMERIC or name.startswith(("cost.", "usage.")):
        x = item.measures.get(name)
        if op == "is null":
            return x is None
        if op == "is not null":
            return x is not None
        v = Decimal(str(value)) * (MICRO if name == "latency" else 1)
        if op == "!=":
            return x is None or x != v
        if x is None:
            return False
        return {"=": x == v, ">": x > v, ">=": x >= v, "<": x < v, "<=": x <= v}[op]
    x = _dim(item, name)
    match op:
        case "=":
            return x is not None and x == value
        case "!=":
            return x != value
        case "in":
            return x in ([value] if isinstance(value, str) else value)
        case "not in":
            return x not in ([value] if isinstance(value, str) else value)
        case "contains":
            return x is not None and value in x
        case "not contains":
            return x is None or value not in x
        case "starts with":
            return x is not None and x.startswith(value)
        case "is null":
            return x is None
        case "is not null":
            return x is not None
    raise AssertionError(op)


# metrics --------------------------------------------------------------------------------------------------

def split_metric(text: str) -> tuple[str, str]:
    """(aggregation, measure) of ``"agg:measure"`` or of a bare measure."""
    if ":" in text:
        agg, _, measure = text.partition(":")
        return agg, measure
    return ("count" if text in COUNTS else "sum"), text


def metric_label(text: str) -> str:
    agg, measure = split_metric(text)
    return measure if measure in COUNTS else f"{agg}_{measure}"


def _canonical(value: Decimal | int | None, money: bool) -> Decimal | int | None:
    """Money as Decimal; other quantities as int when integral."""
    if value is None:
        return None
    if money:
        return Decimal(value)
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() else value


def _metric(items: Sequence[Item], text: str) -> Decimal | int | None:
    agg, measure = split_metric(text)
    if measure == "count":
        return len(items)
    if measure == "unpriced":
        return sum(i.unpriced for i in items)
    if measure in ("users", "sessions"):
        return len({i.dims[measure[:-1]] for i in items} - {None})
    if measure == "traces":
        return len({i.trace for i in items})
    values = [i.measures.get(measure) for i in items]
    present: list[Any] = [v for v in values if v is not None]
    latency = measure == "latency"
    if latency:
        present = [Decimal(v) / MICRO for v in present]
    if not present:
        return None
    if agg == "sum":
        result = _sum(present)
    elif agg == "avg":
        result = EXACT.divide(Decimal(_sum(present)), Decimal(len(present))).quantize(TWELVE, context=EXACT)
    elif agg == "min":
        result = min(present)
    elif agg == "max":
        result = max(present)
    else:
        p = Decimal(agg.removeprefix("p")) / 100
        rank = int((p * len(present)).to_integral_value(rounding=ROUND_CEILING))
        result = sorted(present)[max(rank, 1) - 1]
    return _canonical(result, measure in MONEY)


# buckets, grouping and order ------------------------------------------------------------------------------

def zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


def bucket_wall(moment: datetime, granularity: str, tz: tzinfo) -> datetime:
    local = moment.astimezone(tz).replace(tzinfo=None, fold=0)  # first occurrence
    if granularity == "minute":
        return local.replace(second=0, microsecond=0)
    if granularity == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    assert granularity == "month"
    return day.replace(day=1)


def parse_bound(text: str, tz: tzinfo) -> datetime:
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=tz)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _compare(orders: Sequence[tuple[str, bool]]) -> Callable[[dict[str, Any], dict[str, Any]], int]:
    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for name, descending in orders:
            x, y = a[name], b[name]
            if x == y:
                continue
            if x is None:
                return 1
            if y is None:
                return -1
            result = -1 if x < y else 1
            return -result if descending else result
        return 0
    return compare


@dataclass
class Expected:
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    truncated: bool


def expect(query: Mapping[str, Any], observations: Sequence[Observation], traces: Sequence[Trace],
           project_id: str | None) -> Expected:
    """The rows ``query`` (a native query object with an explicit range or all_time) should give."""
    tz = zone(query.get("timezone", "UTC"))
    start = parse_bound(query["from"], tz) if "from" in query else None
    end = parse_bound(query["to"], tz) if "to" in query else None
    selected = [
        o for o in observations
        if (project_id is None or o.project_id == project_id)
        and (start is None or o.start_time >= start) and (end is None or o.start_time < end)
    ]
    if query.get("view", "observations") == "traces":
        items = trace_items(selected, traces)
    else:
        items = observation_items(selected, traces)
    items = [i for i in items if all(_passes(i, f) for f in query.get("filters", []))]
    dims = [ALIASES.get(d, d) for d in query.get("dimensions", [])]
    metrics: list[str] = list(query.get("metrics", ["sum:cost"]))
    granularity = query.get("granularity")
    groups: dict[tuple[Any, ...], list[Item]] = {}
    for item in items:
        keys: list[list[Any]] = [[bucket_wall(item.start, granularity, tz)]] if granularity else []
        for d in dims:
            if d == "tag":
                keys.append(sorted(item.tags) or [None])
            else:
                keys.append([_dim(item, d)])
        for combination in _product(keys):
            groups.setdefault(combination, []).append(item)
    if not dims and not granularity and not groups:
        groups[()] = []  # an aggregate without GROUP BY answers one row even over nothing
    labels = [*(["time"] if granularity else []), *dims, *(metric_label(m) for m in metrics)]
    rows = []
    for key, members in groups.items():
        row = dict(zip(labels, key, strict=False))
        for m in metrics:
            row[metric_label(m)] = _metric(members, m)
        rows.append(row)
    given = [_order(o) for o in query.get("order_by", [])]
    names = {n for n, _ in given}
    orders = list(given)
    if granularity and "time" not in names:
        orders.append(("time", False))
    if not given:
        orders.append((metric_label(metrics[0]), True))
    orders.extend((d, False) for d in dims if d not in names)
    rows.sort(key=functools.cmp_to_key(_compare(orders)))
    limit = query.get("limit", 100)
    for row in rows:
        if granularity:
            row["time"] = row["time"].replace(tzinfo=tz).isoformat()
    return Expected(tuple(labels), rows[:limit], len(rows) > limit)


def _order(given: str | Mapping[str, str]) -> tuple[str, bool]:
    if isinstance(given, Mapping):
        return given["field"], given.get("direction", "desc") == "desc"
    name, _, direction = given.partition(" ")
    return name, (direction or "desc") == "desc"


def _product(keys: list[list[Any]]) -> list[tuple[Any, ...]]:
    result: list[tuple[Any, ...]] = [()]
    for options in keys:
        result = [(*prefix, option) for prefix in result for option in options]
    return result


def typed(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, tuple[str, Any]]]:
    """Rows with each value paired with its type name, so that 3 and Decimal(3) differ."""
    return [{k: (type(v).__name__, v) for k, v in row.items()} for row in rows]


def percentile(values: Sequence[Decimal], p: str) -> Decimal:
    """``percentile_disc``: the first value whose cumulative position reaches ``p`` of the count."""
    return sorted(values)[math.ceil(Decimal(p) * len(values)) - 1]
