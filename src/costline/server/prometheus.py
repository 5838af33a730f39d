"""``GET /metrics``: what was ingested, as Prometheus counters; a key sees only its own project's series.

The counters live in memory, one set per app (a dedicated ``CollectorRegistry``, never the global one), as
exact sums: ``Decimal`` for money, ``int`` for tokens and counts. They become floats only when written out.
They count ingestion as it happens (the pipeline calls ``IngestMetrics.observe`` after each commit): an
event sent again with the same id is counted again, except for the Langfuse batch API, whose partial
updates add only what they change to an observation already stored. They start from zero when the server
starts, like every Prometheus counter; the exact ledger is the store (the metrics and query APIs).

Labels are bounded by what clients send (project, model, provider, type, protocol); user ids, session ids
and trace ids are never labels. Every label value a client sends (model, provider, type, metadata values) is
cut to ``MAX_LABEL_VALUE`` characters, and a project has at most ``MAX_SERIES_PER_PROJECT`` series per counter.
``COSTLINE_METRICS_METADATA_LABELS`` adds chosen metadata keys as labels of the cost and token counters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from costline.control.budgets import BudgetService
from costline.core.cost import NO_USAGE
from costline.core.events import Observation
from costline.core.money import MONEY_CONTEXT
from costline.ingest.batch import Decoded
from costline.ingest.pipeline import IngestResult
from costline.server.app import ServerState, key_of
from costline.settings import metadata_label_name
from costline.store.base import ApiKey

#: the ingestion routes and the protocol each one speaks (the ``protocol`` label)
PROTOCOLS: Final[Mapping[str, str]] = {
    "/v1/ingest": "native",
    "/v1/traces": "otlp",
    "/api/public/otel/v1/traces": "otlp",
    "/api/public/ingestion": "langfuse",
    "/api/public/scores": "langfuse",
}
#: token directions counted, from the inclusive units (cached tokens are part of ``input_tokens``)
DIRECTIONS: Final = (("input", "input_tokens"), ("output", "output_tokens"))
#: label values sent by clients (model, provider, type, metadata values) longer than this are cut (a label value
#: is not a place for text; each series' values are kept in memory and written out on every scrape)
MAX_LABEL_VALUE: Final = 200
#: series per project and counter; later label combinations are folded into one ``__other__`` series, so a
#: client sending endless distinct model names cannot grow the server's memory without bound
MAX_SERIES_PER_PROJECT: Final = 2_000
OTHER: Final = "__other__"

Amount = Decimal | int


class ExactCounter:
    """One counter family: exact totals by project, then by the values of the other labels."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], unit: str = "") -> None:
        self.name = name
        self.documentation = documentation
        self.labels = ("project", *labels)
        self.unit = unit
        self.values: dict[str, dict[tuple[str, ...], Amount]] = {}

    def add(self, project_id: str, key: tuple[str, ...], amount: Amount) -> None:
        values = self.values.setdefault(project_id, {})
        if key not in values and len(values) >= MAX_SERIES_PER_PROJECT:
            key = tuple(OTHER for _ in key)
        old = values.get(key, 0)
        if isinstance(old, Decimal) or isinstance(amount, Decimal):
            values[key] = MONEY_CONTEXT.add(Decimal(old), Decimal(amount))
        else:
            values[key] = old + amount

    def family(self, project_id: str | None = None) -> CounterMetricFamily:
        """The family with the samples of one project (or all); the only place a total becomes a float."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels, unit=self.unit)
        projects = sorted(self.values) if project_id is None else [project_id]
        for project in projects:
            for key, value in sorted(self.values.get(project, {}).items()):
                family.add_metric((project, *key), float(value))
        return family


#: what one batch adds to the counters, in the order it is added: (counter, currency for "cost" else "", label
#: values, amount); see ``metric_sums``
MetricSums = tuple[tuple[str, str, tuple[str, ...], Amount], ...]


def metric_sums(observations: Iterable[Observation], previous: Mapping[str, Observation] | None,
                metadata_keys: tuple[str, ...]) -> MetricSums:
    """What a batch adds to the counters, computed apart from them (in a worker process too: see
    server/ingest_workers.py). Unpriced calls and fractional token counts come in the order met; then costs, summed
    per series exactly under MONEY_CONTEXT, and whole counts summed per series, each in the order its series
    first appeared (so the series cap folds the same ones)."""
    met: list[tuple[str, str, tuple[str, ...], Amount]] = []
    counts: dict[tuple[str, tuple[str, ...]], int] = {}
    costs: dict[tuple[str, tuple[str, ...]], Decimal] = {}
    for obs in observations:
        before = previous.get(obs.id) if previous else None
        model = (obs.model or "")[:MAX_LABEL_VALUE]
        provider = (obs.provider or "")[:MAX_LABEL_VALUE]
        if before is None:
            series = ("observations", (obs.type[:MAX_LABEL_VALUE],))
            counts[series] = counts.get(series, 0) + 1
        if _counts_unpriced(obs) and (before is None or not _counts_unpriced(before)):
            met.append(("unpriced", "", (model,), 1))
        meta = tuple(label_value(obs.metadata.get(key)) for key in metadata_keys) if metadata_keys else ()
        if obs.total_cost is not None:
            delta = obs.total_cost
            if before is not None and before.total_cost is not None and before.currency == obs.currency:
                delta = MONEY_CONTEXT.subtract(delta, before.total_cost)
            if delta >= 0:  # counters only go up: a lower cost after an update is not subtracted
                key = (obs.currency, (model, provider, *meta))
                total = costs.get(key)
                costs[key] = delta if total is None else MONEY_CONTEXT.add(total, delta)
        usage = obs.usage
        for direction, unit in DIRECTIONS:
            count = usage.get(unit, 0) - (before.usage.get(unit, 0) if before is not None else 0)
            if count > 0:
                labels = (model, provider, direction, *meta)
                if isinstance(count, int):
                    counts["tokens", labels] = counts.get(("tokens", labels), 0) + count
                else:  # not a whole count (a token quantity is one): added exactly, as it comes
                    met.append(("tokens", "", labels, count))
    return (*met, *(("cost", currency, labels, amount) for (currency, labels), amount in costs.items()),
            *((name, "", labels, count) for (name, labels), count in counts.items()))


class IngestMetrics:
    """The counters of one app and the registry that exposes them."""

    def __init__(self, metadata_keys: Iterable[str] = ()) -> None:
        self.metadata_keys = tuple(metadata_keys)
        meta = tuple(metadata_label_name(k) for k in self.metadata_keys)
        self._lock = threading.Lock()
        self._cost_labels = ("model", "provider", *meta)
        self._costs: dict[str, ExactCounter] = {}
        self.tokens = ExactCounter(
            "costline_tokens_total",
            "Tokens of ingested observations by direction; input counts cached tokens once (inclusive).",
            ("model", "provider", "direction", *meta), unit="tokens",
        )
        self.observations = ExactCounter(
            "costline_observations_ingested_total", "Observations ingested, by type.", ("type",))
        self.unpriced = ExactCounter(
            "costline_unpriced_observations_total",
            "Ingested observations that could not be priced (no price for the model), by model as sent.",
            ("model",),
        )
        self.rejected_items = ExactCounter(
            "costline_ingest_rejected_items_total",
            "Items of ingestion batches rejected (bad field), by protocol.", ("protocol",),
        )
        self.rejected_requests = ExactCounter(
            "costline_ingest_rejected_requests_total",
            "Authenticated ingestion requests answered with a 4xx (unreadable body, too large, nothing valid).",
            ("protocol", "code"),
        )
        self.worker_batches = ExactCounter(
            "costline_ingest_worker_batches",
            "Native batches and OTLP exports written from the rows a worker process prepared "
            "(COSTLINE_INGEST_WORKERS).", ())
        self._counters = {"tokens": self.tokens, "observations": self.observations, "unpriced": self.unpriced}
        self.cost_counter("USD")
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def cost_counter(self, currency: str) -> ExactCounter:
        counter = self._costs.get(currency)
        if counter is None:
            unit = currency.lower()
            counter = ExactCounter(
                f"costline_cost_{unit}_total",
                f"Cost of ingested observations in {currency} (priced, partially priced and provided totals).",
                self._cost_labels, unit=unit,
            )
            self._costs[currency] = counter
        return counter

    # -- counting ------------------------------------------------------------------------------------------

    def observe(self, project_id: str, protocol: str, decoded: Decoded, result: IngestResult) -> None:
        """Count one committed ingest (a ``Pipeline`` listener; it reads a batch's ``summary`` when the batch
        was written from a worker's rows)."""
        sums = result.summary.metrics if result.summary is not None else \
            metric_sums(result.observations, result.previous, self.metadata_keys)
        with self._lock:
            self.rejected_items.add(project_id, (protocol,), len(decoded.errors))
            if result.summary is not None:
                self.worker_batches.add(project_id, (), 1)
            for name, currency, key, amount in sums:
                counter = self.cost_counter(currency) if name == "cost" else self._counters[name]
                counter.add(project_id, key, amount)

    def rejected_request(self, project_id: str, protocol: str, status: int) -> None:
        with self._lock:
            self.rejected_requests.add(project_id, (protocol, str(status)), 1)

    # -- exposition ----------------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """Every project's series (what the app's registry holds)."""
        return self.families(None)

    def families(self, project_id: str | None) -> Iterator[Metric]:
        with self._lock:
            counters = [*(self._costs[c] for c in sorted(self._costs)), self.tokens, self.observations,
                        self.unpriced, self.rejected_items, self.rejected_requests, self.worker_batches]
            families = [c.family(project_id) for c in counters]
        yield from families


def label_value(value: Any) -> str:
    """A metadata value as a label value: scalars as text, anything else (objects, lists, null) empty."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float | Decimal):
        return str(value)[:MAX_LABEL_VALUE]
    return ""


class ProjectView:
    """The series of one project: what a key may see (a ``Collector`` for the exposition functions)."""

    def __init__(self, metrics: IngestMetrics, project_id: str, extra: Iterable[Metric] = ()) -> None:
        self.metrics = metrics
        self.project_id = project_id
        self.extra = list(extra)

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics.families(self.project_id)
        yield from self.extra


def budget_families(service: BudgetService, project_id: str) -> list[Metric]:
    """Gauges of where each budget not split per user stands now (a per-user budget would make a series per
    user: its figures are in ``GET /v1/budgets/{id}?subject=``)."""
    labels = ["budget", "window", "currency"]
    used = GaugeMetricFamily("costline_budget_used", "Spend counted by the budget in its current window "
                             "(recorded plus held by live reservations)", labels=labels)
    limit = GaugeMetricFamily("costline_budget_limit", "The budget's cost limit", labels=labels)
    remaining = GaugeMetricFamily("costline_budget_remaining", "What is left of the cost limit", labels=labels)
    requests = GaugeMetricFamily("costline_budget_requests_used", "Model calls counted in the window",
                                 labels=labels)
    quota = GaugeMetricFamily("costline_budget_max_requests", "The budget's request quota", labels=labels)
    for budget in service.budgets(project_id):
        if budget.per is not None:
            continue
        status = service.standing(project_id, budget)
        values = [budget.id, budget.window.label, budget.currency]
        used.add_metric(values, float(status.used))
        requests.add_metric(values, status.requests_used)
        if budget.limit is not None:
            limit.add_metric(values, float(budget.limit))
            remaining.add_metric(values, float(status.remaining or 0))
        if budget.max_requests is not None:
            quota.add_metric(values, budget.max_requests)
    return [used, limit, remaining, requests, quota]


class RejectionCounter:
    """ASGI middleware counting 4xx answers of the ingestion routes to authenticated requests."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protocol = PROTOCOLS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if protocol is None:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})  # shared with request.state further in

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
                key = state.get("api_key")
                if isinstance(key, ApiKey):  # a 401 has no project to count it in
                    self.metrics.rejected_request(key.project_id, protocol, message["status"])
            await send(message)

        await self.app(scope, receive, counting_send)


router = APIRouter()


@router.get("/metrics", summary="Prometheus counters of the key's project (text exposition format)",
            response_class=Response)
async def metrics(request: Request) -> Response:
    collected: IngestMetrics = request.app.state.costline_metrics
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    project_id = key_of(request).project_id
    budgets = await run_in_threadpool(budget_families, request.app.state.costline.budgets, project_id)
    body = encoder(ProjectView(collected, project_id, budgets))
    return Response(body, media_type=content_type)


def install(app: FastAPI) -> IngestMetrics:
    """Give ``app`` its counters: count the pipeline's ingests and 4xx answers, and serve ``GET /metrics``."""
    state: ServerState = app.state.costline
    collected = IngestMetrics(state.settings.metrics_metadata_labels)
    app.state.costline_metrics = collected
    state.pipeline.add_listener(collected.observe, reads_summary=True)
    app.add_middleware(RejectionCounter, metrics=collected)
    app.include_router(router)
    return collected


def _counts_unpriced(obs: Observation) -> bool:
    """Unpriced for the counter: a generation still open with no usage yet (a Langfuse ``generation-create``
    whose usage comes with a later update) is not counted until it ends without usage."""
    return obs.pricing_status == "unpriced" and not (obs.pricing_reason == NO_USAGE and obs.end_time is None)
