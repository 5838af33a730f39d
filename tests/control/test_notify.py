"""Alert delivery against real receivers: an SMTP server (aiosmtpd) on loopback for apprise's email, and an HTTP
server on loopback for the signed webhook. Backoff is checked with an injected ``sleep`` that records what it
was asked to wait; time comes from a fixed clock.

Hand-worked figures: the fixed instant 2026-11-01T12:00:00Z is 20,758 days after the Unix epoch (56 years of 365
days, 14 leap days from 1972 to 2024, then 304 days from January to October 2026), so its Unix time is
20,758 × 86,400 + 12 × 3,600 = 1,793,534,400.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from costline.control.channels import redact_url
from costline.control.destinations import DestinationPolicy
from costline.control.notify import (
    BODY_MAX,
    TITLE_MAX,
    Channel,
    ChannelError,
    Delivery,
    Dispatcher,
    Notice,
    Notifier,
    parse_channel,
)
from costline.control.webhook import sign, verify

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
UNIX_AT = 1_793_534_400
SECRET = "hook-secret-0123456789abcdef"
PASSWORD = "Sup3rS3cretPW"
#: the receivers here listen on loopback, which channels reach only when the operator allows it
LOOPBACK = DestinationPolicy(("127.0.0.1",))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def notice(**changes: Any) -> Notice:
    base: dict[str, Any] = {
        "project_id": "proj-1", "rule": "daily chat spend", "rule_id": "rule-7", "scope": "user=alice",
        "event": "firing", "severity": "warning", "title": "[costline] budget 'chat' for user=alice at 85.0%",
        "body": "used: 4.25\nlimit: 5", "at": AT,
        "details": {"used": "4.25", "limit": "5", "currency": "USD", "threshold": 80},
    }
    base.update(changes)
    return Notice(**base)


# receivers --------------------------------------------------------------------------------------------------------
class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.refuse = False

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


def subject_of(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def text_of(message: Message) -> str:
    parts = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    assert parts, message.as_string()[:500]
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(parts[0].get_content_charset() or "utf-8")


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


Answer = tuple[int, dict[str, str], bytes]


class Receiver:
    """An HTTP server on loopback that records each POST and answers from a script (then 200)."""

    def __init__(self, script: list[Answer], gate: threading.Event | None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script = list(script)
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((dict(self.headers.items()), body))
                receiver.arrived.set()
                if gate is not None:
                    gate.wait(20)
                status, headers, text = receiver.script.pop(0) if receiver.script else (200, {}, b"ok")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/costline"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(script: list[Answer] | None = None, gate: threading.Event | None = None) -> Receiver:
        made.append(Receiver(script or [], gate))
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()
        r.server.server_close()


class Harness:
    """A notifier with a fixed clock, a recording sleep and a recording delivery log."""

    def __init__(self, channels: dict[str, Channel], **options: Any) -> None:
        self.sleeps: list[float] = []
        self.recorded: list[Delivery] = []
        options.setdefault("timeout_s", 5.0)
        options.setdefault("policy", LOOPBACK)
        self.notifier = Notifier(channels, self.recorded.append, clock=lambda: AT, sleep=self.sleeps.append,
                                 **options)


def hook(url: str, **extra: Any) -> Channel:
    return parse_channel("ops-hook", {"webhook": url, "secret": SECRET, **extra}, "channels.ops-hook")


def email(port: int, user: str = "") -> Channel:
    url = f"mailto://{user}127.0.0.1:{port}?mode=insecure&from=costline@example.com&to=ops@example.com"
    return parse_channel("ops-email", {"apprise": url}, "channels.ops-email")


# email through apprise --------------------------------------------------------------------------------------------
def test_email_reaches_a_real_smtp_server(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    h = Harness({"ops-email": email(port)})
    [delivery] = h.notifier.send(notice(), ["ops-email"])
    assert (delivery.status, delivery.attempts, delivery.error, delivery.response_code) == ("sent", 1, None, None)
    assert (delivery.channel, delivery.rule_id, delivery.scope, delivery.event, delivery.at) == (
        "ops-email", "rule-7", "user=alice", "firing", AT)
    assert h.recorded == [delivery] and h.sleeps == []
    [(recipients, message)] = box.messages
    assert recipients == ["ops@example.com"] and message["To"] == "ops@example.com"
    assert "[costline] budget 'chat' for user=alice at 85.0%" in subject_of(message)
    text = text_of(message)
    # the body's lines once, then the details the body does not already have
    assert text.count("used: 4.25") == 1 and text.count("limit: 5") == 1
    assert "currency: USD" in text and "threshold: 80" in text


def test_email_keeps_non_ascii_text(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    h = Harness({"ops-email": email(port)})
    title = "Budget für Zürich überschritten — 予算 ⚠"
    [delivery] = h.notifier.send(notice(title=title, body="Ausgaben: 5,20 € (ß, é, 中文)", details={}), ["ops-email"])
    assert delivery.status == "sent", delivery.error
    [(_, message)] = box.messages
    assert title in subject_of(message)
    assert "Ausgaben: 5,20 € (ß, é, 中文)" in text_of(message)


def test_huge_email_is_clipped_with_a_marker(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    h = Harness({"ops-email": email(port)})
    [delivery] = h.notifier.send(notice(title="T" * 1_000_000, body="B" * 1_000_000, details={}), ["ops-email"])
    assert delivery.status == "sent", delivery.error
    [(_, message)] = box.messages
    subject = subject_of(message)
    assert subject.endswith("[truncated by costline: 1000000 characters in all]") and len(subject) <= TITLE_MAX
    text = text_of(message)
    assert "[truncated by costline: 1000000 characters in all]" in text and text.count("B") < BODY_MAX


def test_email_server_down_fails_without_leaking_the_password() -> None:
    closed = free_port()  # nothing listens there
    h = Harness({"ops-email": email(closed, user=f"alert:{PASSWORD}@")}, attempts=2)
    [delivery] = h.notifier.send(notice(), ["ops-email"])
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert delivery.error is not None and delivery.error.startswith("channel 'ops-email': ")
    assert "Connection error" in delivery.error and PASSWORD not in delivery.error
    assert h.sleeps == [1.0]


def test_email_refused_by_the_server_says_why(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    box.refuse = True
    h = Harness({"ops-email": email(port)}, attempts=2, backoff_s=3.0)
    [delivery] = h.notifier.send(notice(), ["ops-email"])
    assert (delivery.status, delivery.attempts, h.sleeps) == ("failed", 2, [3.0])
    assert delivery.error is not None and delivery.error.startswith("channel 'ops-email': ")
    assert "ops@example.com" in delivery.error  # apprise's own words say which recipient failed
    assert box.messages == []


# the signed webhook -----------------------------------------------------------------------------------------------
def test_webhook_is_signed_and_carries_the_notice(receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    h = Harness({"ops-hook": hook(r.url, headers={"X-Team": "finops"})})
    [delivery] = h.notifier.send(notice(), ["ops-hook"])
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.error) == ("sent", 1, 200, None)
    assert len(delivery.id) == 32 and int(delivery.id, 16) >= 0
    [(headers, body)] = r.requests
    assert verify(SECRET, headers, body, now=AT)
    assert verify(SECRET, {k.lower(): v for k, v in headers.items()}, body, now=AT.timestamp())
    assert not verify("another-secret-0123456789", headers, body, now=AT)
    assert not verify(SECRET, headers, body + b" ", now=AT)
    expected_mac = hmac.new(SECRET.encode(), b"1793534400." + body, hashlib.sha256).hexdigest()
    assert headers["X-Costline-Signature"] == f"sha256={expected_mac}"
    assert headers["X-Costline-Timestamp"] == str(UNIX_AT)
    assert headers["X-Costline-Event"] == "firing"
    assert headers["X-Costline-Delivery"] == delivery.id
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("costline/")
    assert headers["X-Team"] == "finops"
    assert json.loads(body) == {
        "type": "costline.alert", "id": delivery.id, "event": "firing", "severity": "warning",
        "project_id": "proj-1", "rule": "daily chat spend", "rule_id": "rule-7", "scope": "user=alice",
        "title": "[costline] budget 'chat' for user=alice at 85.0%", "body": "used: 4.25\nlimit: 5",
        "at": "2026-11-01T12:00:00Z",
        "details": {"used": "4.25", "limit": "5", "currency": "USD", "threshold": 80},
    }


def test_webhook_details_keep_exact_money_and_nested_mappings(receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    h = Harness({"ops-hook": hook(r.url)})
    details = {"used": Decimal("4.250000000001"), "by": MappingProxyType({"gpt-4o": Decimal("1.5")}), "n": 3}
    [delivery] = h.notifier.send(notice(details=details, at=datetime(2026, 11, 1, 13, 30, tzinfo=timezone(
        timedelta(hours=1, minutes=30)))), ["ops-hook"])
    payload = json.loads(r.requests[0][1])
    assert payload["details"] == {"used": "4.250000000001", "by": {"gpt-4o": "1.5"}, "n": 3}
    assert payload["at"] == "2026-11-01T12:00:00Z"  # 13:30 at UTC+01:30
    assert delivery.status == "sent"


def test_webhook_retries_5xx_with_backoff_and_one_delivery_id(receiver: Callable[..., Receiver]) -> None:
    r = receiver([(503, {}, b"busy"), (503, {}, b"busy")])
    h = Harness({"ops-hook": hook(r.url)}, backoff_s=1.0)
    [delivery] = h.notifier.send(notice(), ["ops-hook"])
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.error) == ("sent", 3, 200, None)
    assert h.sleeps == [1.0, 2.0]
    assert [json.loads(b)["id"] for _, b in r.requests] == [delivery.id] * 3
    assert [hd["X-Costline-Delivery"] for hd, _ in r.requests] == [delivery.id] * 3
    assert all(verify(SECRET, hd, b, now=AT) for hd, b in r.requests)
    assert h.recorded == [delivery]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_answers_are_retried(receiver: Callable[..., Receiver], status: int) -> None:
    r = receiver([(status, {}, b"")])
    h = Harness({"ops-hook": hook(r.url)}, backoff_s=0.5)
    [delivery] = h.notifier.send(notice(), ["ops-hook"])
    assert (delivery.status, delivery.attempts, h.sleeps) == ("sent", 2, [0.5])


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_other_answers_are_not_retried(receiver: Callable[..., Receiver], status: int) -> None:
    r = receiver([(status, {"Location": "http://127.0.0.1:1/elsewhere"}, b"bad signature")])
    h = Harness({"ops-hook": hook(r.url)})
    [delivery] = h.notifier.send(notice(), ["ops-hook"])
    assert (delivery.status, delivery.attempts, delivery.response_code, h.sleeps) == ("failed", 1, status, [])
    assert delivery.error == f"channel 'ops-hook': the receiver answered HTTP {status}: bad signature"
    assert len(r.requests) == 1


def test_receiver_down_fails_after_all_attempts_naming_the_channel() -> None:
    closed = free_port()
    h = Harness({"ops-hook": hook(f"http://127.0.0.1:{closed}/hook?token=tok-abcdef123")}, attempts=4, backoff_s=0.25)
    [delivery] = h.notifier.send(notice(), ["ops-hook"])
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 4, None)
    assert h.sleeps == [0.25, 0.5, 1.0]
    assert delivery.error is not None and delivery.error.startswith("channel 'ops-hook': could not connect")
    assert SECRET not in delivery.error and "tok-abcdef123" not in delivery.error
    assert h.recorded == [delivery]


def test_error_text_from_the_receiver_is_redacted(receiver: Callable[..., Receiver]) -> None:
    echo = f"you sent secret={SECRET} token=tok-abcdef123".encode()
    r = receiver([(500, {}, echo), (500, {}, echo)])
    h = Harness({"ops-hook": hook(r.url + "?token=tok-abcdef123")}, attempts=2)
    [delivery] = h.notifier.send(notice(), ["ops-hook"])
    assert delivery.error == "channel 'ops-hook': the receiver answered HTTP 500: you sent secret=*** token=***"


@pytest.mark.parametrize(("retry_after", "expected"), [
    ("7", 7.0),  # seconds, as asked
    ("3600", 60.0),  # at most a minute
    ("Sun, 01 Nov 2026 12:00:30 GMT", 30.0),  # an HTTP date 30 s after the fixed clock
    ("soon", 1.0),  # unreadable: the usual backoff
])
def test_retry_after_is_honoured(receiver: Callable[..., Receiver], retry_after: str, expected: float) -> None:
    r = receiver([(429, {"Retry-After": retry_after}, b"slow down")])
    h = Harness({"ops-hook": hook(r.url)}, backoff_s=1.0)
    [delivery] = h.notifier.send(notice(), ["ops-hook"])
    assert (delivery.status, delivery.attempts, h.sleeps) == ("sent", 2, [expected])


def test_unknown_channel_is_a_failed_delivery_and_others_still_go(receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    h = Harness({"ops-hook": hook(r.url)})
    first, second = h.notifier.send(notice(), ["x", "ops-hook"])
    assert (first.status, first.error, first.attempts, first.channel) == ("failed", "unknown channel 'x'", 0, "x")
    assert second.status == "sent" and first.id != second.id
    assert h.recorded == [first, second]


def test_a_failing_delivery_log_does_not_reach_the_caller(receiver: Callable[..., Receiver],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    r = receiver()

    def broken(delivery: Delivery) -> None:
        raise RuntimeError("disk full")

    notifier = Notifier({"ops-hook": hook(r.url)}, broken, clock=lambda: AT, sleep=lambda s: None, policy=LOOPBACK)
    with caplog.at_level(logging.ERROR, logger="costline.control.notify"):
        [delivery] = notifier.send(notice(), ["ops-hook"])
    assert delivery.status == "sent" and "could not record delivery" in caplog.text


def test_replace_channels(receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    h = Harness({})
    assert h.notifier.send(notice(), ["ops-hook"])[0].error == "unknown channel 'ops-hook'"
    h.notifier.replace_channels({"ops-hook": hook(r.url)})
    assert h.notifier.send(notice(), ["ops-hook"])[0].status == "sent"


def test_webhook_keeps_non_ascii_and_clips_a_huge_notice(receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    h = Harness({"ops-hook": hook(r.url)})
    h.notifier.send(notice(title="Zürich — 予算 ⚠", body="5,20 € \ud800 end", details={"note": "naïve"}), ["ops-hook"])
    h.notifier.send(notice(title="T\n" * 500_000, body="B" * 1_000_000), ["ops-hook"])
    small, huge = (json.loads(b) for _, b in r.requests)
    assert (small["title"], small["body"], small["details"]) == ("Zürich — 予算 ⚠", "5,20 € ? end", {"note": "naïve"})
    marker = " … [truncated by costline: 1000000 characters in all]"
    # the title on one line: 500,000 "T"s joined by 499,999 spaces, then cut (the cut's trailing space dropped)
    title_marker = " … [truncated by costline: 999999 characters in all]"
    assert huge["title"] == ("T " * TITLE_MAX)[: TITLE_MAX - len(title_marker)].rstrip() + title_marker
    assert len(huge["title"]) <= TITLE_MAX
    assert len(huge["body"]) == BODY_MAX and huge["body"] == "B" * (BODY_MAX - len(marker)) + marker
    assert all(verify(SECRET, hd, b, now=AT) for hd, b in r.requests)


# verify -----------------------------------------------------------------------------------------------------------
def test_verify_rejects_stale_future_and_malformed_requests() -> None:
    body = b'{"type":"costline.alert"}'
    good = {"X-Costline-Timestamp": str(UNIX_AT), "X-Costline-Signature": sign(SECRET, UNIX_AT, body)}
    assert verify(SECRET, good, body, now=AT + timedelta(seconds=300))
    assert not verify(SECRET, good, body, now=AT + timedelta(seconds=301))
    assert not verify(SECRET, good, body, now=AT - timedelta(seconds=301))
    assert verify(SECRET, good, body, now=UNIX_AT + 60, tolerance_s=60)
    assert not verify(SECRET, {"X-Costline-Timestamp": str(UNIX_AT)}, body, now=AT)
    assert not verify(SECRET, {**good, "X-Costline-Timestamp": "12abc"}, body, now=AT)
    assert not verify(SECRET, {**good, "X-Costline-Timestamp": str(UNIX_AT + 1)}, body, now=AT)
    assert not verify(SECRET, {**good, "X-Costline-Signature": "sha256=" + "0" * 64}, body, now=AT)
    assert not verify(SECRET, {**good, "X-Costline-Signature": "sha256=ü"}, body, now=AT)


# the background dispatcher ----------------------------------------------------------------------------------------
def test_dispatcher_delivers_in_the_background(receiver: Callable[..., Receiver]) -> None:
    gate = threading.Event()
    r = receiver(gate=gate)
    h = Harness({"ops-hook": hook(r.url)})
    dispatcher = Dispatcher(h.notifier)
    try:
        dispatcher.submit(notice(), ["ops-hook"])  # returns while the receiver holds the request
        assert r.arrived.wait(20)
        assert h.recorded == []
        assert not dispatcher.flush(timeout_s=0.05)
        gate.set()
        assert dispatcher.flush(timeout_s=20)
        assert [d.status for d in h.recorded] == ["sent"] and dispatcher.dropped == 0
    finally:
        gate.set()
        dispatcher.close()


def test_dispatcher_drops_and_counts_when_full(receiver: Callable[..., Receiver],
                                               caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()
    r = receiver(gate=gate)
    h = Harness({"ops-hook": hook(r.url)})
    dispatcher = Dispatcher(h.notifier, max_queue=1)
    try:
        dispatcher.submit(notice(rule_id="a"), ["ops-hook"])
        assert r.arrived.wait(20)  # the thread is busy with "a"; the queue is empty
        dispatcher.submit(notice(rule_id="b"), ["ops-hook"])  # queued
        with caplog.at_level(logging.WARNING, logger="costline.control.notify"):
            dispatcher.submit(notice(rule_id="c"), ["ops-hook"])  # no room
        assert dispatcher.dropped == 1 and "dropped the firing notice of rule c" in caplog.text
        gate.set()
        assert dispatcher.flush(timeout_s=20)
        assert [d.rule_id for d in h.recorded] == ["a", "b"]
    finally:
        gate.set()
        dispatcher.close()
    dispatcher.submit(notice(rule_id="d"), ["ops-hook"])  # after close: dropped, counted
    assert dispatcher.dropped == 2


def test_dispatcher_close_delivers_what_is_queued(receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    h = Harness({"ops-hook": hook(r.url)})
    dispatcher = Dispatcher(h.notifier)
    for rule_id in ("a", "b", "c"):
        dispatcher.submit(notice(rule_id=rule_id), ["ops-hook"])
    dispatcher.close(timeout_s=20)
    assert [d.rule_id for d in h.recorded] == ["a", "b", "c"]
    Dispatcher(h.notifier).close()  # never started: nothing to stop


# channel definitions ----------------------------------------------------------------------------------------------
HOOK = "https://hooks.example.com/costline"


def test_parse_channel_accepts_both_kinds() -> None:
    mail = parse_channel("ops-email", {"apprise": " mailtos://me:apppass1234@gmail.com?to=ops@example.com "}, "c")
    assert (mail.name, mail.kind, mail.url, mail.secret) == (
        "ops-email", "apprise", "mailtos://me:apppass1234@gmail.com?to=ops@example.com", None)
    web = parse_channel("ops-hook", {"webhook": HOOK, "secret": SECRET, "headers": {"X-Team": "finops"}}, "c")
    assert (web.kind, web.url, web.secret, dict(web.headers)) == ("webhook", HOOK, SECRET, {"X-Team": "finops"})
    assert isinstance(web.headers, MappingProxyType)
    assert SECRET not in repr(web)
    slack = parse_channel("chat", {"apprise": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#alerts"}, "c")
    assert slack.kind == "apprise"


@pytest.mark.parametrize(("raw", "message"), [
    ("mailto://x", "channels.x: must be a mapping"),
    ({}, "channels.x: needs an 'apprise' URL or a 'webhook' URL"),
    ({"apprise": "json://localhost", "webhook": HOOK}, "channels.x: give either 'apprise' or 'webhook', not both"),
    ({"webhook": HOOK, "secret": SECRET, "retries": 3}, "channels.x.retries: unknown key"),
    ({"apprise": 5}, "channels.x.apprise: must be a string"),
    ({"apprise": "  "}, "channels.x.apprise: must not be empty"),
    ({"apprise": "foo://bar"}, "channels.x.apprise: apprise cannot use this URL"),
    ({"apprise": "https://example.com/x"}, "channels.x.apprise: apprise cannot use this URL"),
    ({"apprise": "mailto://"}, "channels.x.apprise: apprise cannot use this URL"),
    ({"apprise": "json://localhost", "secret": SECRET}, "channels.x.secret: only a webhook channel takes 'secret'"),
    ({"apprise": "json://localhost", "headers": {}}, "channels.x.headers: only a webhook channel takes 'headers'"),
    ({"webhook": ["https://h"], "secret": SECRET}, "channels.x.webhook: must be a string"),
    ({"webhook": "ftp://h/x", "secret": SECRET}, "channels.x.webhook: must be an http:// or https:// URL"),
    ({"webhook": "https:///no-host", "secret": SECRET}, "channels.x.webhook: must be an http:// or https:// URL"),
    ({"webhook": "https://h:99999/x", "secret": SECRET}, "channels.x.webhook: must be an http:// or https:// URL"),
    ({"webhook": "https://h/x\r\nHost: evil", "secret": SECRET}, "channels.x.webhook: must be one line"),
    ({"webhook": HOOK}, "channels.x.secret: a webhook needs a secret (at least 16 characters) to sign its payloads"),
    ({"webhook": HOOK, "secret": "short"}, "channels.x.secret: a webhook needs a secret (at least 16 characters)"),
    ({"webhook": HOOK, "secret": 1234567890123456789}, "channels.x.secret: must be a string, not int"),
    ({"webhook": HOOK, "secret": SECRET, "headers": ["X-A"]}, "channels.x.headers: must be a mapping"),
    ({"webhook": HOOK, "secret": SECRET, "headers": {"Bad Name": "a"}},
     "channels.x.headers.Bad Name: not a valid HTTP header name"),
    ({"webhook": HOOK, "secret": SECRET, "headers": {"X-Costline-Signature": "a"}},
     "channels.x.headers.X-Costline-Signature: costline sets this header itself"),
    ({"webhook": HOOK, "secret": SECRET, "headers": {"content-type": "text/plain"}},
     "channels.x.headers.content-type: costline sets this header itself"),
    ({"webhook": HOOK, "secret": SECRET, "headers": {"X-Team": 5}}, "channels.x.headers.X-Team: must be a string"),
    ({"webhook": HOOK, "secret": SECRET, "headers": {"X-Team": "a\r\nInjected: 1"}},
     "channels.x.headers.X-Team: must be one line"),
])
def test_parse_channel_errors_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(ChannelError) as caught:
        parse_channel("x", raw, "channels.x")
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize("name", ["", " padded ", "a\nb", "n" * 201])
def test_parse_channel_rejects_bad_names(name: str) -> None:
    with pytest.raises(ChannelError, match=r"^channels\.bad: a channel name must be 1-200 characters"):
        parse_channel(name, {"apprise": "json://localhost"}, "channels.bad")


@pytest.mark.parametrize(("url", "shown"), [
    (f"mailto://bob:{PASSWORD}@relay.example.com:2525?mode=insecure&to=b@example.com",
     "mailto://bob:***@relay.example.com:2525?mode=insecure&to=b@example.com"),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#alerts", "slack://***/***/***/#alerts"),
    ("pagerduty://integrationKey123@apiKey4567", "pagerduty://***@***"),
    ("https://u:pw12345@hooks.example.com/hook?token=abcdef&team=x", "https://u:***@hooks.example.com/hook?token=***&team=x"),
])
def test_redact_url_hides_what_is_secret(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_apprise_rejection_does_not_repeat_the_url() -> None:
    with pytest.raises(ChannelError) as caught:
        parse_channel("x", {"apprise": f"nosuch://user:{PASSWORD}@host/tok3nAbcdef"}, "channels.x")
    assert PASSWORD not in str(caught.value) and "tok3nAbcdef" not in str(caught.value)
