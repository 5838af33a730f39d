"""The double-count rule (core/duplicates.py) on hand-built observations, and through the real pipeline on a
DuckDB file with the child arriving before, after and with its parent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from costline.core.duplicates import find_duplicates, model_family
from costline.core.events import Observation
from costline.core.resolve import PriceBook
from costline.ingest.batch import Decoded
from costline.ingest.native import decode_native
from costline.ingest.pipeline import Pipeline
from costline.store.base import open_store

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
USAGE = {"input_tokens": 1000, "output_tokens": 200}


def obs(id: str, parent: str | None, model: str = "gpt-4o", usage: dict[str, int] | None = None,
        start: int = 0, end: int = 10, type: str = "generation") -> Observation:
    return Observation(project_id="p", id=id, trace_id="t", parent_id=parent, type=type, model=model,
                       usage=USAGE if usage is None else usage, start_time=T0 + timedelta(seconds=start),
                       end_time=T0 + timedelta(seconds=end))


def test_model_family() -> None:
    assert model_family("openai/gpt-4o-2024-08-06") == model_family("gpt-4o") == "gpt-4o"
    assert model_family("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert model_family("gpt-4o-mini") != model_family("gpt-4o")


def test_outer_generation_duplicates_its_inner_call() -> None:
    found = find_duplicates([
        obs("chain", None, type="span"),
        obs("lc", "chain", model="gpt-4o", start=0, end=10),
        obs("mid", "lc", type="span", start=1, end=9),
        obs("oa", "mid", model="gpt-4o-2024-08-06", start=1, end=9),
    ])
    assert found == {"lc": "oa"}


@pytest.mark.parametrize("inner", [
    obs("oa", "lc", usage={"input_tokens": 1000, "output_tokens": 201}),  # other counts: another call
    obs("oa", "lc", model="gpt-4o-mini"),  # another model
    obs("oa", "lc", start=20, end=30),  # outside the outer one's time
    obs("oa", "lc", usage={}),  # no usage
])
def test_different_calls_are_both_counted(inner: Observation) -> None:
    assert find_duplicates([obs("lc", None), inner]) == {}


def test_siblings_with_equal_usage_are_two_calls() -> None:
    assert find_duplicates([obs("root", None, type="span"), obs("a", "root"), obs("b", "root")]) == {}


@pytest.mark.parametrize("order", ["child first", "parent first", "one batch"])
def test_pipeline_counts_once_in_any_arrival_order(tmp_path: Path, bundled_book: PriceBook, order: str) -> None:
    store = open_store(f"duckdb:///{tmp_path / 's.duckdb'}")
    pipeline = Pipeline(store, bundled_book, lambda: T0)

    def event(id: str, parent: str | None, model: str) -> dict[str, object]:
        return {"type": "generation", "id": id, "trace_id": "t", "parent_id": parent, "model": model,
                "start_time": T0.isoformat(), "end_time": (T0 + timedelta(seconds=5)).isoformat(), "usage": USAGE}

    outer, inner = event("lc", None, "gpt-4o"), event("oa", "lc", "gpt-4o-2024-08-06")
    batches = {"child first": [[inner], [outer]], "parent first": [[outer], [inner]],
               "one batch": [[outer, inner]]}[order]
    for batch in batches:
        decoded: Decoded = decode_native({"events": batch})
        pipeline.ingest("p", decoded)
    rows = {o.id: o for o in store.trace_observations("p", "t")}
    assert rows["lc"].pricing_status == "duplicate" and rows["lc"].total_cost is None
    # gpt-4o: 1000 × 2.50 + 200 × 10 = 2500 + 2000 = 4500 per 1M
    assert rows["oa"].pricing_status == "priced" and rows["oa"].total_cost == D("0.0045")
    store.close()
