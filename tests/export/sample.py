"""A small, hand-checkable dataset for the report and export tests, written into a real store.

Prices are stated here (USD per 1M tokens) and every cost is worked out in the comments; the tests compare
the commands' answers with numbers added up by hand from these comments.

    gpt-4o             (openai)     input 2.50, output 10.00
    claude-sonnet-4-5  (anthropic)  input 3.00, output 15.00
    mystery-1          (acme)       no price: unpriced

Project p1 ("Search app"):

    id  start (UTC)        model     in / out     cost     trace  notes
    o4  2026-11-01 23:30   claude    1000 / 1000  0.018    t3     user carol (t3 has no trace row); Berlin: Nov 2
    o1  2026-11-02 08:00   gpt-4o    1000 /  200  0.0045   t1     tags [beta]; metadata team=search
    o2  2026-11-02 09:30   gpt-4o    3000 /  500  0.0125   t1     metadata team=ads (wins over the trace's)
    o3  2026-11-02 10:00   claude    2000 /  100  0.0075   t2     user carol, but t2's user bob wins; tags [x]
    o6  2026-11-02 12:00   mystery-1  500 /   50  unpriced t2
    o7  2026-11-02 12:30   (span, no model, no cost)       t1
    o5  2026-11-02 23:30   gpt-4o   10000 /    0  0.025    t3     user carol; Berlin: Nov 3

    t1: name chat, user alice, metadata {team: search, tier: pro}
    t2: name summarize, user bob, tags [beta, prod]

Project p2 ("Other"): o8 2026-11-02 11:00 gpt-4o 2000 / 0 = 0.005, trace u1 (no trace row).

    1000 × 2.50 + 200 × 10 = 4500 → 0.0045      3000 × 2.50 + 500 × 10 = 12500 → 0.0125
    2000 × 3 + 100 × 15 = 7500 → 0.0075          1000 × 3 + 1000 × 15 = 18000 → 0.018
    10000 × 2.50 = 25000 → 0.025                 2000 × 2.50 = 5000 → 0.005
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from costline.core.events import Observation, Trace
from costline.store.base import ApiKey, Project, Store, open_store

PRICES = {"gpt-4o": ("openai", D("2.50"), D("10.00")), "claude-sonnet-4-5": ("anthropic", D("3.00"), D("15.00"))}
PER = D(1_000_000)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def generation(obs_id: str, start: datetime, model: str, tokens_in: int, tokens_out: int, *, trace: str,
               project: str = "p1", **extra: Any) -> Observation:
    """A generation priced from ``PRICES`` (unpriced when the model has no stated price)."""
    usage = {"input_tokens": tokens_in, "output_tokens": tokens_out}
    if model not in PRICES:
        return Observation(project_id=project, id=obs_id, trace_id=trace, start_time=start, type="generation",
                           model=model, provider=extra.pop("provider", "acme"), usage=usage,
                           pricing_status="unpriced", pricing_reason=f"no price for {model}", **extra)
    provider, rate_in, rate_out = PRICES[model]
    cost = {"input_tokens": tokens_in * rate_in / PER, "output_tokens": tokens_out * rate_out / PER}
    return Observation(
        project_id=project, id=obs_id, trace_id=trace, start_time=start, type="generation", model=model,
        resolved_model=model, provider=provider, usage=usage, cost=cost, total_cost=sum(cost.values(), D(0)),
        pricing_status="priced", price_id=f"{provider}:{model}", **extra,
    )


def observations() -> list[Observation]:
    return [
        generation("o4", at(1, 23, 30), "claude-sonnet-4-5", 1000, 1000, trace="t3", user_id="carol"),
        generation("o1", at(2, 8), "gpt-4o", 1000, 200, trace="t1", tags=("beta",), metadata={"team": "search"}),
        generation("o2", at(2, 9, 30), "gpt-4o", 3000, 500, trace="t1", metadata={"team": "ads"}),
        generation("o3", at(2, 10), "claude-sonnet-4-5", 2000, 100, trace="t2", user_id="carol", tags=("x",)),
        generation("o6", at(2, 12), "mystery-1", 500, 50, trace="t2"),
        Observation(project_id="p1", id="o7", trace_id="t1", start_time=at(2, 12, 30), type="span", name="retrieve"),
        generation("o5", at(2, 23, 30), "gpt-4o", 10000, 0, trace="t3", user_id="carol"),
        generation("o8", at(2, 11), "gpt-4o", 2000, 0, trace="u1", project="p2"),
    ]


def traces() -> list[Trace]:
    return [
        Trace("p1", "t1", at(2, 8), name="chat", user_id="alice", metadata={"team": "search", "tier": "pro"}),
        Trace("p1", "t2", at(2, 10), name="summarize", user_id="bob", tags=("beta", "prod")),
    ]


def fill(url: str, extra: Sequence[Observation] = ()) -> None:
    """Write the projects, observations and traces above (plus ``extra``) into the store at ``url``."""
    store = open_store(url)
    try:
        seed(store, extra)
    finally:
        store.close()


def seed(store: Store, extra: Sequence[Observation] = ()) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    for pid, name in (("p1", "Search app"), ("p2", "Other")):
        store.create_project(Project(pid, name, created), ApiKey(pid, f"pk-{pid}", f"hash-{pid}", created))
    store.write([*observations(), *extra], traces())


def store_url_for(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty store: a DuckDB file, or a fresh PostgreSQL schema dropped afterwards."""
    if backend == "duckdb":
        yield f"duckdb:///{tmp_path / 'store.duckdb'}"
        return
    from tests.server.harness import drop_postgres_schema, fresh_postgres_schema, postgres_url

    base = postgres_url()
    if not base:
        pytest.skip("PostgreSQL tests need COSTLINE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    try:
        schema, url = fresh_postgres_schema(base)
    except Exception as exc:  # server not reachable
        pytest.skip(f"PostgreSQL at {base} is not reachable: {exc}")
    try:
        yield url
    finally:
        drop_postgres_schema(base, schema)


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a ``costline`` child process: no TZ, no user price files, its own data dir."""
    env = {k: v for k, v in os.environ.items() if k not in ("TZ", "COSTLINE_PRICE_FILES", "COSTLINE_STORE_URL")}
    return {**env, "COSTLINE_DATA_DIR": str(data_dir), **extra}
