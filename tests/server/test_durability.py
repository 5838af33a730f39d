"""Acknowledged data survives kill -9: send batches, kill the server the moment the last 2xx arrives,
restart it on the same store, and every acknowledged event is there exactly once."""

from __future__ import annotations

import uuid

import httpx
from tests.server.harness import Server

from costline.store import open_store

BATCHES = 20
PER_BATCH = 250


def test_kill_9_after_acknowledged_batches(fresh_server: Server) -> None:
    server = fresh_server
    acknowledged: list[str] = []
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client:
        for b in range(BATCHES):
            events = [
                {"id": uuid.uuid4().hex, "trace_id": f"trace-{b}", "model": "gpt-4o",
                 "usage": {"input_tokens": 100 + i, "output_tokens": 10}, "start_time": "2026-11-01T12:00:00Z"}
                for i in range(PER_BATCH)
            ]
            r = client.post("/v1/ingest", json={"events": events})
            assert r.status_code == 200
            acknowledged.extend(e["id"] for e in events)
            if b == 5:  # resend a batch: retries must not duplicate
                assert client.post("/v1/ingest", json={"events": events}).status_code == 200
    server.kill9()

    server.start()  # restart on the same store: replays the WAL / recovers
    server.stop()
    store = open_store(server.store_url)
    try:
        assert store.count_observations(server.project_id) == len(acknowledged) == BATCHES * PER_BATCH
        found = store.get_observations(server.project_id, acknowledged[:500])
        assert len(found) == 500
    finally:
        store.close()
