"""AWS Signature Version 4 verification for the Cost Explorer endpoint (what botocore signs with).

The canonical request is rebuilt from the received request (method, path, query, the signed headers, the
SHA-256 of the body) and signed with the key derived from the secret, the request's date, region and service;
the signature must match in constant time and ``X-Amz-Date`` must be within 15 minutes of the server's clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$"
)


class SignatureError(Exception):
    """A request whose signature is missing, malformed, stale or wrong; the message is safe to return."""


@dataclass(frozen=True, slots=True)
class Credential:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse(header: str | None) -> Credential:
    match = _HEADER.match((header or "").strip())
    if not match:
        raise SignatureError("Authorization header requires AWS4-HMAC-SHA256 Credential, SignedHeaders and Signature")
    scope = match.group(1).split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise SignatureError("Credential should be scoped to a valid region, service and aws4_request")
    return Credential(scope[0], scope[1], scope[2], scope[3], tuple(match.group(2).split(";")), match.group(3))


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def verify(cred: Credential, secret: str, method: str, path: str, query: str, headers: Mapping[str, str],
           body: bytes, now: datetime) -> None:
    """Raise ``SignatureError`` unless the request was signed with ``secret``."""
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("X-Amz-Date header is missing or malformed") from None
    if abs(now - signed_at) > MAX_SKEW:
        raise SignatureError("Signature expired: the request time is more than 15 minutes from the server's time")
    if amz_date[:8] != cred.date:
        raise SignatureError("Credential date does not match X-Amz-Date")
    if "host" not in cred.signed_headers:
        raise SignatureError("SignedHeaders must include host")
    lines = []
    for name in cred.signed_headers:
        value = headers.get(name)
        if value is None:
            raise SignatureError(f"signed header {name} is missing")
        lines.append(f"{name}:{' '.join(value.strip().split())}\n")
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical = "\n".join([
        method.upper(), quote(path, safe="/-_.~%"), _canonical_query(query), "".join(lines),
        ";".join(cred.signed_headers), payload_hash,
    ])
    scope = f"{cred.date}/{cred.region}/{cred.service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(f"AWS4{secret}".encode(), cred.date), cred.region), cred.service),
                "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, cred.signature):
        raise SignatureError("The request signature we calculated does not match the signature you provided. "
                             "Check your AWS Secret Access Key and signing method.")
