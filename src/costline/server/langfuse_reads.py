"""Langfuse's list routes (``GET /api/public/traces``, ``/observations``, ``/sessions``) as core queries.

The query parameters are validated here and turned into ``core.query.Query`` objects, so the rows a page
holds are chosen, ordered and counted by the one query path (``store/query_sql.py``: filters as bound
parameters, ``LIMIT``/``OFFSET``), and the page's rows are then loaded by id and rendered in Langfuse's
shapes (``ingest/langfuse_shapes.py``). A bad parameter is a ``QueryError`` naming it (400), never a 5xx.

Semantics (docs/migrating-from-langfuse.md):

- A trace's time is its timestamp (the trace row's, else its first observation's start): ``fromTimestamp`` is
  inclusive and ``toTimestamp`` exclusive, as in Langfuse. Its ``totalCost`` and ``latency`` cover all its
  observations (the trace loader's figures), whenever they started. A trace with no observation is not
  listed (the traces view is built from observations).
- ``tags`` (repeated) keeps traces having all of them, ``environment`` (repeated) any of them.
- ``page`` starts at 1, ``limit`` is 1-100 (default 50); ``orderBy`` is ``<field>.<asc|desc>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from costline.core.query import MAX_LIMIT, MAX_OFFSET, Query, QueryError, parse_query, parse_time

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 100
#: Langfuse ``orderBy`` field of the trace list → (core dimension or None for the time, its result label)
TRACE_ORDER: Final[Mapping[str, str | None]] = {
    "timestamp": None, "id": "id", "name": "name", "userId": "user", "sessionId": "session", "release": "release",
    "version": "version", "environment": "environment",
}
#: Langfuse order fields costline keeps no value for
TRACE_ORDER_UNSUPPORTED: Final = ("public", "bookmarked")
FIELD_GROUPS: Final = ("core", "io", "scores", "observations", "metrics")
TIME_LABEL: Final = "min_start_time"
OBSERVATION_TYPES: Final = ("GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR",
                            "EMBEDDING", "GUARDRAIL")
LEVELS: Final = ("DEBUG", "DEFAULT", "WARNING", "ERROR")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: the query choosing its rows, the query counting all rows, and the paging."""

    rows: Query
    count: Query
    page: int
    limit: int
    count_label: str = "count"
    #: the requested time range (applied as filters, kept for follow-up queries)
    start: datetime | None = None
    end: datetime | None = None

    def meta(self, total: int) -> dict[str, int]:
        return {"page": self.page, "limit": self.limit, "totalItems": total,
                "totalPages": -(-total // self.limit)}


class Params:
    """The request's query parameters, read as Langfuse reads them (repeated keys for lists)."""

    def __init__(self, items: Sequence[tuple[str, str]]):
        self.values: dict[str, list[str]] = {}
        for key, value in items:
            self.values.setdefault(key, []).append(value)

    def one(self, name: str) -> str | None:
        values = self.values.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise QueryError(f"{name}: give it once, got {len(values)} values")
        return values[0]

    def many(self, name: str) -> list[str]:
        """A repeated parameter (``tags=a&tags=b``); a comma inside one value is part of the value."""
        return list(self.values.get(name, []))

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        text = self.one(name)
        if text is None or text.strip() == "":
            return default
        try:
            value = int(text.strip())
        except ValueError:
            raise QueryError(f"{name}: expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise QueryError(f"{name}: expected an integer from {low} to {high}, got {value}")
        return value

    def time(self, name: str) -> datetime | None:
        text = self.one(name)
        if text is None or text.strip() == "":
            return None
        return parse_time(text, name, UTC)

    def refuse(self, *names: str) -> None:
        for name in names:
            if name in self.values:
                raise QueryError(f"{name}: not supported by costline; use the individual query parameters "
                                 "(docs/migrating-from-langfuse.md)")


def paging(params: Params) -> tuple[int, int]:
    limit = params.integer("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = params.integer("page", 1, 1, MAX_OFFSET // limit + 1)
    return page, limit


def field_groups(params: Params) -> frozenset[str]:
    """``fields=core,io,...``: the groups to include (all when absent; ``core`` always)."""
    text = params.one("fields")
    if text is None or not text.strip():
        return frozenset(FIELD_GROUPS)
    groups = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(groups - set(FIELD_GROUPS))
    if unknown:
        raise QueryError(f"fields: unknown field group {unknown[0]!r}; use a comma list of {', '.join(FIELD_GROUPS)}")
    return frozenset({"core", *groups})


def _range(params: Params, start_name: str, end_name: str) -> tuple[datetime | None, datetime | None]:
    start, end = params.time(start_name), params.time(end_name)
    if start is not None and end is not None and start >= end:
        raise QueryError(f"{start_name}: {start.isoformat()} is not before {end_name} ({end.isoformat()})")
    return start, end


def _query(raw: dict[str, Any], *, now: datetime, project_id: str, start: datetime | None,
           end: datetime | None) -> Query:
    """A validated query over [start, end) (either side open when None)."""
    query = parse_query({**raw, "all_time": True}, now=now, project_id=project_id)
    return replace(query, start=start, end=end)


def _between(start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
    """Filters on the trace's timestamp (the observations are not cut, so a trace's figures are whole)."""
    return [*([{"field": "start_time", "operator": ">=", "value": start.isoformat()}] if start else []),
            *([{"field": "start_time", "operator": "<", "value": end.isoformat()}] if end else [])]


def _equal(field: str, value: str | None) -> list[dict[str, Any]]:
    return [] if value is None else [{"field": field, "operator": "=", "value": value}]


def _any_of(field: str, values: Sequence[str]) -> list[dict[str, Any]]:
    return [{"field": field, "operator": "in", "value": list(values)}] if values else []


def trace_order(text: str | None) -> tuple[str | None, bool]:
    """``orderBy`` (``timestamp.desc``): the core dimension (None for the time) and whether descending."""
    if text is None or not text.strip():
        return None, True
    field, dot, direction = text.strip().rpartition(".")
    if not dot or direction not in ("asc", "desc"):
        raise QueryError(f"orderBy: expected <field>.<asc|desc>, e.g. timestamp.desc, got {text!r}")
    if field in TRACE_ORDER_UNSUPPORTED:
        raise QueryError(f"orderBy: costline does not order traces by {field}; use one of {', '.join(TRACE_ORDER)}")
    if field not in TRACE_ORDER:
        raise QueryError(f"orderBy: unknown field {field!r}; use one of {', '.join(TRACE_ORDER)}")
    return TRACE_ORDER[field], direction == "desc"


def traces_page(params: Params, *, now: datetime, project_id: str) -> Page:
    """``GET /api/public/traces``."""
    params.refuse("filter")
    page, limit = paging(params)
    start, end = _range(params, "fromTimestamp", "toTimestamp")
    tags = params.many("tags")
    filters = [
        *_equal("user", params.one("userId")), *_equal("session", params.one("sessionId")),
        *_equal("name", params.one("name")), *_equal("version", params.one("version")),
        *_equal("release", params.one("release")), *_any_of("environment", params.many("environment")),
        *([{"field": "tag", "operator": "all of", "value": tags}] if tags else []), *_between(start, end),
    ]
    field_groups(params)
    dimension, descending = trace_order(params.one("orderBy"))
    direction = "desc" if descending else "asc"
    dimensions = ["id"] if dimension in (None, "id") else [dimension, "id"]
    order = [f"{TIME_LABEL} {direction}"] if dimension is None else [f"{dimension} {direction}",
                                                                     f"{TIME_LABEL} desc"]
    rows = _query({"view": "traces", "dimensions": dimensions, "metrics": ["min:start_time"], "filters": filters,
                   "order_by": order, "limit": limit, "offset": (page - 1) * limit},
                  now=now, project_id=project_id, start=None, end=None)
    count = _query({"view": "traces", "metrics": ["count"], "filters": filters, "limit": 1},
                   now=now, project_id=project_id, start=None, end=None)
    return Page(rows, count, page, limit)


def observations_page(params: Params, *, now: datetime, project_id: str) -> Page:
    """``GET /api/public/observations``: newest first."""
    params.refuse("filter")
    page, limit = paging(params)
    start, end = _range(params, "fromStartTime", "toStartTime")
    kind = params.one("type")
    if kind is not None and kind.upper() not in OBSERVATION_TYPES:
        raise QueryError(f"type: unknown observation type {kind!r}; use one of {', '.join(OBSERVATION_TYPES)}")
    level = params.one("level")
    if level is not None and level not in LEVELS:
        raise QueryError(f"level: unknown level {level!r}; use one of {', '.join(LEVELS)}")
    filters = [
        *_equal("type", kind.lower() if kind is not None else None), *_equal("name", params.one("name")),
        *_equal("user", params.one("userId")), *_equal("trace_id", params.one("traceId")),
        *_equal("parent_id", params.one("parentObservationId")), *_equal("level", level),
        *_equal("version", params.one("version")), *_any_of("environment", params.many("environment")),
    ]
    rows = _query({"view": "observations", "dimensions": ["id"], "metrics": ["min:start_time"], "filters": filters,
                   "order_by": [f"{TIME_LABEL} desc", "id desc"], "limit": limit, "offset": (page - 1) * limit},
                  now=now, project_id=project_id, start=start, end=end)
    count = _query({"view": "observations", "metrics": ["count"], "filters": filters, "limit": 1},
                   now=now, project_id=project_id, start=start, end=end)
    return Page(rows, count, page, limit)


def sessions_page(params: Params, *, now: datetime, project_id: str) -> Page:
    """``GET /api/public/sessions``: sessions (a session id on traces) newest first by their first trace."""
    page, limit = paging(params)
    start, end = _range(params, "fromTimestamp", "toTimestamp")
    filters = [{"field": "session", "operator": "is not null"}, *_any_of("environment", params.many("environment")),
               *_between(start, end)]
    rows = _query({"view": "traces", "dimensions": ["session"], "metrics": ["min:start_time"], "filters": filters,
                   "order_by": [f"{TIME_LABEL} desc", "session asc"], "limit": limit,
                   "offset": (page - 1) * limit}, now=now, project_id=project_id, start=None, end=None)
    count = _query({"view": "traces", "metrics": ["sessions"], "filters": filters, "limit": 1},
                   now=now, project_id=project_id, start=None, end=None)
    return Page(rows, count, page, limit, count_label="sessions", start=start, end=end)


def session_environments(session_ids: Sequence[str], environments: Sequence[str], *, now: datetime,
                         project_id: str, start: datetime | None = None, end: datetime | None = None) -> Query:
    """Each session's environments with their first start (a session's environment is its first trace's)."""
    filters = [{"field": "session", "operator": "in", "value": list(session_ids)},
               *_any_of("environment", environments), *_between(start, end)]
    return _query({"view": "traces", "dimensions": ["session", "environment"], "metrics": ["min:start_time"],
                   "filters": filters, "order_by": [f"{TIME_LABEL} asc"], "limit": MAX_LIMIT},
                  now=now, project_id=project_id, start=None, end=None)


def session_traces(session_id: str, *, now: datetime, project_id: str) -> Query:
    """``GET /api/public/sessions/{id}``: the session's traces, oldest first (at most ``MAX_LIMIT``)."""
    return _query({"view": "traces", "dimensions": ["id"], "metrics": ["min:start_time"],
                   "filters": _equal("session", session_id), "order_by": [f"{TIME_LABEL} asc"],
                   "limit": MAX_LIMIT}, now=now, project_id=project_id, start=None, end=None)


def trace_item(full: Mapping[str, Any], groups: frozenset[str], project_id: str) -> dict[str, Any]:
    """A ``TraceWithDetails`` (list item) from the trace loader's ``TraceWithFullDetails``: observation ids,
    score ids; an excluded ``io`` drops input, output and metadata, excluded ``observations``/``scores`` give
    ``[]`` and excluded ``metrics`` ``-1`` for ``totalCost`` and ``latency`` (as Langfuse does)."""
    item = {**full, "projectId": project_id, "bookmarked": False}
    item["observations"] = [o["id"] for o in full["observations"]] if "observations" in groups else []
    item["scores"] = [s["id"] for s in full["scores"]] if "scores" in groups else []
    return with_groups(item, groups)


def with_groups(trace: dict[str, Any], groups: frozenset[str]) -> dict[str, Any]:
    """A trace shape without the field groups ``fields`` left out."""
    if "io" not in groups:
        for key in ("input", "output", "metadata"):
            trace.pop(key, None)
    if "observations" not in groups:
        trace["observations"] = []
    if "scores" not in groups:
        trace["scores"] = []
    if "metrics" not in groups:
        trace["totalCost"], trace["latency"] = Decimal(-1), Decimal(-1)
    return trace


#: the ``Trace`` fields a session's traces carry
TRACE_FIELDS: Final = ("id", "timestamp", "name", "input", "output", "sessionId", "release", "version", "userId",
                       "metadata", "tags", "public", "environment")


def trace_core(full: Mapping[str, Any]) -> dict[str, Any]:
    return {key: full[key] for key in TRACE_FIELDS if key in full}
