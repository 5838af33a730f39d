"""AWS Cost Explorer's filter ``Expression``: validated as GetCostAndUsage validates it, evaluated offline.

Semantics (reference/cloud-costs.md §A): exactly one root per expression (And, Or, Not, Dimensions, Tags,
CostCategories); the values of one Dimensions/Tags object are OR'ed; EQUALS and CASE_SENSITIVE are the
defaults; GetCostAndUsage accepts only EQUALS and CASE_SENSITIVE for Dimensions, and EQUALS, ABSENT and
CASE_SENSITIVE for Tags and CostCategories; ``*`` is a literal character, not a wildcard. ``Tags`` with ABSENT
and no Key matches lines without any tag; with a Key and no Values, lines without that key. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from costline.errors import CostlineError

ROOTS: Final = ("And", "Or", "Not", "Dimensions", "Tags", "CostCategories")
MAX_DEPTH: Final = 16
MAX_VALUES: Final = 10_000
MAX_VALUE_LENGTH: Final = 1024

DIMENSIONS: Final = (
    "AZ", "INSTANCE_TYPE", "LINKED_ACCOUNT", "PAYER_ACCOUNT", "LINKED_ACCOUNT_NAME", "OPERATION", "PURCHASE_TYPE",
    "REGION", "SERVICE", "SERVICE_CODE", "USAGE_TYPE", "USAGE_TYPE_GROUP", "RECORD_TYPE", "OPERATING_SYSTEM",
    "TENANCY", "SCOPE", "PLATFORM", "SUBSCRIPTION_ID", "LEGAL_ENTITY_NAME", "DEPLOYMENT_OPTION", "DATABASE_ENGINE",
    "CACHE_ENGINE", "INSTANCE_TYPE_FAMILY", "BILLING_ENTITY", "RESERVATION_ID", "RESOURCE_ID", "RIGHTSIZING_TYPE",
    "SAVINGS_PLANS_TYPE", "SAVINGS_PLAN_ARN", "PAYMENT_OPTION", "AGREEMENT_END_DATE_TIME_AFTER",
    "AGREEMENT_END_DATE_TIME_BEFORE", "INVOICING_ENTITY", "ANOMALY_TOTAL_IMPACT_ABSOLUTE",
    "ANOMALY_TOTAL_IMPACT_PERCENTAGE", "PRODUCT_ATTRIBUTE",
)
MATCH_OPTIONS: Final = ("EQUALS", "ABSENT", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "CASE_SENSITIVE",
                        "CASE_INSENSITIVE", "GREATER_THAN_OR_EQUAL")
ALLOWED: Final[Mapping[str, tuple[str, ...]]] = {
    "Dimensions": ("CASE_SENSITIVE", "EQUALS"),
    "Tags": ("CASE_SENSITIVE", "EQUALS", "ABSENT"),
    "CostCategories": ("CASE_SENSITIVE", "EQUALS", "ABSENT"),
}
MORE_THAN_ONE_ROOT: Final = ("Expression has more than one roots. Only one root operator is allowed for each "
                             "expression: And, Or, Not, Dimensions, Tags, CostCategories")


class ValidationException(CostlineError):  # noqa: N818 - the name Cost Explorer answers with
    """What Cost Explorer answers with ``__type: ValidationException`` and this message."""


@dataclass(frozen=True, slots=True)
class Line:
    """What an expression is evaluated against: dimension values, tags and cost categories of one line."""

    dimensions: Mapping[str, str]
    tags: Mapping[str, str]
    cost_categories: Mapping[str, str]


def _values(node: Mapping[str, Any], where: str) -> list[str] | None:
    values = node.get("Values")
    if values is None:
        return None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValidationException(f"{where}.Values must be a list of strings")
    if len(values) > MAX_VALUES:
        raise ValidationException(f"{where}.Values: at most {MAX_VALUES} values")
    if any(len(v) > MAX_VALUE_LENGTH for v in values):
        raise ValidationException(f"{where}.Values: a value is longer than {MAX_VALUE_LENGTH} characters")
    return values


def _options(node: Mapping[str, Any], kind: str, where: str) -> tuple[str, ...]:
    options = node.get("MatchOptions")
    if options is None:
        return ()
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValidationException(f"{where}.MatchOptions must be a list of strings")
    allowed = ALLOWED[kind]
    for option in options:
        if option not in MATCH_OPTIONS:
            raise ValidationException(f"1 validation error detected: Value '[{option}]' at '{where}.matchOptions' "
                                      f"failed to satisfy constraint: Member must satisfy enum value set: "
                                      f"[{', '.join(MATCH_OPTIONS)}]")
        if option not in allowed:
            raise ValidationException("MatchOptions contain not allowed match option. Allowed MatchOptions:"
                                      + ", ".join(allowed))
    return tuple(options)


def validate(expr: Any, where: str = "Filter", depth: int = 0) -> None:
    """Raise ``ValidationException`` unless ``expr`` is an Expression GetCostAndUsage accepts."""
    if depth > MAX_DEPTH:
        raise ValidationException(f"{where}: expressions nested deeper than {MAX_DEPTH} levels")
    if not isinstance(expr, Mapping):
        raise ValidationException(f"{where} must be an object")
    roots = [k for k in ROOTS if expr.get(k) is not None]
    unknown = [k for k in expr if k not in ROOTS]
    if unknown:
        raise ValidationException(f"{where}: unknown member {unknown[0]!r}; an Expression has one of "
                                  f"{', '.join(ROOTS)}")
    if len(roots) > 1:
        raise ValidationException(MORE_THAN_ONE_ROOT)
    if not roots:
        raise ValidationException(f"{where}: an Expression needs one root operator: {', '.join(ROOTS)}")
    root = roots[0]
    node = expr[root]
    if root in ("And", "Or"):
        if not isinstance(node, list) or not node:
            raise ValidationException(f"{where}.{root} must be a non-empty list of expressions")
        for i, child in enumerate(node):
            validate(child, f"{where}.{root}[{i}]", depth + 1)
    elif root == "Not":
        validate(node, f"{where}.Not", depth + 1)
    else:
        if not isinstance(node, Mapping):
            raise ValidationException(f"{where}.{root} must be an object")
        key = node.get("Key")
        if key is not None and not isinstance(key, str):
            raise ValidationException(f"{where}.{root}.Key must be a string")
        options = _options(node, root, f"{where}.{root}")
        values = _values(node, f"{where}.{root}")
        if root == "Dimensions":
            if key not in DIMENSIONS:
                raise ValidationException(f"1 validation error detected: Value '{key}' at 'filter.dimensions.key' "
                                          f"failed to satisfy constraint: Member must satisfy enum value set: "
                                          f"[{', '.join(DIMENSIONS)}]")
            if values is None:
                raise ValidationException(f"{where}.Dimensions: Values are required for dimension {key}")
        elif "ABSENT" not in options and (key is None or values is None):
            raise ValidationException(f"{where}.{root}: Key and Values are required unless MatchOptions has ABSENT")


def _equals(value: str, wanted: list[str], case_sensitive: bool) -> bool:
    if case_sensitive:
        return value in wanted
    folded = value.casefold()
    return any(folded == w.casefold() for w in wanted)


def _keyed(node: Mapping[str, Any], found: Mapping[str, str]) -> bool:
    options = node.get("MatchOptions") or ()
    key = node.get("Key")
    values = node.get("Values")
    case_sensitive = "CASE_INSENSITIVE" not in options
    if "ABSENT" in options:
        absent = not found if key is None else not found.get(key)
        if absent:
            return True
        if values is None:
            return False
    if key is None or values is None:
        return False
    value = found.get(key)
    if value is None or value == "":
        return "" in values  # an empty value stands for "not tagged with this key", as GroupBy shows it
    return _equals(value, values, case_sensitive)


def matches(expr: Mapping[str, Any], line: Line) -> bool:
    """Whether ``line`` passes a validated ``expr``."""
    if (children := expr.get("And")) is not None:
        return all(matches(child, line) for child in children)
    if (children := expr.get("Or")) is not None:
        return any(matches(child, line) for child in children)
    if (child := expr.get("Not")) is not None:
        return not matches(child, line)
    if (node := expr.get("Dimensions")) is not None:
        options = node.get("MatchOptions") or ()
        return _equals(line.dimensions.get(node["Key"], ""), node["Values"], "CASE_INSENSITIVE" not in options)
    if (node := expr.get("Tags")) is not None:
        return _keyed(node, line.tags)
    node = expr["CostCategories"]
    return _keyed(node, line.cost_categories)
