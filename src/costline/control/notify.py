"""Alert delivery: channels (apprise URLs or HMAC-signed webhooks), retries with backoff, a delivery log.

The alert evaluator (``control/alerts.py``) decides *whether* to notify (cooldown, de-duplication, recovery);
this module only delivers. ``Notifier.send`` tries each named channel in turn, retries what may succeed later
(5xx, 408, 429, connection errors, any apprise failure) with exponential backoff, and hands one ``Delivery``
per channel to ``record`` (the delivery log). It never raises for a delivery problem. ``Dispatcher`` runs a
notifier on a background thread so the ingest path and the evaluator never wait for the network.

Email, Slack, Teams, Discord, PagerDuty and ~100 other services go through apprise; channel definitions and
apprise's plumbing are in ``control/channels.py`` (re-exported here). The webhook wire format is in
docs/alerts-delivery.md; ``control/webhook.py`` signs and verifies it. Errors never carry a webhook secret or
the private parts of an apprise URL.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from costline.control.channels import (
    CONTROL,
    Channel,
    ChannelError,
    apprise_module,
    captured_logs,
    parse_channel,
    redact,
    url_secrets,
)
from costline.control.destinations import ALLOW_SETTING, PUBLIC_ONLY, DestinationPolicy, channel_hosts, guarded
from costline.control.webhook import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

__all__ = ["Channel", "ChannelError", "Delivery", "Dispatcher", "Notice", "Notifier", "parse_channel"]

log = logging.getLogger(__name__)

TITLE_MAX = 250  # characters; apprise's default title limit, and what email subjects and chat headers bear
BODY_MAX = 32_000  # characters; under apprise's default body limit (32,768)
RETRY_AFTER_MAX_S = 60.0
REPLY_MAX = 200  # bytes of a failed webhook's reply kept for the server log (never shown to the project)
_NOTIFY_TYPES = {"info": "info", "warning": "warning", "critical": "failure"}


@dataclass(frozen=True, slots=True)
class Notice:
    """What to tell people: one alert event (firing, resolved or test) of one rule and subject."""

    project_id: str
    rule: str
    rule_id: str
    scope: str
    event: str  # "firing" | "resolved" | "test"
    severity: str  # "info" | "warning" | "critical"
    title: str
    body: str
    at: datetime
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notice's delivery to one channel, after all its attempts: the delivery log's record."""

    id: str
    project_id: str
    channel: str
    rule_id: str
    rule: str
    scope: str
    event: str
    at: datetime
    status: str  # "sent" | "failed"
    attempts: int
    error: str | None  # for the operator (the server log): what the receiver or the library said
    response_code: int | None
    #: what the project may see (delivery log, test sends): the kind of failure only, never the receiver's reply
    #: or an error text that tells a closed port from a silent one
    public_error: str | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    retry: bool = False
    error: str | None = None
    code: int | None = None
    wait_s: float | None = None  # what the receiver asked for (Retry-After), if anything
    public: str | None = None  # ``Delivery.public_error``; None: the same as ``error``


# rendering --------------------------------------------------------------------------------------------------------
def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with a marker that says it was cut and how long it was."""
    if len(text) <= limit:
        return text
    marker = f" … [truncated by costline: {len(text)} characters in all]"
    return text[: max(0, limit - len(marker))].rstrip() + marker


def _clean(text: str) -> str:
    """Valid UTF-8 whatever came in (a lone surrogate becomes '?')."""
    return text.encode("utf-8", "replace").decode("utf-8")


def render_title(notice: Notice) -> str:
    """The notice's title on one line (newlines would break email subjects and chat headers), clipped."""
    return clip(" ".join(CONTROL.sub(" ", _clean(notice.title)).split()), TITLE_MAX)


