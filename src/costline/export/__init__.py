"""Exports: stored observations streamed to a file as CSV, JSON Lines, Parquet, or FOCUS 1.2 cost rows.

``export_observations`` reads a time range with ``Store.iter_observations`` in batches, fetches each batch's
traces once (``Store.get_traces``) to apply the trace attributes (``costline.export.records``), and hands the
records to a writer (``costline.export.writers``) or, for FOCUS, to the aggregator
(``costline.export.focus``). Memory stays bounded by the batch size (FOCUS keeps one accumulator per row).
docs/exports.md describes the columns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path

from costline.core.events import Observation, Trace
from costline.export.focus import FOCUS_FIELDS, FocusAggregator
from costline.export.records import OBSERVATION_FIELDS, effective_records, trace_keys
from costline.export.writers import open_writer
from costline.store.base import Store

FORMATS = ("csv", "jsonl", "parquet", "focus")
BATCH_SIZE = 5000


@dataclass
class ExportSummary:
    observations: int = 0
    #: rows written (observations, or FOCUS rows)
    rows: int = 0
    #: FOCUS: the container the rows went to (csv or parquet)
    container: str = ""
    #: FOCUS: unpriced observations left out, per model as sent (None: no model)
    unpriced_by_model: Counter[str | None] = field(default_factory=Counter)
    #: FOCUS: observations with a cost that no row could carry: reason → (count, cost)
    left_out: dict[str, tuple[int, Decimal]] = field(default_factory=dict)


def focus_container(target: Path) -> str:
    """FOCUS rows go to Parquet when the file name ends in ``.parquet``, else to CSV."""
    return "parquet" if target.suffix.lower() == ".parquet" else "csv"


def export_observations(
    store: Store,
    target: Path,
    fmt: str,
    *,
    start: datetime,
    end: datetime,
    project_id: str | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write the observations with ``start <= start_time < end`` (of one project, or all) to ``target``;
    ``progress`` is called with the size of each batch read."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    summary = ExportSummary()
    observations = store.iter_observations(start=start, end=end, project_id=project_id, batch_size=batch_size)
    if fmt == "focus":
        names = {p.id: p.name for p in store.list_projects()}
        aggregator = FocusAggregator(project_names=names)
        for batch in _batches(observations, batch_size):
            aggregator.add(effective_records(batch, _traces(store, batch)))
            summary.observations += len(batch)
            if progress:
                progress(len(batch))
        rows = aggregator.rows()
        summary.container = focus_container(target)
        writer = open_writer(summary.container, target, FOCUS_FIELDS)
        try:
            writer.write(rows)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        summary.rows = len(rows)
        summary.unpriced_by_model = aggregator.unpriced_by_model
        summary.left_out = aggregator.left_out
        return summary
    writer = open_writer(fmt, target, OBSERVATION_FIELDS)
    try:
        for batch in _batches(observations, batch_size):
            writer.write(effective_records(batch, _traces(store, batch)))
            summary.observations += len(batch)
            if progress:
                progress(len(batch))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    summary.rows = summary.observations
    return summary


def _batches(observations: Iterator[Observation], size: int) -> Iterator[list[Observation]]:
    while batch := list(islice(observations, size)):
        yield batch


def _traces(store: Store, batch: list[Observation]) -> dict[tuple[str, str], Trace]:
    found: dict[tuple[str, str], Trace] = {}
    for project, ids in trace_keys(batch).items():
        for trace_id, trace in store.get_traces(project, ids).items():
            found[(project, trace_id)] = trace
    return found


__all__ = ["FORMATS", "ExportSummary", "export_observations", "focus_container"]
