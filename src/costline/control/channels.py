"""Notification channels: where alert notices go, how a definition is checked, and how secrets stay out of errors.

A channel is an apprise URL (email, Slack, Teams, Discord, PagerDuty and ~100 other services) or a webhook URL
with the secret that signs its payloads (``control/webhook.py``). ``parse_channel`` checks a definition from the
control file or the API once, with apprise's own URL parser, so a typo fails when it is saved rather than when an
alert fires. apprise is imported lazily (it loads its plugins on first use); its log is captured per send so a
failed send can say why, with the private parts of the URL hidden (``url_secrets``, ``redact``).
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from costline.errors import CostlineError

MIN_SECRET = 16
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEYS = ("apprise", "webhook", "secret", "headers")
_RESERVED_HEADERS = {"content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection"}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110 token)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
_SPLIT = re.compile(r"[/:@?&=#,;+\s]+")


class ChannelError(CostlineError, ValueError):
    """A channel definition that cannot be used; the message starts with the path of the bad field."""


@dataclass(frozen=True, slots=True)
class Channel:
    """Where notices go: an apprise URL, or a webhook URL with the secret that signs its payloads."""

    name: str
    kind: str  # "apprise" | "webhook"
    url: str
    secret: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


# channel definitions ------------------------------------------------------------------------------------------------
def _string(raw: object, path: str, what: str) -> str:
    if not isinstance(raw, str):
        raise ChannelError(f"{path}: must be a string ({what}), not {type(raw).__name__}")
    value = raw.strip()
    if not value:
        raise ChannelError(f"{path}: must not be empty ({what})")
    if len(value) > 8192 or CONTROL.search(value):
        raise ChannelError(f"{path}: must be one line of at most 8192 characters ({what})")
    return value


def parse_channel(name: str, raw: object, path: str) -> Channel:
    """A channel from its YAML/JSON definition: ``{"apprise": URL}`` or ``{"webhook": URL, "secret": S, "headers": H}``.

    Raises:
        ChannelError: naming the path of the bad field (``channels.ops-hook.secret: ...``).
    """
    if not isinstance(name, str) or not name or len(name) > 200 or CONTROL.search(name) or name != name.strip():
        raise ChannelError(f"{path}: a channel name must be 1-200 characters, without control characters or "
                           f"surrounding spaces")
    if not isinstance(raw, Mapping):
        raise ChannelError(f"{path}: must be a mapping such as {{apprise: 'mailto://...'}} or "
                           f"{{webhook: 'https://...', secret: '...'}}, not {type(raw).__name__}")
    for key in raw:
        if key not in _KEYS:
            raise ChannelError(f"{path}.{str(key)[:100]}: unknown key; a channel takes 'apprise', or 'webhook' "
                               f"with 'secret' and 'headers'")
    if "apprise" in raw and "webhook" in raw:
        raise ChannelError(f"{path}: give either 'apprise' or 'webhook', not both")
    if "apprise" in raw:
        url = _string(raw["apprise"], f"{path}.apprise", "an apprise URL such as mailto://... or slack://...")
        for key in ("secret", "headers"):
            if key in raw:
                raise ChannelError(f"{path}.{key}: only a webhook channel takes '{key}'")
        reason = apprise_rejects(url)
        if reason is not None:
            raise ChannelError(f"{path}.apprise: apprise cannot use this URL ({reason}); see "
                               f"https://github.com/caronc/apprise/wiki for the URL of each service")
        return Channel(name, "apprise", url)
    if "webhook" not in raw:
        raise ChannelError(f"{path}: needs an 'apprise' URL or a 'webhook' URL")
    url = _string(raw["webhook"], f"{path}.webhook", "an http:// or https:// URL")
    try:
        parts = urlsplit(url)
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        raise ChannelError(f"{path}.webhook: must be an http:// or https:// URL with a host")
    secret = raw.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise ChannelError(f"{path}.secret: must be a string, not {type(secret).__name__}")
    if secret is None or len(secret) < MIN_SECRET:
        raise ChannelError(f"{path}.secret: a webhook needs a secret (at least {MIN_SECRET} characters) to sign "
                           f"its payloads")
    return Channel(name, "webhook", url, secret, MappingProxyType(_headers(raw.get("headers", {}), f"{path}.headers")))


def _headers(raw: object, path: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ChannelError(f"{path}: must be a mapping of header names to values, not {type(raw).__name__}")
    found: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _TOKEN.match(key):
            raise ChannelError(f"{path}.{str(key)[:100]}: not a valid HTTP header name")
        if len(key) > 200:
            raise ChannelError(f"{path}.{key[:100]}: header names are at most 200 characters")
        if key.lower() in _RESERVED_HEADERS or key.lower().startswith("x-costline-"):
            raise ChannelError(f"{path}.{key}: costline sets this header itself")
        if not isinstance(value, str):
            raise ChannelError(f"{path}.{key}: must be a string, not {type(value).__name__}")
        if CONTROL.search(value) or len(value) > 8192 or not value.isascii():
            raise ChannelError(f"{path}.{key}: must be one line of at most 8192 ASCII characters")
        found[key] = value
    return found


# apprise -------------------------------------------------------------------------------------------------------
_capture: ContextVar[list[str] | None] = ContextVar("costline_apprise_capture", default=None)


class _Capture(logging.Handler):
    """Hands apprise's warnings and errors to the send that caused them. apprise may log from a worker thread
    of its own, but it runs that work in a copy of the caller's context, so a context variable finds the send."""

    def emit(self, record: logging.LogRecord) -> None:
        messages = _capture.get()
        if messages is not None and len(messages) < 20:
            messages.append(record.getMessage())


