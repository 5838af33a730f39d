"""GET /metrics over real HTTP on DuckDB and PostgreSQL: counters after native, Langfuse and OTLP ingestion,
parsed with prometheus_client's own parser. Expected costs are computed here from the published gpt-4o
price (`costline prices explain gpt-4o`: input 2.5, cache read 1.25, output 10 USD per 1M tokens)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from tests.server.harness import Server, create_project, drop_postgres_schema, make_server, postgres_url

T0 = "2026-11-01T12:00:00Z"
USER = "user-secret-42"
SESSION = "session-secret-7"


class Projects:
    def __init__(self, server: Server, others: dict[str, dict[str, str]]) -> None:
        self.server = server
        self.others = others

    def auth(self, name: str) -> tuple[str, str]:
        if name == "main":
            return self.server.public_key, self.server.secret_key
        return self.others[name]["public_key"], self.others[name]["secret_key"]

    def project_id(self, name: str) -> str:
        return self.server.project_id if name == "main" else self.others[name]["project_id"]


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def projects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Projects]:
    tmp: Path = tmp_path_factory.mktemp(f"metrics-{request.param}")
    srv, schema = make_server(request.param, tmp, {"COSTLINE_METRICS_METADATA_LABELS": "feature"})
    # more projects before the start (an embedded DuckDB file has one writer process)
    others = {name: create_project(srv.store_url, tmp, srv.env, name=name) for name in ("other", "resend")}
    srv.start()
    yield Projects(srv, others)
    srv.stop()
    base = postgres_url()
    if schema and base:
        drop_postgres_schema(base, schema)


def scrape(p: Projects, name: str = "main") -> list[Sample]:
    r = httpx.get(f"{p.server.url}/metrics", auth=p.auth(name), timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [s for family in text_string_to_metric_families(r.text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The value of the one sample with exactly these labels (the project label comes from the caller)."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, [s for s in samples if s.name == name])
    return found[0]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def native(p: Projects, events: list[dict[str, object]], name: str = "main") -> httpx.Response:
    return httpx.post(f"{p.server.url}/v1/ingest", json={"events": events}, auth=p.auth(name), timeout=30)


def envelope(kind: str, body: dict[str, object]) -> dict[str, object]:
    return {"id": uuid.uuid4().hex, "type": kind, "timestamp": T0, "body": body}


def test_counters_follow_ingestion(projects: Projects) -> None:
    p = projects
    main = p.project_id("main")
    trace_id = uuid.uuid4().hex
    r = native(p, [
        # gpt-4o: 600 uncached × 2.5 + 400 cached × 1.25 + 200 × 10 = 1500 + 500 + 2000 = 4000 / 1M = 0.004
        {"type": "generation", "id": uuid.uuid4().hex, "trace_id": trace_id, "start_time": T0, "model": "gpt-4o",
         "provider": "openai", "usage": {"input_tokens": 1000, "cache_read_tokens": 400, "output_tokens": 200},
         "user_id": USER, "session_id": SESSION, "metadata": {"feature": "cart", "user": USER}},
        {"type": "generation", "id": uuid.uuid4().hex, "trace_id": trace_id, "start_time": T0,
         "model": "house-model-9", "usage": {"input_tokens": 10, "output_tokens": 5}, "user_id": USER},
        {"type": "span", "id": uuid.uuid4().hex, "trace_id": trace_id, "start_time": T0, "name": "retrieve"},
        {"type": "generation", "id": uuid.uuid4().hex, "model": "gpt-4o", "usage": {"input_tokens": -5}},
        {"type": "trace", "id": trace_id, "name": "chat", "user_id": USER, "session_id": SESSION},
    ])
    assert r.status_code == 207 and r.json()["rejected"] == 1, r.text
    # a body that cannot be read at all is a rejected request
    r = httpx.post(f"{p.server.url}/v1/ingest", content=b'{"events": [', auth=p.auth("main"),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400

    # Langfuse: create, then an update with the usage, then an update that only ends it (priced once)
    lf_trace, lf_gen = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    lf_url = f"{p.server.url}/api/public/ingestion"
    r = httpx.post(lf_url, auth=p.auth("main"), json={"batch": [
        envelope("trace-create", {"id": lf_trace, "name": "chat", "userId": USER, "timestamp": T0}),
        envelope("generation-create", {"id": lf_gen, "traceId": lf_trace, "startTime": T0, "model": "gpt-4o"}),
        envelope("generation-create", {"id": "g-bad", "traceId": lf_trace, "usageDetails": {"input": -5}}),
    ]})
    assert r.status_code == 207 and len(r.json()["errors"]) == 1
    # 600 uncached + 400 cached + 200 output on gpt-4o: again 0.004
    for update in ({"usageDetails": {"input": 600, "input_cached_tokens": 400, "output": 200}},
                   {"endTime": "2026-11-01T12:00:02Z"}):
        r = httpx.post(lf_url, auth=p.auth("main"), json={"batch": [
            envelope("generation-update", {"id": lf_gen, "traceId": lf_trace, **update})]})
        assert r.status_code == 207 and r.json()["errors"] == []

    # OTLP/JSON: one good LLM span, one with a bad span id; then an undecodable body
    otlp_trace = uuid.uuid4().hex
    body = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "openinference.instrumentation.openai"}, "spans": [
        {"traceId": otlp_trace, "spanId": otlp_trace[:16], "name": "ChatCompletion",
         "startTimeUnixNano": "1761998400000000000", "attributes": [
             {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
             {"key": "llm.model_name", "value": {"stringValue": "gpt-4o-2024-08-06"}},
             {"key": "llm.provider", "value": {"stringValue": "openai"}},
             {"key": "user.id", "value": {"stringValue": USER}},
             {"key": "llm.token_count.prompt", "value": {"intValue": "100"}},
             {"key": "llm.token_count.completion", "value": {"intValue": "20"}},
             {"key": "llm.token_count.prompt_details.cache_read", "value": {"intValue": "40"}}]},
        {"traceId": otlp_trace, "spanId": "xyz", "name": "bad", "startTimeUnixNano": "1761998400000000000"},
    ]}]}]}
    r = httpx.post(f"{p.server.url}/v1/traces", json=body, auth=p.auth("main"))
    assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] in ("1", 1)
    r = httpx.post(f"{p.server.url}/v1/traces", content=b"\x00\x01garbage", auth=p.auth("main"),
                   headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400

    # another project's data must not show up in this project's scrape
    assert native(p, [{"id": uuid.uuid4().hex, "model": "gpt-4o", "start_time": T0, "usage": {"input_tokens": 7}}],
                  "other").is_success

    s = scrape(p)
    assert {x.labels["project"] for x in s if "project" in x.labels} == {main}
    cost = "costline_cost_usd_total"
    assert value(s, cost, project=main, model="gpt-4o", provider="openai", metadata_feature="cart") == float(
        D("0.004"))
    # the Langfuse generation, priced once although three events carried it
    assert value(s, cost, project=main, model="gpt-4o", provider="openai", metadata_feature="") == float(D("0.004"))
    # 60 uncached × 2.5 + 40 cached × 1.25 + 20 × 10 = 150 + 50 + 200 = 400 / 1M
    assert value(s, cost, project=main, model="gpt-4o-2024-08-06", provider="openai",
                 metadata_feature="") == float(D("0.0004"))
    assert total(s, cost) == pytest.approx(float(D("0.0084")))
    assert total(s, cost, model="house-model-9") == 0  # unpriced is not $0: it has no cost series at all

    tokens = "costline_tokens_total"
    assert value(s, tokens, project=main, model="gpt-4o", provider="openai", direction="input",
                 metadata_feature="cart") == 1000  # cached tokens are inside the 1000, not added to it
    assert value(s, tokens, project=main, model="gpt-4o", provider="openai", direction="output",
                 metadata_feature="cart") == 200
    assert value(s, tokens, project=main, model="house-model-9", provider="", direction="input",
                 metadata_feature="") == 10
    assert total(s, tokens, direction="input") == 1000 + 10 + 1000 + 100
    assert total(s, tokens, direction="output") == 200 + 5 + 200 + 20

    observed = "costline_observations_ingested_total"
    assert value(s, observed, project=main, type="generation") == 4  # 2 native, 1 Langfuse, 1 OTLP
    assert value(s, observed, project=main, type="span") == 1
    assert value(s, "costline_unpriced_observations_total", project=main, model="house-model-9") == 1
    assert total(s, "costline_unpriced_observations_total") == 1

    items = "costline_ingest_rejected_items_total"
    for protocol in ("native", "langfuse", "otlp"):
        assert value(s, items, project=main, protocol=protocol) == 1, protocol
    requests = "costline_ingest_rejected_requests_total"
    assert value(s, requests, project=main, protocol="native", code="400") == 1
    assert value(s, requests, project=main, protocol="otlp", code="400") == 1
    assert total(s, requests, protocol="langfuse") == 0

    # no user or session id anywhere: not as a label name, not as a label value
    for sample in s:
        assert not {"user", "user_id", "session", "session_id"} & set(sample.labels), sample
        assert USER not in sample.labels.values() and SESSION not in sample.labels.values(), sample

    other = scrape(p, "other")
    assert {x.labels["project"] for x in other if "project" in x.labels} == {p.project_id("other")}
    assert total(other, tokens, direction="input") == 7
    assert total(other, cost) == float(D("0.0000175"))  # 7 × 2.5 / 1M


def test_a_resent_event_is_counted_again(projects: Projects) -> None:
    # native events replace their stored row (the ledger holds one), but the counters count ingestion
    event = {"id": uuid.uuid4().hex, "model": "gpt-4o", "start_time": T0, "usage": {"input_tokens": 1000}}
    for _ in range(2):
        assert native(projects, [event], "resend").status_code == 200
    s = scrape(projects, "resend")
    # 1000 × 2.5 / 1M = 0.0025 per ingest
    assert total(s, "costline_cost_usd_total") == float(D("0.005"))
    assert total(s, "costline_observations_ingested_total") == 2


def test_metrics_need_a_key(projects: Projects) -> None:
    url = f"{projects.server.url}/metrics"
    assert httpx.get(url).status_code == 401  # not open on loopback, unlike health
    assert httpx.get(url, headers={"Authorization": f"Bearer {projects.server.secret_key}x"}).status_code == 401
    r = httpx.get(url, headers={"Authorization": f"Bearer {projects.server.secret_key}"})
    assert r.status_code == 200 and "# TYPE costline_cost_usd_total counter" in r.text
    r = httpx.get(url, auth=projects.auth("main"), headers={"Accept": "application/openmetrics-text"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")


def test_each_app_has_its_own_registry() -> None:
    from prometheus_client import REGISTRY

    from costline.core.events import Observation
    from costline.ingest.batch import Decoded
    from costline.ingest.pipeline import IngestResult
    from costline.server.prometheus import IngestMetrics

    first, second = IngestMetrics(), IngestMetrics(["feature"])  # the global registry would refuse the second
    assert first.registry is not second.registry
    obs = Observation(project_id="p", id="o", trace_id="t", start_time=datetime(2026, 11, 1, tzinfo=UTC),
                      type="generation", model="m", provider="x", usage={"input_tokens": 3},
                      total_cost=D("0.1"), pricing_status="priced", metadata={"feature": ["not", "a", "scalar"]})
    for _ in range(3):
        second.observe("p", "native", Decoded(), IngestResult((obs,), (), ()))
    samples = [s for f in second.registry.collect() for s in f.samples]
    cost = [s for s in samples if s.name == "costline_cost_usd_total"]
    # 3 × 0.1, summed exactly and converted once (three float additions would give 0.30000000000000004)
    assert [(s.labels["metadata_feature"], s.value) for s in cost] == [("", 0.3)]
    assert not [s for f in first.registry.collect() for s in f.samples if s.value]
    assert not [f for f in REGISTRY.collect() if f.name.startswith("costline_")]


def test_series_per_project_are_capped() -> None:
    """A client sending endless distinct model names cannot grow the counters without bound: past the cap,
    new label combinations fold into one __other__ series and the totals stay exact."""
    from costline.core.events import Observation
    from costline.ingest.batch import Decoded
    from costline.ingest.pipeline import IngestResult
    from costline.server import prometheus

    metrics = prometheus.IngestMetrics()
    cap = prometheus.MAX_SERIES_PER_PROJECT
    start = datetime(2026, 11, 1, tzinfo=UTC)
    observations = tuple(
        Observation(project_id="p", id=f"o{i}", trace_id="t", start_time=start, type="generation",
                    model=f"model-{i}", provider="x", total_cost=D("0.01"), pricing_status="provided")
        for i in range(cap + 50)
    )
    metrics.observe("p", "native", Decoded(), IngestResult(observations, (), ()))
    cost = [s for f in metrics.registry.collect() for s in f.samples if s.name == "costline_cost_usd_total"]
    assert len(cost) == cap + 1
    other = [s for s in cost if s.labels["model"] == prometheus.OTHER]
    assert [(s.labels["provider"], s.value) for s in other] == [(prometheus.OTHER, 0.5)]  # 50 × 0.01
    assert sum(D(repr(s.value)) for s in cost) == D("0.01") * (cap + 50)


def test_label_values_are_cut() -> None:
    """A 10,000-character model name (or provider, type, metadata value) is a 200-character label value: each
    series' labels stay in memory and go out on every scrape."""
    from costline.core.events import Observation
    from costline.ingest.batch import Decoded
    from costline.ingest.pipeline import IngestResult
    from costline.server import prometheus

    metrics = prometheus.IngestMetrics(["feature"])
    long = "m" * 10_000
    obs = Observation(project_id="p", id="o", trace_id="t", start_time=datetime(2026, 11, 1, tzinfo=UTC),
                      type="g" * 5_000, model=long, provider="p" * 5_000, usage={"input_tokens": 3},
                      total_cost=D("0.1"), pricing_status="unpriced", metadata={"feature": "f" * 5_000})
    metrics.observe("p", "native", Decoded(), IngestResult((obs,), (), ()))
    samples = [s for f in metrics.registry.collect() for s in f.samples]
    assert samples
    values = [v for s in samples for k, v in s.labels.items() if k != "project"]
    assert values and max(len(v) for v in values) == 200
    assert {s.labels["model"] for s in samples if "model" in s.labels} == {"m" * 200}
    assert {s.labels["metadata_feature"] for s in samples if "metadata_feature" in s.labels} == {"f" * 200}


