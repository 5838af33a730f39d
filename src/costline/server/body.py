"""Reading request bodies: a size limit before and after gzip, and JSON with exact decimals."""

from __future__ import annotations

import zlib
from typing import Any

from starlette.requests import Request

from costline.ingest.batch import IngestError, parse_json_body


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, gunzipped when ``Content-Encoding: gzip``; 413 past ``max_bytes`` either way."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise IngestError(f"body is {declared} bytes, over the {max_bytes} byte limit", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise IngestError(f"body is over the {max_bytes} byte limit", status=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower()
    if "gzip" in encoding:
        body = gunzip(body, max_bytes)
    elif encoding not in ("", "identity"):
        raise IngestError(f"unsupported Content-Encoding {encoding!r}; send gzip or nothing", status=415)
    return body


def gunzip(body: bytes, max_bytes: int) -> bytes:
    """Every member of a gzip body (``cat a.gz b.gz`` is one body, RFC 1952 §2.2), at most ``max_bytes`` in
    all (a decompression bomb stops there); a truncated member is an error, not a shorter body."""
    out = bytearray()
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise IngestError(f"body is not valid gzip: {exc}") from None
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise IngestError(f"decompressed body is over the {max_bytes} byte limit", status=413)
        if not inflater.eof:
            raise IngestError("body is not valid gzip: the stream is truncated")
        rest = inflater.unused_data
        if not rest.strip(b"\0"):  # trailing zero padding, as gzip(1) allows
            break
    return bytes(out)


def parse_json(body: bytes) -> Any:
    """JSON via orjson (``batch.parse_json_body``). Floats stay floats here; money and quantities are converted
    once, through ``repr``, where they are read (``costline.core.money.to_decimal``), so ``0.001`` becomes
    ``Decimal('0.001')``."""
    return parse_json_body(body)


def nul_path(value: Any, path: str) -> str | None:
    """The path of the first string (or object key) in ``value`` holding a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return f"{path}.{key!r}"
            found = nul_path(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None
