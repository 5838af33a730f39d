"""OTLP/HTTP decoding: requests built by the real OpenTelemetry SDK (serialized exactly as the OTLP HTTP
exporter does) or hand-written OTLP/JSON fixtures copying the attribute sets of wire-formats.md A.5 and C.1.

Expected usage is written by hand; costline usage is INCLUSIVE (input_tokens counts cached tokens,
output_tokens counts reasoning tokens).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, Tracer

from costline.core.events import ObservationEvent, TraceEvent, merge_observation, price_observation
from costline.core.usage import Usage
from costline.ingest.batch import Decoded, IngestError
from costline.ingest.otlp import decode_otlp, encode_response

DATA = Path(__file__).parents[1] / "data" / "otlp"
PB = "application/x-protobuf"
JSON = "application/json"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in unix nanoseconds
T1 = T0 + 1_500_000_000
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)
TRACE = 0xE7630A7BD6E42BBA34479DA2ED5A8624
TRACE_HEX = "e7630a7bd6e42bba34479da2ed5a8624"


# ---------------------------------------------------------------- request builders


class FixedIds(IdGenerator):
    """Deterministic ids: one trace id, span ids in order."""

    def __init__(self, span_ids: Sequence[int]) -> None:
        self.span_ids = list(span_ids)

    def generate_trace_id(self) -> int:
        return TRACE

    def generate_span_id(self) -> int:
        return self.span_ids.pop(0)


def record(
    build: Callable[[Tracer], None],
    *,
    scope: tuple[str, str] = ("langfuse-sdk", "5.0.4"),
    resource: dict[str, Any] | None = None,
    span_ids: Sequence[int] = (0xA1, 0xA2, 0xA3, 0xA4),
) -> list[ReadableSpan]:
    """Run ``build`` with a real SDK tracer and return the finished spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource or {}), id_generator=FixedIds(span_ids))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer(*scope))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def one_span(
    name: str, attributes: dict[str, Any], *, parent: int | None = None, kind: SpanKind = SpanKind.INTERNAL,
    status: Status | None = None,
) -> Callable[[Tracer], None]:
    def build(tracer: Tracer) -> None:
        context = None
        if parent is not None:
            remote = SpanContext(TRACE, parent, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
            context = trace_api.set_span_in_context(NonRecordingSpan(remote))
        span = tracer.start_span(name, context=context, kind=kind, attributes=attributes, start_time=T0)
        if status is not None:
            span.set_status(status)
        span.end(end_time=T1)

    return build


def protobuf_body(spans: Sequence[ReadableSpan]) -> bytes:
    """Exactly what OTLPSpanExporter posts (before gzip)."""
    return bytes(encode_spans(spans).SerializeToString())


def json_body(spans: Sequence[ReadableSpan]) -> bytes:
    """OTLP/JSON of the same request: proto3 JSON with integer enums and ids converted from base64 to hex."""
    document = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


def decode_both(spans: Sequence[ReadableSpan]) -> Decoded:
    """Decode the protobuf and the JSON form; they must give identical results."""
    from_protobuf = decode_otlp(protobuf_body(spans), PB)
    from_json = decode_otlp(json_body(spans), JSON)
    assert from_protobuf == from_json
    return from_protobuf


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"arrayValue": {"values": [any_value(v) for v in value]}}


def span_json(span_id: str = "00000000000000a1", attributes: dict[str, Any] | None = None, **extra: Any) -> Any:
    span = {"traceId": TRACE_HEX, "spanId": span_id, "name": "s", "startTimeUnixNano": str(T0),
            "endTimeUnixNano": str(T1), **extra}
    span["attributes"] = [{"key": k, "value": any_value(v)} for k, v in (attributes or {}).items()]
    return span


def request_json(*spans: Any, scope: str = "test-scope", resource: dict[str, Any] | None = None) -> bytes:
    res = {"attributes": [{"key": k, "value": any_value(v)} for k, v in (resource or {}).items()]}
    return json.dumps(
        {"resourceSpans": [{"resource": res, "scopeSpans": [{"scope": {"name": scope}, "spans": list(spans)}]}]}
    ).encode()


