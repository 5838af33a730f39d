"""An application using the Langfuse SDK v5's OpenAI wrapper and LangChain handler, unmodified; only
LANGFUSE_HOST and the keys point it at costline (OPENAI_BASE_URL points the OpenAI calls at a local server
speaking OpenAI's protocol). Prints the trace ids as JSON."""

import json
import sys

from langchain_openai import ChatOpenAI
from langfuse import get_client, observe, propagate_attributes
from langfuse.langchain import CallbackHandler
from langfuse.openai import OpenAI

client = OpenAI(max_retries=0)  # OPENAI_BASE_URL / OPENAI_API_KEY from the environment


@observe()
def answer() -> str:
    with propagate_attributes(user_id="user-w", session_id="session-w", tags=["wrappers"]):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                                stream=True, stream_options={"include_usage": True})
        for _ in stream:
            pass
        chat = ChatOpenAI(model="gpt-4o", max_retries=0)
        chat.invoke("hi", config={"callbacks": [CallbackHandler()]})
    trace_id = get_client().get_current_trace_id()
    assert trace_id
    return trace_id


trace_id = answer()
langfuse = get_client()
langfuse.flush()
langfuse.shutdown()
client.close()
json.dump({"trace_id": trace_id}, sys.stdout)
