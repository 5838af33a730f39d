"""The background dispatcher's threads are bounded, whatever the number of channels, and one slow project
cannot hold up the others. Receivers are real HTTP servers on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from costline.control.channels import Channel, parse_channel
from costline.control.destinations import DestinationPolicy
from costline.control.notify import Delivery, Dispatcher, Notice, Notifier

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SECRET = "dispatcher-test-secret-0123"
LOOPBACK = DestinationPolicy(("127.0.0.1",))


class Receiver:
    """Answers 200 to every POST; paths under /slow/ wait until ``release`` is set."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.startswith("/slow/"):
                    outer.release.wait(60)
                with outer.lock:
                    outer.paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def hook(name: str, url: str) -> Channel:
    return parse_channel(name, {"webhook": url, "secret": SECRET}, f"channels.{name}")


def notice(rule_id: str = "r") -> Notice:
    return Notice("p", "rule", rule_id, "", "firing", "warning", "title", "body", AT, {})


def notify_threads() -> int:
    return sum(t.name.startswith("costline-notify-") and t.is_alive() for t in threading.enumerate())


def test_threads_stay_bounded_through_200_channels_created_and_deleted(receiver: Receiver) -> None:
    before = notify_threads()
    recorded: list[Delivery] = []
    channels = {f"p{i % 10}/c{i}": hook(f"c{i}", f"{receiver.url}/c{i}") for i in range(200)}
    notifier = Notifier(channels, recorded.append, clock=lambda: AT, attempts=1, policy=LOOPBACK)
    dispatcher = Dispatcher(notifier, workers=4, group=lambda key: key.split("/", 1)[0])
    try:
        for name in channels:
            dispatcher.submit(notice(), [name])
        assert notify_threads() - before <= 4 and dispatcher.threads <= 4
        assert dispatcher.flush(timeout_s=120)
        assert len(receiver.paths) == 200 and {d.status for d in recorded} == {"sent"}
        notifier.replace_channels({})  # every channel deleted
        for name in channels:  # notices still arrive for them: each fails as an unknown channel
            dispatcher.submit(notice("after"), [name])
        assert dispatcher.flush(timeout_s=120)
        assert [d.status for d in recorded if d.rule_id == "after"] == ["failed"] * 200
        assert notify_threads() - before <= 4 and dispatcher.threads <= 4
        assert dispatcher.queued_channels == 0  # nothing is kept for the deleted channels
    finally:
        dispatcher.close(timeout_s=30)
    assert notify_threads() == before


def test_a_slow_project_does_not_hold_up_another(receiver: Receiver) -> None:
    channels = {f"slow/s{i}": hook(f"s{i}", f"{receiver.url}/slow/{i}") for i in range(6)}
    channels["fast/f"] = hook("f", f"{receiver.url}/fast")
    recorded: list[Delivery] = []
    notifier = Notifier(channels, recorded.append, clock=lambda: AT, attempts=1, timeout_s=60, policy=LOOPBACK)
    dispatcher = Dispatcher(notifier, workers=4, per_group=2, group=lambda key: key.split("/", 1)[0])
    try:
        for i in range(6):  # six slow channels of one project: they may take two threads, not all four
            dispatcher.submit(notice(), [f"slow/s{i}"])
        dispatcher.submit(notice(), ["fast/f"])
        for _ in range(300):  # up to 30 s
            if "/fast" in receiver.paths:
                break
            time.sleep(0.1)
        assert "/fast" in receiver.paths  # delivered while every slow receiver still holds its request
        assert not [p for p in receiver.paths if p.startswith("/slow/")]
    finally:
        receiver.release.set()
        assert dispatcher.flush(timeout_s=120)
        dispatcher.close(timeout_s=30)
    assert sorted(d.channel for d in recorded) == ["fast/f", *sorted(f"slow/s{i}" for i in range(6))]
