"""Integrations with provider clients and frameworks; each needs its optional extra (``costline[openai]``).

``last_cost()`` is the local ``CostBreakdown`` of the last call an integration finished in this context.
"""

from costline.sdk.integrations._record import last_cost

__all__ = ["last_cost"]
