"""An application streaming a chat completion through the Langfuse SDK's OpenAI wrapper WITHOUT
``stream_options.include_usage``, so no chunk carries usage; only LANGFUSE_HOST and the keys point it at
costline, OPENAI_BASE_URL at a local server speaking OpenAI's protocol. Prints the trace id as JSON."""

import json
import sys

from langfuse import get_client, observe
from langfuse.openai import OpenAI

client = OpenAI(max_retries=0)  # OPENAI_BASE_URL / OPENAI_API_KEY from the environment


@observe()
def answer() -> str:
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                            stream=True)
    for _ in stream:
        pass
    trace_id = get_client().get_current_trace_id()
    assert trace_id
    return trace_id


trace_id = answer()
langfuse = get_client()
langfuse.flush()
langfuse.shutdown()
client.close()
json.dump({"trace_id": trace_id}, sys.stdout)
