"""Hostile values on every ingestion route: an item error naming the field, never a 5xx, never a lost batch.

Each case sends one hostile item beside a valid one over real HTTP (DuckDB and PostgreSQL) and checks:
the reply is not 5xx, the hostile item is reported (207 item error / OTLP partial success), the valid
neighbour is stored and readable, and the server still answers afterwards. The bodies are built by hand as
bytes where JSON itself cannot say the value (NaN, 1e400, lone surrogates).
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from tests.server.harness import Server

from costline.server.ingest_workers import MIN_BODY

T0 = "2026-11-01T12:00:00Z"
T0_NS = 1_793_534_400_000_000_000  # 2026-11-01T12:00:00Z
HOSTILE = "HOSTILE_VALUE"  # replaced by the raw JSON text of the hostile value
DEEP = "[" * 500 + "]" * 500
DEEP_OBJECT = '{"a":' * 500 + "1" + "}" * 500
LONG = "x" * 10_000


@dataclass(frozen=True)
class Case:
    name: str
    route: str  # native | langfuse | scores | otlp-json | otlp-proto
    raw: str  # raw JSON text of the hostile value (or a marker for protobuf cases)
    where: str  # which field of the item carries it
    reported: bool = True  # False: a value that is tolerated (read as unset), so both items are stored


def _native(case: Case, good: str, bad: str, pad: int = 0) -> tuple[bytes, dict[str, str]]:
    item: dict[str, Any] = {"type": "generation", "id": bad, "trace_id": bad, "start_time": T0, "model": "gpt-4o",
                            "usage": {"input_tokens": 10, "output_tokens": 5}}
    _place(item, case.where)
    events = [{"type": "generation", "id": i, "trace_id": i, "start_time": T0, "model": "gpt-4o",
               "usage": {"input_tokens": 10, "output_tokens": 5}} for i in (good, *_fillers(good, pad))] + [item]
    return _render({"events": events}, case.raw), {"Content-Type": "application/json"}


def _langfuse(case: Case, good: str, bad: str, pad: int = 0) -> tuple[bytes, dict[str, str]]:
    body: dict[str, Any] = {"id": bad, "traceId": bad, "name": "g", "startTime": T0, "model": "gpt-4o",
                            "usageDetails": {"input": 10, "output": 5}}
    kind = "generation-create"
    if case.where.startswith("trace."):
        kind, body = "trace-create", {"id": bad, "name": "t"}
    elif case.where.startswith("score."):
        kind, body = "score-create", {"id": bad, "traceId": good, "name": "q", "value": 1}
    envelope: dict[str, Any] = {"id": bad, "type": kind, "timestamp": T0, "body": body}
    _place(envelope if case.where.startswith("envelope.") else body, case.where.split(".", 1)[1]
           if case.where.split(".", 1)[0] in ("trace", "score", "envelope") else case.where)
    batch = [{"id": good, "type": "generation-create", "timestamp": T0,
              "body": {"id": good, "traceId": good, "startTime": T0, "model": "gpt-4o",
                       "usageDetails": {"input": 10, "output": 5}}}, envelope]
    return _render({"batch": batch}, case.raw), {"Content-Type": "application/json"}


def _scores(case: Case, good: str, bad: str, pad: int = 0) -> tuple[bytes, dict[str, str]]:
    score: dict[str, Any] = {"id": bad, "traceId": good, "name": "q", "value": 1}
    _place(score, case.where)
    items = [{"id": good, "traceId": good, "name": "q", "value": 0.5}, score]
    return _render(items, case.raw), {"Content-Type": "application/json"}


def _span_json(trace_hex: str, span_hex: str, attrs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"traceId": trace_hex, "spanId": span_hex, "name": "chat gpt-4o",
            "startTimeUnixNano": str(T0_NS), "endTimeUnixNano": str(T0_NS + 1_000_000), "kind": 1,
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
                           {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "5"}}, *attrs],
            **extra}


def _otlp_json(case: Case, good: str, bad: str, pad: int = 0) -> tuple[bytes, dict[str, str]]:
    bad_span = _span_json(bad, bad[:16], [])
    if case.where.startswith("attr:"):
        key, kind = case.where[5:].split("|")
        bad_span["attributes"].append({"key": key, "value": {kind: HOSTILE}})
    else:
        _place(bad_span, case.where)
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [
        {"scope": {"name": "fuzz"}, "spans": [*(_span_json(i, i[:16], []) for i in (good, *_fillers(good, pad))),
                                              bad_span]}]}]}
    return _render(body, case.raw), {"Content-Type": "application/json"}


def _otlp_proto(case: Case, good: str, bad: str, pad: int = 0) -> tuple[bytes, dict[str, str]]:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace in (good, *_fillers(good, pad), bad):
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = bytes.fromhex(trace), bytes.fromhex(trace[:16]), "chat gpt-4o"
        span.start_time_unix_nano, span.end_time_unix_nano = T0_NS, T0_NS + 1_000_000
        for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o")):
            kv = span.attributes.add()
            kv.key, kv.value.string_value = key, value
        for key, number in (("gen_ai.usage.input_tokens", 10), ("gen_ai.usage.output_tokens", 5)):
            kv = span.attributes.add()
            kv.key, kv.value.int_value = key, number
        if trace == bad:
            _proto_hostile(span, case)
    return request.SerializeToString(), {"Content-Type": "application/x-protobuf"}


def _proto_hostile(span: Any, case: Case) -> None:
    if case.where == "start_time_unix_nano":
        span.start_time_unix_nano = int(case.raw)
    elif case.where == "end_before_start":
        span.end_time_unix_nano = T0_NS - 1_000_000_000
    elif case.where.startswith("double:"):
        kv = span.attributes.add()
        kv.key, kv.value.double_value = case.where[7:], float(case.raw)
    elif case.where.startswith("string:"):
        kv = span.attributes.add()
        kv.key, kv.value.string_value = case.where[7:], json.loads(case.raw)
    else:
        raise AssertionError(case.where)


def _fillers(good: str, pad: int) -> list[str]:
    """``pad`` more valid items' ids (32 hex digits) beside the good one: a batch large enough for the
    ingest worker processes (``MIN_BODY``), which must decline it for the server's process to report the item."""
    return [f"{i:08x}{good[8:]}" for i in range(1, pad + 1)]  # the span id is the first 16 digits: unique too


