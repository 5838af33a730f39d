"""The cyclic garbage collector's settings for the server's process and its worker processes."""

from __future__ import annotations

import gc
from typing import Final

#: the collector's first-generation threshold (Python's default is 700): a batch of 1,000 events allocates ~10^5
#: container objects, nearly all acyclic and short-lived; at 700 the collector ran ~18 times per batch under the
#: GIL, at 10,000 about once (docs/benchmarks.md, 2026-12-06 "late")
GC_THRESHOLD: Final = 10_000


def tune_collector() -> None:
    """Freeze what is alive now (the price catalog's thousands of long-lived objects are never rescanned:
    OTLP decoding 44 → 31 ms per 1,000 spans) and raise the first-generation threshold. Call once the
    long-lived objects are built."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
