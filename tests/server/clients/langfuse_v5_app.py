"""An application instrumented with the unmodified Langfuse SDK v5; only LANGFUSE_HOST and the keys point it
at costline. Prints the trace id and the generation's id as JSON."""

import json
import sys

from langfuse import Langfuse, propagate_attributes

langfuse = Langfuse()  # LANGFUSE_HOST / LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY from the environment
assert langfuse.auth_check(), "auth_check failed"

with langfuse.start_as_current_observation(name="request", as_type="span") as root:
    with propagate_attributes(user_id="user-7", session_id="session-7", tags=["checkout"], trace_name="chat"):
        with langfuse.start_as_current_observation(
            name="llm-call",
            as_type="generation",
            model="gpt-4o",
            # Langfuse usage keys are disjoint buckets: 600 uncached input, 400 cached, 200 output
            usage_details={"input": 600, "input_cached_tokens": 400, "output": 200},
            metadata={"feature": "checkout"},
        ) as generation:
            generation_id = generation.id
        root.score(name="quality", value=0.9)
    trace_id = root.trace_id

langfuse.flush()
langfuse.shutdown()
json.dump({"trace_id": trace_id, "generation_id": generation_id}, sys.stdout)
