"""What the LiteLLM and Langfuse importers share: the result type, exact JSON reading, rate conversion, and
the comparison of imported prices with a price book.

Importing is pure except for reading the file: an importer turns parsed JSON into ``PriceRecord``s with
``Source.IMPORTED`` and reports, rather than guesses, whatever it cannot represent (``skipped`` entries with a
reason, ``warnings`` for prices it left out). Money never goes through a float: JSON numbers are parsed as
``Decimal`` and per-unit prices are scaled to costline's ``Unit.per`` exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from costline.core.money import MONEY_CONTEXT
from costline.core.price import PriceRecord, Rate, TieredRate
from costline.core.resolve import PriceBook
from costline.core.units import UNITS
from costline.errors import PriceDataError

#: Refuse files larger than this (the LiteLLM map is about 3 MB).
MAX_IMPORT_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The records compiled from one price file, and what could not be compiled."""

    format: str  # "litellm" | "langfuse"
    source_name: str  # e.g. the file name
    records: tuple[PriceRecord, ...]
    #: (model name, reason) for entries that could not be represented
    skipped: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Conflict:
    """An imported rate that differs from the rate the book already resolves for the same model."""

    model: str
    unit: str
    new_rate: Decimal
    existing_rate: Decimal
    existing_id: str


def base_rate(rate: Rate) -> Decimal:
    return rate.base if isinstance(rate, TieredRate) else rate


def find_conflicts(records: Iterable[PriceRecord], book: PriceBook, at: datetime) -> list[Conflict]:
    """For each imported record, resolve its model name in ``book`` (same provider) at ``at`` and report the
    units both price whose base rates differ (Decimal comparison: ``2.5 == 2.50``; tiered rates compare their
    base)."""
    conflicts: list[Conflict] = []
    for record in records:
        existing = book.resolve(record.model, record.provider, at=at)
        if existing is None or existing is record or existing.id == record.id:
            continue
        for unit, rate in record.rates.items():
            old = existing.rates.get(unit)
            if old is None:
                continue
            new_value, old_value = base_rate(rate), base_rate(old)
            if new_value != old_value:
                conflicts.append(Conflict(record.model, unit, new_value, old_value, existing.id))
    return conflicts


def read_price_json(path: Path) -> Any:
    """Parse a JSON price file with exact numbers: floats become ``Decimal`` (``2.5e-06`` is
    ``Decimal('0.0000025')``), integers stay ``int``. ``NaN``/``Infinity`` become non-finite Decimals, which
    the importers refuse entry by entry."""
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise PriceDataError(f"{path}: file is {size} bytes, over the {MAX_IMPORT_BYTES} byte limit")
        with path.open(encoding="utf-8") as f:
            return json.load(f, parse_float=Decimal, parse_constant=Decimal)
    except OSError as exc:
        raise PriceDataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PriceDataError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise PriceDataError(f"{path}: not valid JSON: {where}: {exc.msg}") from None
    except RecursionError:
        raise PriceDataError(f"{path}: not valid JSON: nested too deeply") from None


def price_value(value: object) -> Decimal:
    """A price from parsed JSON as an exact, finite, non-negative ``Decimal``; ``ValueError`` otherwise.

    Accepts Decimals (JSON floats), ints and numeric strings; refuses booleans, floats (they would have to go
    through binary), NaN, infinities and negative numbers.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError(f"expected a number, got {_show(value)}")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"expected a number, got {_show(value)}") from None
    if not number.is_finite():
        raise ValueError(f"expected a finite number, got {_show(value)}")
    if number < 0:
        raise ValueError(f"a price must not be negative, got {_show(value)}")
    return number


def _show(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def per_unit_to_rate(value: Decimal, unit: str) -> Decimal:
    """Convert a price for one unit (one token, one second, one query) into costline's rate per
    ``UNITS[unit].per`` units, exactly: ``scaleb`` for powers of ten (per token → per million tokens), an
    exact multiplication otherwise (per second → per 3,600 seconds)."""
    per = UNITS[unit].per
    text = str(per)
    if text.strip("0") == "1":
        rate = value.scaleb(len(text) - 1, MONEY_CONTEXT)
    else:
        rate = MONEY_CONTEXT.multiply(value, Decimal(per))
    return plain(rate.normalize(MONEY_CONTEXT))


def plain(value: Decimal) -> Decimal:
    """The same number without a positive exponent (``1E+1`` → ``10``), so rates display plainly."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return value.quantize(Decimal(1), context=MONEY_CONTEXT)
    return value


def tiered(base: Decimal, tiers: Iterable[tuple[int, Decimal]], basis: str = "input_tokens") -> Rate:
    """A ``TieredRate``, or the plain base rate when no tier changes it."""
    steps = tuple(sorted(tiers))
    if all(rate == base for _, rate in steps):
        return base
    return TieredRate(base=base, tiers=steps, basis=basis)


class Notes:
    """Warnings gathered while importing, grouped by message so a key ignored in 300 entries is one line."""

    def __init__(self) -> None:
        self._by_message: dict[str, list[str]] = {}
        self._plain: list[str] = []

    def add(self, model: str, message: str) -> None:
        self._by_message.setdefault(message, []).append(model)

    def general(self, message: str) -> None:
        self._plain.append(message)

    def render(self, *, examples: int = 5) -> tuple[str, ...]:
        lines = list(self._plain)
        for message, models in self._by_message.items():
            unique = list(dict.fromkeys(models))
            shown = ", ".join(unique[:examples]) + (", ..." if len(unique) > examples else "")
            noun = "entry" if len(unique) == 1 else "entries"
            lines.append(f"{message} ({len(unique)} {noun}: {shown})")
        return tuple(lines)
