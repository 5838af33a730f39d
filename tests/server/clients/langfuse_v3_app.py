"""The same application on the unmodified Langfuse SDK 3.x (run from a virtualenv that has langfuse 3)."""

import json
import sys

from langfuse import Langfuse

langfuse = Langfuse()
assert langfuse.auth_check(), "auth_check failed"

with langfuse.start_as_current_span(name="request") as root:
    root.update_trace(user_id="user-3", session_id="session-3", tags=["checkout"], name="chat")
    with langfuse.start_as_current_generation(
        name="llm-call",
        model="gpt-4o",
        usage_details={"input": 600, "input_cached_tokens": 400, "output": 200},
    ) as generation:
        generation_id = generation.id
    root.score(name="quality", value=0.9)
    trace_id = root.trace_id

langfuse.flush()
langfuse.shutdown()
json.dump({"trace_id": trace_id, "generation_id": generation_id}, sys.stdout)
