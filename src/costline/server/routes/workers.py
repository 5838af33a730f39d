"""What the native and OTLP routes share to hand a batch to the ingest worker processes."""

from __future__ import annotations

from costline.core.price import PriceRecord
from costline.server.app import ServerState


def worker_prices(state: ServerState, project_id: str) -> tuple[int, tuple[PriceRecord, ...]] | None:
    """What a worker needs of the project's prices; None when its batches must be written as objects (alert
    rules checked on each ingested call)."""
    if state.alerts.checks_on_ingest(project_id):
        return None
    return state.pipeline.price_source(project_id)
