"""What a dashboard page was asked: range, zone, dimensions and filters from the query string, as the fields of
a native query (core/query.py), plus money formatting and the CSV cell guard.

Pages take ``from``/``to`` (dates or ISO times, ``to`` exclusive) and ``timezone`` exactly as ``/v1/metrics``
does, so a page's numbers are the API's answer to the query built here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from costline.core.money import decimal_str
from costline.core.query import QueryError
from costline.core.timebuckets import GRANULARITIES, zone
from costline.errors import CostlineError

#: dimensions the breakdown page offers (``metadata.<key>`` comes on top)
BREAKDOWN_DIMENSIONS: Final = ("model", "provider", "user", "session", "tag", "environment", "type", "name",
                               "trace_name", "release", "pricing_status", "price_id")
#: equality filters a page accepts from its query string (``tag`` matches any of the tags)
FILTER_FIELDS: Final = ("model", "provider", "user", "session", "environment", "type", "name", "pricing_status",
                        "tag")
STACKS: Final = ("model", "provider", "user", "tag", "environment", "type")
MAX_TEXT: Final = 500
_NUMBER: Final = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def text(params: Mapping[str, str], name: str, default: str = "") -> str:
    value = params.get(name, default).strip()
    if len(value) > MAX_TEXT:
        raise QueryError(f"{name}: longer than {MAX_TEXT} characters")
    return value


def timezone_of(params: Mapping[str, str]) -> str:
    name = text(params, "timezone", "UTC") or "UTC"
    try:
        zone(name)
    except CostlineError as exc:
        raise QueryError(f"timezone: {exc}") from None
    return name


def range_fields(params: Mapping[str, str], now: datetime, tz_name: str, default_days: int) -> dict[str, str]:
    """``from``/``to``/``timezone`` for a query: as given, or the last ``default_days`` local days with today."""
    today = now.astimezone(zone(tz_name)).date()
    start = text(params, "from") or (today - timedelta(days=default_days - 1)).isoformat()
    end = text(params, "to") or (today + timedelta(days=1)).isoformat()
    return {"from": start, "to": end, "timezone": tz_name}


def dimension(params: Mapping[str, str], name: str, default: str = "") -> str:
    value = text(params, name, default)
    if value and value not in BREAKDOWN_DIMENSIONS and not value.startswith("metadata."):
        raise QueryError(f"{name}: unknown dimension {value!r}; use one of {', '.join(BREAKDOWN_DIMENSIONS)} "
                         "or metadata.<key>")
    return value


def granularity(params: Mapping[str, str], default: str = "") -> str:
    value = text(params, "granularity", default)
    if value and value not in GRANULARITIES:
        raise QueryError(f"granularity: unknown value {value!r}; use one of {', '.join(GRANULARITIES)}")
    return value


def filters(params: Mapping[str, str]) -> list[dict[str, Any]]:
    """Equality filters from the query string (``model=gpt-4o``, ``tag=beta``), as query filter objects."""
    found: list[dict[str, Any]] = []
    for name in FILTER_FIELDS:
        value = text(params, name)
        if value:
            found.append({"field": name, "operator": "any of" if name == "tag" else "=", "value":
                          [value] if name == "tag" else value})
    return found


def money(value: Decimal | int | str | None) -> str:
    """An amount for display: cents from $1, four places from a cent, up to six below (trailing zeros dropped);
    ``unpriced`` for None."""
    if value is None:
        return "unpriced"
    amount = Decimal(value)
    places = 2 if abs(amount) >= 1 else 4 if abs(amount) >= Decimal("0.01") else 6
    shown = f"{abs(amount):,.{places}f}"
    if places > 4:  # $0.0084, not $0.008400; at least cents
        whole, _, fraction = shown.partition(".")
        shown = f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
    return f"${shown}" if amount >= 0 else f"-${shown}"


def exact(value: Decimal | int | str | None) -> str:
    """The exact decimal string (what the API answers), for ``data-value`` attributes and CSV."""
    return "" if value is None else decimal_str(Decimal(value))


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula: text starting with = + - @ tab or CR gets a
    leading apostrophe unless it is a plain number."""
    cell = "" if value is None else str(value)
    if cell and cell[0] in "=+-@\t\r" and not _NUMBER.match(cell):
        return "'" + cell
    return cell