def decode_attrs(attributes: dict[str, Any], **kw: Any) -> ObservationEvent:
    decoded = decode_otlp(request_json(span_json(attributes=attributes), **kw), JSON)
    assert decoded.errors == []
    return decoded.observations[0]


# ---------------------------------------------------------------- Langfuse SDK


A5_ATTRIBUTES: dict[str, Any] = {  # the observed v5 generation span of wire-formats.md A.5
    "user.id": "u1",
    "session.id": "s1",
    "langfuse.trace.name": "my-trace",
    "langfuse.trace.tags": ["t1", "t2"],
    "langfuse.trace.metadata.k": '"v"',
    "langfuse.version": "v9",
    "langfuse.environment": "staging",
    "langfuse.release": "r1",
    "langfuse.observation.type": "generation",
    "langfuse.observation.model.name": "gpt-4o",
    "langfuse.observation.input": '[{"role": "user", "content": "hi"}]',
    "langfuse.observation.output": "hello",
    "langfuse.observation.model.parameters": '{"temperature": 0.2}',
    "langfuse.observation.completion_start_time": '"2025-01-01T00:00:00Z"',
    "langfuse.observation.metadata.a": "1",
    "langfuse.observation.metadata.b": '"x"',
    "langfuse.observation.usage_details": '{"input": 10, "output": 5, "input_cached_tokens": 2}',
    "langfuse.observation.cost_details": '{"input": 0.001}',
}


def test_langfuse_v5_generation_span() -> None:
    spans = record(one_span("my-generation", A5_ATTRIBUTES, parent=0xDCFE5B0EACAE905E),
                   span_ids=[0xB646EAAFBFEDA95E], resource={"langfuse.release": "r1"})
    decoded = decode_both(spans)
    assert decoded.errors == []
    assert decoded.accepted == ["b646eaafbfeda95e"]
    assert decoded.observations == [
        ObservationEvent(
            id="b646eaafbfeda95e", trace_id=TRACE_HEX, parent_id="dcfe5b0eacae905e", type="generation",
            name="my-generation", start_time=START, end_time=END,
            completion_start_time=datetime(2025, 1, 1, tzinfo=UTC), model="gpt-4o", provider=None,
            # Langfuse buckets are disjoint: input 10 uncached + 2 cached = 12 inclusive input, 2 of them cached
            usage=Usage.of(input_tokens=12, cache_read_tokens=2, output_tokens=5),
            # cost_details {"input": 0.001}: provided costs are authoritative, total = sum of entries
            provided_cost={"input_tokens": Decimal("0.001"), "total": Decimal("0.001")},
            user_id="u1", session_id="s1", tags=("t1", "t2"),
            metadata={"a": 1, "b": "x"},  # v5 JSON-encodes every metadata value
            environment="staging", release="r1", version="v9", level="DEFAULT",
            model_parameters={"temperature": 0.2},
        )
    ]
    # not a root (it has a parent), but it carries trace attributes
    assert decoded.traces == [
        TraceEvent(id=TRACE_HEX, name="my-trace", user_id="u1", session_id="s1", tags=("t1", "t2"),
                   metadata={"k": "v"}, environment="staging", release="r1", version="v9")
    ]


def test_langfuse_v4_metadata_values_are_kept_raw() -> None:
    attributes = {"langfuse.observation.type": "span", "langfuse.observation.metadata.a": 1,
                  "langfuse.observation.metadata.b": "x", "langfuse.observation.metadata.c": '"q"',
                  "langfuse.observation.metadata": '{"outer": true}', "langfuse.trace.metadata.k": "v"}
    decoded = decode_both(record(one_span("step", attributes), scope=("langfuse-sdk", "4.18.0")))
    (observation,) = decoded.observations
    assert observation.type == "span"
    assert observation.metadata == {"outer": True, "a": 1, "b": "x", "c": '"q"'}
    assert decoded.traces[0].metadata == {"k": "v"}
    assert decoded.traces[0].name == "step"  # a root without langfuse.trace.name is named after the span


