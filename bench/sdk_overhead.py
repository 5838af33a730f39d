"""Time on the application's thread per recorded generation: costline's tracker vs the Langfuse SDK.

    python bench/sdk_overhead.py [--calls 20000] [--rounds 3]

Starts ``costline serve`` (DuckDB, a temporary directory) with the same harness the tests use; both SDKs
export to it (costline: ``POST /v1/ingest``; Langfuse 3+: OTLP to ``/api/public/otel``). Per call it times,
with ``perf_counter_ns`` on the calling thread, what an app does after a model call returns:

- costline: ``tracker.record_generation(model=, usage=)`` (prices it locally and queues it), first with nothing
  being sent (a tracker with no host: the same work on the app's thread, no sender thread), then exporting
- costline: ``with tracker.generation(...) as g: g.update(usage=...)`` (the context-manager form)
- Langfuse: ``lf.start_observation(as_type="generation", model=...)``, ``.update(usage_details=...)``, ``.end()``

and reports the median and p99 in µs per call. Usage varies per call (no cache hits on repeated values).
Background export runs concurrently for both SDKs (except in the "nothing sent" line), as it would in an app,
to the same server in the same run. Both are flushed at the end and the acknowledged counts printed, with
the ratio of the Langfuse SDK's median to costline's exporting median.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from tests.server.harness import make_server  # noqa: E402 - the same harness the tests use

from costline.sdk import Tracker  # noqa: E402


def measure(label: str, calls: int, rounds: int, one: Callable[[int], None]) -> float:
    medians = []
    for r in range(rounds):
        samples = []
        for i in range(calls):
            start = time.perf_counter_ns()
            one(i + r * calls)
            samples.append(time.perf_counter_ns() - start)
        samples.sort()
        medians.append(statistics.median(samples) / 1000)
        p99 = samples[int(len(samples) * 0.99)] / 1000
        print(f"  {label:<44} round {r + 1}: median {medians[-1]:6.2f} µs  p99 {p99:7.2f} µs", flush=True)
    return min(medians)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python {platform.python_version()}, "
          f"{_cpu()} × {os.cpu_count()}, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COSTLINE_DATA_DIR"] = tmp
        server, _ = make_server("duckdb", Path(tmp))
        server.start()
        try:
            results = run(server.url, server.public_key, server.secret_key, args.calls, args.rounds)
        finally:
            server.stop()
    print("\nmedian µs per generation on the app's thread (best round):")
    for label, value in results.items():
        print(f"  {label:<44} {value:6.2f}")
    if LANGFUSE in results:
        print(f"  Langfuse / costline record_generation (exporting): {results[LANGFUSE] / results[EXPORTING]:.1f}×")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


EXPORTING = "costline record_generation, exporting"
LANGFUSE = "langfuse start_observation + update + end"


def run(url: str, public_key: str, secret_key: str, calls: int, rounds: int) -> dict[str, float]:
    results: dict[str, float] = {}
    logging.getLogger("costline.sdk").setLevel(logging.ERROR)  # the no-host warning of the idle tracker
    idle = Tracker(max_buffer=calls * rounds)  # no host: events stay in memory, no sender thread
    idle.record_generation(model="gpt-4o", usage={"input_tokens": 1})

    def record_idle(i: int) -> None:
        idle.record_generation(model="gpt-4o", usage={"input_tokens": 1000 + i, "cache_read_tokens": 200,
                                                       "output_tokens": 50 + i % 7})

    print("costline tracker, nothing being sent")
    results["costline record_generation, nothing sent"] = measure("record_generation", calls, rounds, record_idle)
    idle.shutdown()
    logging.getLogger("costline.sdk").setLevel(logging.NOTSET)

    tracker = Tracker(host=url, public_key=public_key, secret_key=secret_key, max_buffer=calls * rounds * 3)
    tracker.record_generation(model="gpt-4o", usage={"input_tokens": 1})  # load the price book first

    def record(i: int) -> None:
        tracker.record_generation(model="gpt-4o", usage={"input_tokens": 1000 + i, "cache_read_tokens": 200,
                                                         "output_tokens": 50 + i % 7})

    def context_manager(i: int) -> None:
        with tracker.generation(name="answer", model="gpt-4o") as g:
            g.update(usage={"input_tokens": 1000 + i, "cache_read_tokens": 200, "output_tokens": 50 + i % 7})

    print("costline tracker, exporting")
    results[EXPORTING] = measure("record_generation", calls, rounds, record)
    results["costline generation() + update()"] = measure("generation() + update()", calls, rounds, context_manager)
    ok = tracker.flush(timeout=120)
    print(f"  flushed: {ok}, stats: {tracker.stats}")
    tracker.shutdown()

    try:
        from langfuse import Langfuse
    except ImportError:
        print("langfuse is not installed; skipping it")
        return results
    lf = Langfuse(public_key=public_key, secret_key=secret_key, host=url)

    def langfuse_generation(i: int) -> None:
        gen = lf.start_observation(as_type="generation", name="answer", model="gpt-4o")
        gen.update(usage_details={"input": 1000 + i, "cache_read_input_tokens": 200, "output": 50 + i % 7})
        gen.end()

    print("Langfuse SDK", getattr(sys.modules.get("langfuse"), "__version__", ""))
    results[LANGFUSE] = measure(
        "start_observation + update + end", calls, rounds, langfuse_generation)
    lf.flush()
    lf.shutdown()
    return results


if __name__ == "__main__":
    main()
