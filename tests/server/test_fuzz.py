"""A bounded fuzz run over every ingestion route and the query routes, on DuckDB and PostgreSQL.

Hypothesis builds batches in which one item carries hostile values (huge integers, 1e400, NaN/Infinity,
``9e999999999``, deep nesting, NUL, lone surrogates, very long strings, wrong types, unknown fields, 40-digit
times, end before start) beside a valid item, and hostile query parameters. Every example asserts: no 5xx,
the valid neighbour is stored and readable, and no reply ever shows a second project's marker; afterwards the
server still answers. ``derandomize=True`` and fixed example counts keep CI stable and the run short.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.server.harness import Server, create_project, drop_postgres_schema, make_server, postgres_url

T0 = "2026-11-01T12:00:00Z"
T0_NS = 1_793_534_400_000_000_000
OTHER_MARKER = "other-project-marker-7f3a"  # the second project's ids: probed by the first project's requests
OTHER_SECRET = "other-project-secret-91c2"  # its stored values: never sent by the first project, never seen by it
FUZZ = settings(max_examples=15, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values JSON cannot say are written as markers and replaced by raw text after ``json.dumps``.
RAW = {
    "@NaN": "NaN", "@Inf": "Infinity", "@-Inf": "-Infinity", "@1e400": "1e400", "@-1e400": "-1e400",
    "@surrogate": '"a\\ud800b"', "@lowsurrogate": '"\\udfff"', "@deep": '{"a":' * 600 + "1" + "}" * 600,
    "@deeplist": "[" * 300 + "]" * 300, "@bigint": "1" + "0" * 5000,
}

hostile_scalars = st.one_of(
    st.sampled_from(sorted(RAW)),
    st.sampled_from([2**63, 2**64, 2**64 + 1, -(2**63) - 1, -1, 10**26, 10**40]),
    st.sampled_from(["9e999999999", "-9e999999999", "1e-999999999", "NaN", "Infinity", "1e26", "²", "١٢",
                     "1" * 40, "9" * 5000, "", " ", "null", "true", "[]", "{}"]),
    st.sampled_from(["\x00", "a\x00b", "x" * 100_000, "é" * 5000, "9999-12-31T23:59:59-05:00",
                     "0001-01-01T00:00:00+05:00", "2026-13-45T99:99:99Z", "yesterday"]),
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
    st.text(max_size=30),
)
hostile_values = st.one_of(
    hostile_scalars,
    st.lists(hostile_scalars, max_size=3),
    st.dictionaries(st.text(max_size=8), hostile_scalars, max_size=3),
)

NATIVE_FIELDS = ("id", "type", "trace_id", "parent_id", "name", "start_time", "end_time", "completion_start_time",
                 "model", "provider", "usage", "usage_format", "cost", "attributes", "user_id", "session_id", "tags",
                 "metadata", "environment", "release", "version", "level", "status_message", "model_parameters",
                 "public", "unknown_field")
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "input", "output", "total", "prompt_tokens")
LANGFUSE_FIELDS = ("id", "traceId", "parentObservationId", "name", "startTime", "endTime", "completionStartTime",
                   "model", "usage", "usageDetails", "costDetails", "metadata", "modelParameters", "level",
                   "statusMessage", "version", "environment", "userId", "sessionId", "tags", "value", "type",
                   "somethingNew")
OTLP_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cost",
             "gen_ai.request.model", "gen_ai.response.model", "user.id", "session.id", "langfuse.trace.tags",
             "langfuse.observation.metadata", "langfuse.observation.metadata.k", "langfuse.observation.usage_details",
             "langfuse.observation.cost_details", "langfuse.observation.completion_start_time", "langfuse.trace.name",
             "langfuse.environment", "gen_ai.operation.name", "llm.token_count.prompt")
SPAN_FIELDS = ("traceId", "spanId", "parentSpanId", "name", "startTimeUnixNano", "endTimeUnixNano", "status",
               "kind", "attributes", "unknownField")


def render(document: Any) -> bytes:
    text = json.dumps(document)
    for marker, raw in RAW.items():
        text = text.replace(json.dumps(marker), raw)
    return text.encode()


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def fuzz_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with two projects; the second holds a marker that no reply to the first may ever show."""
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    srv, schema = make_server(request.param, tmp)
    other = create_project(srv.store_url, tmp, srv.env, name="other")
    srv.start()
    auth = httpx.BasicAuth(other["public_key"], other["secret_key"])
    marker = {"type": "generation", "id": OTHER_MARKER, "trace_id": OTHER_MARKER, "start_time": T0,
              "model": "gpt-4o", "user_id": OTHER_MARKER, "session_id": OTHER_MARKER, "name": OTHER_SECRET,
              "tags": [OTHER_SECRET], "metadata": {OTHER_SECRET: OTHER_SECRET}, "release": OTHER_SECRET,
              "usage": {"input_tokens": 7, "output_tokens": 3}}
    r = httpx.post(f"{srv.url}/v1/ingest", json={"events": [marker]}, auth=auth, timeout=30)
    assert r.status_code == 200, r.text
    yield srv
    srv.stop()
    base = postgres_url()
    if schema and base:
        drop_postgres_schema(base, schema)


