"""An app calling LiteLLM with costline's callback registered; run in its own process by tests/sdk/test_litellm.py
(LiteLLM leaves event loops and sockets open at exit, which a test process must not inherit). The OpenAI
calls go to the local server named by the first argument; the recorded generations are written as JSON
to the file named by the second."""

import json
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: LiteLLM's own map, bundled

import litellm

from costline.sdk import Tracker
from costline.sdk.integrations.litellm import CostlineLogger

base = sys.argv[1]
tracker = Tracker()  # local mode: events kept in memory
litellm.callbacks = [CostlineLogger(tracker)]
messages = [{"role": "user", "content": "hi"}]
litellm.completion(model="openai/gpt-4o", api_base=base, api_key="x", messages=messages)
chunks = list(litellm.completion(model="openai/gpt-4o", api_base=base, api_key="x", messages=messages,
                                 stream=True, stream_options={"include_usage": True}))
try:
    litellm.completion(model="openai/error-429", api_base=base, api_key="x", messages=messages, num_retries=0)
except Exception as exc:  # the app's own handling; costline recorded it
    print(type(exc).__name__, file=sys.stderr)
import time  # noqa: E402

deadline = time.monotonic() + 10  # LiteLLM runs success callbacks of streams on a worker thread
while len([e for e in tracker.events() if e.get("type") == "generation"]) < 3 and time.monotonic() < deadline:
    time.sleep(0.05)
events = [e for e in tracker.events() if e.get("type") == "generation"]
for event in events:  # in memory the usage is costline's Usage record
    usage = event.get("usage")
    if hasattr(usage, "quantities"):
        event["usage"] = dict(usage.quantities)
with open(sys.argv[2], "w", encoding="utf-8") as out:  # LiteLLM prints to stdout itself
    json.dump({"events": events, "chunks": len(chunks)}, out, default=str)
tracker.shutdown()
