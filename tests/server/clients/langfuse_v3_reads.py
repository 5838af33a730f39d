"""Reads costs back through the unmodified Langfuse Python SDK 3.x's REST client (``langfuse.api``), whose
pydantic models parse every response: a shape costline gets wrong fails here. Prints the parsed objects."""

import json
import sys
from datetime import datetime

from langfuse import Langfuse

spec = json.loads(sys.argv[1])
langfuse = Langfuse()
api = langfuse.api
since = datetime.fromisoformat(spec["from"])

out = {
    "budget": api.trace.list(user_id=spec["user"], from_timestamp=since).dict(),
    "page": api.trace.list(page=2, limit=2, order_by="timestamp.asc").dict(),
    "tagged": api.trace.list(tags=["a", "b"], environment=["production", "staging"]).dict(),
    "trace": api.trace.get(spec["trace"]).dict(),
    "generations": api.observations.get_many(user_id=spec["user"], type="GENERATION", from_start_time=since).dict(),
    "observation": api.observations.get(spec["observation"]).dict(),
    "sessions": api.sessions.list().dict(),
    "session": api.sessions.get(spec["session"]).dict(),
}
try:
    api.trace.list(limit=10**9)
except Exception as exc:  # the SDK raises its ApiError with the status and body
    out["bad_limit"] = {"status": getattr(exc, "status_code", None), "body": getattr(exc, "body", None)}
json.dump(out, sys.stdout, default=str)
