"""Billing amounts in other currencies, converted to USD with the European Central Bank's reference rate of
the charge's day (the last rate published on or before it: ECB publishes on TARGET working days).

The rates come from the ``currencyconverter`` package, which ships the ECB's history file: nothing is
downloaded at run time. Loading the history takes a few seconds, so it happens once, on the first non-USD line.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final

from costline.errors import CostlineError

TARGET: Final = "USD"
#: Converted amounts are kept to the store's 12 decimal places (half-even).
PLACES: Final = Decimal("1e-12")
_LOOKBACK_DAYS: Final = 10


class CurrencyError(CostlineError):
    """A currency with no ECB reference rate on or before the charge's date."""


@dataclass(frozen=True, slots=True)
class Rate:
    """``1 <currency> = rate USD`` as published by the ECB on ``day``."""

    currency: str
    rate: Decimal
    day: date
    source: str = "ECB euro foreign exchange reference rates"


class Rates:
    """Dated ECB reference rates, loaded once."""

    def __init__(self) -> None:
        self._converter: Any = None
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, date], Rate] = {}

    def _loaded(self) -> Any:
        with self._lock:
            if self._converter is None:
                from currency_converter import CurrencyConverter

                self._converter = CurrencyConverter(decimal=True, fallback_on_missing_rate=False,
                                                    fallback_on_wrong_date=False)
            return self._converter

    def _per_euro(self, currency: str, day: date) -> tuple[Decimal, date]:
        if currency == "EUR":
            return Decimal(1), day
        from currency_converter import RateNotFoundError

        converter = self._loaded()
        if currency not in converter.currencies:
            raise CurrencyError(f"no ECB reference rate for currency {currency!r}")
        for back in range(_LOOKBACK_DAYS):
            when = day - timedelta(days=back)
            try:
                rate = converter._get_rate(currency, when)  # the package's dated lookup, without interpolation
            except RateNotFoundError:
                continue
            if rate is not None:
                return Decimal(rate), when
        raise CurrencyError(f"no ECB reference rate for {currency} on or within {_LOOKBACK_DAYS} days before {day}")

    def to_usd(self, currency: str, day: date) -> Rate:
        """The rate that turns an amount in ``currency`` on ``day`` into USD."""
        key = (currency, day)
        found = self._cache.get(key)
        if found is None:
            usd, usd_day = self._per_euro(TARGET, day)
            other, other_day = self._per_euro(currency, day)
            found = Rate(currency, usd / other, min(usd_day, other_day))
            self._cache[key] = found
        return found


def convert(value: Decimal, rate: Rate) -> Decimal:
    return (value * rate.rate).quantize(PLACES)
