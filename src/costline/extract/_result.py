"""The result of an extraction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from costline.core.usage import Usage


@dataclass(frozen=True, slots=True)
class Extracted:
    """What one provider payload says was used."""

    usage: Usage
    #: the model name as the payload reports it (``None`` when the payload does not say)
    model: str | None
    #: the provider id (genai-prices ids: "openai", "azure", "anthropic", "google", "aws", ...), or ``None``
    provider: str | None
    #: a cost the payload itself reports, e.g. OpenRouter's ``usage.cost`` -> ``{"total": Decimal}``
    provided_cost: Mapping[str, Decimal] | None = None
