"""Cloud spend reports and Cost Explorer filter checks over imported billing lines (docs/cloud.md): the one
implementation behind ``costline cloud report|lint``, their server routes and the dashboard's cloud page."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from costline.cloud.explorer import cost_line
from costline.cloud.expression import matches

#: what a report's ``by`` accepts → how a line's value is read (docs/cloud.md)
BY_KEYS = ("service", "provider", "account", "billing_account", "region", "category", "service_category",
           "charge_category", "day", "month")
#: short names people write → the SERVICE values Cost Explorer uses
SHORT_SERVICE_NAMES = {
    "ECS": "Amazon Elastic Container Service", "Amazon ECS": "Amazon Elastic Container Service",
    "EC2": "Amazon Elastic Compute Cloud - Compute", "Amazon EC2": "Amazon Elastic Compute Cloud - Compute",
    "RDS": "Amazon Relational Database Service", "Amazon RDS": "Amazon Relational Database Service",
    "S3": "Amazon Simple Storage Service", "Amazon S3": "Amazon Simple Storage Service",
    "ELB": "Amazon Elastic Load Balancing", "EFS": "Amazon Elastic File System", "Lambda": "AWS Lambda",
    "DynamoDB": "Amazon DynamoDB", "CloudWatch": "AmazonCloudWatch", "Amazon CloudWatch": "AmazonCloudWatch",
    "ElastiCache": "Amazon ElastiCache", "Bedrock": "Amazon Bedrock", "ECR": "Amazon EC2 Container Registry (ECR)",
}



def by_keys(text: str) -> list[str]:
    """``service,tag:Project`` as report keys; ``ValueError`` naming a key that is not one."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    for key in keys:
        if key not in BY_KEYS and not (key.startswith("tag:") and 4 < len(key) <= 260):
            raise ValueError(f"by: {key[:80]!r} is not a report key; use {', '.join(BY_KEYS)} or tag:<Key>")
    if not keys or len(keys) > 4:
        raise ValueError("by: between 1 and 4 keys")
    return keys


def line_value(obs: Any, key: str) -> str:
    meta = obs.metadata
    if key.startswith("tag:"):
        tags = meta.get("tags") or {}
        return f"{key[4:]}${tags.get(key[4:], '')}"
    if key == "service":
        return str(meta.get("service", obs.name or ""))
    if key == "provider":
        return str(obs.provider or "")
    if key == "account":
        return str(meta.get("sub_account_id") or meta.get("billing_account_id") or "")
    if key == "billing_account":
        return str(meta.get("billing_account_id", ""))
    if key == "region":
        return str(meta.get("region_id") or meta.get("region_name") or "")
    if key in ("category", "charge_category"):
        return str(meta.get("charge_category", ""))
    if key == "service_category":
        return str(meta.get("service_category", ""))
    if key == "day":
        return str(obs.start_time.date())
    return str(obs.start_time.strftime("%Y-%m"))


def cloud_report(observations: Sequence[Any], by: Sequence[str], expr: dict[str, Any] | None) -> dict[str, Any]:
    """Totals by the ``by`` keys, credits and refunds on their own lines, and the untagged share of each tag."""
    groups: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    credits: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    untagged: dict[str, Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    for obs in observations:
        if expr is not None and not matches(expr, cost_line(obs).line):
            continue
        amount = obs.total_cost or Decimal(0)
        total += amount
        key = tuple(line_value(obs, k) for k in by)
        category = str(obs.metadata.get("charge_category", ""))
        if category in ("Credit", "Adjustment") or (category != "Usage" and amount < 0):
            credits[(category or "Credit", *key)] += amount
        else:
            groups[key] += amount
        for k in by:
            if k.startswith("tag:") and not (obs.metadata.get("tags") or {}).get(k[4:]):
                untagged[k[4:]] += amount
    rows = [{**dict(zip(by, key, strict=True)), "cost": format(v, "f")}
            for key, v in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))]
    credit_rows = [{"charge_category": key[0], **dict(zip(by, key[1:], strict=True)), "cost": format(v, "f")}
                   for key, v in sorted(credits.items())]
    shares = {k: {"cost": format(v, "f"), "share": format((v / total * 100).quantize(Decimal("0.01")), "f")
                  if total else "0"} for k, v in untagged.items()}
    return {"total": format(total, "f"), "currency": "USD", "rows": rows, "credits_and_refunds": credit_rows,
            "untagged": shares}


def lint_context(observations: Iterable[Any]) -> tuple[set[str], set[str]]:
    """The SERVICE values and tag keys of the imported AWS lines (what Cost Explorer filters can match)."""
    services: set[str] = set()
    tag_keys: set[str] = set()
    for obs in observations:
        if obs.provider == "aws":
            services.add(str(obs.metadata.get("service", "")))
            tag_keys.update((obs.metadata.get("tags") or {}).keys())
    return services, tag_keys


def lint_filter(expr: Any, services: set[str], tag_keys: set[str]) -> list[str]:
    """Warnings for a valid Expression that cannot mean what it seems."""
    warnings: list[str] = []

    def walk(node: Any, where: str) -> None:
        for op in ("And", "Or"):
            for i, child in enumerate(node.get(op) or []):
                walk(child, f"{where}.{op}[{i}]")
        if node.get("Not") is not None:
            walk(node["Not"], f"{where}.Not")
        for kind in ("Dimensions", "Tags", "CostCategories"):
            leaf = node.get(kind)
            if leaf is None:
                continue
            for value in leaf.get("Values") or []:
                if "*" in value or "?" in value:
                    warnings.append(f"{where}.{kind}: {value!r} is a literal in Cost Explorer (no wildcards): it "
                                    "matches only that exact text; list the values (costline cloud report "
                                    "--by tag:KEY shows them)")
            if kind == "Dimensions" and leaf.get("Key") == "SERVICE":
                for value in leaf.get("Values") or []:
                    if services and value not in services:
                        hint = SHORT_SERVICE_NAMES.get(value)
                        seen = ", ".join(sorted(services)[:12])
                        warnings.append(f"{where}.Dimensions: SERVICE {value!r} is not a SERVICE value in the "
                                        f"imported data" + (f" (did you mean {hint!r}?)" if hint else "") +
                                        f"; values seen: {seen}")
            if kind == "Tags" and leaf.get("Key") and tag_keys and leaf["Key"] not in tag_keys:
                warnings.append(f"{where}.Tags: no imported line carries the tag key {leaf['Key']!r} "
                                f"(keys seen: {', '.join(sorted(tag_keys)[:12])})")

    walk(expr, "Filter")
    return warnings
