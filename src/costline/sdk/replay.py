"""Sending a spill file's events again (``costline replay FILE``), once the reason they failed is fixed.

Every line is sent, whatever its kind, in batches, each batch once (no backoff: run it again later for what
still fails). What is delivered leaves the file; what fails again stays with its new reason, status and time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from costline.sdk.sinks import Transport
from costline.sdk.spill import SpillFile


@dataclass(frozen=True, slots=True)
class Replayed:
    sent: int
    rejected: int
    failed: int
    #: lines left in the file (rejected and failed)
    kept: int

    def to_json(self) -> dict[str, int]:
        return {"sent": self.sent, "rejected": self.rejected, "failed": self.failed, "kept": self.kept}


def replay(path: Path, transport: Transport, *, batch_size: int = 500) -> Replayed:
    spill = SpillFile(path)
    entries = spill.entries()
    keep: list[Mapping[str, Any]] = []
    sent = rejected = failed = 0
    pending = [entries[i:i + batch_size] for i in range(0, len(entries), max(1, batch_size))]
    while pending:
        chunk = pending.pop(0)
        events = [dict(e["event"]) for e in chunk]
        result = transport.send(events)
        at = datetime.now(UTC).isoformat()
        if result.split and len(chunk) > 1:
            half = len(chunk) // 2
            pending[:0] = [chunk[:half], chunk[half:]]
            continue
        if result.retry or result.refused or result.split:
            kind = "refused" if result.refused else "gave_up"
            keep.extend({**e, "kind": kind, "reason": result.message, "status": result.status, "at": at}
                        for e in chunk)
            failed += len(chunk)
            continue
        sent += result.acknowledged
        rejected += result.rejected
        keep.extend({**chunk[i], "kind": "rejected", "reason": message, "status": result.status, "at": at}
                    for i, message in result.item_errors if 0 <= i < len(chunk))
    spill.replace(keep)
    return Replayed(sent, rejected, failed, len(keep))
