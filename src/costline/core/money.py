"""Money is ``Decimal`` end to end; floats from outside are converted once, through ``repr``."""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Final

from costline.core.limits import MAX_EXPONENT, preview
from costline.errors import CostlineError

#: Arithmetic context for money: wide enough that products of realistic quantities and rates are exact,
#: and it raises instead of silently rounding when a result is not representable.
MONEY_CONTEXT: Final = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

ZERO: Final = Decimal(0)
DEFAULT_CURRENCY: Final = "USD"


def to_decimal(value: object, *, field: str = "value") -> Decimal:
    """Convert an outside number to an exact ``Decimal``.

    Floats go through ``repr`` (``0.1`` becomes ``Decimal('0.1')``, not its binary expansion); strings are
    parsed; ints are exact. Booleans, NaN and infinities are refused with a message naming ``field``, and so
    is an exponent beyond ±``limits.MAX_EXPONENT`` (``"9e999999999"`` is finite, but formatting or converting
    it never ends), before anything computes with it.
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise CostlineError(f"{field}: expected a number, got a boolean")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise CostlineError(f"{field}: {preview(value)} is not a number") from None
    else:
        raise CostlineError(f"{field}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise CostlineError(f"{field}: {preview(value)} is not a finite number")
    if result and not -MAX_EXPONENT <= result.adjusted() <= MAX_EXPONENT:
        raise CostlineError(f"{field}: {preview(value)} is out of range (exponent beyond ±{MAX_EXPONENT})")
    return result


def decimal_str(value: Decimal | int) -> str:
    """A plain (non-scientific) string for a Decimal, as written to JSON and CSV."""
    if isinstance(value, int):
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
