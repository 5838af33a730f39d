"""The one error root of costline and its subclasses.

Every message says what was wrong and, where it helps, what to do about it.
"""

from __future__ import annotations


class CostlineError(Exception):
    """Root of every error costline raises on purpose."""


class UsageError(CostlineError, ValueError):
    """Usage quantities that cannot be priced: negative, unknown unit, subset above its parent."""


class PriceDataError(CostlineError, ValueError):
    """A price record or price file that is malformed; the message names the file and field."""


class ExtractionError(CostlineError, ValueError):
    """A provider payload from which no usage could be read; the message names the field."""


class ResolutionError(CostlineError, LookupError):
    """A model reference that matched no price record (only raised where a match is required)."""
