"""CloudWatch Embedded Metric Format (EMF) output of request costs, for code running in AWS Lambda.

With ``install(app, emf=EmfOptions(namespace="MyApp", dimensions={"Service": "api"}))`` the middleware writes,
after each request, EMF JSON lines to standard output (what Lambda ships to CloudWatch Logs, where they become
metrics, so CloudWatch alarms can watch costs): one document with ``RequestCostUSD``, ``InputTokens``,
``OutputTokens`` and ``UnpricedItems`` by ``Operation`` (plus your static dimensions), and one per service of
the breakdown with ``ServiceCostUSD`` by ``Operation`` and ``CostService``. The documents are built by AWS's
``aws-embedded-metrics`` library (``pip install "costline[aws]"``). Metric values are floats, as EMF requires;
the exact amounts stay in the trace.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["EmfOptions", "emf_documents"]


@dataclass(frozen=True, slots=True)
class EmfOptions:
    namespace: str = "costline"
    #: static dimensions added to every document (e.g. {"Service": "transcriber", "Stage": "prod"})
    dimensions: Mapping[str, str] = field(default_factory=dict)
    #: where each JSON line goes (default: standard output, which Lambda sends to CloudWatch Logs)
    write: Callable[[str], None] | None = None


def emf_documents(cost: Mapping[str, Any], options: EmfOptions, *, input_tokens: int = 0,
                  output_tokens: int = 0) -> list[str]:
    """EMF JSON lines for a request's cost object (``RequestCosts.cost_object``) and its token counts."""
    try:
        from aws_embedded_metrics.logger.metrics_context import MetricsContext
        from aws_embedded_metrics.serializers.log_serializer import LogSerializer
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError('EMF output needs aws-embedded-metrics: pip install "costline[aws]"') from exc
    operation = str(cost.get("operation", ""))
    out: list[str] = []
    request = MetricsContext.empty()
    request.namespace = options.namespace
    request.put_dimensions({**options.dimensions, "Operation": operation})
    request.put_metric("RequestCostUSD", float(Decimal(str(cost.get("total_cost", "0")))), "None")
    items = cost.get("cost_breakdown") or []
    request.put_metric("InputTokens", float(input_tokens), "Count")
    request.put_metric("OutputTokens", float(output_tokens), "Count")
    request.put_metric("UnpricedItems", float(cost.get("unpriced", 0)), "Count")
    request.set_property("request_id", cost.get("request_id"))
    out.extend(LogSerializer.serialize(request))
    by_service: dict[str, Decimal] = {}
    for item in items:
        if isinstance(item, Mapping) and item.get("cost") is not None:
            name = str(item.get("service", ""))
            by_service[name] = by_service.get(name, Decimal(0)) + Decimal(str(item["cost"]))
    for name, amount in sorted(by_service.items()):
        context = MetricsContext.empty()
        context.namespace = options.namespace
        context.put_dimensions({**options.dimensions, "Operation": operation, "CostService": name})
        context.put_metric("ServiceCostUSD", float(amount), "None")
        context.set_property("request_id", cost.get("request_id"))
        out.extend(LogSerializer.serialize(context))
    return out


def emit(cost: Mapping[str, Any], options: EmfOptions, *, input_tokens: int = 0, output_tokens: int = 0) -> None:
    write = options.write or (lambda line: print(line, file=sys.stdout, flush=True))
    for line in emf_documents(cost, options, input_tokens=input_tokens, output_tokens=output_tokens):
        write(line)
