"""What the SDK retries and what it gives up on, against a real local HTTP server that answers 400, 207 or 503
as the test tells it: request counts show no retry of a 4xx or of a 207's rejected items, bounded retries of
a 5xx, and the spill file's lines carry the reasons; ``costline replay`` sends them again."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from costline.core.resolve import PriceBook
from costline.sdk import Tracker

FAST: dict[str, Any] = {"flush_interval": 0.05, "min_backoff": 0.01, "max_backoff": 0.05}


class Ingest:
    """``POST /v1/ingest`` answering ``mode``: ``ok``, ``400`` (the whole batch), ``207`` (events whose
    ``name`` is ``bad`` are rejected with a message naming their path), ``503``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[list[dict[str, Any]]] = []
        ingest = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events = json.loads(gzip.decompress(body))["events"]
                ingest.requests.append(events)
                status, reply = ingest.answer(events)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, events: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        if self.mode == "400":
            return 400, {"message": "the project is read-only"}
        if self.mode == "503":
            return 503, {"message": "the store is unavailable: try again"}
        errors = [{"id": e["id"], "message": f"events[{i}].name: 'bad' is not allowed"}
                  for i, e in enumerate(events) if self.mode == "207" and e.get("name") == "bad"]
        status = 200 if not errors else (207 if len(errors) < len(events) else 400)
        return status, {"accepted": len(events) - len(errors), "rejected": len(errors), "errors": errors}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    server = Ingest()
    yield server
    server.close()


def tracker(ingest: Ingest, book: PriceBook, spill: Path, **kwargs: Any) -> Tracker:
    return Tracker(host=ingest.url, public_key="pk", secret_key="sk", book=book, spill_path=spill,
                   **{**FAST, **kwargs})


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_4xx_is_not_retried_and_is_spilled_with_the_servers_message(
        ingest: Ingest, bundled_book: PriceBook, tmp_path: Path) -> None:
    ingest.mode = "400"
    spill = tmp_path / "spill.jsonl"
    t = tracker(ingest, bundled_book, spill, batch_size=10)
    for _ in range(3):
        t.record_generation(model="gpt-4o", usage={"input_tokens": 10})
    assert t.flush(timeout=30)
    stats = t.stats
    t.shutdown()
    assert len(ingest.requests) == 1  # one request, never retried
    assert (stats["retries"], stats["failed_batches"], stats["spilled"], stats["sent"]) == (0, 1, 3, 0)
    found = lines(spill)
    assert len(found) == 3
    assert {(f["kind"], f["status"], f["reason"]) for f in found} == {
        ("refused", 400, "HTTP 400: the project is read-only")}
    assert all(f["at"] and f["event"]["model"] == "gpt-4o" for f in found)


def test_a_207_spills_the_rejected_items_only(ingest: Ingest, bundled_book: PriceBook, tmp_path: Path) -> None:
    ingest.mode = "207"
    spill = tmp_path / "spill.jsonl"
    t = tracker(ingest, bundled_book, spill, batch_size=10)
    with t.trace(name="t"):
        for name in ("good", "bad", "good", "bad", "good"):
            with t.span(name=name):
                pass
    assert t.flush(timeout=30)
    stats = t.stats
    t.shutdown()
    assert len(ingest.requests) == 1  # the 207's rejected items are not sent again
    sent = ingest.requests[0]
    assert len(sent) == 6  # five spans and the trace
    assert (stats["sent"], stats["rejected"], stats["retries"], stats["spilled"]) == (4, 2, 0, 2)
    found = lines(spill)
    bad = [e for e in sent if e.get("name") == "bad"]
    assert [f["event"]["id"] for f in found] == [e["id"] for e in bad]
    assert all(f["kind"] == "rejected" and f["status"] == 207 for f in found)
    positions = [sent.index(e) for e in bad]
    assert [f["reason"] for f in found] == [f"events[{i}].name: 'bad' is not allowed" for i in positions]


