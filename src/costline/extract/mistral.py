"""Mistral payloads: chat, FIM, embeddings, audio transcription and OCR.

Chat, FIM and embeddings share OpenAI's shape (``usage.prompt_tokens`` / ``completion_tokens`` /
``total_tokens``, inclusive ``prompt_tokens_details.cached_tokens``) and are read with the OpenAI rules.
Mistral adds ``usage.prompt_audio_seconds`` (Voxtral) -> input_audio_seconds, and OCR responses report
``usage_info.pages_processed`` -> input_document_pages. Stream events from the python SDK wrap each chunk
in ``{"data": ...}``; both wrapped and raw SSE chunks are accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from costline.extract import openai
from costline.extract._fields import Counts, add, amount, build, count, mapping, text
from costline.extract._result import Extracted

PROVIDER = "mistral"


def _parse(usage: Mapping[str, Any], path: str, body: Mapping[str, Any]) -> Counts:
    seconds = amount(usage, "prompt_audio_seconds", path)
    q = openai.parse_usage(usage, path, body)
    add(q, "input_audio_seconds", seconds)
    return q


def extract(payload: Mapping[str, Any], provider: str | None = PROVIDER) -> Extracted:
    data = payload.get("data")
    if "usage" not in payload and isinstance(data, Mapping) and "usage" in data:  # an SDK event
        payload = data
    info = mapping(payload, "usage_info", "")
    if info is not None and "usage" not in payload:  # OCR
        q: Counts = {}
        add(q, "input_document_pages", count(info, "pages_processed", "usage_info", required=True))
        return Extracted(build(q), text(payload, "model"), provider)
    usage, path, body = openai.locate(payload)
    return Extracted(build(_parse(usage, path, body)), text(body, "model"), provider)


def extract_stream(chunks: Iterable[object], provider: str | None = PROVIDER) -> Extracted | None:
    located = openai.stream_usage(chunks, unwrap="data")
    if located is None:
        return None
    usage, path, body, model = located
    return Extracted(build(_parse(usage, path, body)), model, provider)
