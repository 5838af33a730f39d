"""Where a notification channel may deliver: public addresses, and the hosts the operator allows.

A project key defines channels, so without a policy it could point one into the network the server runs in
(the cloud metadata service at 169.254.169.254, an admin port on loopback, a database on a private range) and
use test sends to reach or scan it. The policy, for every channel whoever created it:

- **When a channel is saved** (``check_channel``), every host its URL would contact is found (a webhook's
  host; for an apprise URL the SMTP host of ``mailto``/``mailtos``, the URL's host for services that take one
  such as ``json``/``xml``/``form``/``ntfy``/``gotify``, nothing for services with a fixed public host such as
  Slack, Discord, Teams or PagerDuty), the host is normalised (an IP literal in any spelling the resolver
  accepts: ``2130706433``, ``0x7f000001``, ``127.1``, ``[::ffff:127.0.0.1]``) and names are resolved; an
  address that is not public refuses the channel with an error naming the field. A name that does not
  resolve is accepted: the send-time check decides.
- **When a notice is sent** (``guarded``), every connection the delivery opens, by whatever library (httpx for
  webhooks, requests and smtplib inside apprise), is checked at connect time through a Python audit hook on
  ``socket.connect``/``socket.sendto``: the address checked is the one being connected, so a DNS answer that
  changes between the check and the connection (rebinding) cannot pass. Local (Unix) sockets are refused.

Public means ``ipaddress``'s ``is_global`` and not multicast, for the IPv4 address embedded in an IPv6 one too
(``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4, Teredo). ``COSTLINE_CHANNEL_ALLOW_HOSTS`` lists exceptions:
addresses or networks (``10.0.0.0/8``, ``127.0.0.1``, ``::1``) and host names (``smtp.corp.internal``, allowed
with whatever addresses they resolve to when a notice is sent).
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from costline.control.channels import Channel, ChannelError, apprise_module, parse_channel
from costline.errors import CostlineError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING: Final = "COSTLINE_CHANNEL_ALLOW_HOSTS"
_NAT64: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_HOST_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


class DestinationRefusedError(OSError):
    """A connection a delivery tried to open to an address the policy refuses (raised inside the library that
    connects, which reports it as a connection failure; the guard keeps the reason)."""


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    for network in _NAT64:
        if address in network:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if 1 < int(address) < 1 << 32:  # IPv4-compatible ``::a.b.c.d`` (deprecated, still routed by some stacks)
        return ipaddress.IPv4Address(int(address))
    return None


def _kind(address: Address) -> str:
    """What sort of non-public address this is, in words."""
    for test, words in ((address.is_unspecified, "the unspecified address"), (address.is_loopback, "a loopback "
                        "address"), (address.is_link_local, "a link-local address"), (address.is_multicast,
                        "a multicast address"), (address.is_private, "a private address")):
        if test:
            return words
    return "not a public address"


def parse_allow_hosts(text: str) -> tuple[str, ...]:
    """The ``COSTLINE_CHANNEL_ALLOW_HOSTS`` entries (comma or space separated), each an address, a network
    (CIDR) or a host name; raises ``CostlineError`` naming a bad entry."""
    entries: list[str] = []
    for raw in text.replace(",", " ").split():
        entry = raw.strip().lower().strip("[]").rstrip(".")
        try:
            entries.append(str(ipaddress.ip_network(entry, strict=False)))
            continue
        except ValueError:
            pass
        if not entry or not set(entry) <= _HOST_CHARS or len(entry) > 253 or "/" in entry:
            raise CostlineError(f"{raw!r} is neither an address, a network (10.0.0.0/8) nor a host name")
        entries.append(entry)
    return tuple(dict.fromkeys(entries))


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Public addresses, plus the operator's exceptions (``parse_allow_hosts`` entries)."""

    allow: tuple[str, ...] = ()
    networks: tuple[Network, ...] = field(init=False, repr=False)
    names: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        networks: list[Network] = []
        names: set[str] = set()
        for entry in self.allow:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        object.__setattr__(self, "networks", tuple(networks))
        object.__setattr__(self, "names", frozenset(names))

    @classmethod
    def from_setting(cls, text: str) -> DestinationPolicy:
        return cls(parse_allow_hosts(text))

    def refusal(self, address: Address) -> str | None:
        """Why a connection to ``address`` is refused, or None when it is public or allowed."""
        embedded = _embedded_v4(address) if isinstance(address, ipaddress.IPv6Address) else None
        candidates = [a for a in (embedded, address) if a is not None]
        if any(a in n for a in candidates for n in self.networks if a.version == n.version):
            return None
        bad = [a for a in candidates if not a.is_global or a.is_multicast]
        return _kind(bad[0]) if bad else None

    def name_allowed(self, host: str) -> bool:
        return normal_host(host) in self.names

    def check_host(self, host: str, port: int | None, field_path: str) -> None:
        """Raises ``ChannelError`` naming ``field_path`` when ``host`` is, or resolves to, an address the policy
        refuses. A resolved address is not repeated in the message (it would reveal internal DNS names)."""
        name = normal_host(host)
        if not name:
            raise ChannelError(f"{field_path}: the URL has no host")
        if name in self.names:
            return
        literal = ip_literal(name)
        addresses = [literal] if literal is not None else resolve(name, port)
        for address in addresses:
            why = self.refusal(address)
            if why is None:
                continue
            what = f"{name} is {why}" if literal is not None else f"{name} resolves to {why}"
            raise ChannelError(f"{field_path}: {what}; channels deliver to public addresses only, unless the "
                               f"operator allows the host ({ALLOW_SETTING})")

    def check_channel(self, channel: Channel, path: str) -> None:
        """Raises ``ChannelError`` (naming ``<path>.webhook`` or ``<path>.apprise``) when the channel would
        contact a refused address."""
        for host, port in channel_hosts(channel):
            self.check_host(host, port, f"{path}.{channel.kind}")

    def check_specs(self, channels: Mapping[str, Mapping[str, Any]]) -> None:
        """``check_channel`` for each channel definition of a control document (``channels.<name>``)."""
        for name, spec in channels.items():
            self.check_channel(parse_channel(name, spec, f"channels.{name}"), f"channels.{name}")


