"""User price files (YAML or JSON), validated by ``price_file.schema.json`` and compiled to price records.

Numbers are read as exact decimals from their text (YAML floats and JSON floats never become binary
floats). Errors name the file and the path of the bad field, e.g. ``prices.yaml: prices[2].rates.input_tokens:
-1 is less than the minimum of 0``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from costline.catalog.patterns import regex_match
from costline.core.price import Condition, Match, PriceRecord, Rate, Source, Variant
from costline.core.units import UNITS
from costline.errors import CostlineError, PriceDataError

MAX_FILE_BYTES = 16 * 1024 * 1024


class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader whose floats are Decimals parsed from the scalar's text."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise PriceDataError(f"line {node.start_mark.line + 1}: {text!r} is not a finite number") from None
    if not value.is_finite():
        raise PriceDataError(f"line {node.start_mark.line + 1}: {text!r} is not a finite number")
    return value


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
# dates stay strings so the schema and our parser see the text the user wrote
_DecimalLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: str(loader.construct_scalar(node))  # type: ignore[arg-type]
)


@cache
def price_file_schema() -> dict[str, Any]:
    text = resources.files("costline.catalog").joinpath("price_file.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def read_price_file(path: Path) -> Any:
    """Parse a YAML or JSON price file into plain data with Decimal numbers."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PriceDataError(f"{path}: file is {size} bytes, over the {MAX_FILE_BYTES} byte limit")
        text = path.read_text("utf-8")
    except OSError as exc:
        raise PriceDataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PriceDataError(f"{path}: not UTF-8 text") from None
    return parse_price_text(text, str(path), as_json=path.suffix.lower() == ".json")


def parse_price_text(text: str, name: str, *, as_json: bool = False) -> Any:
    if as_json:
        try:
            return json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise PriceDataError(f"{name}: not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    try:
        return yaml.load(text, Loader=_DecimalLoader)
    except PriceDataError as exc:
        raise PriceDataError(f"{name}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PriceDataError(f"{name}: not valid YAML: {where}{problem}") from None


def _path(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_price_data(data: Any, name: str) -> None:
    """Validate against the schema; raise ``PriceDataError`` for the most relevant error."""
    validator = jsonschema.Draft202012Validator(price_file_schema())
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    best = jsonschema.exceptions.best_match(errors)
    # descend into oneOf/anyOf to the deepest, most specific error
    while best.context:
        best = jsonschema.exceptions.best_match(best.context)
    raise PriceDataError(f"{name}: {_path(list(best.absolute_path))}: {best.message}")


def compile_price_data(
    data: Mapping[str, Any], name: str, *, source: Source = Source.USER
) -> tuple[PriceRecord, ...]:
    """Validated price-file data → records. ``name`` labels errors and the records' source."""
    validate_price_data(data, name)
    currency = data.get("currency", "USD")
    records: list[PriceRecord] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data["prices"]):
        where = f"{name}: prices[{index}]"
        try:
            records.extend(_compile_entry(entry, currency, name, source, index, seen))
        except CostlineError as exc:
            raise PriceDataError(f"{where}: {exc}") from None
    return tuple(records)


def load_price_file(path: Path, *, source: Source = Source.USER) -> tuple[PriceRecord, ...]:
    data = read_price_file(path)
    if not isinstance(data, Mapping):
        raise PriceDataError(f"{path}: expected a mapping with a `prices` list at the top level")
    return compile_price_data(data, path.name, source=source)


def _parse_when(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise PriceDataError(f"{field}: {text!r} is not an ISO 8601 date or date-time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _rates(raw: Mapping[str, Any], field: str) -> dict[str, Rate]:
    rates: dict[str, Rate] = {}
    for unit, value in raw.items():
        if unit not in UNITS:
            raise PriceDataError(f"{field}.{unit}: unknown unit; run `costline prices units` for the names")
        rates[unit] = value if isinstance(value, Decimal) else Decimal(value)
    return rates


def _condition(raw: Mapping[str, Any], field: str) -> Condition:
    if "usage" in raw:
        u = raw["usage"]
        for unit in u["units"]:
            if unit not in UNITS:
                raise PriceDataError(f"{field}.usage.units: unknown unit {unit!r}")
        return Condition("usage", units=tuple(u["units"]), op=u["op"], threshold=Decimal(u["value"]))
    if "attribute" in raw:
        a = raw["attribute"]
        values = tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in a["values"])
        return Condition("attribute", key=a["key"], values=values)
    t = raw["time_of_day"]
    return Condition("time_of_day", start=time.fromisoformat(t["start"]), end=time.fromisoformat(t["end"]))


def _match(entry: Mapping[str, Any]) -> Match:
    raw = entry.get("match")
    if raw is None:
        return Match("exact", entry["model"])
    case = bool(raw.get("case_sensitive", False))
    if "exact" in raw:
        return Match("exact", raw["exact"], case_sensitive=case)
    if "prefix" in raw:
        return Match("prefix", raw["prefix"], case_sensitive=case)
    return regex_match(raw["regex"], case_sensitive=case, field="match.regex")


def _compile_entry(
    entry: Mapping[str, Any], currency: str, name: str, source: Source, index: int, seen: dict[str, int]
) -> list[PriceRecord]:
    valid_from = _parse_when(entry["valid_from"], "valid_from") if "valid_from" in entry else None
    valid_to = _parse_when(entry["valid_to"], "valid_to") if "valid_to" in entry else None
    provider = entry.get("provider")
    if "alias" in entry:
        return [
            PriceRecord(
                id=f"{source.value}:{name}:alias:{entry['alias']}",
                model=entry["alias"],
                match=Match("exact", entry["alias"]),
                rates={},
                source=source,
                source_name=name,
                provider=provider,
                valid_from=valid_from,
                valid_to=valid_to,
                alias_of=entry["target"],
            )
        ]
    rates: dict[str, Rate] = {"input_tokens": Decimal(0), "output_tokens": Decimal(0)} if entry.get("free") else {}
    if "rates" in entry:
        rates = _rates(entry["rates"], "rates")
    variants = tuple(
        Variant(
            name=tier["name"],
            conditions=tuple(_condition(c, f"tiers[{i}].when[{j}]") for j, c in enumerate(tier["when"])),
            rates=_rates(tier["rates"], f"tiers[{i}].rates"),
            replace=bool(tier.get("replace", False)),
        )
        for i, tier in enumerate(entry.get("tiers", ()))
    )
    record_id = entry.get("id") or f"{source.value}:{name}:{entry['model']}"
    if record_id in seen:
        record_id = f"{record_id}#{index}"
    seen[record_id] = index
    match = _match(entry)
    aliases = tuple(entry.get("aliases", ()))
    if aliases:
        match = Match("any", clauses=(match, *(Match("exact", a) for a in aliases)))
    return [
        PriceRecord(
            id=record_id,
            model=entry["model"],
            match=match,
            rates=rates,
            source=source,
            source_name=name,
            provider=provider,
            valid_from=valid_from,
            valid_to=valid_to,
            variants=variants,
            currency=entry.get("currency", currency),
            context_window=entry.get("context_window"),
            description=entry.get("description", ""),
        )
    ]