def _place(obj: dict[str, Any], where: str) -> None:
    """Put the HOSTILE marker at a dotted path (``usage.input_tokens``); ``end_before_start`` is special."""
    if where == "end_before_start":
        for start, end in (("start_time", "end_time"), ("startTime", "endTime")):
            if start in obj:
                obj[end] = "2026-11-01T11:00:00Z"
        if "startTimeUnixNano" in obj:
            obj["endTimeUnixNano"] = str(T0_NS - 1_000_000_000)
        return
    parts = where.split(".")
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = HOSTILE


def _render(document: Any, raw: str) -> bytes:
    return json.dumps(document).replace(f'"{HOSTILE}"', raw).encode()


BUILDERS: dict[str, Callable[[Case, str, str, int], tuple[bytes, dict[str, str]]]] = {
    "native": _native, "langfuse": _langfuse, "scores": _scores, "otlp-json": _otlp_json, "otlp-proto": _otlp_proto,
}
PATHS = {"native": "/v1/ingest", "langfuse": "/api/public/ingestion", "scores": "/api/public/scores",
         "otlp-json": "/v1/traces", "otlp-proto": "/v1/traces"}

J = json.dumps
CASES = [
    # native /v1/ingest
    Case("native 2^64 tokens", "native", str(2**64), "usage.input_tokens"),
    Case("native 2^63 tokens", "native", str(2**63), "usage.input_tokens"),
    Case("native 40-digit tokens", "native", "9" * 40, "usage.input_tokens"),
    Case("native 9e999999999 tokens", "native", J("9e999999999"), "usage.input_tokens"),
    Case("native cost 1e26", "native", J("1e26"), "cost.total"),
    Case("native cost 1e30 number", "native", "1e30", "cost.total"),
    Case("native cost 9e999999999", "native", J("9e999999999"), "cost.total"),
    Case("native cost 1e-999999999", "native", J("1e-999999999"), "cost.total"),
    Case("native cost 1e400 literal", "native", "1e400", "cost.total"),
    Case("native cost NaN literal", "native", "NaN", "cost.total"),
    Case("native cost Infinity literal", "native", "Infinity", "cost.total"),
    Case("native metadata 500 deep", "native", DEEP_OBJECT, "metadata.deep"),
    Case("native metadata list 500 deep", "native", DEEP, "metadata.deep"),
    Case("native NUL in name", "native", J("a\x00b"), "name"),
    Case("native NUL in metadata", "native", J("a\x00b"), "metadata.k"),
    Case("native NUL in metadata key", "native", '{"a\\u0000b": 1}', "metadata.inner"),
    Case("native NUL in user_id", "native", J("u\x00"), "user_id"),
    Case("native lone surrogate in name", "native", '"\\ud800"', "name"),
    Case("native lone surrogate in metadata", "native", '"\\udfff x"', "metadata.k"),
    Case("native 10k-char user_id", "native", J(LONG), "user_id"),
    Case("native 10k-char model", "native", J(LONG), "model"),
    Case("native 10k-char tag", "native", J([LONG]), "tags"),
    Case("native 1 MB metadata", "native", J({"blob": "y" * 1_000_000}), "metadata.big"),
    Case("native end before start", "native", "null", "end_before_start"),
    Case("native year 9999 with offset", "native", J("9999-12-31T23:59:59-05:00"), "start_time"),
    Case("native year 1 with offset", "native", J("0001-01-01T00:00:00+05:00"), "end_time"),
    Case("native metadata huge int", "native", "1" + "0" * 5000, "metadata.n"),
    # Langfuse /api/public/ingestion
    Case("langfuse 2^64 usage", "langfuse", str(2**64), "usageDetails.input"),
    Case("langfuse 2^63 usage", "langfuse", str(2**63), "usageDetails.input"),
    Case("langfuse superscript digit usage", "langfuse", J("²"), "usageDetails.input"),
    Case("langfuse 5000-digit string usage", "langfuse", J("1" * 5000), "usageDetails.input"),
    Case("langfuse cost 1e30", "langfuse", "1e30", "costDetails.input"),
    Case("langfuse cost 1e26 string", "langfuse", J("1e26"), "costDetails.total"),
    Case("langfuse cost 9e999999999", "langfuse", J("9e999999999"), "costDetails.input"),
    Case("langfuse cost NaN literal", "langfuse", "NaN", "costDetails.input"),
    Case("langfuse metadata 500 deep", "langfuse", DEEP_OBJECT, "metadata"),
    Case("langfuse NUL in name", "langfuse", J("a\x00b"), "name"),
    Case("langfuse NUL in metadata", "langfuse", J({"k": "\x00"}), "metadata"),
    Case("langfuse lone surrogate in name", "langfuse", '"\\ud800"', "name"),
    Case("langfuse 10k-char id", "langfuse", J(LONG), "id"),
    Case("langfuse 10k-char traceId", "langfuse", J(LONG), "traceId"),
    Case("langfuse 10k-char model", "langfuse", J(LONG), "model"),
    Case("langfuse 10k-char envelope id", "langfuse", J(LONG), "envelope.id"),
    Case("langfuse NUL envelope id", "langfuse", J("e\x00"), "envelope.id"),
    Case("langfuse trace 10k-char userId", "langfuse", J(LONG), "trace.userId"),
    Case("langfuse trace NUL sessionId", "langfuse", J("s\x00"), "trace.sessionId"),
    Case("langfuse trace 10,000 tags", "langfuse", J([f"t{i}" for i in range(10_000)]), "trace.tags"),
    Case("langfuse end before start", "langfuse", "null", "end_before_start"),
    Case("langfuse year 9999 with offset", "langfuse", J("9999-12-31T23:59:59-05:00"), "startTime"),
    Case("langfuse score 1e30", "langfuse", "1e30", "score.value"),
    Case("langfuse score 9e999999999", "langfuse", "9e999999999", "score.value"),
    Case("langfuse score NUL text value", "langfuse", J("a\x00"), "score.value"),
    # Langfuse /api/public/scores (array)
    Case("scores value 1e30", "scores", "1e30", "value"),
    Case("scores NUL comment", "scores", J("c\x00"), "comment"),
    Case("scores 10k-char name", "scores", J(LONG), "name"),
    # OTLP/JSON
    Case("otlp-json 40-digit start", "otlp-json", J("1" * 40), "startTimeUnixNano"),
    Case("otlp-json 40-digit end", "otlp-json", J("9" * 40), "endTimeUnixNano"),
    Case("otlp-json 2^64 tokens", "otlp-json", J(str(2**64)), "attr:gen_ai.usage.input_tokens|intValue"),
    Case("otlp-json cost 9e999999999", "otlp-json", J("9e999999999"), "attr:gen_ai.usage.cost|stringValue"),
    Case("otlp-json cost_details 1e30", "otlp-json", J('{"total": 1e30}'),
         "attr:langfuse.observation.cost_details|stringValue"),
    Case("otlp-json deep metadata", "otlp-json", J(DEEP_OBJECT), "attr:langfuse.observation.metadata|stringValue"),
    Case("otlp-json NUL in name", "otlp-json", J("a\x00"), "name"),
    Case("otlp-json NUL in user.id", "otlp-json", J("u\x00"), "attr:user.id|stringValue"),
    Case("otlp-json 10k-char user.id", "otlp-json", J(LONG), "attr:user.id|stringValue"),
    Case("otlp-json superscript status code", "otlp-json", J("²"), "status.code", reported=False),
    Case("otlp-json 5000-digit status code", "otlp-json", J("1" * 5000), "status.code", reported=False),
    Case("otlp-json end before start", "otlp-json", "null", "end_before_start"),
    Case("otlp-json NaN double tokens", "otlp-json", J("NaN"), "attr:gen_ai.usage.input_tokens|doubleValue"),
    Case("otlp-json 1e300 double tokens", "otlp-json", "1e300", "attr:gen_ai.usage.input_tokens|doubleValue"),
    # OTLP protobuf
    Case("otlp-proto start 2^64-1", "otlp-proto", str(2**64 - 1), "start_time_unix_nano"),
    Case("otlp-proto end before start", "otlp-proto", "0", "end_before_start"),
    Case("otlp-proto 1e300 double tokens", "otlp-proto", "1e300", "double:gen_ai.usage.output_tokens"),
    Case("otlp-proto NaN cost", "otlp-proto", "nan", "double:gen_ai.usage.cost"),
    Case("otlp-proto cost 1e30", "otlp-proto", "1e30", "double:gen_ai.usage.cost"),
    Case("otlp-proto NUL model", "otlp-proto", J("m\x00"), "string:gen_ai.response.model"),
    Case("otlp-proto 10k-char session", "otlp-proto", J(LONG), "string:session.id"),
]


