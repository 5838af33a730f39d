"""Settings: one declarative table. Only the CLI and the server read it; the library takes arguments.

Each setting has a name, an environment variable, a default, a type and a line of documentation; a test
checks that every one is documented in docs/settings.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from costline.core.query import metadata_key
from costline.errors import CostlineError


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "costline"


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in text.split(os.pathsep) if p.strip())


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CostlineError(f"expected a whole number, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value <= 0:
        raise CostlineError(f"expected a positive number, got {value}")
    return value


#: most worker processes ``ingest_workers`` may ask for
MAX_INGEST_WORKERS = 64


def _workers(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= MAX_INGEST_WORKERS:
        raise CostlineError(f"expected 0 to {MAX_INGEST_WORKERS}, got {value}")
    return value


def _default_workers() -> int:
    """One worker per core up to 4, none on a single core (where they would only add copies)."""
    cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(4, cores)


def _cache_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CostlineError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value <= 60:
        raise CostlineError(f"expected 0 to 60 seconds, got {text}")
    return value


def _optional_days(text: str) -> int | None:
    return None if text.strip().lower() in ("", "0", "forever", "none") else _positive_int(text)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise CostlineError(f"expected true or false, got {text!r}")


def _allow_hosts(text: str) -> tuple[str, ...]:
    from costline.control.destinations import parse_allow_hosts

    return parse_allow_hosts(text)



def metadata_label_name(key: str) -> str:
    """The Prometheus label for a metadata key: ``metadata_`` plus the key, other characters as ``_``."""
    return "metadata_" + re.sub(r"[^A-Za-z0-9_]", "_", key)


def _metadata_keys(text: str) -> tuple[str, ...]:
    keys = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    labels: dict[str, str] = {}
    for key in keys:
        metadata_key(key, "COSTLINE_METRICS_METADATA_LABELS")
        label = metadata_label_name(key)
        if label in labels:
            raise CostlineError(f"metadata keys {labels[label]!r} and {key!r} both become label {label!r}")
        labels[label] = key
    return keys


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    env: str
    parse: Callable[[str], Any]
    default: Callable[[], Any]
    doc: str


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting(
        "data_dir", "COSTLINE_DATA_DIR", lambda s: Path(s).expanduser(), _default_data_dir,
        "Directory for costline's data: imported price files (prices/imported/), user price files "
        "(prices/user/) and, once the server exists, the embedded store. Default: $XDG_DATA_HOME/costline "
        "or ~/.local/share/costline.",
    ),
    Setting(
        "price_files", "COSTLINE_PRICE_FILES", _paths, tuple,
        "Extra user price files (YAML or JSON), separated by the OS path separator (':' on Linux). They are "
        "read after the files in <data_dir>/prices/user/ and take precedence over imported and bundled prices.",
    ),
    Setting(
        "bundled_prices", "COSTLINE_BUNDLED_PRICES", _bool, lambda: True,
        "Whether the bundled genai-prices catalog is loaded (true/false). Turn it off to price only with your "
        "own and imported files.",
    ),
    Setting(
        "store_url", "COSTLINE_STORE_URL", str, lambda: "",
        "Where `costline serve` keeps events: `duckdb:///path/file.duckdb` or `postgresql://user@host/db`. "
        "Default: duckdb:///<data_dir>/costline.duckdb.",
    ),
    Setting(
        "bind_host", "COSTLINE_BIND_HOST", str, lambda: "127.0.0.1",
        "Address `costline serve` listens on. Any address other than loopback makes every route require "
        "a key.",
    ),
    Setting("port", "COSTLINE_PORT", _positive_int, lambda: 8787, "Port `costline serve` listens on."),
    Setting(
        "max_body_bytes", "COSTLINE_MAX_BODY_BYTES", _positive_int, lambda: 64 * 1024 * 1024,
        "Largest request body accepted, before and after gzip decompression (bytes); larger bodies get 413.",
    ),
    Setting(
        "ingest_workers", "COSTLINE_INGEST_WORKERS", _workers, _default_workers,
        "Worker processes that decode and price large native batches and OTLP exports (/v1/ingest bodies and "
        "/v1/traces exports of 32 KiB or more) for "
        "`costline serve` on a DuckDB store, so the server's own process only writes them. 0 turns them off. "
        "Default: the number of cores, at most 4 (0 on one core).",
    ),
    Setting(
        "retention_days", "COSTLINE_RETENTION_DAYS", _optional_days, lambda: None,
        "Delete observations older than this many days (`costline purge`, and hourly in `costline serve`). "
        "Empty or 0: keep forever (the default).",
    ),
    Setting(
        "metrics_metadata_labels", "COSTLINE_METRICS_METADATA_LABELS", _metadata_keys, tuple,
        "Observation metadata keys (comma-separated) added as labels `metadata_<key>` to the cost and token "
        "counters of GET /metrics. Default: none. Each distinct value is a series: never list user ids.",
    ),
    Setting(
        "alert_interval_s", "COSTLINE_ALERT_INTERVAL", _positive_int, lambda: 30,
        "Seconds between two evaluations of window alert rules and budget thresholds by `costline serve` "
        "(docs/alerts.md). Rules checked on ingest and budget checks notify at once.",
    ),
    Setting(
        "reservation_ttl_s", "COSTLINE_RESERVATION_TTL", _positive_int, lambda: 900,
        "Seconds a budget reservation holds its estimate when neither its observation nor a settle or cancel "
        "arrives (a check may ask for its own ttl_seconds).",
    ),
    Setting(
        "reservation_keep_s", "COSTLINE_RESERVATION_KEEP", _positive_int, lambda: 7 * 86400,
        "Seconds an expired budget reservation is kept so that a late settle still records its call with the "
        "reservation's attributes (it then counts against the budget; docs/budgets.md). Default: 7 days.",
    ),
    Setting(
        "key_cache_ttl_s", "COSTLINE_KEY_CACHE_TTL", _cache_seconds, lambda: 5.0,
        "Seconds a server trusts an API key lookup before asking the store again (0 to 60; 0: ask on every "
        "request). A key revoked through any server sharing the store stops working everywhere within this "
        "time. Default 5.",
    ),
    Setting(
        "control_file", "COSTLINE_CONTROL_FILE", lambda s: Path(s).expanduser() if s.strip() else None,
        lambda: None,
        "A YAML file of channels, budgets, tiers and alert rules (docs/budgets.md) that `costline serve` applies "
        "to the default project at start, replacing what an earlier version of the file defined.",
    ),
    Setting(
        "environment", "COSTLINE_ENVIRONMENT", str, lambda: "",
        "Which environment's values a control file's per-environment settings take (dev, prod, ...). Empty: "
        "a per-environment value becomes one budget or rule per environment, scoped to it.",
    ),
    Setting(
        "seal_key", "COSTLINE_SEAL_KEY", str, lambda: "",
        "Fernet key (32 url-safe base64 bytes) that encrypts the copies of API secrets the Cost Explorer endpoint "
        "needs to verify AWS Signature V4 (docs/cloud.md). Give every server sharing a store the same key. "
        "Empty: <data_dir>/seal.key, created with mode 0600 on first start.",
    ),
    Setting(
        "channel_allow_hosts", "COSTLINE_CHANNEL_ALLOW_HOSTS", _allow_hosts, tuple,
        "Hosts that notification channels may reach although they are not public (loopback, private, link-local "
        "addresses): addresses, networks (10.0.0.0/8) or host names, comma or space separated. Default: none; "
        "channels deliver to public addresses only (docs/alerts-delivery.md).",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    price_files: tuple[Path, ...] = ()
    bundled_prices: bool = True
    store_url: str = ""
    bind_host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 64 * 1024 * 1024
    ingest_workers: int = field(default_factory=_default_workers)
    retention_days: int | None = None
    metrics_metadata_labels: tuple[str, ...] = ()
    alert_interval_s: int = 30
    reservation_ttl_s: int = 900
    reservation_keep_s: int = 7 * 86400
    key_cache_ttl_s: float = 5.0
    control_file: Path | None = None
    environment: str = ""
    seal_key: str = ""
    channel_allow_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.env)
            if raw is None:
                values[setting.name] = setting.default()
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except CostlineError as exc:
                raise CostlineError(f"{setting.env}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"duckdb:///{(self.data_dir / 'costline.duckdb').resolve()}"

    @property
    def imported_prices_dir(self) -> Path:
        return self.data_dir / "prices" / "imported"

    @property
    def user_prices_dir(self) -> Path:
        return self.data_dir / "prices" / "user"