@functools.cache
def apprise_module() -> Any:
    """The apprise module, imported on first use with its plugins loaded and its log captured per send."""
    with warnings.catch_warnings():
        # apprise's PGP helper imports the stdlib's deprecated ``imghdr`` on Python < 3.13 when plugins load
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module("apprise")
        module.Apprise.instantiate("json://localhost")  # loads the plugins now, under this filter
    logging.getLogger("apprise").addHandler(_Capture(logging.WARNING))
    return module


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """The warnings and errors apprise logs for the calls made inside the block (at most 20)."""
    messages: list[str] = []
    token = _capture.set(messages)
    try:
        yield messages
    finally:
        _capture.reset(token)


def apprise_rejects(url: str) -> str | None:
    """Why apprise cannot use ``url`` (None if it can); the URL itself is never repeated in the reason."""
    module = apprise_module()
    with captured_logs() as capture:
        plugin = module.Apprise.instantiate(url, asset=module.AppriseAsset(async_mode=False))
    if plugin is not None:
        return None
    secrets = url_secrets(url, None)
    said = "; ".join(dict.fromkeys(redact(_URL.sub("<url>", m.replace(url, "<url>")), secrets) for m in capture))
    return said or "unsupported or incomplete URL"


def url_secrets(url: str, shown: str | None) -> list[str]:
    """Parts of ``url`` to hide in messages, longest first: its password, then for a webhook (``shown == ""``)
    its query values, for apprise every token-like part its privacy rendering ``shown`` hides (every token-like
    part but the scheme and host when apprise could not read the URL, ``shown is None``)."""
    try:
        parts = urlsplit(url)
        scheme, host, password, query = parts.scheme, parts.hostname or "", parts.password, parts.query
    except ValueError:
        scheme, host, password, query = "", "", None, ""
    found = {password, unquote(password)} if password else set()
    if shown == "":
        found.update(unquote(pair.split("=", 1)[1]) for pair in query.split("&") if "=" in pair)
    else:
        visible = {scheme, *(_SPLIT.split(unquote(shown)) if shown is not None else (host,))}
        found.update(t for t in _SPLIT.split(unquote(url)) if t not in visible and _secret_like(t))
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def _secret_like(token: str) -> bool:
    """A token or key rather than a word such as ``insecure`` (which hiding would only garble messages)."""
    return len(token) >= 16 or (len(token) >= 6 and any(c.isdigit() or c.isupper() for c in token))


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def redact_url(url: str) -> str:
    """``url`` with its secret parts as ``***`` (for listing channels): the password, a webhook's query values,
    and whatever apprise's privacy rendering hides (tokens, keys)."""
    shown: str | None = ""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        plugin = apprise_module().Apprise.instantiate(url)
        shown = None if plugin is None else plugin.url(privacy=True)
    return redact(url, url_secrets(url, shown))


def redact_channel(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A stored channel spec as it may be shown: secrets, URL passwords and tokens, header values as ***."""
    shown = dict(spec)
    if shown.get("secret"):
        shown["secret"] = "***"
    for key in ("apprise", "webhook"):  # passwords and tokens inside URLs too
        if isinstance(shown.get(key), str):
            shown[key] = redact_url(shown[key])
    if isinstance(shown.get("headers"), Mapping):  # an Authorization header is a secret too
        shown["headers"] = dict.fromkeys(shown["headers"], "***")
    return shown


def require_channels(known: Sequence[str], names: Sequence[str], path: str) -> None:
    """Refuse a rule that names a channel the project does not have (it would be stored and never notify);
    ``known`` are the project's channel names, the message names the missing one."""
    have = set(known)
    for i, name in enumerate(names):
        if name not in have:
            listed = ", ".join(sorted(have)) or "none"
            raise ChannelError(f"{path}[{i}]: no channel {name!r} in this project (its channels: {listed}); "
                               "create the channel first")
