"""Channels cannot reach into the network the server runs in (SSRF).

Refusals at save time are checked inside a ``guarded`` block, which would record any connection attempt to a
non-public address: none may happen. The only real targets are loopback receivers (an HTTP server and an SMTP
server on 127.0.0.1): the send-time check is shown with ``localhost``, a name that resolves to loopback, as a
channel saved when its name pointed elsewhere (DNS rebinding) would be.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from costline.control.channels import ChannelError, parse_channel
from costline.control.destinations import PUBLIC_ONLY, DestinationPolicy, guarded, parse_allow_hosts
from costline.control.notify import Delivery, Notice, Notifier
from costline.errors import CostlineError

SECRET = "destination-test-secret-0123"
AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

#: webhook hosts that are not public, in the spellings an attacker would try; (host, what the error says)
REFUSED_WEBHOOKS = [
    ("169.254.169.254", "a link-local address"),  # the cloud metadata service
    ("127.0.0.1", "a loopback address"),
    ("127.0.0.2", "a loopback address"),
    ("localhost", "resolves to a loopback address"),
    ("LOCALHOST.", "resolves to a loopback address"),
    ("2130706433", "a loopback address"),  # 127.0.0.1 in decimal
    ("0x7f000001", "a loopback address"),  # in hex
    ("0x7f.1", "a loopback address"),
    ("127.1", "a loopback address"),
    ("0177.0.0.1", "a loopback address"),  # octal
    ("[::ffff:127.0.0.1]", "a loopback address"),  # IPv4-mapped IPv6
    ("[::ffff:a9fe:a9fe]", "a link-local address"),  # the metadata service, mapped
    ("[::7f00:1]", "a loopback address"),  # IPv4-compatible IPv6 (deprecated form)
    ("[64:ff9b::a9fe:a9fe]", "a link-local address"),  # the metadata service through NAT64
    ("[2002:7f00:1::]", "a loopback address"),  # 6to4 around 127.0.0.1
    ("[::1]", "a loopback address"),
    ("[fd00::1]", "a private address"),  # IPv6 unique local
    ("[fe80::1]", "a link-local address"),
    ("0.0.0.0", "the unspecified address"),
    ("0", "the unspecified address"),
    ("[::]", "the unspecified address"),
    ("10.0.0.1", "a private address"),
    ("172.16.5.4", "a private address"),
    ("192.168.1.1", "a private address"),
    ("100.64.0.1", "not a public address"),  # carrier-grade NAT
    ("198.18.0.1", "a private address"),  # benchmarking
    ("224.0.0.1", "a multicast address"),
    ("255.255.255.255", "a private address"),
]

REFUSED_APPRISE = [
    ("json://2130706433/", "2130706433 is a loopback address"),
    ("jsons://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("xml://[::1]:8080/", "::1 is a loopback address"),
    ("form://localhost/", "localhost resolves to a loopback address"),
    ("gotify://192.168.1.2/AbCdEfGh0123", "192.168.1.2 is a private address"),
    ("ntfys://10.1.2.3/topic", "10.1.2.3 is a private address"),
    ("mailto://user:pass@example.com?smtp=127.0.0.1&from=a@example.com&to=b@example.com",
     "127.0.0.1 is a loopback address"),
    ("mailtos://user:pass@example.com?smtp=0x7f000001&to=b@example.com", "0x7f000001 is a loopback address"),
    ("mailto://127.0.0.1:2525?mode=insecure&from=a@example.com&to=b@example.com", "127.0.0.1 is a loopback address"),
]

#: accepted when saved (nothing is sent): fixed public hosts, a public address, names that do not resolve here
ACCEPTED = [
    {"apprise": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general"},
    {"apprise": "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"},
    {"apprise": "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js"},
    {"apprise": "pagerduty://integration@apikey"},
    {"apprise": "ntfy://mytopic"},
    {"webhook": "https://8.8.8.8/hook", "secret": SECRET},
    {"webhook": "https://[2606:4700::1111]/hook", "secret": SECRET},
    {"webhook": "https://hooks.example.invalid/costline", "secret": SECRET},
]


def _webhook(host: str, port: int | None = None) -> dict[str, Any]:
    return {"webhook": f"http://{host}{f':{port}' if port else ''}/hook", "secret": SECRET}


@pytest.mark.parametrize(("host", "why"), REFUSED_WEBHOOKS)
def test_webhooks_to_internal_addresses_are_refused_when_saved(host: str, why: str) -> None:
    channel = parse_channel("x", _webhook(host), "channels.x")
    with guarded(PUBLIC_ONLY) as guard, pytest.raises(ChannelError) as info:
        PUBLIC_ONLY.check_channel(channel, "channels.x")
    message = str(info.value)
    assert message.startswith("channels.x.webhook: ") and why in message, message
    assert message.endswith("(COSTLINE_CHANNEL_ALLOW_HOSTS)")
    assert guard.refused == []  # refused before any connection was tried


def test_a_resolved_address_is_not_repeated() -> None:
    with pytest.raises(ChannelError) as info:
        PUBLIC_ONLY.check_channel(parse_channel("x", _webhook("localhost"), "channels.x"), "channels.x")
    assert "127.0.0.1" not in str(info.value) and "::1" not in str(info.value)


@pytest.mark.parametrize(("url", "why"), REFUSED_APPRISE)
def test_apprise_urls_are_refused_for_every_host_they_contact(url: str, why: str) -> None:
    channel = parse_channel("x", {"apprise": url}, "channels.x")
    with guarded(PUBLIC_ONLY) as guard, pytest.raises(ChannelError) as info:
        PUBLIC_ONLY.check_channel(channel, "channels.x")
    assert str(info.value).startswith(f"channels.x.apprise: {why}"), str(info.value)
    assert guard.refused == []


@pytest.mark.parametrize("spec", ACCEPTED)
def test_public_and_fixed_host_channels_are_accepted(spec: dict[str, Any]) -> None:
    with guarded(PUBLIC_ONLY) as guard:
        PUBLIC_ONLY.check_specs({"ok": spec})
    assert guard.refused == []


def test_the_operator_allows_hosts_explicitly() -> None:
    policy = DestinationPolicy.from_setting("127.0.0.1, 10.0.0.0/8 smtp.corp.internal [::1]")
    assert policy.allow == ("127.0.0.1/32", "10.0.0.0/8", "smtp.corp.internal", "::1/128")
    for host in ("127.0.0.1", "2130706433", "[::ffff:127.0.0.1]", "10.200.3.4", "[::1]", "smtp.corp.internal"):
        policy.check_channel(parse_channel("x", _webhook(host), "channels.x"), "channels.x")
    for host in ("127.0.0.2", "169.254.169.254", "192.168.0.1"):
        with pytest.raises(ChannelError):
            policy.check_channel(parse_channel("x", _webhook(host), "channels.x"), "channels.x")
    by_name = DestinationPolicy(("localhost",))
    by_name.check_channel(parse_channel("x", _webhook("localhost"), "channels.x"), "channels.x")
    with pytest.raises(ChannelError):  # the name is allowed, not every loopback address
        by_name.check_channel(parse_channel("x", _webhook("127.0.0.1"), "channels.x"), "channels.x")


@pytest.mark.parametrize("text", ["not a host!", "10.0.0.0/33", "http://x"])
def test_a_bad_allow_entry_is_an_error(text: str) -> None:
    with pytest.raises(CostlineError, match="is neither an address, a network"):
        parse_allow_hosts(text)


def test_the_setting_is_read() -> None:
    from costline.settings import Settings

    assert Settings.from_env({}).channel_allow_hosts == ()
    got = Settings.from_env({"COSTLINE_CHANNEL_ALLOW_HOSTS": "127.0.0.1,localhost"}).channel_allow_hosts
    assert got == ("127.0.0.1/32", "localhost")
    with pytest.raises(CostlineError, match=r"^COSTLINE_CHANNEL_ALLOW_HOSTS: .b!. is neither"):
        Settings.from_env({"COSTLINE_CHANNEL_ALLOW_HOSTS": "a,b!"})


# send time: real loopback receivers -------------------------------------------------------------------------------
class Receiver:
    """An HTTP server on 127.0.0.1 that answers ``status`` with ``body``, or holds the request ``hold_s``."""

    def __init__(self, status: int = 200, body: bytes = b"", hold_s: float = 0.0) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if hold_s:
                    threading.Event().wait(hold_s)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting (the time-out test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def notice() -> Notice:
    return Notice("p", "rule", "rule-1", "", "test", "info", "title", "body", AT, {})


def deliver(channel_spec: dict[str, Any], policy: DestinationPolicy, **options: Any) -> Delivery:
    channel = parse_channel("hook", channel_spec, "channels.hook")  # saved earlier, when its name was public
    recorded: list[Delivery] = []
    notifier = Notifier({"hook": channel}, recorded.append, clock=lambda: AT, sleep=lambda s: None, policy=policy,
                        **options)
    [delivery] = notifier.send(notice(), ["hook"])
    assert recorded == [delivery]
    return delivery


def test_send_time_check_refuses_a_name_that_now_resolves_to_loopback(receiver: Receiver) -> None:
    delivery = deliver(_webhook("localhost", receiver.port), PUBLIC_ONLY)
    assert (delivery.status, delivery.attempts) == ("failed", 1)  # refused: not retried
    assert delivery.public_error is not None
    assert delivery.public_error.startswith("channel 'hook': the destination is not allowed (a loopback address)")
    assert "127.0.0.1" not in delivery.public_error and "::1" not in delivery.public_error
    assert receiver.requests == 0
    allowed = deliver(_webhook("localhost", receiver.port), DestinationPolicy(("localhost",)))
    assert allowed.status == "sent" and receiver.requests == 1


def test_send_time_check_covers_apprise(receiver: Receiver) -> None:
    delivery = deliver({"apprise": f"json://localhost:{receiver.port}/"}, PUBLIC_ONLY)
    assert delivery.status == "failed" and receiver.requests == 0
    assert delivery.public_error is not None and "the destination is not allowed" in delivery.public_error
    assert deliver({"apprise": f"json://localhost:{receiver.port}/"}, DestinationPolicy(("127.0.0.1", "::1"))
                   ).status == "sent"
    assert receiver.requests == 1


def test_send_time_check_covers_smtp() -> None:
    class Box:
        messages = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            Box.messages += 1
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    smtp = Controller(Box(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        url = f"mailto://localhost:{port}?mode=insecure&from=costline@example.com&to=ops@example.com"
        delivery = deliver({"apprise": url}, PUBLIC_ONLY, attempts=1)
        assert delivery.status == "failed" and Box.messages == 0
        assert deliver({"apprise": url}, DestinationPolicy(("localhost",)), attempts=1).status == "sent"
        assert Box.messages == 1
    finally:
        smtp.stop()


def test_the_project_cannot_tell_a_closed_port_from_a_silent_one() -> None:
    loopback = DestinationPolicy(("127.0.0.1",))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once the socket is closed
    silent = Receiver(hold_s=5)
    try:
        refused = deliver(_webhook("127.0.0.1", closed), loopback, attempts=1, timeout_s=0.5)
        timed_out = deliver(_webhook("127.0.0.1", silent.port), loopback, attempts=1, timeout_s=0.5)
    finally:
        silent.close()
    assert refused.status == timed_out.status == "failed"
    assert refused.public_error == timed_out.public_error == (
        "channel 'hook': no connection to the receiver, or no answer within 0.5 s")
    assert refused.error != timed_out.error  # the operator's log tells them apart
    assert refused.response_code is timed_out.response_code is None


def test_the_receivers_reply_is_never_shown_to_the_project() -> None:
    r = Receiver(status=403, body=b"<html>internal admin console, build 7.3.1</html>")
    try:
        delivery = deliver(_webhook("127.0.0.1", r.port), DestinationPolicy(("127.0.0.1",)), attempts=1)
    finally:
        r.close()
    assert delivery.public_error == "channel 'hook': the receiver answered HTTP 403"
    assert delivery.error is not None and "internal admin console" in delivery.error  # the operator's log only
    assert delivery.response_code == 403
