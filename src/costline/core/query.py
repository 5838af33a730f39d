"""The query model: one validated description of a question about stored costs, for every shell and store.

A ``Query`` has a view (``observations`` or ``traces``), dimensions to group by, metrics (a measure and an
aggregation), filters, a time range, an optional time granularity in an IANA zone, an order and a limit.
``parse_query`` builds one from the native JSON shape (docs/queries.md) and names the bad part of a bad one;
the Langfuse metrics shapes are translated into it by the server. Stores compile it to SQL
(``costline.store.query_sql``); ``finish_rows`` turns their raw rows into results the same way for all of
them, so sums stay exact decimals and averages are computed from exact sums.

Attribution: in the observations view, ``user``, ``session`` and ``release`` come from the observation's
trace when the trace has them and from the observation otherwise; ``trace_name`` is the trace's name; tags
are the union of the observation's and the trace's; ``metadata.<key>`` is the observation's value, else the
trace's. Trace attributes that arrive after the observations therefore apply to them at query time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Final

from costline.core import timebuckets
from costline.core.limits import EARLIEST, LATEST
from costline.core.money import to_decimal
from costline.core.units import UNITS
from costline.errors import CostlineError

VIEWS: Final = ("observations", "traces")
PERCENTILES: Final[Mapping[str, Decimal]] = {
    "p50": Decimal("0.5"), "p75": Decimal("0.75"), "p90": Decimal("0.9"), "p95": Decimal("0.95"),
    "p99": Decimal("0.99"),
}
AGGREGATIONS: Final = ("sum", "avg", "min", "max", "count", *PERCENTILES)

#: dimensions of each view (``metadata.<key>`` and the aliases below come on top)
DIMENSIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "observations": (
        "model", "resolved_model", "provider", "user", "session", "trace_name", "name", "type", "tag",
        "environment", "release", "version", "level", "project", "pricing_status", "price_id", "currency",
        "trace_id", "id", "parent_id", "source",
    ),
    "traces": ("id", "name", "user", "session", "tag", "environment", "release", "version", "project"),
}
ALIASES: Final[Mapping[str, Mapping[str, str]]] = {
    "observations": {"tags": "tag", "user_id": "user", "session_id": "session", "project_id": "project",
                     "observation_name": "name"},
    "traces": {"tags": "tag", "user_id": "user", "session_id": "session", "project_id": "project",
               "trace_id": "id", "trace_name": "name"},
}

#: measures per view; ``cost.<component>`` and ``usage.<unit>`` come on top (``<unit>`` a costline unit)
NUMERIC_MEASURES: Final[Mapping[str, tuple[str, ...]]] = {
    "observations": ("cost", "input_cost", "output_cost", "input_tokens", "output_tokens", "total_tokens",
                     "latency"),
    "traces": ("cost", "input_cost", "output_cost", "input_tokens", "output_tokens", "total_tokens", "latency",
               "observations"),
}
#: measures that only count: ``count`` rows, ``unpriced`` rows (observations) or unpriced observations
#: (traces), ``calls`` (observations naming a model: what a budget's request quota counts), distinct
#: ``traces``/``users``/``sessions``
COUNT_MEASURES: Final[Mapping[str, tuple[str, ...]]] = {
    "observations": ("count", "unpriced", "calls", "traces", "users", "sessions"),
    "traces": ("count", "unpriced", "users", "sessions"),
}
MONEY_MEASURES: Final = frozenset({"cost", "input_cost", "output_cost"})
#: the start time (observations) or the trace's timestamp (traces: the trace row's, else its first observation's
#: start): aggregated with ``min``/``max`` only, its result an ISO 8601 UTC time; filtered with >, >=, <, <= and
#: an ISO time (what the Langfuse list routes select, page and order by)
TIME_MEASURES: Final = frozenset({"start_time"})
TIME_OPERATORS: Final = (">", ">=", "<", "<=")

TEXT_OPERATORS: Final = ("=", "!=", "in", "not in", "contains", "not contains", "starts with", "is null",
                         "is not null")
TAG_OPERATORS: Final = ("any of", "all of", "none of", "contains", "=")
NUMBER_OPERATORS: Final = ("=", "!=", ">", ">=", "<", "<=", "is null", "is not null")

#: a metadata key: letters, digits, ``_ - :``, in dot-separated parts (``team``, ``fallback.attempt``: a nested
#: path, each part one literal key to the stores, store/sqltext.py); the same rule in every shell
METADATA_KEY: Final = re.compile(r"[A-Za-z0-9_\-:]+(?:\.[A-Za-z0-9_\-:]+)*")
MAX_METADATA_KEY: Final = 100
#: a nested metadata path (``metadata.fallback.attempt``) has at most this many dot-separated keys
MAX_METADATA_DEPTH: Final = 5
COMPONENT_NAMES: Final = frozenset({*UNITS, "total", "other"})

#: numeric filter values stay below the stores' DECIMAL(38, 12) range
MAX_FILTER_NUMBER: Final = Decimal("1e25")
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 10_000
#: rows skipped before the first returned one (``offset``; pages of the Langfuse list routes)
MAX_OFFSET: Final = 1_000_000_000
DEFAULT_RANGE: Final = timedelta(days=7)
MAX_BUCKETS: Final = 20_000


class QueryError(CostlineError, ValueError):
    """A query that cannot be answered; the message starts with the path of the bad part."""


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str  # a name from DIMENSIONS, or "metadata"
    key: str | None = None  # the metadata key

    @property
    def label(self) -> str:
        return f"metadata.{self.key}" if self.key is not None else self.name


@dataclass(frozen=True, slots=True)
class Metric:
    measure: str  # a measure, or "cost"/"usage" with a component/unit in ``key``
    aggregation: str
    key: str | None = None

    @property
    def measure_label(self) -> str:
        return f"{self.measure}.{self.key}" if self.key is not None else self.measure

    @property
    def label(self) -> str:
        """The result column: ``count``, ``unpriced``, ``users`` ... or ``<aggregation>_<measure>``."""
        if self.measure in ("count", "unpriced", "calls", "traces", "users", "sessions"):
            return self.measure
        return f"{self.aggregation}_{self.measure_label}"


@dataclass(frozen=True, slots=True)
class Filter:
    field: str  # a dimension name, a numeric measure name, "metadata", "cost"/"usage" with ``key``
    operator: str
    value: Any = None  # str | tuple[str, ...] | Decimal | None
    key: str | None = None
    kind: str = "text"  # text | tags | number

    @property
    def label(self) -> str:
        return f"{self.field}.{self.key}" if self.key is not None else self.field


@dataclass(frozen=True, slots=True)
class Order:
    field: str  # "time", a dimension label or a metric label
    descending: bool


@dataclass(frozen=True, slots=True)
class Query:
    view: str
    start: datetime | None
    end: datetime | None
    dimensions: tuple[Dimension, ...] = ()
    metrics: tuple[Metric, ...] = (Metric("cost", "sum"),)
    filters: tuple[Filter, ...] = ()
    granularity: str | None = None
    timezone: str = "UTC"
    order_by: tuple[Order, ...] = ()
    limit: int = DEFAULT_LIMIT
    #: result rows skipped (after ordering) before the first one returned
    offset: int = 0
    project_id: str | None = None
    #: the range was not given and ``DEFAULT_RANGE`` up to now was used (responses say so)
    range_defaulted: bool = False
    tz: tzinfo = field(default=UTC, compare=False, repr=False)

    @property
    def columns(self) -> tuple[str, ...]:
        time = ("time",) if self.granularity else ()
        return (*time, *(d.label for d in self.dimensions), *(m.label for m in self.metrics))

    def describe(self) -> dict[str, Any]:
        """The query as answered, for responses: the effective range, zone, granularity, limit."""
        return {
            "view": self.view,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "range_defaulted": self.range_defaulted,
            "timezone": self.timezone,
            "granularity": self.granularity,
            "limit": self.limit,
            **({"offset": self.offset} if self.offset else {}),
        }


@dataclass(frozen=True, slots=True)
class QueryResult:
    query: Query
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    #: more rows matched than ``limit``
    truncated: bool = False


# parsing --------------------------------------------------------------------------------------------------

def _fail(path: str, message: str) -> QueryError:
    return QueryError(f"{path}: {message}")


def _names(choices: Sequence[str]) -> str:
    return ", ".join(choices)


def parse_dimension(view: str, raw: object, path: str) -> Dimension:
    if isinstance(raw, Mapping):
        raw = raw.get("field")
    if not isinstance(raw, str) or not raw:
        raise _fail(path, "expected a dimension name")
    name = ALIASES[view].get(raw, raw)
    if name.startswith("metadata."):
        return Dimension("metadata", metadata_key(name.removeprefix("metadata."), path))
    if name not in DIMENSIONS[view]:
        raise _fail(path, f"unknown dimension {raw!r} for the {view} view; use one of "
                          f"{_names(DIMENSIONS[view])} or metadata.<key>")
    return Dimension(name)


def is_metadata_key(key: str) -> bool:
    """A metadata key, or a nested path of them (``fallback.attempt``: key ``attempt`` inside ``fallback``)."""
    return len(key) <= MAX_METADATA_KEY and bool(METADATA_KEY.fullmatch(key)) and \
        key.count(".") < MAX_METADATA_DEPTH


def metadata_path(key: str) -> tuple[str, ...]:
    """The keys of a (validated) metadata key, outermost first; each is an opaque name, quoted by the store
    (store/sqltext.py), never SQL."""
    return tuple(key.split("."))


def metadata_key(key: object, path: str) -> str:
    """``key`` when it is a valid metadata key (``METADATA_KEY``, at most 100 characters, at most
    ``MAX_METADATA_DEPTH`` dot-separated parts, a nested path), else a ``QueryError`` naming ``path``. The one
    rule for every shell: queries, budget and alert scopes, forecasts, reports, Prometheus labels."""
    if not isinstance(key, str) or not is_metadata_key(key):
        raise _fail(path, f"metadata key {key!r} must be 1-{MAX_METADATA_KEY} letters, digits, '_', '-' or ':', "
                          f"or a path of up to {MAX_METADATA_DEPTH} such keys joined by '.' (fallback.attempt)")
    return key


def _split_measure(view: str, text: str, path: str) -> tuple[str, str | None]:
    """``cost.<component>``/``usage.<unit>``/a plain measure name, validated for ``view``."""
    head, dot, key = text.partition(".")
    if dot:
        if head == "cost":
            if key not in COMPONENT_NAMES:
                raise _fail(path, f"unknown cost component {key!r}; use a costline unit (input_tokens, "
                                  "cache_read_tokens, ...), total or other")
            return "cost", key
        if head in ("usage", "tokens"):
            if key not in UNITS:
                raise _fail(path, f"unknown unit {key!r}; `costline prices units` lists them")
            return "usage", key
        raise _fail(path, f"unknown measure {text!r}")
    if text in NUMERIC_MEASURES[view] or text in COUNT_MEASURES[view] or text in TIME_MEASURES:
        return text, None
    known = (*NUMERIC_MEASURES[view], *COUNT_MEASURES[view], *TIME_MEASURES, "cost.<component>", "usage.<unit>")
    raise _fail(path, f"unknown measure {text!r} for the {view} view; use one of {_names(known)}")


def parse_metric(view: str, raw: object, path: str) -> Metric:
    """``"sum:cost"``, ``"count"``, ``"p95:latency"`` or ``{"measure": ..., "aggregation": ...}``."""
    measure_text: object
    aggregation: object
    if isinstance(raw, str):
        aggregation, colon, measure_text = raw.partition(":")
        if not colon:
            aggregation, measure_text = ("count", raw) if raw in COUNT_MEASURES[view] else ("sum", raw)
    elif isinstance(raw, Mapping):
        measure_text, aggregation = raw.get("measure"), raw.get("aggregation", "sum")
        if not isinstance(measure_text, str) or not measure_text:
            raise _fail(f"{path}.measure", "expected a measure name")
        if not isinstance(aggregation, str):
            raise _fail(f"{path}.aggregation", "expected an aggregation name")
    else:
        raise _fail(path, 'expected "aggregation:measure" or {"measure": ..., "aggregation": ...}')
    measure, key = _split_measure(view, measure_text, path)
    if measure in COUNT_MEASURES[view]:
        if aggregation not in ("count", "sum", "uniq"):
            raise _fail(path, f"{measure} is a count; its aggregation can only be count")
        return Metric(measure, "count")
    if measure in TIME_MEASURES and aggregation not in ("min", "max"):
        raise _fail(path, f"{measure} is a time; aggregate it with min or max")
    if aggregation not in AGGREGATIONS:
        raise _fail(path, f"unknown aggregation {aggregation!r}; use one of {_names(AGGREGATIONS)}")
    return Metric(measure, aggregation, key)


def parse_filter(view: str, raw: object, path: str) -> Filter:
    if not isinstance(raw, Mapping):
        raise _fail(path, 'expected {"field": ..., "operator": ..., "value": ...}')
    name = raw.get("field", raw.get("column"))
    if not isinstance(name, str) or not name:
        raise _fail(f"{path}.field", "expected a field name")
    operator = raw.get("operator", raw.get("op"))
    if not isinstance(operator, str):
        raise _fail(f"{path}.operator", "expected an operator")
    operator = operator.strip().lower()
    value = raw.get("value")
    name = ALIASES[view].get(name, name)
    if name == "metadata" and isinstance(raw.get("key"), str):
        name = f"metadata.{raw['key']}"
    if name == "tag":
        return _tag_filter(operator, value, path)
    if name.startswith("metadata."):
        return _text_filter("metadata", metadata_key(name.removeprefix("metadata."), f"{path}.field"), operator,
                            value, path)
    if name in DIMENSIONS[view]:
        return _text_filter(name, None, operator, value, path)
    if name in TIME_MEASURES:
        if operator not in TIME_OPERATORS:
            raise _fail(f"{path}.operator", f"{operator!r} does not apply to times; use one of "
                                            f"{_names(TIME_OPERATORS)}")
        return Filter(name, operator, parse_time(value, f"{path}.value", UTC), kind="time")
    try:
        measure, key = _split_measure(view, name, f"{path}.field")
    except QueryError:
        raise _fail(f"{path}.field", f"unknown field {name!r} for the {view} view; use a dimension "
                                     f"({_names(DIMENSIONS[view])}, metadata.<key>) or a numeric measure") from None
    if measure not in NUMERIC_MEASURES[view] and measure not in ("cost", "usage"):
        raise _fail(f"{path}.field", f"{name!r} cannot be filtered on")
    if operator not in NUMBER_OPERATORS:
        raise _fail(f"{path}.operator", f"{operator!r} does not apply to numbers; use one of "
                                        f"{_names(NUMBER_OPERATORS)}")
    number = None
    if operator not in ("is null", "is not null"):
        try:
            number = to_decimal(value, field=f"{path}.value")
        except CostlineError as exc:
            raise QueryError(str(exc)) from None
        if abs(number) >= MAX_FILTER_NUMBER:
            raise _fail(f"{path}.value", f"{value!r} is out of range; use a number below 1e25 in magnitude")
    return Filter(measure, operator, number, key, "number")


def _text_filter(name: str, key: str | None, operator: str, value: object, path: str) -> Filter:
    if operator not in TEXT_OPERATORS:
        raise _fail(f"{path}.operator", f"unknown operator {operator!r}; use one of {_names(TEXT_OPERATORS)}")
    if operator in ("is null", "is not null"):
        return Filter(name, operator, None, key)
    if operator in ("in", "not in"):
        values = _string_list(value, f"{path}.value")
        return Filter(name, operator, values, key)
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _fail(f"{path}.value", f"expected a string for {operator!r}")
    return Filter(name, operator, str(value), key)


def _tag_filter(operator: str, value: object, path: str) -> Filter:
    if operator not in TAG_OPERATORS:
        raise _fail(f"{path}.operator", f"unknown tags operator {operator!r}; use one of {_names(TAG_OPERATORS)}")
    if operator in ("contains", "="):
        if not isinstance(value, str):
            raise _fail(f"{path}.value", f"expected one tag for {operator!r}")
        return Filter("tag", "any of", (value,), kind="tags")
    return Filter("tag", operator, _string_list(value, f"{path}.value"), kind="tags")


def _string_list(value: object, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not value:
        raise _fail(path, "expected a non-empty list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _fail(f"{path}[{i}]", "expected a string")
    return tuple(value)


def parse_time(raw: object, path: str, tz: tzinfo) -> datetime:
    """An ISO 8601 time; a date (``2026-11-01``) or a time without offset is taken in the query's zone."""
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, str) and raw.strip():
        text = raw.strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise _fail(path, f"{raw!r} is not an ISO 8601 date or time") from None
    else:
        raise _fail(path, "expected an ISO 8601 date or time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    out_of_range = _fail(path, f"{raw!r} is out of range; use a time from year {EARLIEST.year} to {LATEST.year}")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # the zone's offset took it past year 1 or 9999
        raise out_of_range from None
    if not EARLIEST <= moment <= LATEST:
        raise out_of_range
    return moment


def parse_query(raw: object, *, now: datetime, project_id: str | None = None) -> Query:
    """Validate a native query object (see docs/queries.md); ``now`` bounds a query given no range."""
    if not isinstance(raw, Mapping):
        raise _fail("query", "expected a JSON object")
    allowed = {"view", "dimensions", "metrics", "filters", "from", "to", "all_time", "granularity", "timezone",
               "order_by", "limit", "offset"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _fail(unknown[0], f"unknown query field; use {_names(sorted(allowed))}")
    view = raw.get("view", "observations")
    if view not in VIEWS:
        raise _fail("view", f"unknown view {view!r}; use one of {_names(VIEWS)}")
    tz_name = raw.get("timezone", "UTC")
    if not isinstance(tz_name, str):
        raise _fail("timezone", "expected an IANA time zone name")
    try:
        tz = timebuckets.zone(tz_name)
    except CostlineError as exc:
        raise _fail("timezone", str(exc)) from None
    dimensions = tuple(parse_dimension(view, d, f"dimensions[{i}]") for i, d in enumerate(_list(raw, "dimensions")))
    metrics_raw = _list(raw, "metrics") or ["sum:cost"]
    metrics = tuple(parse_metric(view, m, f"metrics[{i}]") for i, m in enumerate(metrics_raw))
    filters = tuple(parse_filter(view, f, f"filters[{i}]") for i, f in enumerate(_list(raw, "filters")))
    start, end, defaulted = _range(raw, now, tz)
    granularity = raw.get("granularity")
    if granularity is not None:
        if granularity == "auto":
            if start is None or end is None:
                raise _fail("granularity", "auto needs a time range")
            granularity = timebuckets.auto_granularity(start, end)
        elif granularity not in timebuckets.GRANULARITIES:
            raise _fail("granularity", f"unknown granularity {granularity!r}; use one of "
                                       f"{_names(('auto', *timebuckets.GRANULARITIES))}")
        if start is not None and end is not None and timebuckets.bucket_count(granularity, start, end) > MAX_BUCKETS:
            raise _fail("granularity", f"{granularity} buckets over this range would exceed {MAX_BUCKETS}; "
                                       "use a coarser granularity or a shorter range")
    limit = raw.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise _fail("limit", f"expected an integer from 1 to {MAX_LIMIT}")
    offset = raw.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise _fail("offset", f"expected an integer from 0 to {MAX_OFFSET}")
    query = Query(view=view, start=start, end=end, dimensions=dimensions, metrics=metrics, filters=filters,
                  granularity=granularity, timezone=tz_name, limit=limit, offset=offset, project_id=project_id,
                  range_defaulted=defaulted, tz=tz)
    order = tuple(parse_order(query, o, f"order_by[{i}]") for i, o in enumerate(_list(raw, "order_by")))
    return _with_order(query, order)


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(key, "expected a list")
    return value


def _range(raw: Mapping[str, Any], now: datetime, tz: tzinfo) -> tuple[datetime | None, datetime | None, bool]:
    if raw.get("all_time") is True:
        if raw.get("from") is not None or raw.get("to") is not None:
            raise _fail("all_time", "give either all_time or from/to, not both")
        return None, None, False
    start = parse_time(raw["from"], "from", tz) if raw.get("from") is not None else None
    end = parse_time(raw["to"], "to", tz) if raw.get("to") is not None else None
    defaulted = start is None
    if end is None:
        end = now.astimezone(UTC)
    if start is None:
        start = end - DEFAULT_RANGE
    if start >= end:
        raise _fail("from", f"{start.isoformat()} is not before to ({end.isoformat()})")
    return start, end, defaulted


def parse_order(query: Query, raw: object, path: str) -> Order:
    name: object
    direction: object
    if isinstance(raw, str):
        name, _, direction = raw.partition(" ")
        direction = direction.strip() or "desc"
    elif isinstance(raw, Mapping):
        name, direction = raw.get("field"), raw.get("direction", "desc")
    else:
        raise _fail(path, 'expected "field [asc|desc]" or {"field": ..., "direction": ...}')
    if not isinstance(name, str) or name not in query.columns:
        raise _fail(path, f"cannot order by {name!r}; use one of the result columns: {_names(query.columns)}")
    if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
        raise _fail(path, "direction must be asc or desc")
    return Order(name, direction.lower() == "desc")


def _with_order(query: Query, order: tuple[Order, ...]) -> Query:
    """The given order, then time ascending, the first metric descending and every dimension ascending,
    so results are complete and deterministic on every store."""
    given = {o.field for o in order}
    rest: list[Order] = []
    if query.granularity and "time" not in given:
        rest.append(Order("time", False))
    if query.metrics and query.metrics[0].label not in given and not order:
        rest.append(Order(query.metrics[0].label, True))
    rest.extend(Order(d.label, False) for d in query.dimensions if d.label not in given)
    return replace(query, order_by=(*order, *rest))