def test_a_503_is_retried_to_the_cap_then_spilled_and_resent_by_the_next_tracker(
        ingest: Ingest, bundled_book: PriceBook, tmp_path: Path) -> None:
    ingest.mode = "503"
    spill = tmp_path / "spill.jsonl"
    t = tracker(ingest, bundled_book, spill, batch_size=10, max_retries=3)
    for i in range(4):
        t.record_generation(model="gpt-4o", usage={"input_tokens": 10 + i})
    assert t.flush(timeout=30)
    stats = t.stats
    t.shutdown()
    assert len(ingest.requests) == 4  # the first attempt and 3 retries, then it gives up
    assert all(len(r) == 4 for r in ingest.requests)
    assert (stats["retries"], stats["gave_up"], stats["failed_batches"], stats["spilled"]) == (3, 4, 1, 4)
    found = lines(spill)
    assert {(f["kind"], f["status"]) for f in found} == {("gave_up", 503)}
    assert all(f["reason"] == "gave up after 4 attempts: HTTP 503: the store is unavailable: try again"
               for f in found)

    ingest.mode = "ok"  # the server is back: the next tracker sends the given-up events first
    ingest.requests.clear()
    again = tracker(ingest, bundled_book, spill)
    assert again.stats["restored"] == 4 and not spill.exists()
    assert again.flush(timeout=30)
    again.shutdown()
    assert sorted(e["usage"]["input_tokens"] for r in ingest.requests for e in r) == [10, 11, 12, 13]


def test_the_retry_time_is_capped_too(ingest: Ingest, bundled_book: PriceBook, tmp_path: Path) -> None:
    ingest.mode = "503"
    spill = tmp_path / "spill.jsonl"
    t = tracker(ingest, bundled_book, spill, max_retries=1000, max_retry_time=0.3)
    t.record_generation(model="gpt-4o", usage={"input_tokens": 10})
    assert t.flush(timeout=60)
    stats = t.stats
    t.shutdown()
    assert stats["gave_up"] == 1 and 1 <= len(ingest.requests) < 1000
    assert lines(spill)[0]["kind"] == "gave_up"


def test_rejected_lines_stay_for_replay(ingest: Ingest, bundled_book: PriceBook, tmp_path: Path) -> None:
    ingest.mode = "400"
    spill = tmp_path / "spill.jsonl"
    t = tracker(ingest, bundled_book, spill)
    t.record_generation(model="gpt-4o", usage={"input_tokens": 10})
    assert t.flush(timeout=30)
    t.shutdown()
    ingest.mode = "ok"
    ingest.requests.clear()
    again = tracker(ingest, bundled_book, spill)  # a refused batch would be refused again: not re-sent
    assert again.stats["restored"] == 0 and len(lines(spill)) == 1
    again.shutdown()
    assert ingest.requests == []

    replayed = subprocess.run([sys.executable, "-m", "costline", "replay", str(spill), "--host", ingest.url,
                               "--public-key", "pk", "--secret-key", "sk", "--json"],
                              capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout) == {"sent": 1, "rejected": 0, "failed": 0, "kept": 0}
    assert not spill.exists() and len(ingest.requests) == 1


def test_replay_keeps_what_fails_again_with_the_new_reason(ingest: Ingest, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    events = [{"type": "span", "id": f"s{i}", "trace_id": "t", "name": name}
              for i, name in enumerate(["good", "bad", "good"])]
    spill.write_text("".join(json.dumps(e) + "\n" for e in events))  # an older version's bare events
    ingest.mode = "207"
    replayed = subprocess.run([sys.executable, "-m", "costline", "replay", str(spill), "--host", ingest.url,
                               "--json"], capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 1
    assert json.loads(replayed.stdout) == {"sent": 2, "rejected": 1, "failed": 0, "kept": 1}
    kept = lines(spill)
    assert [(k["kind"], k["status"], k["reason"], k["event"]["id"]) for k in kept] == [
        ("rejected", 207, "events[1].name: 'bad' is not allowed", "s1")]
