"""Hostile input for every route of a running server: payloads, request variants, and what an answer must not be.

The routes come from the server's own OpenAPI document, so a route added later is swept without editing this
file. Every route gets each payload as each path parameter, as each query parameter it accepts (the names come
from OpenAPI and from the route's own "unknown query parameter; use ..." answer), as a ``metadata.<key>``
parameter name and as a parameter name of its own. Routes that take JSON (a ``query`` parameter or a body) get
their template (below) with every string, and every key of a mapping, replaced by each payload in turn; a body
route with no template gets generic bodies.

An answer fails when it is a 5xx, when it carries database or server text (engine error names, SQL, the data
directory, a traceback), or when it carries anything of the second project (its metadata marker, user, channel
secret, keys, key hashes) or the server's admin token or a local file's content.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

#: names of things a project may read only in its own project, written by the test into the second project
VICTIM_MARKER = "zq-victim-marker-7731"
VICTIM_USER = "zq-victim-user-5519"
VICTIM_CHANNEL_SECRET = "zq-victim-channel-secret-0042"
#: the first line of /etc/passwd on every Linux machine: a file read through the database
FILE_MARKER = "root:x:0:0"

#: engine and server text an answer must never carry (after the payload's own echo is removed)
DATABASE_TEXT = (
    "Parser Error", "Binder Error", "Catalog Error", "Conversion Error", "Invalid Input Error",
    "Out of Range Error", "Not implemented Error", "INTERNAL Error", "Constraint Error", "Serialization Error",
    "Error: ", "syntax error", "invalid input syntax", "does not exist", "cannot contain NUL", "psycopg", "duckdb",
    "DuckDB", "PostgreSQL", "LINE 1:", "HINT:", "DETAIL:", "query failed", "unavailable:", "Traceback", "File \"",
    "postgresql://", ".duckdb", "Internal Server Error",
)


def payloads(data_dir: str) -> tuple[str, ...]:
    """Quotes, comments, concatenation, statement breaks, placeholders, NUL, odd Unicode, and crafted keys that
    close the JSON path literal of each store's SQL and read other projects' rows, key hashes and local files
    through an error message (the shape an attacker would use)."""
    duck = "x\"') || CAST(({}) AS INTEGER) || json_extract_string(o.metadata, '$.\"x"
    pg = "x') || CAST(({}) AS integer) || (o.metadata ->> 'x"
    reads = (
        "SELECT string_agg(secret_hash, ',') FROM api_keys",
        "SELECT string_agg(CAST(metadata AS VARCHAR), ',') FROM observations",
        "SELECT string_agg(CAST(spec AS VARCHAR), ',') FROM control_objects",
        f"SELECT content FROM read_text('{data_dir}/server.json')",
        "SELECT content FROM read_text('/etc/passwd')",
    )
    pg_reads = (
        "SELECT string_agg(secret_hash, ',') FROM api_keys",
        "SELECT string_agg(metadata::text, ',') FROM observations",
        "SELECT string_agg(spec::text, ',') FROM control_objects",
        "SELECT pg_read_file('/etc/passwd')",
    )
    crafted = tuple(duck.format(r) for r in reads) + tuple(pg.format(r) for r in pg_reads)
    return (
        "'", '"', "`", "\\", "a'b", 'a"b', "a\\'b", "';--", "\"';--", "' OR '1'='1", "1; DROP TABLE observations; --",
        "/*", "*/", "-- c", "||", "'); SELECT 1; --", "x' || 'y", "%s", "%", "%%", "?", "$1", "${x}", "a\x00b",
        "é ü \u2028 \U0001d54f", "~1/~0", "$.a[0]", "a.b", "metadata.team", "read_text('server.json')",
        "pg_read_file('/etc/passwd')", "\n", " ", "x" * 3000, *crafted,
    )


#: one value with a quote, a double quote, a backslash, placeholders, a comment and a concatenation
COMBINED = "'\"\\%s?$1/*--||"


def core_payloads(data_dir: str) -> tuple[str, ...]:
    """The smaller set used for fixed parameter names and every field of a route's JSON (every field × every
    payload is too many requests): the combined one, NUL, and the crafted keys that read other projects' key
    hashes and the admin token's file on each store."""
    crafted = [p for p in payloads(data_dir)
               if "secret_hash" in p or "server.json'))" in p or "(SELECT pg_read_file" in p]
    return (COMBINED, "a\x00b", *crafted)


