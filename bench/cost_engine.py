"""Price the same 100k realistic events with costline, genai-prices and LiteLLM; compare speed and totals.

    python bench/cost_engine.py [--events 100000] [--seed 7]

costline's time per event covers price resolution (as of the event's time) and the cost function; the
usage records are built beforehand, as for genai-prices (whose ``Usage`` is built beforehand too). LiteLLM
is given the same token counts through ``cost_per_token``. Totals are compared exactly with genai-prices on
every event both can price. LiteLLM is optional (``pip install -e '.[bench]'``); it is skipped when absent.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from costline.catalog.genai import genai_prices_version, load_genai_catalog
from costline.core.cost import calc_cost
from costline.core.resolve import PriceBook
from costline.core.usage import Usage

# (provider, model as sent, share of traffic, shape)
MIX = [
    ("openai", "gpt-4o", 20, "cached"),
    ("openai", "gpt-4o-mini", 15, "cached"),
    ("openai", "o3", 6, "reasoning"),
    ("openai", "o4-mini", 6, "reasoning"),
    ("openai", "gpt-4.1", 5, "cached"),
    ("openai", "text-embedding-3-small", 6, "embedding"),
    ("anthropic", "claude-sonnet-4-5", 14, "anthropic"),
    ("anthropic", "claude-3-5-haiku-latest", 6, "anthropic"),
    ("anthropic", "claude-opus-4-1", 3, "anthropic"),
    ("google", "gemini-2.5-pro", 8, "long"),
    ("google", "gemini-2.5-flash", 6, "reasoning"),
    ("mistral", "mistral-large-latest", 2, "plain"),
    ("deepseek", "deepseek-chat", 3, "cached"),
]


@dataclass(frozen=True, slots=True)
class Event:
    provider: str
    model: str
    at: datetime
    quantities: dict[str, int]


def make_events(n: int, seed: int) -> list[Event]:
    rnd = random.Random(seed)
    weights = [w for _, _, w, _ in MIX]
    start = datetime(2026, 10, 1, tzinfo=UTC)
    events = []
    for i in range(n):
        provider, model, _, shape = rnd.choices(MIX, weights=weights)[0]
        at = start + timedelta(seconds=i * 17 % (30 * 86400))
        inp = rnd.randint(50, 20_000)
        out = rnd.randint(1, 2_000)
        q: dict[str, int] = {"input_tokens": inp, "output_tokens": out}
        if shape == "cached" and rnd.random() < 0.6:
            q["cache_read_tokens"] = rnd.randint(0, inp)
        elif shape == "reasoning":
            q["output_reasoning_tokens"] = rnd.randint(0, out)
            if rnd.random() < 0.4:
                q["cache_read_tokens"] = rnd.randint(0, inp // 2)
        elif shape == "anthropic":
            read = rnd.randint(0, inp // 2) if rnd.random() < 0.7 else 0
            write = rnd.randint(0, (inp - read) // 2) if rnd.random() < 0.3 else 0
            q.update(cache_read_tokens=read, cache_write_tokens=write)
            if rnd.random() < 0.05:
                q["input_tokens"] = inp + 200_000  # long-context tier
        elif shape == "long" and rnd.random() < 0.2:
            q["input_tokens"] = inp + 250_000  # Gemini > 200k tier
        elif shape == "embedding":
            q = {"input_tokens": inp}
        events.append(Event(provider, model, at, {k: v for k, v in q.items() if v}))
    return events


BLOCK = 100


def time_peers(
    fns: dict[str, Callable[[int], Any]], n: int, *, interleaved: bool, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """Per-event nanoseconds for each peer, measured over blocks of ``BLOCK`` consecutive events (so the
    timer's own cost, ~0.1 µs a call, is not charged to each event), and each peer's results.

    ``interleaved=False`` (default): each peer prices all events in turn, ``rounds`` times, the order of the
    peers reversed every round so that drift on a noisy machine hits them alike; caches stay warm, as in a
    service that prices a stream of events. ``interleaved=True``: the peers take turns block by block, so each
    block starts with caches the other peers have disturbed.
    """
    clock = time.perf_counter_ns
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, list[Any]] = {name: [] for name in fns}

    def timed(name: str, block: range, keep: bool) -> None:
        fn = fns[name]
        t0 = clock()
        out = [fn(i) for i in block]
        elapsed = clock() - t0
        times[name].extend([elapsed / len(block)] * len(block))
        if keep:
            results[name].extend(out)

    blocks = [range(s, min(s + BLOCK, n)) for s in range(0, n, BLOCK)]
    names = list(fns)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        if interleaved:
            for block in blocks:
                for name in order:
                    timed(name, block, r == 0)
        else:
            for name in order:
                for block in blocks:
                    timed(name, block, r == 0)
    return times, results


def run(n: int, seed: int, *, interleaved: bool = False, rounds: int = 3) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    events = make_events(n, seed)
    records, providers = load_genai_catalog()
    book = PriceBook(records, providers)
    usages = [Usage(e.quantities) for e in events]

    def costline_price(i: int) -> Decimal | None:
        e = events[i]
        record = book.resolve(e.model, e.provider, at=e.at)
        return calc_cost(usages[i], record, at=e.at).total if record else None

    import genai_prices
    from genai_prices import Usage as GUsage

    g_usages = [GUsage(**e.quantities) for e in events]

    def genai_price(i: int) -> Decimal | None:
        e = events[i]
        try:
            return genai_prices.calc_price(g_usages[i], e.model, provider_id=e.provider,
                                           genai_request_timestamp=e.at).total_price
        except LookupError:
            return None

    fns: dict[str, Callable[[int], Any]] = {"costline": costline_price, "genai-prices": genai_price}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import litellm  # noqa: F401
            from litellm import cost_per_token
    except ImportError:
        cost_per_token = None
    if cost_per_token is not None:
        lit_provider = {"google": "gemini", "openai": "openai", "anthropic": "anthropic", "mistral": "mistral",
                        "deepseek": "deepseek"}

        def litellm_price(i: int) -> Any:
            e = events[i]
            q = e.quantities
            try:
                return cost_per_token(
                    model=e.model, custom_llm_provider=lit_provider[e.provider],
                    prompt_tokens=q.get("input_tokens", 0), completion_tokens=q.get("output_tokens", 0),
                    cache_read_input_tokens=q.get("cache_read_tokens", 0),
                    cache_creation_input_tokens=q.get("cache_write_tokens", 0),
                )
            except Exception:
                return None

        import importlib.metadata as md

        fns[f"litellm {md.version('litellm')}"] = litellm_price
    for fn in fns.values():
        fn(0)  # warm caches and lazy imports for every peer
    times, results = time_peers(fns, n, interleaved=interleaved, rounds=rounds)
    c_totals, g_totals = results["costline"], results["genai-prices"]
    idx = range(n)
    mismatches = [(events[i], c_totals[i], g_totals[i]) for i in idx
                  if c_totals[i] is not None and g_totals[i] is not None and c_totals[i] != g_totals[i]]
    both = sum(1 for i in idx if c_totals[i] is not None and g_totals[i] is not None)

    def summary(name: str, times: list[float]) -> tuple[float, float]:
        med = statistics.median(times) / 1000
        rate = len(times) / (sum(times) / 1e9)
        print(f"{name:<16} median {med:8.2f} µs/event   mean {sum(times) / len(times) / 1000:8.2f} µs   "
              f"{rate:>12,.0f} events/s")
        return med, rate

    mode = "interleaved blocks" if interleaved else "one peer at a time"
    print(f"events: {n:,} × {rounds} rounds ({mode}, seed {seed}); python {platform.python_version()} on "
          f"{platform.machine()}, {os.cpu_count()} cores; genai-prices {genai_prices_version()}")
    medians = {name: summary(name, t)[0] for name, t in times.items()}
    c_med = medians["costline"]
    ratios = "   ".join(f"{name}/costline {m / c_med:.1f}×" for name, m in medians.items() if name != "costline")
    print(f"ratio (median): {ratios}")
    unpriced = sum(1 for t in c_totals if t is None)
    print(f"totals compared with genai-prices: {both:,} events, {len(mismatches)} mismatches; "
          f"costline unpriced: {unpriced}")
    for e, c, g in mismatches[:5]:
        print("  MISMATCH", e, c, g)
    return 1 if mismatches else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interleaved", action="store_true", help="peers take turns block by block")
    args = parser.parse_args()
    sys.exit(run(args.events, args.seed, interleaved=args.interleaved, rounds=args.rounds))


if __name__ == "__main__":
    main()