def test_a_batch_adds_each_series_its_exact_sum_once() -> None:
    """Costs are summed per series over the batch (exactly) and added once; a lower cost after an update is not
    subtracted, a higher one adds its difference; other currencies keep their own counter."""
    from costline.core.events import Observation
    from costline.ingest.batch import Decoded
    from costline.ingest.pipeline import IngestResult
    from costline.server import prometheus

    metrics = prometheus.IngestMetrics()
    start = datetime(2026, 11, 1, tzinfo=UTC)

    def obs(i: int, cost: str, currency: str = "USD") -> Observation:
        return Observation(project_id="p", id=f"o{i}", trace_id="t", start_time=start, type="generation",
                           model="m", provider="x", total_cost=D(cost), currency=currency, pricing_status="priced")

    batch = (obs(1, "0.000000000001"), obs(2, "1E+14"), obs(3, "0.1"), obs(4, "2", "EUR"), obs(5, "0.2"))
    metrics.observe("p", "native", Decoded(), IngestResult(batch, (), ()))
    assert metrics.cost_counter("USD").values["p"] == {("m", "x"): D("100000000000000.300000000001")}
    assert metrics.cost_counter("EUR").values["p"] == {("m", "x"): D("2")}
    updated = (obs(3, "0.05"), obs(5, "0.7"))  # 0.1 → 0.05 adds nothing, 0.2 → 0.7 adds 0.5
    metrics.observe("p", "langfuse", Decoded(), IngestResult(updated, (), (), {"o3": batch[2], "o5": batch[4]}))
    assert metrics.cost_counter("USD").values["p"] == {("m", "x"): D("100000000000000.800000000001")}