EXTREME_DATES = (
    "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999-14:00", "9999-12-31T23:59:59+14:00", "9999-12-31",
    "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00", "0001-01-01", "0001-01-01T00:00:00Z", "0000-01-01",
    "-0001-01-01", "+10000-01-01", "99999-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2026-13-01", "2026-02-30",
    "9999-12-30T00:00:00Z", "0001-01-02T00:00:00Z",
)


# templates: a valid request per route, so the payload reaches past the first check ----------------------------

def metrics_query() -> dict[str, Any]:
    return {"view": "observations", "dimensions": ["model", "metadata.team"], "metrics": ["sum:cost", "count"],
            "filters": [{"field": "metadata.team", "operator": "=", "value": "alpha"},
                        {"field": "metadata", "key": "team", "operator": "!=", "value": "beta"},
                        {"field": "model", "operator": "in", "value": ["gpt-4o"]},
                        {"field": "cost", "operator": ">", "value": "0"}],
            "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "granularity": "day",
            "timezone": "Europe/Berlin", "order_by": ["sum_cost desc"], "limit": 10}


def traces_query() -> dict[str, Any]:
    return {"view": "traces", "dimensions": ["name", "metadata.team"], "metrics": ["sum:cost", "p95:latency"],
            "filters": [{"field": "metadata.team", "operator": "contains", "value": "al"}],
            "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}


def langfuse_query(view: str = "observations") -> dict[str, Any]:
    return {"view": view, "dimensions": [{"field": "providedModelName" if view == "observations" else "name"}],
            "metrics": [{"measure": "totalCost", "aggregation": "sum"}, {"measure": "count", "aggregation": "count"}],
            "filters": [{"column": "metadata", "operator": "=", "key": "team", "value": "alpha",
                         "type": "stringObject"},
                        {"column": "environment", "operator": "any of", "value": ["prod"], "type": "stringOptions"},
                        {"column": "startTime", "operator": ">=", "value": "2026-11-02T00:00:00Z",
                         "type": "datetime"}],
            "timeDimension": {"granularity": "day"}, "fromTimestamp": "2026-11-01T00:00:00Z",
            "toTimestamp": "2026-12-01T00:00:00Z", "orderBy": [{"field": "sum_totalCost", "direction": "desc"}],
            "config": {"row_limit": 10}}


#: JSON-valued query parameters: (path, parameter) → templates
JSON_PARAMS: Mapping[tuple[str, str], Sequence[Any]] = {
    ("/v1/metrics", "query"): (metrics_query(), traces_query()),
    ("/api/public/metrics", "query"): (langfuse_query("traces"),),
    ("/api/public/v2/metrics", "query"): (langfuse_query(),),
}
#: other parameters a route needs for the swept one to be reached
BASE_PARAMS: Mapping[str, Mapping[str, str]] = {
    "/v1/metrics": {"query": json.dumps(metrics_query())},
    "/api/public/metrics": {"query": json.dumps(langfuse_query())},
    "/api/public/v2/metrics": {"query": json.dumps(langfuse_query())},
}
#: routes whose query parameter names are not fixed (``metadata.<key>`` scopes)
DYNAMIC_NAMES: Mapping[str, Sequence[str]] = {"/v1/forecast": ("metadata.team",)}


def budget_body() -> dict[str, Any]:
    return {"id": "b-sweep", "name": "sweep", "window": "month", "timezone": "Europe/Berlin", "limit": "10",
            "scope": {"metadata.team": "alpha", "environment": "prod"}, "per": "metadata.team",
            "thresholds": [50, 80], "action": "downgrade", "downgrade_to": "gpt-4o-mini", "notify": ["hook"]}


def alert_body() -> dict[str, Any]:
    return {"id": "a-sweep", "name": "sweep", "kind": "window_cost", "threshold": "1", "window": "day",
            "timezone": "UTC", "filters": {"metadata.team": "alpha"}, "group_by": "metadata.team",
            "channels": ["hook"]}


def ingest_event() -> dict[str, Any]:
    return {"type": "generation", "id": "sweep-o1", "trace_id": "sweep-t1", "name": "answer", "model": "gpt-4o",
            "start_time": "2026-11-10T10:00:00Z", "end_time": "2026-11-10T10:00:01Z", "user_id": "sweep-user",
            "session_id": "s1", "environment": "prod", "tags": ["a"], "metadata": {"team": "alpha"},
            "usage": {"input_tokens": 10, "output_tokens": 5}}


def otlp_body() -> dict[str, Any]:
    attrs = [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
             {"key": "langfuse.observation.metadata.team", "value": {"stringValue": "alpha"}},
             {"key": "user.id", "value": {"stringValue": "sweep-user"}}]
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat",
            "startTimeUnixNano": "1794300000000000000", "endTimeUnixNano": "1794300001000000000", "attributes": attrs}
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}


