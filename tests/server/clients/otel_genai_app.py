"""An application that uses the OpenTelemetry SDK's OTLP/HTTP exporter (protobuf) to send a GenAI span, as an
instrumented app does; only the endpoint and the Authorization header point it at costline."""

import json
import os
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import Compression, OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

exporter = OTLPSpanExporter(
    endpoint=os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
    headers={"Authorization": os.environ["COSTLINE_AUTH"]},
    compression=Compression.Gzip if os.environ.get("GZIP") else Compression.NoCompression,
)
provider = TracerProvider(resource=Resource.create({"service.name": "shop", "deployment.environment": "prod"}))
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("opentelemetry.instrumentation.openai.v2")

with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT) as span:
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.provider.name", "openai")
    span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
    span.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")
    span.set_attribute("gen_ai.usage.input_tokens", 2006)
    span.set_attribute("gen_ai.usage.cache_read.input_tokens", 1920)
    span.set_attribute("gen_ai.usage.output_tokens", 300)
    span.set_attribute("gen_ai.conversation.id", "conv-1")
    span.set_attribute("user.id", "otel-user")
    ctx = span.get_span_context()

provider.force_flush()
provider.shutdown()
json.dump({"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}, sys.stdout)
