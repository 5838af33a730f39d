"""Seed data for the dashboard tests, with figures worked out by hand from list prices.

gpt-4o-mini: $0.15 in / $0.60 out per 1M tokens; gpt-4o: $2.50 in / $10.00 out per 1M tokens.

- "past" events, in the month before now's (day 10 at 09:00 UTC, so in every zone within ±9 h the same month):
  - trace t-1 (user alice, session s-1, name chat): span sp-1, under it gen-1 gpt-4o 10,000 in / 2,000 out
    = 0.025 + 0.020 = **$0.045**, and gen-2 gpt-4o-mini 2,000 in / 1,000 out = 0.0003 + 0.0006 = **$0.0009**;
    the trace costs **$0.0459**.
  - trace t-2 (user bob, session s-2): gen-3 gpt-4o-mini 2,000 / 1,000 = **$0.0009** at 23:30 UTC on day 10:
    day 10 in UTC, day 11 in Europe/Berlin (00:30).
  - trace t-3 (user bob): gen-4 ``acme-llm-9`` (no price anywhere): **unpriced**, day 12 12:00 UTC.
  The previous month totals **$0.0468** priced, 4 calls, 1 unpriced.
- "today" events, 30 s before the test starts:
  - gen-5 gpt-4o 1,000 / 500 = 0.0025 + 0.005 = **$0.0075**, user alice (trace t-4)
  - gen-6 gpt-4o-mini 2,000 / 1,000 = **$0.0009**, user ``<script>alert(1)</script>`` (trace t-5)
  - gen-7 model ``<script>alert('m')</script>``: unpriced (trace t-6)
  Today: **$0.0084**, 3 calls, 1 unpriced.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import httpx

XSS_USER: Final = "<script>alert(1)</script>"
XSS_MODEL: Final = "<script>alert('m')</script>"
PAST_TOTAL: Final = Decimal("0.0468")
TODAY_TOTAL: Final = Decimal("0.0084")
TRACE_1_TOTAL: Final = Decimal("0.0459")


def previous_month_day(now: datetime, day: int, hour: int, minute: int = 0) -> datetime:
    first = datetime(now.year, now.month, 1, tzinfo=UTC)
    before = (first - timedelta(days=1)).replace(day=day, hour=hour, minute=minute)
    return before


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _gen(gid: str, trace: str, model: str, start: datetime, tokens: tuple[int, int], **extra: Any) -> dict[str, Any]:
    return {"type": "generation", "id": gid, "trace_id": trace, "name": "answer", "model": model,
            "provider": "openai", "start_time": _iso(start), "end_time": _iso(start + timedelta(seconds=1)),
            "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]}, **extra}


def events(now: datetime) -> list[dict[str, Any]]:
    d10 = previous_month_day(now, 10, 9)
    late = previous_month_day(now, 10, 23, 30)
    d12 = previous_month_day(now, 12, 12)
    today = now - timedelta(seconds=30)
    return [
        {"type": "trace", "id": "t-1", "name": "chat", "user_id": "alice", "session_id": "s-1", "tags": ["beta"]},
        {"type": "span", "id": "sp-1", "trace_id": "t-1", "name": "pipeline", "start_time": _iso(d10),
         "end_time": _iso(d10 + timedelta(seconds=9))},
        _gen("gen-1", "t-1", "gpt-4o", d10 + timedelta(seconds=1), (10_000, 2_000), parent_id="sp-1",
             environment="production"),
        _gen("gen-2", "t-1", "gpt-4o-mini", d10 + timedelta(seconds=5), (2_000, 1_000), parent_id="sp-1",
             environment="production"),
        {"type": "trace", "id": "t-2", "name": "chat", "user_id": "bob", "session_id": "s-2"},
        _gen("gen-3", "t-2", "gpt-4o-mini", late, (2_000, 1_000), environment="production"),
        {"type": "trace", "id": "t-3", "name": "batch", "user_id": "bob", "session_id": "s-2"},
        {**_gen("gen-4", "t-3", "acme-llm-9", d12, (5_000, 100), environment="staging"), "provider": None},
        _gen("gen-5", "t-4", "gpt-4o", today, (1_000, 500), user_id="alice", session_id="s-3"),
        _gen("gen-6", "t-5", "gpt-4o-mini", today, (2_000, 1_000), user_id=XSS_USER),
        {**_gen("gen-7", "t-6", XSS_MODEL, today, (100, 10)), "provider": None},
    ]


class Receiver:
    """A webhook receiver on a loopback port that answers 200 (for the alert delivery history)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def seed(client: httpx.Client, now: datetime, webhook: str) -> None:
    reply = client.post("/v1/ingest", json={"events": events(now)})
    assert reply.status_code == 200, reply.text
    budget = {"id": "monthly", "name": "Monthly project", "window": "month", "limit": "1.00"}
    assert client.post("/v1/budgets", json=budget).status_code == 201
    per_user = {"id": "per-user-day", "name": "Per user per day", "window": "day", "per": "user", "limit": "0.01"}
    assert client.post("/v1/budgets", json=per_user).status_code == 201
    assert client.put("/v1/channels/hook", json={"webhook": webhook, "secret": "s" * 32}).status_code == 200
    rule = client.post("/v1/alerts", json={"name": "big-call", "kind": "request_cost", "threshold": 1,
                                           "channels": ["hook"]})
    assert rule.status_code == 201, rule.text
    sent = client.post(f"/v1/alerts/{rule.json()['id']}/test")
    assert sent.status_code == 200, sent.text
