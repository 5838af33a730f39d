"""Reads observations back through the unmodified Langfuse Python SDK 5.x (the dev environment's), whose
``api.observations.get_many`` calls the cursor-paged ``/api/public/v2/observations``: its pydantic models
parse every response. Prints the parsed pages."""

import json
import sys
from datetime import datetime

from langfuse import Langfuse

spec = json.loads(sys.argv[1])
langfuse = Langfuse()
api = langfuse.api
since = datetime.fromisoformat(spec["from"])
first = api.observations.get_many(user_id=spec["user"], type="GENERATION", from_start_time=since, limit=2,
                                  fields="core,basic,usage")
pages = [first.dict()]
cursor = first.meta.cursor
while cursor:
    page = api.observations.get_many(user_id=spec["user"], type="GENERATION", from_start_time=since, limit=2,
                                     fields="core,basic,usage", cursor=cursor)
    pages.append(page.dict())
    cursor = page.meta.cursor
json.dump({"pages": pages}, sys.stdout, default=str)
langfuse.shutdown()