def test_langfuse_openai_integration_raw_usage_dict() -> None:
    usage = {  # B.9 / A.5: the raw OpenAI usage dict, as langfuse.openai (v5) sends it
        "completion_tokens": 20, "prompt_tokens": 100, "total_tokens": 120,
        "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0, "reasoning_tokens": 5,
                                      "rejected_prediction_tokens": 0},
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 40},
    }
    attributes = {"langfuse.observation.type": "generation", "langfuse.observation.model.name": "gpt-4o-2024-08-06",
                  "langfuse.observation.usage_details": json.dumps(usage)}
    (observation,) = decode_both(record(one_span("OpenAI-generation", attributes))).observations
    assert observation.type == "generation"
    assert observation.model == "gpt-4o-2024-08-06"
    # OpenAI counts are inclusive: prompt 100 includes 40 cached, completion 20 includes 5 reasoning
    assert observation.usage == Usage.of(input_tokens=100, cache_read_tokens=40, output_tokens=20,
                                         output_reasoning_tokens=5)
    assert observation.provided_cost is None


def test_openrouter_cost_inside_the_usage_dict_is_provided() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.00042, "is_byok": False}
    observation = decode_attrs({"langfuse.observation.type": "generation",
                                "langfuse.observation.usage_details": json.dumps(usage)})
    assert observation.usage == Usage.of(input_tokens=10, output_tokens=2)
    assert observation.provided_cost == {"total": Decimal("0.00042")}


# ---------------------------------------------------------------- OTel GenAI instrumentations (C.1)


def test_openllmetry_0_62_chat() -> None:
    attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.2, "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20, "gen_ai.usage.total_tokens": 120,
        "gen_ai.usage.reasoning_tokens": 5, "gen_ai.usage.cache_read.input_tokens": 40,
        "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
        "gen_ai.output.messages": "[]", "gen_ai.response.id": "chatcmpl-1", "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.is_streaming": False,
    }
    spans = record(one_span("openai.chat", attributes, kind=SpanKind.CLIENT),
                   scope=("opentelemetry.instrumentation.openai.v1", "0.62.4"))
    decoded = decode_both(spans)
    (observation,) = decoded.observations
    assert observation.type == "generation"
    assert observation.model == "gpt-4o-2024-08-06"  # response model wins over request model
    assert observation.provider == "openai"
    # semconv: input 100 already includes the 40 cached; output 20 includes the 5 reasoning
    assert observation.usage == Usage.of(input_tokens=100, cache_read_tokens=40, output_tokens=20,
                                         output_reasoning_tokens=5)
    assert observation.provided_cost is None
    assert observation.model_parameters == {"temperature": 0.2}
    assert observation.metadata is None  # attributes are not dumped into metadata
    assert decoded.traces == [TraceEvent(id=TRACE_HEX, name="openai.chat", timestamp=START)]


def test_openllmetry_chat_is_priced_like_langfuse(bundled_book: Any) -> None:
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                  "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 100,
                  "gen_ai.usage.output_tokens": 20, "gen_ai.usage.cache_read.input_tokens": 40}
    event = decode_attrs(attributes)
    observation = price_observation(merge_observation(None, event, "p", START), bundled_book)
    # B.9: 60 uncached × 2.5e-6 + 40 cached × 1.25e-6 + 20 output × 1e-5 = 1.5e-4 + 5e-5 + 2e-4 = 4.0e-4
    assert observation.total_cost == Decimal("0.0004")


def test_openai_v2_chat_with_service_tier() -> None:
    attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20, "gen_ai.openai.request.service_tier": "auto",
        "gen_ai.openai.response.service_tier": "default", "server.address": "api.openai.com",
    }
    spans = record(one_span("chat gpt-4o", attributes, kind=SpanKind.CLIENT),
                   scope=("opentelemetry.util.genai.handler", "1.1b0"))
    (observation,) = decode_both(spans).observations
    assert observation.type == "generation"
    assert observation.provider == "openai"
    assert observation.usage == Usage.of(input_tokens=100, output_tokens=20)  # no cache attributes: all uncached
    assert observation.attributes == {"service_tier": "default"}  # the tier applied, not the requested "auto"


