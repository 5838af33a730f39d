"""Usage extraction from real provider payloads: pure functions from response bodies to ``Usage``.

``extract_usage(payload, provider)`` reads one response body (or just its usage object, where that is
unambiguous); ``extract_stream_usage(chunks, provider)`` reads the usage out of a stream of chunks/events.
Both return an ``Extracted`` (usage, model, provider, provided_cost). Unreadable payloads raise
``ExtractionError`` naming the field path; counts that contradict each other (a subset above its parent)
raise ``UsageError`` from ``Usage`` with both numbers.

Each provider family lives in its own module, which documents the conventions it converts from (Anthropic
and Bedrock exclude the cache from their input count, Gemini excludes thinking from its output count,
Langfuse keys are disjoint buckets, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from costline.errors import ExtractionError
from costline.extract import anthropic, bedrock, cohere, google, langchain, langfuse, mistral, openai
from costline.extract._fields import require_mapping
from costline.extract._result import Extracted

__all__ = ["FORMATS", "Extracted", "extract_stream_usage", "extract_usage"]

_Single = Callable[[Mapping[str, Any], str | None], Extracted]
_Stream = Callable[[Iterable[object], str | None], Extracted | None]
_OPENAI: tuple[_Single, _Stream] = (openai.extract, openai.extract_stream)
_GOOGLE: tuple[_Single, _Stream] = (google.extract, google.extract_stream)
_AWS: tuple[_Single, _Stream] = (bedrock.extract, bedrock.extract_stream)

# format name -> (provider id reported, single extractor, stream extractor)
_FORMATS: dict[str, tuple[str | None, _Single, _Stream]] = {
    **{name: (pid, *_OPENAI) for name, pid in openai.PROVIDERS.items()},
    "anthropic": ("anthropic", anthropic.extract, anthropic.extract_stream),
    **dict.fromkeys(("google", "gemini", "vertex", "vertex_ai"), ("google", *_GOOGLE)),
    **dict.fromkeys(("aws", "bedrock", "bedrock_converse"), ("aws", *_AWS)),
    "cohere": ("cohere", cohere.extract, cohere.extract_stream),
    "mistral": ("mistral", mistral.extract, mistral.extract_stream),
    "langchain": (None, langchain.extract, langchain.extract_stream),
    "langfuse": (None, langfuse.extract, langfuse.extract_stream),
}

#: The accepted ``provider`` / format names (case-insensitive).
FORMATS: tuple[str, ...] = tuple(_FORMATS)


def _format(provider: str) -> tuple[str | None, _Single, _Stream]:
    key = provider.strip().lower() if isinstance(provider, str) else None
    if key is None or key not in _FORMATS:
        raise ExtractionError(f"unknown provider format {provider!r}; accepted: {', '.join(FORMATS)}")
    return _FORMATS[key]


def extract_usage(payload: Mapping[str, Any], provider: str) -> Extracted:
    """The usage, model and provider of one response body (or bare usage object) of ``provider``'s format."""
    pid, single, _ = _format(provider)
    return single(require_mapping(payload, "payload"), pid)


def extract_stream_usage(chunks: Iterable[Mapping[str, Any]], provider: str) -> Extracted:
    """The usage of a streamed response, from its chunks/events (dicts) in order."""
    pid, _, stream = _format(provider)
    if isinstance(chunks, Mapping | str | bytes):
        raise ExtractionError("chunks: expected an iterable of chunk objects, got a single object")
    result = stream(chunks, pid)
    if result is None:
        raise ExtractionError(
            "stream contained no usage; for OpenAI set stream_options={'include_usage': True}"
        )
    return result
