"""An application using the official ``openai`` client, instrumented by OpenLLMetry
(opentelemetry-instrumentation-openai), talking to a local server that speaks the OpenAI chat completions
protocol, exporting its spans to costline over OTLP/HTTP."""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

COMPLETION = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1761998400,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
              "prompt_tokens_details": {"cached_tokens": 40, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 5, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "system_fingerprint": "fp_test",
}


class FakeOpenAI(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        body = json.dumps(COMPLETION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


openai_server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
threading.Thread(target=openai_server.serve_forever, daemon=True).start()

class Recorder(SpanProcessor):
    """Remembers the ids of ended spans, so the test can look the trace up in costline."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        self.spans.append((span.name, format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")))


recorder = Recorder()
provider = TracerProvider()
provider.add_span_processor(recorder)
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
    endpoint=os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
    headers={"Authorization": os.environ["COSTLINE_AUTH"]},
)))
trace.set_tracer_provider(provider)
OpenAIInstrumentor().instrument(tracer_provider=provider)

import openai  # noqa: E402 - instrumented after the provider is set

client = openai.OpenAI(api_key="sk-test", base_url=f"http://127.0.0.1:{openai_server.server_port}/v1")
reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
assert reply.choices[0].message.content == "Hello!"

provider.force_flush()
provider.shutdown()
openai_server.shutdown()
name, trace_id, span_id = recorder.spans[-1]
json.dump({"name": name, "trace_id": trace_id, "span_id": span_id}, sys.stdout)