def test_openinference_fixture() -> None:
    decoded = decode_otlp((DATA / "openinference_chat.json").read_bytes(), "application/json; charset=utf-8")
    assert decoded.errors == []
    (observation,) = decoded.observations
    assert observation.id == "eee19b7ec3c1b174"  # upper-case hex ids are lower-cased
    assert observation.trace_id == "5b8efff798038103d269b633813fc60c"
    assert observation.start_time == START
    assert observation.end_time == END
    assert observation.type == "generation"  # openinference.span.kind=LLM
    assert observation.model == "gpt-4o-2024-08-06"
    assert observation.provider == "openai"
    # prompt 100 includes 40 cache reads; completion 20 includes 5 reasoning; audio 0 is dropped
    assert observation.usage == Usage.of(input_tokens=100, cache_read_tokens=40, output_tokens=20,
                                         output_reasoning_tokens=5)
    assert observation.model_parameters == {"temperature": 0.2}
    assert observation.version == "1.4.0"  # resource service.version
    assert observation.level == "DEFAULT"
    assert decoded.traces[0].name == "ChatCompletion"


def test_openlit_cost_is_provided() -> None:
    attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20, "gen_ai.usage.reasoning_tokens": 5,
        "gen_ai.usage.cache_read.input_tokens": 40, "gen_ai.usage.cache_creation.input_tokens": 0,
        "gen_ai.usage.cost": 0.00045, "gen_ai.client.token.usage": 120,
    }
    spans = record(one_span("chat gpt-4o", attributes, kind=SpanKind.CLIENT), scope=("openlit.otel.tracing", ""),
                   resource={"service.name": "app", "deployment.environment": "Production",
                             "telemetry.sdk.name": "openlit"})
    (observation,) = decode_both(spans).observations
    # inclusive: 100 input (40 cached, 0 written), 20 output (5 reasoning)
    assert observation.usage == Usage.of(input_tokens=100, cache_read_tokens=40, output_tokens=20,
                                         output_reasoning_tokens=5)
    assert observation.provided_cost == {"total": Decimal("0.00045")}  # float through repr, once
    assert observation.environment == "production"  # resource deployment.environment, lower-cased


def test_zero_client_side_cost_is_not_provided() -> None:
    observation = decode_attrs({"gen_ai.request.model": "m", "gen_ai.usage.cost": 0.0, "llm.cost.total": 0})
    assert observation.provided_cost is None


def test_openinference_cost_total() -> None:
    observation = decode_attrs({"openinference.span.kind": "LLM", "llm.cost.total": "0.0021"})
    assert observation.provided_cost == {"total": Decimal("0.0021")}


# ---------------------------------------------------------------- the Anthropic exclusive-input rule


def test_anthropic_exclusive_input_is_made_inclusive() -> None:
    decoded = decode_otlp((DATA / "openllmetry_anthropic_cached.json").read_bytes(), JSON)
    assert decoded.errors == []
    (observation,) = decoded.observations
    assert observation.provider == "anthropic"  # "Anthropic" normalised
    assert observation.model == "claude-sonnet-4-5-20250929"
    # Anthropic's input_tokens (10) excludes cache reads (40) and writes (30): 40 + 30 > 10, so 10 + 40 + 30 = 80
    assert observation.usage == Usage.of(input_tokens=80, cache_read_tokens=40, cache_write_tokens=30,
                                         output_tokens=20)


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(  # total 160 = 100 + 40 + 20: the input 100 excluded the 40 cached -> 140
            {"gen_ai.provider.name": "aws.bedrock", "gen_ai.usage.input_tokens": 100,
             "gen_ai.usage.cache_read.input_tokens": 40, "gen_ai.usage.output_tokens": 20,
             "gen_ai.usage.total_tokens": 160},
            Usage.of(input_tokens=140, cache_read_tokens=40, output_tokens=20), id="bedrock-total-says-exclusive"),
        pytest.param(  # total 120 = 100 + 20: semconv-inclusive input, kept as sent
            {"gen_ai.provider.name": "anthropic", "gen_ai.usage.input_tokens": 100,
             "gen_ai.usage.cache_read.input_tokens": 40, "gen_ai.usage.output_tokens": 20,
             "gen_ai.usage.total_tokens": 120},
            Usage.of(input_tokens=100, cache_read_tokens=40, output_tokens=20), id="anthropic-inclusive"),
        pytest.param(  # only cache tokens: 0 + 25 = 25
            {"gen_ai.system": "anthropic", "gen_ai.usage.cache_creation.input_tokens": 25,
             "gen_ai.usage.output_tokens": 3},
            Usage.of(input_tokens=25, cache_write_tokens=25, output_tokens=3), id="anthropic-no-input"),
    ],
)
def test_anthropic_rule_cases(attributes: dict[str, Any], expected: Usage) -> None:
    assert decode_attrs({"gen_ai.operation.name": "chat", **attributes}).usage == expected


