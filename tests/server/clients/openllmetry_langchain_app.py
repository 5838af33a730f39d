"""An application calling a LangChain ``ChatOpenAI`` with OpenLLMetry's LangChain AND OpenAI instrumentations
both on (opentelemetry-instrumentation-langchain, -openai), so one model call is reported twice (LangChain's
``ChatOpenAI.chat`` span and the OpenAI client's ``openai.chat`` span below it), exporting OTLP/HTTP to
costline. The OpenAI calls go to OPENAI_BASE_URL (a local server speaking OpenAI's protocol). Prints the trace
id and the spans as JSON."""

import json
import os
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.langchain import LangchainInstrumentor
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


class Recorder(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[dict[str, str | None]] = []

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        parent = format(span.parent.span_id, "016x") if span.parent else None
        self.spans.append({"name": span.name, "trace_id": format(ctx.trace_id, "032x"),
                           "span_id": format(ctx.span_id, "016x"), "parent_id": parent})


recorder = Recorder()
provider = TracerProvider()
provider.add_span_processor(recorder)
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
    endpoint=os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
    headers={"Authorization": os.environ["COSTLINE_AUTH"]},
)))
trace.set_tracer_provider(provider)
OpenAIInstrumentor().instrument(tracer_provider=provider)
LangchainInstrumentor().instrument(tracer_provider=provider)

from langchain_openai import ChatOpenAI  # noqa: E402 - instrumented after the provider is set

chat = ChatOpenAI(model="gpt-4o", max_retries=0, api_key="sk-test", base_url=os.environ["OPENAI_BASE_URL"])
reply = chat.invoke("Hi")
assert reply.content

provider.force_flush()
provider.shutdown()
trace_ids = {s["trace_id"] for s in recorder.spans}
assert len(trace_ids) == 1, recorder.spans
json.dump({"trace_id": trace_ids.pop(), "spans": recorder.spans}, sys.stdout)