def check_reply(r: httpx.Response) -> None:
    assert r.status_code < 500, f"{r.request.method} {r.request.url} -> {r.status_code} {r.text[:500]}"
    assert OTHER_SECRET not in r.text, f"another project's data in {r.request.url}"


def neighbour_kept(c: httpx.Client, trace_id: str) -> None:
    r = c.get(f"/api/public/traces/{trace_id}")
    check_reply(r)
    assert r.status_code == 200 and len(r.json()["observations"]) == 1, r.text[:500]


def post(c: httpx.Client, path: str, body: bytes, content_type: str = "application/json") -> httpx.Response:
    r = c.post(path, content=body, headers={"Content-Type": content_type})
    check_reply(r)
    return r


@st.composite
def hostile_fields(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    return {name: draw(hostile_values) for name in chosen}


@FUZZ
@given(fields=hostile_fields(NATIVE_FIELDS), usage=st.dictionaries(st.sampled_from(USAGE_KEYS), hostile_scalars,
                                                                     max_size=2))
def test_fuzz_native(fuzz_server: Server, fields: dict[str, Any], usage: dict[str, Any]) -> None:
    good = uuid.uuid4().hex
    bad: dict[str, Any] = {"type": "generation", "id": uuid.uuid4().hex, "start_time": T0, "model": "gpt-4o",
                           "usage": {"input_tokens": 10, **usage}, **fields}
    valid = {"type": "generation", "id": good, "trace_id": good, "start_time": T0, "model": "gpt-4o",
             "usage": {"input_tokens": 10, "output_tokens": 5}}
    with fuzz_server.client() as c:
        r = post(c, "/v1/ingest", render({"events": [valid, bad]}))
        assert r.status_code in (200, 207), r.text[:500]
        neighbour_kept(c, good)


@FUZZ
@given(kind=st.sampled_from(["generation-create", "generation-update", "span-create", "trace-create", "score-create",
                             "observation-create", "event-create", "nonsense"]),
       fields=hostile_fields(LANGFUSE_FIELDS), envelope=hostile_fields(("id", "timestamp", "type", "body")))
def test_fuzz_langfuse_ingestion(fuzz_server: Server, kind: str, fields: dict[str, Any],
                                 envelope: dict[str, Any]) -> None:
    good = uuid.uuid4().hex
    body = {"id": uuid.uuid4().hex, "traceId": uuid.uuid4().hex, "name": "x", "value": 1, **fields}
    bad = {"id": uuid.uuid4().hex, "type": kind, "timestamp": T0, "body": body}
    if envelope.keys() - {"body"}:
        bad.update({k: v for k, v in envelope.items() if k != "body"})
    valid = {"id": good, "type": "generation-create", "timestamp": T0,
             "body": {"id": good, "traceId": good, "startTime": T0, "model": "gpt-4o",
                      "usageDetails": {"input": 10, "output": 5}}}
    with fuzz_server.client() as c:
        r = post(c, "/api/public/ingestion", render({"batch": [valid, bad]}))
        assert r.status_code == 207, r.text[:500]
        assert {"id": good, "status": 201} in r.json()["successes"]
        neighbour_kept(c, good)


@FUZZ
@given(fields=hostile_fields(("id", "traceId", "observationId", "sessionId", "name", "value", "dataType",
                              "comment", "metadata", "environment", "timestamp", "other")))
def test_fuzz_langfuse_scores(fuzz_server: Server, fields: dict[str, Any]) -> None:
    valid = {"id": uuid.uuid4().hex, "traceId": uuid.uuid4().hex, "name": "quality", "value": 0.5}
    bad = {"name": "q", "value": 1, **fields}
    with fuzz_server.client() as c:
        r = post(c, "/api/public/scores", render([valid, bad]))
        assert r.status_code in (202, 207), r.text[:500]  # the valid score is accepted in the same commit
        if r.status_code == 207:
            assert r.json()["accepted"] >= 1 and r.json()["rejected"] == 1, r.text[:500]


def span(trace_hex: str, attrs: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"traceId": trace_hex, "spanId": trace_hex[:16], "name": "chat gpt-4o",
            "startTimeUnixNano": str(T0_NS), "endTimeUnixNano": str(T0_NS + 10**9), "kind": 3,
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}}, *attrs], **fields}


@FUZZ
@given(attrs=st.lists(st.tuples(st.sampled_from(OTLP_KEYS),
                                st.sampled_from(["stringValue", "intValue", "doubleValue", "boolValue",
                                                 "arrayValue", "kvlistValue"]),
                                hostile_values), max_size=3),
       fields=hostile_fields(SPAN_FIELDS))
def test_fuzz_otlp_json(fuzz_server: Server, attrs: list[tuple[str, str, Any]], fields: dict[str, Any]) -> None:
    good, bad_id = uuid.uuid4().hex, uuid.uuid4().hex
    bad = span(bad_id, [{"key": k, "value": {kind: v}} for k, kind, v in attrs])
    bad.update({k: v for k, v in fields.items() if k != "attributes"})
    document = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [
        {"scope": {"name": "fuzz"}, "spans": [span(good, []), bad]}]}]}
    with fuzz_server.client() as c:
        r = post(c, "/v1/traces", render(document))
        assert r.status_code == 200, r.text[:500]
        neighbour_kept(c, good)