def test_subset_above_parent_rejects_the_span_for_other_providers() -> None:
    attributes = {"gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 10,
                  "gen_ai.usage.cache_read.input_tokens": 40, "gen_ai.usage.output_tokens": 1}
    decoded = decode_otlp(request_json(span_json(attributes=attributes), span_json("00000000000000b2")), JSON)
    assert decoded.accepted == ["00000000000000b2"]
    (error,) = decoded.errors
    assert error.id == "00000000000000a1"
    assert error.message.startswith("resourceSpans[0].scopeSpans[0].spans[0].attributes")
    assert "cache_read_tokens (40) exceeds input_tokens (10)" in error.message


# ---------------------------------------------------------------- trace attributes


def test_trace_attributes_arriving_on_a_child_span() -> None:
    def build(tracer: Tracer) -> None:
        root = tracer.start_span("root", start_time=T0)
        context = trace_api.set_span_in_context(root)
        child = tracer.start_span("child", context=context, start_time=T0, attributes={
            "langfuse.trace.name": "checkout", "langfuse.user.id": "u7", "gen_ai.conversation.id": "conv-1",
            "langfuse.trace.tags": '["a", "b"]', "langfuse.trace.public": True,
        })
        child.end(end_time=T1)
        other = tracer.start_span("other", context=context, start_time=T0,
                                  attributes={"user.id": "u7", "langfuse.trace.tags": "c, d"})
        other.end(end_time=T1)
        root.end(end_time=T1)

    decoded = decode_both(record(build, scope=("langfuse-sdk", "3.15.0")))
    by_name = {o.name: o for o in decoded.observations}
    assert by_name["child"].user_id == "u7"
    assert by_name["child"].session_id == "conv-1"
    assert by_name["child"].tags == ("a", "b")
    assert by_name["other"].tags == ("c", "d")
    assert by_name["root"].user_id is None
    assert by_name["root"].parent_id is None
    assert by_name["child"].parent_id == by_name["root"].id
    # one merged trace event: the child's name wins over the root's span name; later tags win; the root's time
    assert decoded.traces == [
        TraceEvent(id=TRACE_HEX, name="checkout", timestamp=START, user_id="u7", session_id="conv-1",
                   tags=("c", "d"), public=True)
    ]


def test_as_root_marks_a_root_and_environment_is_normalised() -> None:
    attributes = {"langfuse.internal.as_root": True, "langfuse.environment": "Langfuse-Staging"}
    decoded = decode_both(record(one_span("job", attributes, parent=0x99)))
    assert decoded.traces == [TraceEvent(id=TRACE_HEX, name="job", timestamp=START, environment="staging")]
    assert decode_attrs({"langfuse.environment": "bad env!"}).environment == "default"


def test_resource_and_scope_values_apply_to_their_own_spans_only() -> None:
    """Environment, release, version and the Langfuse SDK version are derived once per resource / scope."""

    def resource_spans(resource: dict[str, Any], scopes: list[tuple[str, str, Any]]) -> dict[str, Any]:
        return {"resource": {"attributes": [{"key": k, "value": any_value(v)} for k, v in resource.items()]},
                "scopeSpans": [{"scope": {"name": name, "version": version}, "spans": [span]}
                               for name, version, span in scopes]}

    meta = {"langfuse.observation.metadata.a": '"x"'}
    old_generation = {"langfuse.observation.type": "span", "langfuse.observation.model.name": "gpt-4o"}
    body = json.dumps({"resourceSpans": [
        resource_spans({"deployment.environment": "Prod", "service.version": "1.0", "langfuse.release": "r1",
                        "telemetry.sdk.language": "python"},
                       [("langfuse-sdk", "5.0.4", span_json("00000000000000a1", meta)),
                        ("langfuse-sdk", "3.3.0", span_json("00000000000000a2", old_generation))]),
        resource_spans({}, [("langfuse-sdk", "4.2.0", span_json("00000000000000a3",
                                                                 {**meta, "langfuse.environment": "dev"}))]),
    ]}).encode()
    decoded = decode_otlp(body, JSON)
    assert decoded.errors == []
    a1, a2, a3 = decoded.observations
    assert (a1.environment, a1.release, a1.version, a1.metadata) == ("prod", "r1", "1.0", {"a": "x"})  # v5: decoded
    assert (a2.environment, a2.version, a2.type) == ("prod", "1.0", "generation")  # Python SDK <= 3.3 rule
    assert (a3.environment, a3.release, a3.version, a3.metadata) == ("dev", None, None, {"a": '"x"'})  # v4: raw


