"""Integrations that record a provider client's calls as priced generations.

``costline.sdk.integrations.openai.instrument(client)`` and ``costline.sdk.integrations.anthropic
.instrument(client)`` wrap a client in place; ``last_cost()`` is the local ``CostBreakdown`` of the last
call an integration finished in the current context. Importing this package does not import ``openai`` or
``anthropic`` (the integrations never import them: they read the client's objects by attribute).
See docs/sdk.md, "Integrations: OpenAI and Anthropic".
"""

from costline.sdk.integrations._record import last_cost

__all__ = ["last_cost"]
