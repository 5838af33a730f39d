"""The tracker's configuration: arguments first, then ``COSTLINE_*`` environment variables, then defaults.

Validation happens once, here, when the tracker is built; a bad value is logged and replaced by its
default (the tracker never raises into the application).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("costline.sdk")

#: argument name → environment variable read when the argument is not given
ENV_VARS: Mapping[str, str] = {
    "host": "COSTLINE_HOST",
    "public_key": "COSTLINE_PUBLIC_KEY",
    "secret_key": "COSTLINE_SECRET_KEY",
    "store_url": "COSTLINE_STORE_URL",
    "environment": "COSTLINE_ENVIRONMENT",
    "release": "COSTLINE_RELEASE",
    "spill_path": "COSTLINE_SPILL_PATH",
    "enabled": "COSTLINE_ENABLED",
    "flush_interval": "COSTLINE_FLUSH_INTERVAL",
    "batch_size": "COSTLINE_BATCH_SIZE",
    "max_buffer": "COSTLINE_MAX_BUFFER",
    "timeout": "COSTLINE_TIMEOUT",
    "max_retries": "COSTLINE_MAX_RETRIES",
    "max_retry_time": "COSTLINE_MAX_RETRY_TIME",
}

#: the server accepts at most this many events per request (costline.ingest.native.MAX_EVENTS)
MAX_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Resolved settings. ``mode`` is ``http`` (host set), ``embedded`` (store_url set), ``local``
    (neither: events are kept in a bounded in-memory buffer only) or ``disabled``."""

    host: str | None = None
    public_key: str | None = None
    secret_key: str | None = None
    store_url: str | None = None
    environment: str | None = None
    release: str | None = None
    flush_interval: float = 1.0
    batch_size: int = 500
    max_buffer: int = 10_000
    spill_path: Path | None = None
    enabled: bool = True
    #: seconds: one HTTP request's timeout, and how long the exit hook waits for the last flush
    timeout: float = 5.0
    #: first retry delay in seconds; doubles per failure (with jitter) up to ``max_backoff``
    min_backoff: float = 0.5
    max_backoff: float = 30.0
    #: a batch that keeps failing for a reason that may pass is retried at most this many times ...
    max_retries: int = 10
    #: ... and for at most this many seconds from its first failure; then it is given up (spilled)
    max_retry_time: float = 300.0

    @property
    def mode(self) -> str:
        if not self.enabled:
            return "disabled"
        if self.host:
            return "http"
        if self.store_url:
            return "embedded"
        return "local"


def _text(name: str, given: str | os.PathLike[str] | None) -> str | None:
    value = str(given).strip() if given is not None else os.environ.get(ENV_VARS[name], "").strip()
    return value or None


def _number(name: str, given: float | None, default: float, *, integer: bool, low: float) -> float:
    raw: object = given
    if raw is None:
        env = os.environ.get(ENV_VARS.get(name, ""), "").strip()
        if not env:
            return default
        raw = env
    try:
        value = int(str(raw)) if integer and not isinstance(raw, int | float) else float(str(raw))
        if integer:
            value = int(value)
    except ValueError:
        log.warning("costline: %s=%r is not a number; using %s", name, raw, default)
        return default
    if value < low:
        log.warning("costline: %s=%r must be at least %s; using %s", name, raw, low, default)
        return default
    return value


def _flag(given: bool | None) -> bool:
    if given is not None:
        return bool(given)
    env = os.environ.get(ENV_VARS["enabled"], "").strip().lower()
    return env not in ("0", "false", "no", "off")


def resolve_config(
    *,
    host: str | None = None,
    public_key: str | None = None,
    secret_key: str | None = None,
    store_url: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    flush_interval: float | None = None,
    batch_size: int | None = None,
    max_buffer: int | None = None,
    spill_path: str | os.PathLike[str] | None = None,
    enabled: bool | None = None,
    timeout: float | None = None,
    min_backoff: float = 0.5,
    max_backoff: float = 30.0,
    max_retries: int | None = None,
    max_retry_time: float | None = None,
) -> TrackerConfig:
    """Arguments win over the environment; ``None`` means "not given"."""
    resolved_host = _text("host", host)
    if resolved_host:
        resolved_host = resolved_host.rstrip("/")
        if not resolved_host.startswith(("http://", "https://")):
            log.warning("costline: host %r has no scheme; assuming http://", resolved_host)
            resolved_host = "http://" + resolved_host
    spill = _text("spill_path", spill_path)
    batch = int(_number("batch_size", batch_size, 500, integer=True, low=1))
    if batch > MAX_BATCH:
        log.warning("costline: batch_size=%s is over the server's %s events per request; using %s",
                    batch, MAX_BATCH, MAX_BATCH)
        batch = MAX_BATCH
    return TrackerConfig(
        host=resolved_host,
        public_key=_text("public_key", public_key),
        secret_key=_text("secret_key", secret_key),
        store_url=_text("store_url", store_url),
        environment=_text("environment", environment),
        release=_text("release", release),
        flush_interval=_number("flush_interval", flush_interval, 1.0, integer=False, low=0.001),
        batch_size=batch,
        max_buffer=int(_number("max_buffer", max_buffer, 10_000, integer=True, low=1)),
        spill_path=Path(spill) if spill else None,
        enabled=_flag(enabled),
        timeout=_number("timeout", timeout, 5.0, integer=False, low=0.001),
        min_backoff=max(0.0, float(min_backoff)),
        max_backoff=max(float(min_backoff), float(max_backoff)),
        max_retries=int(_number("max_retries", max_retries, 10, integer=True, low=0)),
        max_retry_time=_number("max_retry_time", max_retry_time, 300.0, integer=False, low=0),
    )