# ---------------------------------------------------------------- types, models, providers, levels


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"langfuse.observation.type": "tool", "gen_ai.request.model": "m"}, "tool"),
        ({"openinference.span.kind": "RETRIEVER"}, "retriever"),
        ({"openinference.span.kind": "EMBEDDING"}, "embedding"),
        ({"gen_ai.operation.name": "embeddings"}, "embedding"),
        ({"gen_ai.operation.name": "invoke_agent"}, "agent"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"gen_ai.tool.call.id": "call_1"}, "tool"),
        ({"model": "gpt-4o"}, "generation"),
        ({"http.method": "GET"}, "span"),
    ],
)
def test_observation_type(attributes: dict[str, Any], expected: str) -> None:
    assert decode_attrs(attributes).type == expected


def test_tool_name_names_the_observation() -> None:
    assert decode_attrs({"gen_ai.tool.name": "search"}).name == "search"


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("aws.bedrock", "aws"), ("az.ai.openai", "azure"), ("gcp.vertex_ai", "google"), ("mistral_ai", "mistral"),
     ("x_ai", "x-ai"), ("ibm.watsonx.ai", "ibm.watsonx.ai")],
)
def test_provider_ids(sent: str, expected: str) -> None:
    assert decode_attrs({"gen_ai.provider.name": sent}).provider == expected


def test_error_status_sets_the_level_and_message() -> None:
    spans = record(one_span("call", {}, status=Status(StatusCode.ERROR, "boom")))
    (observation,) = decode_both(spans).observations
    assert (observation.level, observation.status_message) == ("ERROR", "boom")
    assert decode_attrs({"langfuse.observation.level": "WARNING"}).level == "WARNING"


def test_langfuse_cost_buckets_map_to_units() -> None:
    details = {"input": 0.001, "output": 0.002, "input_cached_tokens": 0.0005, "input_custom": 0.1}
    observation = decode_attrs({"langfuse.observation.cost_details": json.dumps(details)})
    # "input_custom" has no costline unit: it only counts in the total 0.001 + 0.002 + 0.0005 + 0.1 = 0.1035
    assert observation.provided_cost == {"input_tokens": Decimal("0.001"), "output_tokens": Decimal("0.002"),
                                         "cache_read_tokens": Decimal("0.0005"), "total": Decimal("0.1035")}
    given_total = decode_attrs({"langfuse.observation.cost_details": '{"total": 0.5, "output": 0.2}'})
    assert given_total.provided_cost == {"output_tokens": Decimal("0.2"), "total": Decimal("0.5")}


def test_no_usage_attribute_means_no_usage() -> None:
    observation = decode_attrs({"gen_ai.request.model": "gpt-4o"})
    assert observation.usage is None
    assert observation.provided_cost is None


# ---------------------------------------------------------------- bad input