#: JSON bodies: (method, path) → templates
BODIES: Mapping[tuple[str, str], Sequence[Any]] = {
    ("POST", "/v1/ingest"): ({"events": [ingest_event(), {"type": "trace", "id": "sweep-t1", "user_id": "u",
                                                            "metadata": {"team": "alpha"}}]},),
    ("POST", "/v1/budgets"): (budget_body(),),
    ("POST", "/v1/budgets/check"): ({"model": "gpt-4o", "user": "u1", "environment": "prod",
                                     "metadata": {"team": "alpha"}, "estimated_cost": "0.01"},),
    ("POST", "/v1/budgets/reservations/{reservation_id}/settle"): ({"cost": "0.01", "model": "gpt-4o",
                                                                     "usage": {"input_tokens": 3}},),
    ("PUT", "/v1/users/{user_id}/tier"): ({"tier": "free"},),
    ("POST", "/v1/alerts"): (alert_body(),),
    ("PUT", "/v1/channels/{name}"): ({"webhook": "http://127.0.0.1:9/hook", "secret": "s3cret"},),
    ("POST", "/v1/control/apply"): ({"document": {"budgets": [budget_body()], "alerts": [alert_body()]},
                                     "source": "file:sweep.yaml", "environment": "prod"},),
    ("POST", "/api/public/ingestion"): ({"batch": [{"id": "e1", "type": "trace-create",
                                                     "timestamp": "2026-11-10T10:00:00Z",
                                                     "body": {"id": "lt1", "name": "n", "metadata": {"team": "a"}}},
                                                    {"id": "e2", "type": "generation-create",
                                                     "timestamp": "2026-11-10T10:00:00Z",
                                                     "body": {"id": "lg1", "traceId": "lt1", "model": "gpt-4o",
                                                              "usage": {"input": 3, "output": 2},
                                                              "metadata": {"team": "a"}}}]},),
    ("POST", "/api/public/scores"): ({"traceId": "lt1", "name": "quality", "value": 1},),
    ("POST", "/api/public/models"): ({"modelName": "sweep-model", "matchPattern": "(?i)^sweep$", "unit": "TOKENS",
                                      "inputPrice": 0.000001},),
    ("PUT", "/api/public/models/{model_id}"): ({"modelName": "sweep-model", "matchPattern": "(?i)^sweep$",
                                                "unit": "TOKENS", "inputPrice": 0.000001},),
    ("POST", "/v1/traces"): (otlp_body(),),
    ("POST", "/api/public/otel/v1/traces"): (otlp_body(),),
}


def generic_bodies(payload: str) -> list[Any]:
    return [{payload: payload}, {"id": payload, "name": payload, "metadata": {payload: payload}}, payload]


# mutation --------------------------------------------------------------------------------------------------------

