"""The figures of the trace, budgets, cloud and prices pages: the trace loader of ``/v1/traces/{id}``, the
project's price book (``costline prices explain``), ``BudgetService``, the alert store, and the cloud report of
``costline cloud report`` over imported billing lines. Nothing here writes SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from decimal import Decimal
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from costline.cli.render import per_label, rate_text
from costline.cloud.report import cloud_report
from costline.core.events import Observation
from costline.core.price import PriceRecord
from costline.core.query import MAX_LIMIT, parse_time
from costline.core.resolve import Explanation
from costline.core.timebuckets import zone
from costline.server.app import key_of, state_of
from costline.server.dashboard import params as p
from costline.server.dashboard.figures import budget_rows
from costline.server.native_views import trace_json
from costline.server.routes.langfuse import load_trace
from costline.server.routes.queries import run_queries

MAX_PRICES: Final = 100
CLOUD_BY: Final = ("service", "account", "region", "provider")
CLOUD_ROWS: Final = 12


def record_view(record: PriceRecord) -> dict[str, Any]:
    """A price record as ``costline prices explain`` prints it."""
    return {"id": record.id, "model": record.model, "provider": record.provider, "match": record.match.describe(),
            "source": record.source_label, "valid_from": record.valid_from, "valid_to": record.valid_to,
            "currency": record.currency, "alias_of": record.alias_of,
            "rates": [{"unit": u, "rate": rate_text(r), "per": per_label(u)} for u, r in record.rates.items()]}


def explanation_view(found: Explanation) -> dict[str, Any]:
    return {"model": found.model, "provider": found.provider, "at": found.at,
            "record": record_view(found.record) if found.record is not None else None,
            "alias_chain": list(found.alias_chain), "nearest": list(found.nearest),
            "candidates": [{"id": c.record.id, "source": c.record.source_label, "match": c.record.match.describe(),
                            "valid": c.valid, "note": c.note} for c in found.candidates]}


def _tree(observations: Sequence[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Observations in tree order with their depth (children after their parent; orphans at the top)."""
    ids = {o["id"] for o in observations}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for o in observations:
        parent = o["parent_id"] if o["parent_id"] in ids else None
        children.setdefault(parent, []).append(o)
    ordered: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()

    def walk(parent: str | None, depth: int) -> None:
        for o in children.get(parent, []):
            if o["id"] in seen:
                continue
            seen.add(o["id"])
            ordered.append((depth, o))
            walk(o["id"], depth + 1)

    walk(None, 0)
    ordered.extend((0, o) for o in observations if o["id"] not in seen)
    return ordered


async def trace_page(request: Request, trace_id: str) -> dict[str, Any] | None:
    trace, observations = await load_trace(request, trace_id)
    if trace is None and not observations:
        return None
    body = trace_json(trace, trace_id, observations)
    book = state_of(request).pipeline.book_for(key_of(request).project_id)
    by_id: dict[str, Observation] = {o.id: o for o in observations}
    explained: dict[str, Any] = {}
    for o in by_id.values():
        if o.model and o.type != "cloud":
            explained[o.id] = explanation_view(book.explain(o.model, o.provider, at=o.start_time))
    return {"trace": body, "tree": _tree(body["observations"]), "explained": explained}


async def budgets_page(request: Request) -> dict[str, Any]:
    state = state_of(request)
    project = key_of(request).project_id

    def load() -> dict[str, Any]:
        rules = state.store.list_control("alert", project)
        states = state.store.get_alert_states(project)
        deliveries = state.store.list_deliveries(project, limit=100)
        return {"rules": [o.spec for o in rules],
                "states": [{"rule_id": s.rule_id, "subject": s.subject, **s.state} for s in states],
                "deliveries": [dict(d.entry) for d in deliveries]}

    found = await run_in_threadpool(load)
    return {"budgets": await budget_rows(request), **found}


async def cloud_page(request: Request) -> dict[str, Any]:
    """Imported billing lines (observations of type ``cloud``) by service, account and a tag, with the
    untagged share, as ``costline cloud report`` computes them; LLM against cloud from one query by type."""
    state = state_of(request)
    project = key_of(request).project_id
    q = request.query_params
    tz_name = p.timezone_of(q)
    window = p.range_fields(q, state.clock(), tz_name, 30)
    tag = p.text(q, "tag_key")
    tz = zone(tz_name)
    start, end = parse_time(window["from"], "from", tz), parse_time(window["to"], "to", tz)
    (by_type,) = await run_queries(request, [{**window, "dimensions": ["type"], "metrics": ["sum:cost", "count"],
                                              "limit": MAX_LIMIT}])

    def load() -> tuple[list[Observation], list[str]]:
        lines = list(state.store.iter_observations(start=start, end=end, project_id=project, type_is="cloud"))
        keys = sorted({str(k) for o in lines for k in (o.metadata.get("tags") or {})})
        return lines, keys

    lines, tag_keys = await run_in_threadpool(load)
    reports = {by: _top(cloud_report(lines, [by], None)) for by in CLOUD_BY}
    chosen = tag or (tag_keys[0] if tag_keys else "")
    tagged = cloud_report(lines, [f"tag:{chosen}"], None) if chosen else None
    cloud = sum((r["sum_cost"] or Decimal(0) for r in by_type.rows if r["type"] == "cloud"), Decimal(0))
    llm = sum((r["sum_cost"] or Decimal(0) for r in by_type.rows if r["type"] != "cloud"), Decimal(0))
    return {"window": window, "reports": reports, "tag_keys": tag_keys, "tag": chosen, "tagged": tagged,
            "cloud": cloud, "llm": llm, "by_type": by_type.rows, "lines": len(lines)}


def _top(report: dict[str, Any]) -> dict[str, Any]:
    """The report with its first ``CLOUD_ROWS`` rows and the sum of the rest (``rest``: count and cost)."""
    rows = report["rows"]
    rest = rows[CLOUD_ROWS:]
    return {**report, "rows": rows[:CLOUD_ROWS],
            "rest": {"count": len(rest), "cost": sum((Decimal(r["cost"]) for r in rest), Decimal(0))}}


async def prices_page(request: Request) -> dict[str, Any]:
    state = state_of(request)
    project = key_of(request).project_id
    q = request.query_params
    search = p.text(q, "q").lower()
    model = p.text(q, "model")
    provider = p.text(q, "provider") or None
    book = state.pipeline.book_for(project)
    now = state.clock().astimezone(UTC)
    matches: list[dict[str, Any]] = []
    if search:
        for record in book.records:
            if search in record.model.lower() or search in (record.provider or "").lower():
                if record.valid_at(now):
                    matches.append(record_view(record))
                if len(matches) >= MAX_PRICES:
                    break
    own = await run_in_threadpool(state.store.list_prices, project)
    explained = explanation_view(book.explain(model, provider, at=now)) if model else None
    return {"q": search, "matches": matches, "own": [{"id": s.id, "entry": dict(s.entry.get("entry", s.entry)),
                                                      "updated_at": s.updated_at} for s in own],
            "model": model, "provider": provider or "", "explained": explained}