def test_bad_spans_are_rejected_one_by_one() -> None:
    body = request_json(
        span_json("xyz"),
        span_json("00000000000000a2", traceId="0" * 32),
        span_json("00000000000000a3", traceId="abc"),
        {"traceId": TRACE_HEX, "name": "no span id"},
        span_json("00000000000000a5", attributes={"gen_ai.usage.input_tokens": -3}),
        span_json("00000000000000a6", startTimeUnixNano="yesterday"),
        span_json("00000000000000A7", parentSpanId="0000000000000000"),
    )
    decoded = decode_otlp(body, JSON)
    assert decoded.accepted == ["00000000000000a7"]
    assert decoded.observations[0].parent_id is None  # an all-zero parent is no parent
    prefix = "resourceSpans[0].scopeSpans[0].spans"
    assert [(e.id, e.message) for e in decoded.errors] == [
        (f"{prefix}[0]", f"{prefix}[0].spanId: expected 16 hex characters, got 'xyz'"),
        ("00000000000000a2", f"{prefix}[1].traceId: an all-zero id is invalid"),
        ("00000000000000a3", f"{prefix}[2].traceId: expected 32 hex characters, got 'abc'"),
        (f"{prefix}[3]", f"{prefix}[3].spanId: required field is missing"),
        ("00000000000000a5",
         f'{prefix}[4].attributes["gen_ai.usage.input_tokens"]: expected a non-negative integer token count, got -3'),
        ("00000000000000a6",
         f"{prefix}[5].startTimeUnixNano: expected unix nanoseconds (an integer or a decimal string), got 'yesterday'"),
    ]


def test_bad_protobuf_span_id_is_rejected_alone() -> None:
    request = encode_spans(record(one_span("a", {})) + record(one_span("b", {}), span_ids=[0xB1]))
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01\x02"
    decoded = decode_otlp(request.SerializeToString(), PB)
    assert decoded.accepted == ["00000000000000b1"]
    assert [e.message for e in decoded.errors] == [
        "resourceSpans[0].scopeSpans[0].spans[0].spanId: expected 8 bytes, got 2"
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"\xff\xff\xff\xff", PB, "not a protobuf ExportTraceServiceRequest"),
        (b"{not json", JSON, "not valid JSON"),
        (b"[1, 2]", JSON, "must be an object"),
        (b'{"resourceSpans": {}}', JSON, "resourceSpans: expected an array"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": 3}]}]}', JSON, "resourceSpans[0].scopeSpans[0].spans"),
    ],
)
def test_undecodable_body_is_400(body: bytes, content_type: str, fragment: str) -> None:
    with pytest.raises(IngestError) as info:
        decode_otlp(body, content_type)
    assert info.value.status == 400
    assert fragment in str(info.value)


def test_wrong_content_type_is_415() -> None:
    with pytest.raises(IngestError, match="use application/x-protobuf or application/json") as info:
        decode_otlp(b"{}", "text/plain")
    assert info.value.status == 415


@pytest.mark.parametrize(("body", "content_type"), [(b"", PB), (b"{}", JSON), (b"", JSON),
                                                    (ExportTraceServiceRequest().SerializeToString(), PB)])
def test_empty_request_is_empty(body: bytes, content_type: str) -> None:
    assert decode_otlp(body, content_type) == Decoded(merge=False)


def test_json_and_protobuf_decode_identically_for_a_mixed_batch() -> None:
    def build(tracer: Tracer) -> None:
        root = tracer.start_span("agent", start_time=T0, attributes={"gen_ai.operation.name": "invoke_agent",
                                                                     "langfuse.trace.tags": ["x"]})
        context = trace_api.set_span_in_context(root)
        llm = tracer.start_span("chat", context=context, start_time=T0, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 7,
            "gen_ai.usage.output_tokens": 3, "gen_ai.request.top_p": 0.5, "gen_ai.request.stop_sequences": ["\n"],
        })
        llm.end(end_time=T1)
        root.end(end_time=T1)

    decoded = decode_both(record(build, scope=("pydantic-ai", "1.0")))
    assert [o.type for o in decoded.observations] == ["generation", "agent"]
    assert decoded.observations[0].model_parameters == {"top_p": 0.5, "stop_sequences": ["\n"]}


# ---------------------------------------------------------------- responses


def test_partial_success_protobuf() -> None:
    assert encode_response(0, "", PB) == b""
    response = ExportTraceServiceResponse()
    response.ParseFromString(encode_response(3, "3 spans rejected", PB))
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message == "3 spans rejected"


def test_partial_success_json() -> None:
    assert encode_response(0, "", JSON) == b"{}"
    assert json.loads(encode_response(3, "bad ids", "application/json; charset=utf-8")) == {
        "partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad ids"}
    }