#: mappings whose keys are names the server looks up (scopes, filters, metadata)
NAMING_KEYS = frozenset({"scope", "filters", "metadata", "attributes"})


def mutations(template: Any, payload: str, *, keys: bool = False) -> Iterator[Any]:
    """``template`` with one string (or one key of a mapping of names) replaced by ``payload``, or extended by it
    (``metadata.team`` also becomes ``metadata.<payload>``)."""
    if isinstance(template, str):
        yield payload
        head, dot, _ = template.partition(".")
        if dot and head in ("metadata", "cost", "usage"):
            yield f"{head}.{payload}"
        return
    if isinstance(template, Mapping):
        for key, value in template.items():
            for variant in mutations(value, payload, keys=key in NAMING_KEYS):
                yield {**template, key: variant}
            for new_key in mutations(key, payload) if keys and isinstance(key, str) else ():
                yield {(new_key if k == key else k): v for k, v in template.items()}
        return
    if isinstance(template, list):
        for i, value in enumerate(template):
            for variant in mutations(value, payload, keys=keys):
                yield [*template[:i], variant, *template[i + 1:]]


# requests ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    method: str
    path: str  # with path parameters filled in (URL-encoded)
    params: tuple[tuple[str, str], ...] = ()
    body: Any = None
    has_body: bool = False
    payload: str = ""

    def describe(self) -> str:
        shown = {k: v[:80] for k, v in self.params}
        body = json.dumps(self.body)[:160] if self.has_body else ""
        return f"{self.method} {self.path[:120]} {shown} {body}"


def fill(path: str, payload: str) -> list[str]:
    """The path with each parameter in turn set to the payload (the others to a plain value)."""
    names = re.findall(r"{([^}]+)}", path)
    filled = []
    for name in names:
        out = path
        for other in names:
            value = payload if other == name else "plain-id"
            out = out.replace(f"{{{other}}}", urllib.parse.quote(value, safe=""))
        filled.append(out)
    return filled or [path]


def plain_path(path: str) -> str:
    return re.sub(r"{[^}]+}", "plain-id", path)


def accepted_names(client: httpx.Client, method: str, path: str) -> list[str]:
    """Query parameter names a route accepts: its "unknown query parameter; use a, b" answer to a probe."""
    answer = client.request(method, plain_path(path), params={"zz-probe": "1"})
    found = re.search(r"unknown query parameter; use ([^\"]+?)(?:\"|$)", answer.text)
    if not found:
        return []
    return [n.strip() for n in found.group(1).split(",") if n.strip()]


def echo_forms(sent: Sequence[str]) -> list[str]:
    """How the payloads may come back as they were sent (quoted in an error message, or as stored data a later
    answer lists): raw, as Python and JSON string literals, lower-cased, URL-encoded; longest first."""
    forms: set[str] = set()
    for payload in sent:
        for text in (payload, payload.lower()):
            forms.update({text, repr(text)[1:-1], json.dumps(text)[1:-1], json.dumps(repr(text)[1:-1])[1:-1],
                          json.dumps(text, ensure_ascii=False)[1:-1], urllib.parse.quote(text, safe="")})
    return sorted((f for f in forms if f.strip()), key=len, reverse=True)


def strip_echo(text: str, forms: Sequence[str]) -> str:
    """The answer without the payloads' echo."""
    for form in forms:
        if form in text:
            text = text.replace(form, "")
    return text


def verdict(answer: httpx.Response, forms: Sequence[str], secrets: Sequence[str]) -> str | None:
    """Why the answer fails, or None; ``forms`` are the payloads' echo forms (``echo_forms``)."""
    if answer.status_code >= 500:
        return f"{answer.status_code}: {answer.text[:300]}"
    text = answer.text
    for secret in secrets:
        if secret and secret in text:
            return f"leaked {secret[:24]!r}: {text[:300]}"
    if FILE_MARKER in text:
        return f"leaked a local file: {text[:300]}"
    stripped = strip_echo(text, forms)
    for marker in DATABASE_TEXT:
        if marker in stripped:
            return f"database text {marker!r}: {stripped[:300]}"
    return None