def _json_default(value: Any) -> Any:
    """What orjson cannot encode itself: mappings as objects, sets as sorted arrays, the rest (Decimal) as text."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "-"
    if isinstance(value, Mapping | list | tuple):
        return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    return str(value)


def render_text(notice: Notice) -> str:
    """The plain-text body for apprise channels: the notice's body, then each detail as a ``key: value`` line
    (lines the body already has are not repeated), clipped to ``BODY_MAX``."""
    body = _clean(notice.body).rstrip()
    present = set(body.splitlines())
    lines = [line for line in (f"{k}: {_value(v)}" for k, v in notice.details.items()) if line not in present]
    text = "\n".join([body, *lines] if body else lines) if lines else body
    return clip(_clean(text), BODY_MAX)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def webhook_body(notice: Notice, delivery_id: str) -> bytes:
    """The webhook payload (docs/alerts-delivery.md), as sent."""
    payload = {
        "type": "costline.alert", "id": delivery_id, "event": notice.event, "severity": notice.severity,
        "project_id": notice.project_id, "rule": notice.rule, "rule_id": notice.rule_id, "scope": notice.scope,
        "title": render_title(notice), "body": clip(_clean(notice.body), BODY_MAX),
        "at": _utc(notice.at).isoformat().replace("+00:00", "Z"), "details": dict(notice.details),
    }
    return orjson.dumps(payload, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


@functools.cache
def user_agent() -> str:
    try:
        return f"costline/{importlib.metadata.version('costline')}"
    except importlib.metadata.PackageNotFoundError:
        return "costline/0+unknown"


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), at most 60; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value) if value.replace(".", "", 1).isdigit() else (
            parsedate_to_datetime(value) - _utc(now)).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def _utc_now() -> datetime:
    return datetime.now(UTC)


# delivery ----------------------------------------------------------------------------------------------------------
class Notifier:
    """Delivers notices to named channels, synchronously, with retries; records one ``Delivery`` per channel."""

    def __init__(self, channels: Mapping[str, Channel], record: Callable[[Delivery], None], *,
                 attempts: int = 4, backoff_s: float = 1.0, timeout_s: float = 10.0,
                 clock: Callable[[], datetime] = _utc_now, sleep: Callable[[float], None] = time.sleep,
                 policy: DestinationPolicy = PUBLIC_ONLY) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._channels = dict(channels)
        self._record = record
        self.attempts = attempts
        self.backoff_s = max(0.0, backoff_s)
        self.timeout_s = timeout_s
        self._clock = clock
        self._sleep = sleep
        #: where deliveries may connect (control/destinations.py); checked at every connect
        self.policy = policy
        self._lock = threading.Lock()
        self._tls_context: ssl.SSLContext | None = None

    def replace_channels(self, channels: Mapping[str, Channel]) -> None:
        with self._lock:
            self._channels = dict(channels)

    def send(self, notice: Notice, channel_names: Sequence[str]) -> list[Delivery]:
        """Deliver ``notice`` to each named channel in turn; the deliveries, also handed to ``record``."""
        deliveries: list[Delivery] = []
        for name in [channel_names] if isinstance(channel_names, str) else channel_names:
            try:
                delivery = self._deliver(notice, name)
            except Exception as exc:  # a bug here must not lose the other channels or reach the caller
                log.exception("delivery of %s to channel %r failed unexpectedly", notice.rule_id, name)
                delivery = self._delivery(notice, name, uuid.uuid4().hex, 0,
                                          _Outcome(False, error=f"channel {name!r}: internal error "
                                                               f"({type(exc).__name__})"))
            try:
                self._record(delivery)
            except Exception:
                log.exception("could not record delivery %s to channel %r", delivery.id, name)
            deliveries.append(delivery)
        return deliveries

    def _delivery(self, notice: Notice, name: str, delivery_id: str, attempts: int, outcome: _Outcome) -> Delivery:
        public = outcome.public if outcome.public is not None else outcome.error
        return Delivery(delivery_id, notice.project_id, name, notice.rule_id, notice.rule, notice.scope, notice.event,
                        self._clock(), "sent" if outcome.ok else "failed", attempts, outcome.error, outcome.code,
                        None if outcome.ok else public)

    def _deliver(self, notice: Notice, name: str) -> Delivery:
        delivery_id = uuid.uuid4().hex
        with self._lock:
            channel = self._channels.get(name)
        if channel is None:
            return self._delivery(notice, name, delivery_id, 0, _Outcome(False, error=f"unknown channel {name!r}"))
        if channel.kind == "webhook":
            try:
                body = webhook_body(notice, delivery_id)
            except (TypeError, orjson.JSONEncodeError) as exc:
                outcome = _Outcome(False, error=f"channel {name!r}: the notice's details are not JSON ({exc})")
                return self._delivery(notice, name, delivery_id, 0, outcome)

            def attempt() -> _Outcome:
                return self._post(channel, delivery_id, notice.event, body)
        elif channel.kind == "apprise":
            title, text = render_title(notice), render_text(notice)
            kind = "success" if notice.event == "resolved" else _NOTIFY_TYPES.get(notice.severity, "info")

            def attempt() -> _Outcome:
                return self._notify(channel, title, text, kind)
        else:
            outcome = _Outcome(False, error=f"channel {name!r}: unknown kind {channel.kind!r}")
            return self._delivery(notice, name, delivery_id, 0, outcome)
        hosts = channel_hosts(channel) if self.policy.names else []
        tries, outcome = 0, _Outcome(False)
        for tries in range(1, self.attempts + 1):
            with guarded(self.policy, hosts) as guard:
                outcome = attempt()
            if guard.refused and not outcome.ok and outcome.code is None:  # (another address may have answered)
                # the project is told what sort of address, not which (the address a name resolves to is private)
                outcome = _Outcome(False, error=f"channel {name!r}: refused to connect: {guard.refused[0]} "
                                                f"({ALLOW_SETTING})",
                                   public=f"channel {name!r}: the destination is not allowed ({guard.kinds[0]}); "
                                          f"channels deliver to public addresses only, unless the operator allows "
                                          f"the host")
            if outcome.ok or not outcome.retry or tries == self.attempts:
                break
            delay = outcome.wait_s if outcome.wait_s is not None else self.backoff_s * 2 ** (tries - 1)
            log.info("%s; retrying in %.1f s (attempt %d of %d)", outcome.error, delay, tries + 1, self.attempts)
            self._sleep(delay)
        if not outcome.ok:
            log.warning("delivery %s failed after %d attempt(s): %s", delivery_id, tries, outcome.error)
        return self._delivery(notice, name, delivery_id, tries, outcome)

    def _post(self, channel: Channel, delivery_id: str, event: str, body: bytes) -> _Outcome:
        secret = channel.secret or ""
        secrets = [s for s in (secret, *url_secrets(channel.url, "")) if s]
        now = self._clock()
        timestamp = int(_utc(now).timestamp())
        headers = {**channel.headers, "Content-Type": "application/json", "User-Agent": user_agent(),
                   EVENT_HEADER: CONTROL.sub("", event).encode("ascii", "replace").decode()[:100],
                   DELIVERY_HEADER: delivery_id, TIMESTAMP_HEADER: str(timestamp),
                   SIGNATURE_HEADER: sign(secret, timestamp, body)}
        where = f"channel {channel.name!r}"
        try:
            with httpx.Client(timeout=self.timeout_s, follow_redirects=False, verify=self._tls()) as client, \
                    client.stream("POST", channel.url, content=body, headers=headers) as response:
                reply = b""
                if not 200 <= response.status_code < 300:  # the start of the reply, for the server log
                    for chunk in response.iter_bytes():
                        reply += chunk
                        if len(reply) >= REPLY_MAX:
                            break
                reply = reply[:REPLY_MAX]
        except httpx.TimeoutException:
            return _Outcome(False, retry=True, error=f"{where}: no answer within {self.timeout_s:g} s",
                            public=self._unreachable(where))
        except httpx.TransportError as exc:
            return _Outcome(False, retry=True, error=redact(f"{where}: could not connect ({exc})", secrets),
                            public=self._unreachable(where))
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            return _Outcome(False, error=redact(f"{where}: could not send ({type(exc).__name__}: {exc})", secrets),
                            public=f"{where}: could not send to the webhook's URL")
        code = response.status_code
        if 200 <= code < 300:
            return _Outcome(True, code=code)
        said = " ".join(reply.decode("utf-8", "replace").split())
        error = redact(f"{where}: the receiver answered HTTP {code}" + (f": {said}" if said else ""), secrets)
        public = f"{where}: the receiver answered HTTP {code}"
        if code in (408, 429) or code >= 500:
            return _Outcome(False, retry=True, error=error, code=code, public=public,
                            wait_s=_retry_after(response.headers.get("Retry-After"), now))
        return _Outcome(False, error=error, code=code, public=public)

    def _tls(self) -> ssl.SSLContext:
        """One TLS context for every webhook client (building one costs ~0.1 s: certifi's bundle is parsed)."""
        with self._lock:
            if self._tls_context is None:
                self._tls_context = httpx.create_ssl_context()
            return self._tls_context

    def _unreachable(self, where: str) -> str:
        """One message for a refused connection, a reset and a timeout alike: which it was would tell an open
        port from a closed or filtered one."""
        return f"{where}: no connection to the receiver, or no answer within {self.timeout_s:g} s"

    def _notify(self, channel: Channel, title: str, text: str, kind: str) -> _Outcome:
        module = apprise_module()
        where = f"channel {channel.name!r}"
        asset = module.AppriseAsset(async_mode=False)
        shown: str | None = None
        with captured_logs() as capture:
            try:
                plugin = module.Apprise.instantiate(channel.url, asset=asset)
                if plugin is None:
                    return _Outcome(False, error=f"{where}: apprise cannot use its URL")
                shown = plugin.url(privacy=True)
                plugin.socket_connect_timeout = self.timeout_s
                plugin.socket_read_timeout = self.timeout_s
                sender = module.Apprise(asset=asset)
                sender.add(plugin)
                ok = bool(sender.notify(body=text, title=title, notify_type=kind,
                                        body_format=module.NotifyFormat.TEXT))
            except Exception as exc:  # apprise's plugins raise little, but a bug there must not escape
                capture.append(f"{type(exc).__name__}: {exc}")
                ok = False
        if ok:
            return _Outcome(True)
        said = "; ".join(dict.fromkeys(capture)) or "apprise reported a failure"
        return _Outcome(False, retry=True, error=redact(f"{where}: {said}", url_secrets(channel.url, shown)),
                        public=f"{where}: the service did not take the notification (the reason is in the server's "
                               f"log)")


class Dispatcher:
    """Runs a Notifier on a few background daemon threads, so that callers (the ingest path, the evaluator) never
    wait for the network. Each channel has a bounded queue of its own and keeps the order of its notices; a
    worker takes one notice from the channel that has waited longest, so a slow or failing channel (an SMTP
    server that times out through its retries) holds at most one worker, and a group of channels (a project's)
    at most ``per_group`` workers at once: the other channels and projects go on. The threads are ``workers``
    at most, started when first needed, whatever the number of channels; an emptied queue is forgotten, so a
    deleted channel leaves nothing behind. submit() returns at once; a full queue drops the notice and logs +
    counts it (attribute `dropped`)."""

    def __init__(self, notifier: Notifier, *, max_queue: int = 1000, workers: int = 8, per_group: int = 2,
                 group: Callable[[str], str] = lambda name: name) -> None:
        self.notifier = notifier
        self.dropped = 0
        self.workers = max(1, workers)
        self._max_queue = max_queue
        self._per_group = max(1, per_group)
        self._group = group
        self._lanes: dict[str, deque[Notice]] = {}
        self._ready: deque[str] = deque()  # channels with notices and no worker, longest waiting first
        self._busy: dict[str, int] = {}  # workers per group
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._pending = 0
        self._done = threading.Condition()
        self._closed = False

    @property
    def threads(self) -> int:
        """Worker threads alive (at most ``workers``)."""
        with self._done:
            return sum(t.is_alive() for t in self._threads)

    @property
    def queued_channels(self) -> int:
        """Channels with notices waiting or being delivered (an emptied queue is forgotten)."""
        with self._done:
            return len(self._lanes)

    def submit(self, notice: Notice, channel_names: Sequence[str]) -> None:
        with self._done:
            if self._closed:
                self._drop(notice, "the dispatcher is closed")
                return
            for name in dict.fromkeys(channel_names):
                lane = self._lanes.get(name)
                if lane is None:
                    lane = self._lanes[name] = deque()
                    self._ready.append(name)
                elif len(lane) >= self._max_queue:
                    self._drop(notice, f"the delivery queue of {name} is full ({self._max_queue} notices)")
                    continue
                lane.append(notice)
                self._pending += 1
            if self._idle == 0 and len(self._threads) < self.workers and self._ready:
                thread = threading.Thread(target=self._run, name=f"costline-notify-{len(self._threads) + 1}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
            self._done.notify_all()

    def _drop(self, notice: Notice, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 100 == 0:
            log.warning("dropped the %s notice of rule %s (%s): %s; %d dropped so far", notice.event,
                        notice.rule_id, notice.scope or "project", why, self.dropped)

    def _next(self) -> str | None:
        """The longest-waiting channel whose group has a worker to spare (called holding the lock)."""
        for index, name in enumerate(self._ready):
            if self._busy.get(self._group(name), 0) < self._per_group:
                del self._ready[index]
                return name
        return None

    def _run(self) -> None:
        while True:
            with self._done:
                self._idle += 1
                name = self._next()
                while name is None:
                    if self._closed and not self._ready:
                        self._idle -= 1
                        return
                    self._done.wait()
                    name = self._next()
                self._idle -= 1
                group = self._group(name)
                self._busy[group] = self._busy.get(group, 0) + 1
                notice = self._lanes[name].popleft()
            try:
                self.notifier.send(notice, (name,))
            except Exception:
                log.exception("notifier failed on a notice of rule %s", notice.rule_id)
            finally:
                with self._done:
                    self._pending -= 1
                    left = self._busy[group] - 1
                    if left:
                        self._busy[group] = left
                    else:
                        del self._busy[group]
                    if self._lanes[name]:
                        self._ready.append(name)
                    else:
                        del self._lanes[name]
                    self._done.notify_all()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every submitted notice has been delivered (or has failed); False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self._pending == 0, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (within ``timeout_s``), then stop the threads; later submissions are dropped."""
        with self._done:
            self._closed = True
            threads = list(self._threads)
            self._done.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            log.warning("the notification threads did not finish within %.1f s; %d notice(s) undelivered",
                        timeout_s, self._pending)
