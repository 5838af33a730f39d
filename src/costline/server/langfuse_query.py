"""Langfuse metrics queries (``/api/public/metrics``, ``/api/public/v2/metrics``) translated to the core query
model, and its results back into Langfuse's row shape (wire-formats.md §D.3).

Field names map onto core names (``providedModelName`` → ``model``, ``totalCost`` → ``cost``, ...); the
query is then validated by ``core.query.parse_query`` like any native one, so both shells give the same
numbers. Result columns are named as Langfuse names them: dimension fields as sent, metrics
``<aggregation>_<measure>``, the time bucket ``time_dimension``. Langfuse's latency is in milliseconds, the
core's in seconds: latency values are scaled here. As in Langfuse, filters apply to dimensions, metadata and
the time column, not to measures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from costline.core.money import MONEY_CONTEXT
from costline.core.query import MAX_LIMIT, Query, QueryError, QueryResult, parse_query, parse_time

#: Langfuse dimension → core dimension, per view
DIMENSIONS: Final[Mapping[str, Mapping[str, str]]] = {
    "observations": {
        "id": "id", "traceId": "trace_id", "traceName": "trace_name", "environment": "environment",
        "parentObservationId": "parent_id", "type": "type", "name": "name", "level": "level",
        "version": "version", "tags": "tag", "providedModelName": "model", "userId": "user",
        "sessionId": "session", "release": "release", "traceRelease": "release",
    },
    "traces": {
        "id": "id", "name": "name", "tags": "tag", "userId": "user", "sessionId": "session",
        "release": "release", "version": "version", "environment": "environment",
    },
}
#: Langfuse measure → core measure, per view
MEASURES: Final[Mapping[str, Mapping[str, str]]] = {
    "observations": {
        "count": "count", "latency": "latency", "inputTokens": "input_tokens", "outputTokens": "output_tokens",
        "totalTokens": "total_tokens", "inputCost": "input_cost", "outputCost": "output_cost",
        "totalCost": "cost", "traceId": "traces", "uniqueUserIds": "users", "uniqueSessionIds": "sessions",
    },
    "traces": {
        "count": "count", "observationsCount": "observations", "uniqueUserIds": "users",
        "uniqueSessionIds": "sessions", "latency": "latency", "totalTokens": "total_tokens", "totalCost": "cost",
        "inputTokens": "input_tokens", "outputTokens": "output_tokens", "inputCost": "input_cost",
        "outputCost": "output_cost",
    },
}
#: Langfuse fields costline does not answer yet (a clear 400 instead of "unknown")
UNSUPPORTED: Final = frozenset({
    "promptName", "promptVersion", "traceVersion", "startTimeMonth", "timestampMonth", "isRootObservation",
    "toolNames", "calledToolNames", "costType", "usageType", "experimentName", "experimentId",
    "experimentDatasetId", "streamingLatency", "timeToFirstToken", "outputTokensPerSecond", "tokensPerSecond",
    "countScores", "scoresCount", "toolDefinitions", "toolCalls", "costByType", "usageByType",
})
AGGREGATIONS: Final = ("sum", "avg", "count", "max", "min", "p50", "p75", "p90", "p95", "p99", "histogram", "uniq")
COUNT_MEASURES: Final = frozenset({"count", "traces", "users", "sessions"})
SCORE_VIEWS: Final = ("scores-numeric", "scores-categorical", "scores-boolean")
#: v2 refuses grouping by these unless the query is a top-N (``config.row_limit`` and a desc ``orderBy``)
HIGH_CARDINALITY: Final = ("id", "traceId", "userId", "sessionId", "parentObservationId")
GRANULARITIES: Final = ("auto", "minute", "hour", "day", "week", "month")
TIME_COLUMNS: Final = frozenset({"startTime", "start_time", "timestamp"})
QUERY_KEYS: Final = frozenset({"view", "dimensions", "metrics", "filters", "timeDimension", "fromTimestamp",
                               "toTimestamp", "orderBy", "config", "chartConfig", "entityDimension"})
#: v2's default row limit (v1 has none: the core maximum applies)
V2_DEFAULT_ROWS: Final = 100
MS_PER_SECOND: Final = Decimal(1000)


@dataclass(frozen=True, slots=True)
class Column:
    core: str  # the core result column
    name: str  # the Langfuse column
    latency: bool = False  # seconds in the core, milliseconds for Langfuse
    uppercase: bool = False  # observation types are GENERATION, SPAN ... in Langfuse


@dataclass(frozen=True, slots=True)
class Translated:
    query: Query
    columns: tuple[Column, ...]


def _fail(path: str, message: str) -> QueryError:
    return QueryError(f"{path}: {message}")


def _list(raw: Mapping[str, Any], key: str, *, required: bool = False) -> list[Any]:
    value = raw.get(key)
    if value is None:
        if required:
            raise _fail(key, "required")
        return []
    if not isinstance(value, list):
        raise _fail(key, "expected a list")
    return value


def _text(raw: Mapping[str, Any], key: str, path: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(f"{path}.{key}", "expected a non-empty string")
    return value


def _view(raw: Mapping[str, Any], version: str) -> str:
    view = raw.get("view")
    if view is None:
        raise _fail("view", "required")
    if view in SCORE_VIEWS:
        raise _fail("view", f"{view} is not supported yet; costline answers the observations and traces views")
    if view == "traces" and version == "v2":
        raise _fail("view", "the v2 metrics API has no traces view; use observations, or /api/public/metrics (v1)")
    if view not in DIMENSIONS:
        known = ("observations",) if version == "v2" else ("observations", "traces")
        raise _fail("view", f"unknown view {view!r}; use one of {', '.join(known)}")
    return str(view)


def _dimension(view: str, field: str, path: str) -> str:
    core = DIMENSIONS[view].get(field)
    if core is not None:
        return core
    if field in UNSUPPORTED or field in MEASURES[view]:
        raise _fail(path, f"{field!r} is not supported as a dimension of the {view} view yet")
    raise _fail(path, f"unknown dimension {field!r} for the {view} view; use one of {', '.join(DIMENSIONS[view])}")


def _measure(view: str, field: str, path: str) -> str:
    core = MEASURES[view].get(field)
    if core is not None:
        return core
    if field in UNSUPPORTED:
        raise _fail(path, f"measure {field!r} is not supported yet")
    raise _fail(path, f"unknown measure {field!r} for the {view} view; use one of {', '.join(MEASURES[view])}")


def _metric(view: str, raw: object, path: str) -> tuple[str, Column]:
    if not isinstance(raw, Mapping):
        raise _fail(path, 'expected {"measure": ..., "aggregation": ...}')
    measure = _text(raw, "measure", path)
    aggregation = _text(raw, "aggregation", path)
    if aggregation not in AGGREGATIONS:
        raise _fail(f"{path}.aggregation", f"unknown aggregation {aggregation!r}; use one of {', '.join(AGGREGATIONS)}")
    if aggregation == "histogram":
        raise _fail(f"{path}.aggregation", "histogram is not supported yet; use percentiles (p50 ... p99)")
    core = _measure(view, measure, f"{path}.measure")
    if aggregation == "uniq" and core not in COUNT_MEASURES:
        raise _fail(f"{path}.aggregation", f"uniq applies to count, traceId, uniqueUserIds and uniqueSessionIds, "
                                           f"not {measure}")
    if core in COUNT_MEASURES:
        if aggregation not in ("count", "sum", "uniq"):
            raise _fail(f"{path}.aggregation", f"{measure} is a count; use count, sum or uniq")
        return core, Column("", f"{aggregation}_{measure}")
    return f"{aggregation}:{core}", Column("", f"{aggregation}_{measure}", latency=core == "latency")


def _filter(view: str, raw: object, path: str, bounds: dict[str, datetime]) -> dict[str, Any] | None:
    """One Langfuse filter as a core filter; a time filter narrows ``bounds`` instead (returns None)."""
    if not isinstance(raw, Mapping):
        raise _fail(path, 'expected {"column": ..., "operator": ..., "value": ..., "type": ...}')
    column = _text(raw, "column", path)
    operator = _text(raw, "operator", path).strip().lower()
    kind = raw.get("type")
    value = raw.get("value")
    if column in TIME_COLUMNS or kind == "datetime":
        if column not in TIME_COLUMNS:
            raise _fail(f"{path}.column", f"datetime filters apply to the time column (startTime / timestamp), "
                                          f"not {column!r}")
        moment = parse_time(value, f"{path}.value", UTC)
        step = timedelta(microseconds=1)
        if operator in (">", ">="):
            start = moment + step if operator == ">" else moment
            bounds["from"] = max(bounds["from"], start)
        elif operator in ("<", "<="):
            end = moment + step if operator == "<=" else moment
            bounds["to"] = min(bounds["to"], end)
        else:
            raise _fail(f"{path}.operator", f"{operator!r} does not apply to times; use >, >=, < or <=")
        return None
    if column == "metadata":
        if kind not in (None, "stringObject"):
            raise _fail(f"{path}.type", f"metadata filters need type stringObject with a key, not {kind!r}")
        key = raw.get("key")
        if not isinstance(key, str) or not key:
            raise _fail(f"{path}.key", "metadata filters need the metadata key")
        field = f"metadata.{key}"
    else:
        field = _dimension(view, column, f"{path}.column")
    core_operator = {"does not contain": "not contains", "any of": "in", "none of": "not in", "<>": "!="}.get(
        operator, operator)
    if field == "tag":
        core_operator = {"in": "any of", "not in": "none of"}.get(core_operator, core_operator)
    elif operator in ("all of",):
        raise _fail(f"{path}.operator", f"all of applies to tags, not {column}")
    if operator == "ends with":
        raise _fail(f"{path}.operator", "ends with is not supported yet; use contains")
    if kind == "boolean":
        raise _fail(f"{path}.type", "boolean filters are not supported yet")
    if field == "type":
        value = [v.lower() for v in value] if isinstance(value, list) else value.lower() if isinstance(
            value, str) else value
    return {"field": field, "operator": core_operator, "value": value}


def _order(raw: object, path: str, names: Mapping[str, str], measures: Mapping[str, str]) -> str:
    if not isinstance(raw, Mapping):
        raise _fail(path, 'expected {"field": ..., "direction": "asc" | "desc"}')
    field = _text(raw, "field", path)
    direction = raw.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise _fail(f"{path}.direction", "expected asc or desc")
    core = names.get(field) or measures.get(field)
    if core is None:
        raise _fail(f"{path}.field", f"cannot order by {field!r}; use a dimension field, time_dimension or a "
                                     f"metric column: {', '.join(names)}")
    return f"{core} {direction}"


def _high_cardinality(raw: Mapping[str, Any], dimensions: Sequence[str], limit_given: bool) -> None:
    """v2's rule (Langfuse ``validateQuery``): grouping by an id needs ``config.row_limit`` and a desc
    ``orderBy`` on a measure of the query, and no time dimension."""
    high = [d for d in dimensions if d in HIGH_CARDINALITY]
    if not high:
        return
    names = ", ".join(high)
    if raw.get("timeDimension"):
        raise _fail("dimensions", f"high cardinality dimension(s) '{names}' cannot be used with timeDimension")
    orders = [o for o in _list(raw, "orderBy") if isinstance(o, Mapping) and o.get("direction") == "desc"]
    if not limit_given or not orders:
        raise _fail("dimensions", f"high cardinality dimension(s) '{names}' require both 'config.row_limit' and "
                                  "'orderBy' with direction 'desc' on a measure field")
    measures = [m.get("measure") for m in _list(raw, "metrics") if isinstance(m, Mapping)]
    for order in orders:
        field = order.get("field")
        if not any(isinstance(m, str) and (field == m or str(field).endswith(f"_{m}")) for m in measures):
            raise _fail("orderBy", f"high cardinality dimension(s) '{names}' require 'orderBy' with direction "
                                   f"'desc' on a measure field; {field!r} is not a measure in this query")


def auto_granularity(start: datetime, end: datetime) -> str:
    """Langfuse's ``auto``: about 50 buckets (minute < 2 h, hour < 3 days, day < 60 days, week < 1 year)."""
    hours = (end - start) / timedelta(hours=1)
    for limit, name in ((2, "minute"), (72, "hour"), (1440, "day"), (8760, "week")):
        if hours < limit:
            return name
    return "month"


