"""In-process OTLP decode microbenchmark: protobuf bytes -> the ``Decoded`` events the pipeline takes.

    python bench/otlp_decode.py [--batches 20] [--repeat 5] [--compare REF ...] [--profile]

The bodies are the ones ``bench/ingest.py`` sends (batches of 1,000 GenAI spans, each its own trace), plus a
Langfuse-SDK-shaped batch (scope ``langfuse-sdk`` 5.x, JSON-encoded metadata, usage/cost details, one trace of
1,000 spans under a root). Reported: the best of ``--repeat`` runs, in µs per span, for this tree and for each
``--compare`` git ref (its ``src/`` extracted with ``git archive`` and run in a child process), interleaved so
that every tree sees the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import otlp_bodies  # noqa: E402 - the same bodies the HTTP benchmark sends

PB = "application/x-protobuf"


def langfuse_bodies(n_batches: int) -> list[bytes]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def kv(key: str, value: object) -> KeyValue:
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=str(value)))

    bodies = []
    t0 = 1_761_998_400_000_000_000
    for _ in range(n_batches):
        req = ExportTraceServiceRequest()
        resource_spans = req.resource_spans.add()
        resource_spans.resource.attributes.extend([
            kv("service.name", "bench"), kv("telemetry.sdk.language", "python"), kv("service.version", "1.2.3"),
            kv("deployment.environment", "production"),
        ])
        scope = resource_spans.scope_spans.add()
        scope.scope.name, scope.scope.version = "langfuse-sdk", "5.0.4"
        trace_id, root_id = os.urandom(16), os.urandom(8)
        for i in range(1000):
            span = scope.spans.add()
            span.trace_id, span.span_id = trace_id, root_id if i == 0 else os.urandom(8)
            if i:
                span.parent_span_id = root_id
            span.name = "generation" if i else "root"
            span.start_time_unix_nano, span.end_time_unix_nano = t0 + i, t0 + i + 900_000_000
            span.attributes.extend([
                kv("langfuse.observation.type", "generation" if i else "span"),
                kv("langfuse.observation.model.name", "gpt-4o"),
                kv("langfuse.observation.usage_details", json.dumps({"input": 1000 + i, "output": 100})),
                kv("langfuse.observation.metadata.step", json.dumps(i)),
                kv("langfuse.trace.name", "bench-trace"), kv("langfuse.user.id", f"user-{i % 7}"),
                kv("langfuse.session.id", "s-1"), kv("langfuse.environment", "production"),
                kv("gen_ai.request.temperature", 0.0 if i % 2 else 1),
            ])
        bodies.append(req.SerializeToString())
    return bodies


def measure(batches: int, repeat: int, profile: bool) -> dict[str, float]:
    from costline.ingest.otlp import decode_otlp

    sets = {"ingest.py spans": otlp_bodies(batches), "langfuse-sdk spans": langfuse_bodies(max(1, batches // 4))}
    out = {}
    for label, bodies in sets.items():
        spans = 1000 * len(bodies)
        for body in bodies[:2]:  # warm up
            decode_otlp(body, PB)
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            for body in bodies:
                decoded = decode_otlp(body, PB)
                assert not decoded.errors and len(decoded.observations) == 1000, decoded.errors[:3]
            best = min(best, time.perf_counter() - started)
        out[label] = best / spans * 1e6
    if profile:
        import cProfile
        import pstats

        bodies = sets["ingest.py spans"]
        with cProfile.Profile() as prof:
            for body in bodies:
                decode_otlp(body, PB)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return out


def tree_for(ref: str, tmp: Path) -> Path:
    dest = tmp / ref.replace("/", "_")
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the trees")
    parser.add_argument("--compare", nargs="*", default=[], help="git refs to measure beside this tree")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.batches, args.repeat, False)))
        return
    if not args.compare:
        for label, us in measure(args.batches, args.repeat, args.profile).items():
            print(f"{label:<20} {us:7.1f} µs/span")
        return
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT / "src", **{ref: tree_for(ref, Path(tmp)) for ref in args.compare}}
        results: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for name, src in trees.items():
                env = {**os.environ, "PYTHONPATH": str(src)}
                got = json.loads(subprocess.run(
                    [sys.executable, __file__, "--json", "--batches", str(args.batches), "--repeat", str(args.repeat)],
                    env=env, check=True, capture_output=True, text=True).stdout)
                for label, us in got.items():
                    results.setdefault(name, {})[label] = min(results.get(name, {}).get(label, us), us)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    for name, got in results.items():
        print(f"{name:<12} " + "   ".join(f"{label}: {us:6.1f} µs/span" for label, us in got.items()))


if __name__ == "__main__":
    main()
