"""Reading request bodies: a size limit before and after gzip, and JSON with exact decimals."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.requests import Request

from costline.ingest.batch import IngestError


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
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise IngestError(f"body is not valid gzip: {exc}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise IngestError(f"decompressed body is over the {max_bytes} byte limit", status=413)
    return out


def parse_json(body: bytes) -> Any:
    """JSON via orjson. Floats stay floats here; money and quantities are converted once, through ``repr``,
    where they are read (``costline.core.money.to_decimal``), so ``0.001`` becomes ``Decimal('0.001')``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(f"body is not valid JSON: {exc}") from None
    if b"\\u0000" in body:  # JSON carries NUL only as this escape; look for it only then
        where = nul_path(data, "body")
        if where is not None:
            raise IngestError(f"{where}: contains a NUL character (\\u0000), which text in costline cannot hold")
    return data


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
