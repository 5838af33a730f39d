"""The unit ontology: every quantity costline can price, and which units contain which.

A unit is described by dimensions (family, direction, modality, token_type, cache_ttl, ...). A unit whose
dimensions are a subset of another's *contains* it: ``input_tokens`` contains ``cache_read_tokens`` contains
``cache_audio_read_tokens``. Usage is inclusive: a parent quantity already counts its children, and the cost
engine derives the remainders. The token, character, page, duration and tool-call units are the ones of
genai-prices (``units.yml``), with the same names, so its prices compile one to one; costline adds a few
non-token units (images, video seconds, GB-seconds, GB-months, request units) for cloud and media costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

_Dims = tuple[tuple[str, str], ...]

# name, per (the quantity a rate is quoted for), genai-prices price key (or ""), dimensions
_UNIT_TABLE: Final[tuple[tuple[str, int, str, _Dims], ...]] = (
    ("input_tokens", 1000000, "input_mtok", (("direction", "input"), ("family", "tokens"))),
    ("output_tokens", 1000000, "output_mtok", (("direction", "output"), ("family", "tokens"))),
    ("cache_read_tokens", 1000000, "cache_read_mtok",
     (("direction", "input"), ("family", "tokens"), ("token_type", "cache_read"))),
    ("cache_write_tokens", 1000000, "cache_write_mtok",
     (("direction", "input"), ("family", "tokens"), ("token_type", "cache_write"))),
    ("cache_write_5m_tokens", 1000000, "cache_write_5m_mtok",
     (("cache_ttl", "5m"), ("direction", "input"), ("family", "tokens"), ("token_type", "cache_write"))),
    ("cache_write_1h_tokens", 1000000, "cache_write_1h_mtok",
     (("cache_ttl", "1h"), ("direction", "input"), ("family", "tokens"), ("token_type", "cache_write"))),
    *(
        row
        for modality in ("text", "audio", "image", "video")
        for row in (
            (f"input_{modality}_tokens", 1000000, f"input_{modality}_mtok",
             (("direction", "input"), ("family", "tokens"), ("modality", modality))),
            (f"output_{modality}_tokens", 1000000, f"output_{modality}_mtok",
             (("direction", "output"), ("family", "tokens"), ("modality", modality))),
            (f"cache_{modality}_read_tokens", 1000000, f"cache_{modality}_read_mtok",
             (("direction", "input"), ("family", "tokens"), ("modality", modality),
              ("token_type", "cache_read"))),
            (f"cache_{modality}_write_tokens", 1000000, f"cache_{modality}_write_mtok",
             (("direction", "input"), ("family", "tokens"), ("modality", modality),
              ("token_type", "cache_write"))),
            (f"cache_{modality}_write_5m_tokens", 1000000, f"cache_{modality}_write_5m_mtok",
             (("cache_ttl", "5m"), ("direction", "input"), ("family", "tokens"), ("modality", modality),
              ("token_type", "cache_write"))),
            (f"cache_{modality}_write_1h_tokens", 1000000, f"cache_{modality}_write_1h_mtok",
             (("cache_ttl", "1h"), ("direction", "input"), ("family", "tokens"), ("modality", modality),
              ("token_type", "cache_write"))),
        )
    ),
    ("input_tool_tokens", 1000000, "input_tool_mtok",
     (("direction", "input"), ("family", "tokens"), ("token_type", "tool"))),
    *(
        (f"input_{m}_tool_tokens", 1000000, f"input_{m}_tool_mtok",
         (("direction", "input"), ("family", "tokens"), ("modality", m), ("token_type", "tool")))
        for m in ("text", "audio", "image", "video")
    ),
    ("output_reasoning_tokens", 1000000, "output_reasoning_mtok",
     (("direction", "output"), ("family", "tokens"), ("token_type", "reasoning"))),
    *(
        (f"output_{m}_reasoning_tokens", 1000000, f"output_{m}_reasoning_mtok",
         (("direction", "output"), ("family", "tokens"), ("modality", m), ("token_type", "reasoning")))
        for m in ("text", "audio", "image", "video")
    ),
    ("output_citation_tokens", 1000000, "output_citation_mtok",
     (("direction", "output"), ("family", "tokens"), ("token_type", "citation"))),
    *(
        (f"output_{m}_citation_tokens", 1000000, f"output_{m}_citation_mtok",
         (("direction", "output"), ("family", "tokens"), ("modality", m), ("token_type", "citation")))
        for m in ("text", "audio", "image", "video")
    ),
    ("input_characters", 1000000, "input_mchars", (("direction", "input"), ("family", "characters"))),
    ("input_text_messages", 1000, "input_text_messages_kcount",
     (("direction", "input"), ("family", "messages"), ("modality", "text"))),
    ("audio_seconds", 3600, "audio_hours", (("family", "durations"), ("modality", "audio"))),
    ("input_audio_seconds", 3600, "input_audio_hours",
     (("direction", "input"), ("family", "durations"), ("modality", "audio"))),
    ("output_audio_seconds", 3600, "output_audio_hours",
     (("direction", "output"), ("family", "durations"), ("modality", "audio"))),
    ("input_pixels", 1000000000, "input_gpixels", (("direction", "input"), ("family", "pixels"))),
    ("input_document_pages", 1000, "input_document_kpages",
     (("direction", "input"), ("family", "document_pages"))),
    ("input_annotated_document_pages", 1000, "input_annotated_document_kpages",
     (("direction", "input"), ("family", "document_pages"), ("page_type", "annotated"))),
    ("rerank_searches", 1000, "rerank_searches_kcount", (("family", "rerank"),)),
    ("web_searches", 1000, "web_searches_kcount", (("family", "tool_calls"), ("tool_type", "web_search"))),
    ("social_searches", 1000, "social_searches_kcount",
     (("family", "tool_calls"), ("tool_type", "social_search"))),
    ("storage_searches", 1000, "storage_searches_kcount",
     (("family", "tool_calls"), ("tool_type", "storage_search"))),
    ("code_executions", 1000, "code_executions_kcount",
     (("family", "tool_calls"), ("tool_type", "code_execution"))),
    ("requests", 1000, "requests_kcount", (("family", "requests"),)),
    # costline's own non-token units (no genai-prices key)
    ("output_characters", 1000000, "", (("direction", "output"), ("family", "characters"))),
    ("input_images", 1, "", (("direction", "input"), ("family", "images"))),
    ("output_images", 1, "", (("direction", "output"), ("family", "images"))),
    ("video_seconds", 1, "", (("family", "durations"), ("modality", "video"))),
    ("input_video_seconds", 1, "",
     (("direction", "input"), ("family", "durations"), ("modality", "video"))),
    ("output_video_seconds", 1, "",
     (("direction", "output"), ("family", "durations"), ("modality", "video"))),
    ("gb_seconds", 1, "", (("family", "compute"), ("measure", "gb_seconds"))),
    ("gb_months", 1, "", (("family", "storage"), ("measure", "gb_months"))),
    ("read_request_units", 1000000, "", (("family", "request_units"), ("operation", "read"))),
    ("write_request_units", 1000000, "", (("family", "request_units"), ("operation", "write"))),
)


@dataclass(frozen=True, slots=True)
class Unit:
    """One priceable unit. ``per`` is the quantity a rate is quoted for (1,000,000 for tokens)."""

    name: str
    per: int
    dimensions: frozenset[tuple[str, str]]
    price_key: str = ""

    @property
    def direction(self) -> str | None:
        return dict(self.dimensions).get("direction")

    @property
    def family(self) -> str:
        return dict(self.dimensions)["family"]


UNITS: Final[Mapping[str, Unit]] = MappingProxyType(
    {name: Unit(name, per, frozenset(dims), price_key) for name, per, price_key, dims in _UNIT_TABLE}
)

UNITS_BY_PRICE_KEY: Final[Mapping[str, Unit]] = MappingProxyType(
    {u.price_key: u for u in UNITS.values() if u.price_key}
)


def _ancestors(unit: Unit) -> frozenset[str]:
    return frozenset(
        other.name for other in UNITS.values() if other is not unit and other.dimensions < unit.dimensions
    )


#: For each unit, every unit that contains it (not only the direct parent).
ANCESTORS: Final[Mapping[str, frozenset[str]]] = MappingProxyType({n: _ancestors(u) for n, u in UNITS.items()})

#: For each unit, the units that contain it with exactly one dimension fewer, mapped to the axis that differs.
DIRECT_PARENTS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = MappingProxyType(
    {
        name: tuple(
            (parent, next(iter(dict(UNITS[name].dimensions).keys() - dict(UNITS[parent].dimensions).keys())))
            for parent in sorted(ANCESTORS[name])
            if len(UNITS[parent].dimensions) == len(UNITS[name].dimensions) - 1
        )
        for name in UNITS
    }
)

#: The direction roots every token subset must come with (usage is inclusive).
TOKEN_ROOTS: Final[Mapping[str, str]] = MappingProxyType({"input": "input_tokens", "output": "output_tokens"})

#: For each token unit other than a root, the root it must come with; absent for roots and non-token units.
ROOT_OF: Final[Mapping[str, str]] = MappingProxyType({
    name: TOKEN_ROOTS[dict(u.dimensions)["direction"]]
    for name, u in UNITS.items()
    if u.family == "tokens" and name not in TOKEN_ROOTS.values()
})


def is_descendant(ancestor: str, unit: str) -> bool:
    """True when ``ancestor`` strictly contains ``unit``."""
    return ancestor in ANCESTORS[unit]