#: the policy when the operator allows nothing: public addresses only
PUBLIC_ONLY: Final = DestinationPolicy()


def normal_host(host: str) -> str:
    return host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def ip_literal(host: str) -> Address | None:
    """``host`` as an address when it is one in any spelling the system resolver accepts (``127.1``, ``0x7f.1``,
    ``2130706433``), without a DNS query; None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
    except ValueError:
        pass
    try:  # inet_aton reads the decimal, hex, octal and short forms the resolver (and so every client) accepts
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, UnicodeError, ValueError):
        return None


def resolve(host: str, port: int | None) -> list[Address]:
    """The addresses ``host`` resolves to now; empty when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return []
    found: list[Address] = []
    for info in infos:
        try:
            found.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return found


def channel_hosts(channel: Channel) -> list[tuple[str, int | None]]:
    """The hosts (and ports) a channel's deliveries connect to, as far as its URL says."""
    if channel.kind == "webhook":
        parts = urlsplit(channel.url)
        return [(parts.hostname or "", parts.port)]
    plugin = apprise_module().Apprise.instantiate(channel.url)
    if plugin is None:
        return []
    if hasattr(plugin, "smtp_host"):  # mailto/mailtos: the SMTP server (smtp=..., or the address's domain)
        return [(str(plugin.smtp_host or plugin.host or ""), plugin.port)]
    if "host" in getattr(plugin, "template_tokens", {}) and getattr(plugin, "host", None):
        return [(str(plugin.host), getattr(plugin, "port", None))]
    return []  # a service with a fixed public host (Slack, Discord, Teams, PagerDuty, ...)


# send time ---------------------------------------------------------------------------------------------------------
@dataclass
class Guard:
    """One delivery's connection check: the policy, the addresses its allowed names had when the send began,
    and the refusals (for the delivery's error): ``refused`` names the address (for the operator's log),
    ``kinds`` only says what sort of address it was (what the project may see)."""

    policy: DestinationPolicy
    allowed: frozenset[Address] = frozenset()
    refused: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def check(self, family: int, address: Any) -> None:
        if family == getattr(socket, "AF_UNIX", None) or not isinstance(address, tuple) or not address:
            self._refuse("a local socket", "a local socket")
        host = str(address[0])
        literal = ip_literal(host)
        addresses = [literal] if literal is not None else resolve(host, None)
        if not addresses:
            self._refuse(f"{host} does not resolve", "a name that does not resolve")
        for found in addresses:
            if found in self.allowed:
                continue
            why = self.policy.refusal(found)
            if why is not None:
                self._refuse(f"{found} is {why}" if literal is not None else f"{host} resolves to {why}", why)

    def _refuse(self, why: str, kind: str) -> None:
        self.refused.append(why)
        self.kinds.append(kind)
        raise DestinationRefusedError(13, f"costline refused to connect: {why}")


_active: contextvars.ContextVar[Guard | None] = contextvars.ContextVar("costline_destination_guard", default=None)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" and event != "socket.sendto":
        return
    guard = _active.get()
    if guard is None:
        return
    sock = args[0]
    guard.check(getattr(sock, "family", -1), args[-1])


@functools.cache
def _install_hook() -> None:
    """Adds the audit hook once per process; it does nothing outside a ``guarded`` block."""
    sys.addaudithook(_audit)


@contextmanager
def guarded(policy: DestinationPolicy, hosts: Iterable[tuple[str, int | None]] = ()) -> Iterator[Guard]:
    """Inside the block, every connection this thread (and work run in a copy of its context) opens is checked
    against ``policy``; the ``hosts`` the policy allows by name are resolved now and their addresses allowed."""
    _install_hook()
    allowed = frozenset(a for host, port in hosts if policy.name_allowed(host) for a in resolve(normal_host(host),
                                                                                                port))
    guard = Guard(policy, allowed)
    token = _active.set(guard)
    try:
        yield guard
    finally:
        _active.reset(token)