def _limit(raw: Mapping[str, Any], version: str) -> tuple[int, bool]:
    config = raw.get("config") or raw.get("chartConfig") or {}
    if not isinstance(config, Mapping):
        raise _fail("config", "expected an object")
    row_limit = config.get("row_limit")
    if row_limit is None:
        return (V2_DEFAULT_ROWS if version == "v2" else MAX_LIMIT), False
    if isinstance(row_limit, bool) or not isinstance(row_limit, int) or not 1 <= row_limit <= 1000:
        raise _fail("config.row_limit", "expected an integer from 1 to 1000")
    return row_limit, True


def translate(raw: object, *, version: str, now: datetime, project_id: str) -> Translated:
    """A Langfuse ``MetricsQueryObject`` (``version`` v1 or v2) as a core ``Query`` plus its output columns."""
    if not isinstance(raw, Mapping):
        raise _fail("query", "expected a JSON object")
    unknown = sorted(set(raw) - QUERY_KEYS)
    if unknown:
        raise _fail(unknown[0], f"unknown query field; use {', '.join(sorted(QUERY_KEYS - {'chartConfig'}))}")
    if raw.get("entityDimension"):
        raise _fail("entityDimension", "is not supported yet")
    view = _view(raw, version)
    bounds = {"from": parse_time(_required(raw, "fromTimestamp"), "fromTimestamp", UTC),
              "to": parse_time(_required(raw, "toTimestamp"), "toTimestamp", UTC)}
    if bounds["from"] >= bounds["to"]:
        raise _fail("fromTimestamp", "must be before toTimestamp")
    limit, limit_given = _limit(raw, version)
    fields: list[str] = []
    columns: list[Column] = []
    names: dict[str, str] = {}
    for i, item in enumerate(_list(raw, "dimensions")):
        if not isinstance(item, Mapping):
            raise _fail(f"dimensions[{i}]", 'expected {"field": ...}')
        field = _text(item, "field", f"dimensions[{i}]")
        core = _dimension(view, field, f"dimensions[{i}].field")
        fields.append(field)
        columns.append(Column(core, field, uppercase=core == "type"))
        names[field] = core
    if version == "v2":
        _high_cardinality(raw, fields, limit_given)
    metrics: list[str] = []
    metric_columns: list[Column] = []
    measures: dict[str, str] = {}
    for i, item in enumerate(_list(raw, "metrics", required=True)):
        core_metric, column = _metric(view, item, f"metrics[{i}]")
        metrics.append(core_metric)
        metric_columns.append(column)
    if not metrics:
        raise _fail("metrics", "give at least one metric")
    filters = [f for i, item in enumerate(_list(raw, "filters"))
               if (f := _filter(view, item, f"filters[{i}]", bounds)) is not None]
    if bounds["from"] >= bounds["to"]:
        raise _fail("filters", "the time filters leave an empty range")
    native: dict[str, Any] = {
        "view": view, "dimensions": [names[f] for f in fields], "metrics": metrics, "filters": filters,
        "from": bounds["from"].isoformat(), "to": bounds["to"].isoformat(), "limit": limit,
    }
    time_dimension = raw.get("timeDimension")
    if time_dimension is not None:
        if not isinstance(time_dimension, Mapping) or not isinstance(time_dimension.get("granularity"), str):
            raise _fail("timeDimension", 'expected {"granularity": "auto" | "minute" | ... | "month"} or null')
        granularity = time_dimension["granularity"]
        if granularity not in GRANULARITIES:
            raise _fail("timeDimension.granularity", f"unknown granularity {granularity!r}; use one of "
                                                     f"{', '.join(GRANULARITIES)}")
        native["granularity"] = auto_granularity(bounds["from"], bounds["to"]) if granularity == "auto" \
            else granularity
    # the core labels of the metrics, resolved by parsing once without an order
    probe = parse_query(native, now=now, project_id=project_id)
    metric_columns = [Column(m.label, c.name, c.latency) for m, c in zip(probe.metrics, metric_columns, strict=True)]
    for column, item in zip(metric_columns, _list(raw, "metrics"), strict=True):
        measures.setdefault(column.name, column.core)
        measures.setdefault(str(item.get("measure")), column.core)
    labels = {**names, "time_dimension": "time"} if time_dimension is not None else dict(names)
    orders = [_order(o, f"orderBy[{i}]", labels, measures) for i, o in enumerate(_list(raw, "orderBy"))]
    query = parse_query({**native, "order_by": orders}, now=now, project_id=project_id) if orders else probe
    time = (Column("time", "time_dimension"),) if time_dimension is not None else ()
    return Translated(query, (*time, *columns, *metric_columns))


def _required(raw: Mapping[str, Any], key: str) -> object:
    value = raw.get(key)
    if value is None:
        raise _fail(key, "required (an ISO 8601 time with offset)")
    return value


def rows_out(translated: Translated, result: QueryResult) -> list[dict[str, Any]]:
    """Result rows with Langfuse column names and units (latency in ms, types upper-case, times UTC ``Z``)."""
    out: list[dict[str, Any]] = []
    for row in result.rows:
        item: dict[str, Any] = {}
        for column in translated.columns:
            value = row[column.core]
            if column.core == "time" and isinstance(value, str):
                value = langfuse_time(value)
            elif column.latency and value is not None:
                value = milliseconds(value)
            elif column.uppercase and isinstance(value, str):
                value = value.upper()
            item[column.name] = value
        out.append(item)
    return out


def milliseconds(seconds: Decimal | int) -> Decimal | int:
    value = MONEY_CONTEXT.multiply(Decimal(seconds), MS_PER_SECOND)
    return int(value) if value == value.to_integral_value() else value.normalize(MONEY_CONTEXT)


def langfuse_time(text: str) -> str:
    """An ISO time as Langfuse writes it: UTC, milliseconds, ``Z``."""
    moment = datetime.fromisoformat(text).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

