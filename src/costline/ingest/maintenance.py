"""Repricing and purging stored observations: one implementation for ``costline reprice|purge`` on an open store
and for the server's ``POST /v1/reprice`` and ``POST /v1/purge`` (which the same commands call while
``costline serve`` owns the store). Both record an audit entry; money stays exact (decimal strings in the summary).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from costline.core.money import decimal_str
from costline.ingest.pipeline import Pipeline
from costline.store.base import Store

#: observations written back per transaction while repricing
BATCH = 1000


def glob_to_like(pattern: str | None) -> str | None:
    """A glob (``gpt-4o*``) as a SQL LIKE pattern; ``%`` and ``_`` in the glob are taken literally."""
    if pattern is None:
        return None
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


@dataclass(frozen=True, slots=True)
class RepriceSummary:
    start: datetime
    end: datetime
    model: str | None
    dry_run: bool
    scanned: int
    changed: int
    old_total: Decimal
    new_total: Decimal

    def to_json(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "model": self.model,
                "dry_run": self.dry_run, "scanned": self.scanned, "changed": self.changed,
                "old_total": decimal_str(self.old_total), "new_total": decimal_str(self.new_total)}


def reprice_range(store: Store, pipeline: Pipeline, *, start: datetime, end: datetime, model_glob: str | None,
                  dry_run: bool, now: datetime) -> RepriceSummary:
    """Price the observations with ``start <= start_time < end`` (model matching ``model_glob``) again with the
    pipeline's books; write the changed ones (unless ``dry_run``) and record a ``reprice`` audit entry."""
    if end <= start:
        raise ValueError("to: must be after from")
    scanned = changed = 0
    old_total = new_total = Decimal(0)
    pending = []
    observations = store.iter_observations(start=start, end=end, model_like=glob_to_like(model_glob))
    for old, new in pipeline.reprice(observations):
        scanned += 1
        old_total += old.total_cost or 0
        new_total += new.total_cost or 0
        if (old.total_cost, old.pricing_status, old.price_id, dict(old.cost)) != (
            new.total_cost, new.pricing_status, new.price_id, dict(new.cost)
        ):
            changed += 1
            if not dry_run:
                pending.append(new)
                if len(pending) >= BATCH:
                    pipeline.write_repriced(pending)
                    pending = []
    if pending:
        pipeline.write_repriced(pending)
    summary = RepriceSummary(start, end, model_glob, dry_run, scanned, changed, old_total, new_total)
    if not dry_run:
        store.add_audit("reprice", summary.to_json(), now)
    return summary


@dataclass(frozen=True, slots=True)
class PurgeSummary:
    before: datetime
    deleted: int

    def to_json(self) -> dict[str, Any]:
        return {"before": self.before.isoformat(), "deleted": self.deleted}


def purge_before(store: Store, before: datetime, *, now: datetime) -> PurgeSummary:
    """Delete observations, scores and empty traces that started before ``before``; record a ``purge`` audit
    entry."""
    summary = PurgeSummary(before, store.purge(before))
    store.add_audit("purge", summary.to_json(), now)
    return summary