@FUZZ
@given(start=st.integers(0, 2**64 - 1), end=st.integers(0, 2**64 - 1),
       attrs=st.lists(st.tuples(st.sampled_from(OTLP_KEYS), st.one_of(
           st.floats(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.sampled_from(["\x00", "x" * 5000]),
       )), max_size=3))
def test_fuzz_otlp_protobuf(fuzz_server: Server, start: int, end: int, attrs: list[tuple[str, Any]]) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    good = uuid.uuid4().hex
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace, (t0, t1), extra in ((good, (T0_NS, T0_NS + 10**9), []), (uuid.uuid4().hex, (start, end), attrs)):
        s = scope.spans.add()
        s.trace_id, s.span_id, s.name = bytes.fromhex(trace), bytes.fromhex(trace[:16]), "chat gpt-4o"
        s.start_time_unix_nano, s.end_time_unix_nano = t0, t1
        for key, value in [("gen_ai.request.model", "gpt-4o"), ("gen_ai.usage.input_tokens", 10), *extra]:
            kv = s.attributes.add()
            kv.key = key
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                kv.value.bool_value = bool(value)
            elif isinstance(value, int):
                kv.value.int_value = value
            elif isinstance(value, float):
                kv.value.double_value = value
            else:
                kv.value.string_value = value
    with fuzz_server.client() as c:
        r = post(c, "/api/public/otel/v1/traces", request.SerializeToString(), "application/x-protobuf")
        assert r.status_code == 200, r.text[:500]
        neighbour_kept(c, good)


QUERY_ROUTES = ("/v1/metrics", "/v1/traces", "/v1/traces/{id}", "/v1/users/{id}/costs", "/v1/stats", "/v1/events",
                "/api/public/metrics", "/api/public/v2/metrics", "/api/public/metrics/daily",
                "/api/public/traces/{id}")
QUERY_PARAMS = ("query", "from", "to", "limit", "order_by", "timezone", "date", "timeframe", "cursor", "model",
                "user", "session", "trace_id", "name", "type", "status", "page", "traceName", "userId", "tags",
                "environment", "fromTimestamp", "toTimestamp", "unknown")
query_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "-1", "0", "1" * 40, "1e400", "NaN",
                     "Europe/Nowhere", "../../etc/passwd", "' OR 1=1 --", OTHER_MARKER, "\x00", "%00", "²"]),
    st.builds(json.dumps, st.fixed_dictionaries({}, optional={
        "view": st.sampled_from(["observations", "traces", "scores-numeric", "x"]),
        "metrics": st.lists(st.fixed_dictionaries({"measure": st.sampled_from(["count", "totalCost", "cost", "x"]),
                                                   "aggregation": st.sampled_from(["sum", "p99", "histogram", "x"])}),
                            max_size=2),
        "dimensions": st.lists(st.fixed_dictionaries({"field": st.sampled_from(["userId", "name", "x"])}),
                               max_size=2),
        "filters": st.lists(st.fixed_dictionaries({
            "column": st.sampled_from(["userId", "metadata", "tags", "x"]),
            "operator": st.sampled_from(["=", "contains", "any of", "x"]), "value": hostile_scalars,
            "type": st.sampled_from(["string", "stringObject", "arrayOptions", "x"]), "key": st.text(max_size=10)}),
            max_size=2),
        "fromTimestamp": st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "x"]),
        "toTimestamp": st.sampled_from(["2027-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "x"]),
        "timeDimension": st.fixed_dictionaries({"granularity": st.sampled_from(["day", "minute", "auto", "x"])}),
        "config": st.fixed_dictionaries({"row_limit": st.integers(-5, 10**6), "bins": st.integers(-5, 1000)}),
    })),
)


@settings(FUZZ, max_examples=40)
@given(route=st.sampled_from(QUERY_ROUTES), path_id=st.one_of(st.just(OTHER_MARKER), query_text),
       params=st.dictionaries(st.sampled_from(QUERY_PARAMS), query_text, max_size=4))
def test_fuzz_query_routes(fuzz_server: Server, route: str, path_id: str, params: dict[str, str]) -> None:
    path = route.replace("{id}", quote(path_id, safe="") or "x")
    with fuzz_server.client() as c:
        check_reply(c.get(path, params=params))


def test_fuzz_leaves_the_server_up_and_isolated(fuzz_server: Server) -> None:
    """After the fuzz: health answers, and the first project's listings never show the second's marker."""
    with fuzz_server.client() as c:
        assert c.get("/api/public/health").status_code == 200
        for path in ("/v1/traces", "/v1/events", f"/v1/traces/{OTHER_MARKER}", f"/v1/users/{OTHER_MARKER}/costs",
                     f"/api/public/traces/{OTHER_MARKER}"):
            check_reply(c.get(path))
