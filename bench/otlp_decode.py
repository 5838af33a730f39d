"""In-process OTLP decode microbenchmark: protobuf bytes -> the ``Decoded`` events the pipeline takes.

    python bench/otlp_decode.py [--batches 20] [--repeat 5] [--compare REF ...] [--profile]
    python bench/otlp_decode.py --check REF [--batches 20]      # same output as REF's decoder?

The bodies are the ones ``bench/ingest.py`` sends (batches of 1,000 GenAI spans, each its own trace), plus a
Langfuse-SDK-shaped batch (scope ``langfuse-sdk`` 5.x, JSON-encoded metadata, usage/cost details, one trace of
1,000 spans under a root). Reported: the best of ``--repeat`` runs, in µs per span, for this tree and for each
``--compare`` git ref (its ``src/`` extracted with ``git archive`` and run in a child process), interleaved so
that every tree sees the same machine load.

``--check REF`` decodes seeded random requests (protobuf and OTLP/JSON; attribute sets mixing every rule's
keys with empty, malformed and out-of-range values, bad ids and times, several spans per trace, Langfuse SDK
scopes) with this tree and with REF's, and compares everything ``decode_otlp`` returns.
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


_KEYS = [
    "gen_ai.provider.name", "gen_ai.system", "llm.provider", "gen_ai.request.model", "gen_ai.response.model", "model",
    "llm.model_name", "ai.model.id", "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt", "gen_ai.usage.total_tokens", "llm.token_count.total", "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens", "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.audio.input_tokens", "gen_ai.request.temperature",
    "gen_ai.request.max_tokens", "llm.invocation_parameters.temperature", "llm.invocation_parameters",
    "gen_ai.usage.cost", "llm.cost.total", "gen_ai.openai.response.service_tier", "gen_ai.request.service_tier",
    "gen_ai.tool.name", "gen_ai.tool.call.id", "gen_ai.operation.name", "openinference.span.kind",
    "deployment.environment", "deployment.environment.name", "langfuse.environment", "user.id", "session.id",
    "gen_ai.conversation.id", "langfuse.user.id", "langfuse.session.id", "langfuse.observation.type",
    "langfuse.observation.model.name", "langfuse.observation.usage_details", "langfuse.observation.cost_details",
    "langfuse.observation.metadata", "langfuse.observation.metadata.k", "langfuse.trace.metadata.t",
    "langfuse.trace.name", "langfuse.trace.tags", "langfuse.tags", "langfuse.trace.public", "langfuse.release",
    "langfuse.version", "langfuse.internal.as_root", "langfuse.observation.level",
    "langfuse.observation.status_message", "langfuse.observation.completion_start_time",
    "langfuse.observation.model.parameters", "langfuse.observation.prompt.name", "http.url", "service.version",
]
_VALUES: list[object] = [  # values most keys accept
    "", " ", "openai", "anthropic", "aws.bedrock", "gpt-4o", "claude-sonnet-4-5", "7", "auto", "flex",
    "invoke_agent", "chat", "embeddings", "LLM", "generation", "span", "ERROR", "production", "Langfuse-Prod!",
    0, 3, 12, 1000, 4.0, True, False, None, ["a", "b"], {"k": "v"},
    '{"temperature": 1}', '{"input": 10, "output": 5}', '{"prompt_tokens": 10, "completion_tokens": 5}',
    '{"total": "0.5", "input": 0.1}', '"quoted"', '["t1", "t2"]', "a,b", "2026-01-01T00:00:00Z",
]
_ODD_VALUES: list[object] = [  # values many rules refuse
    "-3", "x", -1, 2**63, 2.5, ["x", 1], b"\x01", '{"input": 10, "input_cached_tokens": 20}', '{"input": -1}',
    "1e999", "nul\x00", "\ud800",
]


def random_bodies(n_batches: int, seed: int) -> list[tuple[bytes, str]]:
    """Seeded random requests as (body, content type): protobuf, and the same request as OTLP/JSON."""
    import random

    from google.protobuf.json_format import MessageToJson  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    rng = random.Random(seed)

    def fill(value: AnyValue, raw: object, depth: int = 0) -> None:
        if raw is None:
            return
        if isinstance(raw, bool):
            value.bool_value = raw
        elif isinstance(raw, int):
            value.int_value = max(min(raw, 2**63 - 1), -(2**63))
        elif isinstance(raw, float):
            value.double_value = raw
        elif isinstance(raw, bytes):
            value.bytes_value = raw
        elif isinstance(raw, list):
            for item in raw:
                fill(value.array_value.values.add(), item, depth + 1)
        elif isinstance(raw, dict):
            for key, item in raw.items():
                kv = value.kvlist_value.values.add()
                kv.key = key
                fill(kv.value, item, depth + 1)
        else:
            value.string_value = str(raw).encode("utf-8", "surrogatepass").decode("utf-8", "replace")

    def ident(size: int) -> bytes:
        roll = rng.random()
        if roll < 0.03:
            return bytes(size)
        if roll < 0.06:
            return rng.randbytes(size - 1)
        if roll < 0.08:
            return b""
        return rng.randbytes(size)

    out = []
    for _ in range(n_batches):
        request = ExportTraceServiceRequest()
        for _ in range(rng.randint(1, 2)):
            resource_spans = request.resource_spans.add()
            for key in rng.sample(["telemetry.sdk.language", "deployment.environment", "service.version",
                                   "langfuse.release"], rng.randint(0, 3)):
                kv = resource_spans.resource.attributes.add()
                kv.key = key
                fill(kv.value, rng.choice(["python", "staging", "1.0", "", 3]))
            for _ in range(rng.randint(1, 2)):
                scope_spans = resource_spans.scope_spans.add()
                scope_spans.scope.name, scope_spans.scope.version = rng.choice(
                    [("langfuse-sdk", "5.0.4"), ("langfuse-sdk", "3.2.0"), ("openinference", "1"), ("", "")])
                traces = [rng.randbytes(16) for _ in range(rng.randint(1, 20))]
                span_ids: list[bytes] = []
                for _ in range(rng.randint(1, 60)):
                    span = scope_spans.spans.add()
                    span.trace_id = rng.choice(traces) if rng.random() < 0.95 else ident(16)
                    span.span_id = ident(8)
                    span_ids.append(span.span_id)
                    if rng.random() < 0.5 and span_ids:
                        span.parent_span_id = rng.choice(span_ids) if rng.random() < 0.9 else ident(8)
                    long_name = "x" * 1100 if rng.random() < 0.1 else "y"
                    span.name = rng.choice(["chat gpt-4o", "", "tool", "chat", long_name])
                    start = rng.choice([0, *[1_767_225_600_000_000_000] * 30, 2**63 + 5])
                    span.start_time_unix_nano = start
                    ends = [0, start, start + 1_500_000_000, start + 7, max(start - 1, 0)]
                    span.end_time_unix_nano = rng.choice(ends) % 2**64
                    span.status.code = rng.choice([0, 0, 1, 2])
                    span.status.message = rng.choice(["", "boom"])
                    for key in rng.sample(_KEYS, rng.randint(0, 14)):
                        kv = span.attributes.add()
                        kv.key = key
                        if "token" in key and rng.random() < 0.9:
                            fill(kv.value, rng.choice([0, 5, 12, 100, 1000, 5000, "40"]))
                        else:
                            fill(kv.value, rng.choice(_ODD_VALUES if rng.random() < 0.05 else _VALUES))
        out.append((request.SerializeToString(), PB))
        out.append((MessageToJson(request).encode(), "application/json"))
    return out


def check_digest(batches: int, seed: int) -> str:
    """A digest of everything decode_otlp returns for the random requests (IngestError messages included)."""
    import hashlib

    from costline.ingest.batch import IngestError
    from costline.ingest.otlp import decode_otlp

    digest = hashlib.sha256()
    for body, content_type in random_bodies(batches, seed):
        try:
            decoded = decode_otlp(body, content_type)
            text = repr((decoded.observations, decoded.traces, decoded.accepted, decoded.errors, decoded.keys,
                         decoded.merge))
        except IngestError as exc:
            text = f"IngestError {exc.status} {exc}"
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


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
    parser.add_argument("--check", metavar="REF", help="compare this tree's decoded output with REF's")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--digest", action="store_true", help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.batches, args.repeat, False)))
        return
    if args.digest:
        print(check_digest(args.batches, args.seed))
        return
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            digests = {}
            for name, src in (("this tree", ROOT / "src"), (args.check, tree_for(args.check, Path(tmp)))):
                digests[name] = subprocess.run(
                    [sys.executable, __file__, "--digest", "--batches", str(args.batches), "--seed", str(args.seed)],
                    env={**os.environ, "PYTHONPATH": str(src)}, check=True, capture_output=True, text=True,
                ).stdout.strip()
        same = len(set(digests.values())) == 1
        print(f"{'same' if same else 'DIFFERENT'} output on {args.batches} random protobuf + JSON requests: {digests}")
        sys.exit(0 if same else 1)
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
