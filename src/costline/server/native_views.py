"""JSON shapes of the native read routes (docs/api.md): observations with the native ingest field names, a
trace with its exact total, result rows with decimals as strings, and the opaque ``/v1/events`` cursor."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from costline.core.events import Observation, Trace
from costline.core.money import decimal_str
from costline.core.query import MONEY_MEASURES, Query, QueryError
from costline.core.usage import Quantity


def plain(value: Any) -> Any:
    """``value`` with every ``Decimal`` as an exact decimal string (money and fractional quantities)."""
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def decimal_text(value: Decimal | int | None) -> str | None:
    """A decimal (or an integral one the core gave as an int) as an exact decimal string; None stays None."""
    return None if value is None else decimal_str(Decimal(value))


def result_rows(query: Query, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Query result rows for JSON: money, latency and averages always as decimal strings (a column keeps one
    type), counts as numbers, other quantities as numbers when integral and decimal strings otherwise."""
    textual = {m.label for m in query.metrics
               if m.measure in MONEY_MEASURES or m.measure == "latency" or m.aggregation == "avg"}
    return [{k: decimal_text(v) if k in textual else plain(v) for k, v in row.items()} for row in rows]


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def seconds(start: datetime, end: datetime) -> Decimal:
    return Decimal((end - start) // timedelta(microseconds=1)).scaleb(-6).normalize()


def _money(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


def observation_json(o: Observation) -> dict[str, Any]:
    """One stored observation with the native ingest field names, plus its price: ``cost`` is the stored
    breakdown by component (the provided amounts when a provided cost won), ``total_cost`` null when
    unpriced."""
    return {
        "type": o.type, "id": o.id, "trace_id": o.trace_id, "parent_id": o.parent_id, "name": o.name,
        "start_time": iso(o.start_time), "end_time": iso(o.end_time),
        "completion_start_time": iso(o.completion_start_time),
        "model": o.model, "resolved_model": o.resolved_model, "provider": o.provider,
        "usage": plain(dict(o.usage)),
        "attributes": dict(o.attributes) if o.attributes is not None else None,
        "user_id": o.user_id, "session_id": o.session_id, "tags": list(o.tags), "metadata": dict(o.metadata),
        "environment": o.environment, "release": o.release, "version": o.version, "level": o.level,
        "status_message": o.status_message,
        "model_parameters": dict(o.model_parameters) if o.model_parameters is not None else None,
        "cost": {unit: decimal_str(amount) for unit, amount in o.cost.items()},
        "total_cost": _money(o.total_cost), "currency": o.currency, "pricing_status": o.pricing_status,
        "price_id": o.price_id, "pricing_reason": o.pricing_reason,
        "provided_cost": plain(dict(o.provided_cost)) if o.provided_cost is not None else None,
    }


def sum_usage(observations: Sequence[Observation]) -> dict[str, Quantity]:
    totals: dict[str, Quantity] = {}
    for o in observations:
        for unit, quantity in o.usage.items():
            totals[unit] = totals.get(unit, 0) + quantity
    return dict(sorted(totals.items()))


def cost_summary(observations: Sequence[Observation]) -> dict[str, Any]:
    """The exact total of the observations that have one, and how many have none (``total_cost`` is null
    when some are unpriced and none is priced; ``total_is_partial`` when any is unpriced or partially
    priced)."""
    totals = [o.total_cost for o in observations if o.total_cost is not None]
    unpriced = sum(1 for o in observations if o.pricing_status == "unpriced")
    partial = sum(1 for o in observations if o.pricing_status == "partially_priced")
    total: Decimal | None = sum(totals, Decimal(0))
    if not totals and unpriced:
        total = None
    return {
        "total_cost": _money(total), "total_is_partial": bool(unpriced or partial), "priced_count": len(totals),
        "unpriced_count": unpriced, "partially_priced_count": partial,
    }


def trace_json(trace: Trace | None, trace_id: str, observations: Sequence[Observation]) -> dict[str, Any]:
    """``GET /v1/traces/{id}``: the trace's attributes (from the trace row, else from its observations), its
    exact total and usage, and every observation with its cost breakdown."""
    obs = sorted(observations, key=lambda o: (o.start_time, o.id))
    root = next((o for o in obs if o.parent_id is None), obs[0]) if obs else None

    def pick(name: str) -> Any:
        value = getattr(trace, name) if trace is not None else None
        return value if value is not None else next((getattr(o, name) for o in obs if getattr(o, name)), None)

    start = obs[0].start_time if obs else None
    end = max(o.end_time or o.start_time for o in obs) if obs else None
    return {
        "id": trace_id,
        "name": trace.name if trace is not None and trace.name else (root.name if root is not None else None),
        "user_id": pick("user_id"), "session_id": pick("session_id"),
        "tags": list(trace.tags if trace is not None else (root.tags if root is not None else ())),
        "metadata": dict(trace.metadata) if trace is not None else {},
        "environment": trace.environment if trace is not None else (root.environment if root else None),
        "release": pick("release"), "version": pick("version"),
        "timestamp": iso(trace.timestamp) if trace is not None else None,
        "start_time": iso(start), "end_time": iso(end),
        "latency": decimal_str(seconds(start, end)) if start is not None and end is not None else None,
        "observation_count": len(obs),
        **cost_summary(obs),
        "usage": plain(sum_usage(obs)),
        "observations": [observation_json(o) for o in obs],
    }


# the /v1/events cursor ---------------------------------------------------------------------------------------

def encode_cursor(last: Observation) -> str:
    raw = json.dumps([last.start_time.astimezone(UTC).isoformat(), last.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    bad = QueryError("cursor: not a cursor from this endpoint; pass next_cursor from the previous page as it is")
    if len(cursor) > 2000:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start_text, obs_id = json.loads(raw)
        start = datetime.fromisoformat(start_text)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(obs_id, str) or start.tzinfo is None:
        raise bad
    try:
        start = start.astimezone(UTC)
    except OverflowError:
        raise bad from None
    return start, obs_id
