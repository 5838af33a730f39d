"""Signing and verifying costline's webhook deliveries: HMAC-SHA256 over "<timestamp>." + body.

costline signs every webhook it sends (``control/notify.py``); a receiver checks the signature with ``verify``.
This module uses only the standard library so a receiver can copy it as it is (docs/alerts-delivery.md shows
how). The timestamp is part of what is signed, so a captured request cannot be replayed after ``tolerance_s``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

SIGNATURE_HEADER = "X-Costline-Signature"
TIMESTAMP_HEADER = "X-Costline-Timestamp"
EVENT_HEADER = "X-Costline-Event"
DELIVERY_HEADER = "X-Costline-Delivery"
SCHEME = "sha256="


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Costline-Signature`` value: ``"sha256=" + hex(HMAC-SHA256(secret, f"{timestamp}.".encode() + body))``."""
    mac = hmac.new(secret.encode("utf-8"), f"{int(timestamp)}.".encode("ascii") + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever the case of its name (plain dicts are case-sensitive, HTTP names are not)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, found in headers.items():
        if key.lower() == lowered:
            return found
    return None


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | datetime,
           tolerance_s: float = 300) -> bool:
    """True when ``body`` was signed with ``secret`` less than ``tolerance_s`` seconds from ``now``.

    Args:
        secret: the channel's shared secret.
        headers: the request's headers (any mapping; names are matched without regard to case).
        body: the raw request body, exactly as received (before any JSON parsing).
        now: the receiver's current time, as Unix seconds or an aware datetime.
        tolerance_s: how far the signed timestamp may be from ``now``, either way.

    The signatures are compared in constant time. A missing or malformed header, a stale or future timestamp
    and a wrong signature all give False.
    """
    stamp = _header(headers, TIMESTAMP_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if stamp is None or given is None:
        return False
    stamp = stamp.strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    timestamp = int(stamp)
    current = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), given.strip().encode("utf-8", "replace"))