def _rejected(route: str, response: httpx.Response) -> int:
    if route == "otlp-proto":
        reply = ExportTraceServiceResponse()
        reply.ParseFromString(response.content)
        return int(reply.partial_success.rejected_spans)
    body = response.json()
    if route == "native":
        return int(body["rejected"])
    if route == "langfuse":
        return len(body["errors"])
    if route == "scores":
        return int(body.get("rejected", 0))
    return int(body.get("partialSuccess", {}).get("rejectedSpans", 0))


def _neighbour_stored(client: httpx.Client, route: str, good: str, status: int) -> bool:
    if route == "scores":  # no route reads scores back: the one write transaction committed or not
        return status in (202, 207)
    r = client.get(f"/api/public/traces/{good}")
    return r.status_code == 200 and len(r.json()["observations"]) == 1


def run_case(server: Server, case: Case, pad: int = 0) -> str:
    """'ok', or what went wrong: '5xx <status>', 'lost batch <status>', 'not reported <status>', 'server down'.
    ``pad``: that many more valid items in the batch (native and OTLP routes)."""
    good, bad = uuid.uuid4().hex, uuid.uuid4().hex
    body, headers = BUILDERS[case.route](case, good, bad, pad)
    if pad:
        assert len(body) >= MIN_BODY
    with server.client() as c:
        try:
            r = c.post(PATHS[case.route], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"transport error {exc!r}"
        try:
            if c.get("/api/public/health").status_code != 200:
                return "server down"
        except httpx.HTTPError:
            return "server down"
        if r.status_code >= 500:
            return f"5xx {r.status_code}"
        if not _neighbour_stored(c, case.route, good, r.status_code):
            return f"lost batch {r.status_code}"
        if r.status_code not in (200, 202, 207) or _rejected(case.route, r) != int(case.reported):
            return f"not reported {r.status_code} {r.text[:200]}"
        if not case.reported and not _neighbour_stored(c, case.route, bad, r.status_code):
            return "tolerated value not stored"
    return "ok"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_value_is_an_item_error(server: Server, case: Case) -> None:
    assert run_case(server, case) == "ok"


LARGE = [c for c in CASES if c.route in ("native", "otlp-json", "otlp-proto")]


@pytest.mark.parametrize("case", LARGE, ids=[c.name for c in LARGE])
def test_hostile_value_in_a_large_batch_is_an_item_error(server: Server, case: Case) -> None:
    """The same among 300 valid items: on DuckDB the batch first goes to a worker process (server/
    ingest_workers.py), which declines it; the server's process then keeps the valid items and names the bad."""
    assert run_case(server, case, pad=300) == "ok"


def test_multi_member_gzip_is_read_whole(server: Server) -> None:
    """``cat a.gz b.gz``: both members are one body (RFC 1952); the second half used to be dropped."""
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    text = json.dumps({"events": [
        {"type": "generation", "id": first, "start_time": T0, "model": "gpt-4o", "usage": {"input_tokens": 1}},
        {"type": "generation", "id": second, "start_time": T0, "model": "gpt-4o", "usage": {"input_tokens": 1}},
    ]}).encode()
    half = len(text) // 2
    packed = gzip.compress(text[:half]) + gzip.compress(text[half:])
    with server.client() as c:
        r = c.post("/v1/ingest", content=packed,
                   headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 2
        # a truncated member is an error, not a silently shorter body
        r = c.post("/v1/ingest", content=gzip.compress(text)[:-12],
                   headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        assert r.status_code == 400 and "gzip" in r.json()["message"]


def test_gzip_bomb_is_bounded_by_the_body_limit(server: Server) -> None:
    bomb = gzip.compress(b"[" + b" " * (80 * 1024 * 1024) + b"]", compresslevel=9)  # 80 MiB of spaces, ~80 KB
    members = bomb + bomb  # the limit holds across members too
    with server.client() as c:
        for body in (bomb, members):
            r = c.post("/v1/ingest", content=body,
                       headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
            assert r.status_code == 413, r.text
        assert c.get("/api/public/health").status_code == 200


@pytest.mark.parametrize("path", ["/v1/traces", "/api/public/otel/v1/traces"])
def test_otlp_failures_carry_a_google_rpc_status(server: Server, path: str) -> None:
    """OTLP/HTTP: a failed export's body is a google.rpc.Status in the request's content type, with a message."""
    from google.rpc import status_pb2

    with server.client() as c:
        r = c.post(path, content=b"\x00\x01garbage", headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/x-protobuf"
        status = status_pb2.Status()
        status.ParseFromString(r.content)
        assert status.code == 3 and "protobuf" in status.message  # INVALID_ARGUMENT
        r = c.post(path, content=b'{"resourceSpans": [', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/json"
        assert r.json()["code"] == 3 and "JSON" in r.json()["message"]
        r = c.post(path, content=b"{}", headers={"Content-Type": "text/plain"})
        status.ParseFromString(r.content)
        assert r.status_code == 415 and "content type" in status.message
        r = c.post(path, content=gzip.compress(b"x" * (65 * 1024 * 1024)),
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert r.status_code == 413 and r.json()["code"] == 8 and "limit" in r.json()["message"]  # RESOURCE_EXHAUSTED


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain; charset=UTF-8", "TEXT/PLAIN",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
@pytest.mark.parametrize("path", ["/v1/ingest", "/api/public/ingestion", "/api/public/scores", "/v1/budgets",
                                  "/api/public/models"])
def test_form_content_types_are_refused(server: Server, path: str, content_type: str) -> None:
    """A browser sends these cross-site without a preflight, with cached Basic credentials (CSRF): 415."""
    body = json.dumps({"events": [{"type": "generation", "id": uuid.uuid4().hex, "start_time": T0}]}).encode()
    with server.client() as c:
        r = c.post(path, content=body, headers={"Content-Type": content_type})
        assert r.status_code == 415 and "application/json" in r.json()["message"], r.text


def test_json_and_missing_content_types_still_work(server: Server) -> None:
    """What real clients send: the Langfuse SDKs (Python and npm) and costline's own send application/json."""
    for headers in ({"Content-Type": "application/json"}, {"Content-Type": "application/json; charset=utf-8"}, {}):
        body = json.dumps({"events": [{"type": "generation", "id": uuid.uuid4().hex, "start_time": T0}]}).encode()
        with server.client() as c:
            assert c.post("/v1/ingest", content=body, headers=headers).status_code == 200


def test_update_ending_before_the_stored_start_is_an_item_error(server: Server) -> None:
    """The end-before-start check runs on the merged row too: an update cannot carry the row into it."""
    obs = uuid.uuid4().hex
    create = {"id": f"{obs}-c", "type": "generation-create", "timestamp": T0,
              "body": {"id": obs, "traceId": obs, "startTime": T0, "model": "gpt-4o"}}
    update = {"id": f"{obs}-u", "type": "generation-update", "timestamp": T0,
              "body": {"id": obs, "endTime": "2026-11-01T11:59:59Z", "usageDetails": {"input": 5}}}
    with server.client() as c:
        assert c.post("/api/public/ingestion", json={"batch": [create]}).json()["errors"] == []
        r = c.post("/api/public/ingestion", json={"batch": [update]})
        assert r.status_code == 207 and r.json()["successes"] == []
        (error,) = r.json()["errors"]
        assert error["id"] == f"{obs}-u" and error["status"] == 400 and "before the start time" in error["message"]
        (stored,) = c.get(f"/api/public/traces/{obs}").json()["observations"]
        assert stored["endTime"] is None and stored["usageDetails"] == {}  # the update was not applied


def test_computed_cost_past_the_money_bound_is_an_item_error(server: Server) -> None:
    """2^63-1 tokens are a valid count; at a project rate of $1,000 per token the cost (9.2e21) is not."""
    model = f"costly-{uuid.uuid4().hex[:8]}"
    good, bad = uuid.uuid4().hex, uuid.uuid4().hex
    with server.client() as c:
        r = c.post("/api/public/models", json={"modelName": model, "matchPattern": f"(?i)^{model}$",
                                               "unit": "TOKENS", "inputPrice": 1000})
        assert r.status_code == 200, r.text
        events = [{"type": "generation", "id": good, "trace_id": good, "start_time": T0, "model": model,
                   "usage": {"input_tokens": 1000}},  # 1000 × $1000 = $1,000,000: within the bound
                  {"type": "generation", "id": bad, "trace_id": bad, "start_time": T0, "model": model,
                   "usage": {"input_tokens": 2**63 - 1}}]
        r = c.post("/v1/ingest", json={"events": events})
        assert r.status_code == 207, r.text
        assert r.json()["errors"] == [{"id": bad, "message": r.json()["errors"][0]["message"]}]
        assert "out of range" in r.json()["errors"][0]["message"]
        assert [x["total"] for x in r.json()["costs"]] == ["1000000"]
        assert c.get(f"/api/public/traces/{bad}").status_code == 404


def test_settle_with_a_cost_past_the_bound_is_a_400(server: Server) -> None:
    """The budget settle route ends in the same pipeline: a cost past the money bound is refused, not a 5xx."""
    budget = f"hostile-{uuid.uuid4().hex[:8]}"
    with server.client() as c:
        assert c.post("/v1/budgets", json={"id": budget, "name": budget, "window": "day", "per": "user",
                                           "limit": "1", "action": "block"}).status_code == 201
        try:
            held = c.post("/v1/budgets/check", json={"model": "gpt-4o-mini", "user": "u-hostile",
                                                     "prompt": "hi", "max_output_tokens": 10}).json()
            assert held["decision"] == "allow", held
            r = c.post(f"/v1/budgets/reservations/{held['reservation_id']}/settle", json={"cost": "1e20"})
            assert r.status_code == 400 and "below 10^15" in r.json()["message"], r.text
        finally:
            c.delete(f"/v1/budgets/{budget}")
