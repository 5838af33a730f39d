"""Every route, every parameter, hostile values, on a real ``costline serve`` over DuckDB and over PostgreSQL.

Two projects live on the server: the test's, and a victim whose metadata, user, channel secret and keys are
markers. Requests go with the test project's key; an answer fails when it is a 5xx, carries database text,
or carries anything of the victim, the admin token or a local file (``sweep.verdict``). After the sweep the
victim's data is checked to be intact, so a statement smuggled into a DELETE would show too.

Extreme dates (year 9999 with a zone offset, year 1, year 0, negative years) on every query route must give a
400 that names the field, never a 5xx.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server import sweep
from tests.server.harness import Server, create_project, drop_postgres_schema, make_server, postgres_url


@dataclass
class Setup:
    server: Server
    victim: dict[str, str]
    secrets: list[str]
    data_dir: str


def _basic(public: str, secret: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()}


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp(f"sweep-{request.param}")
    srv, schema = make_server(request.param, tmp, {"COSTLINE_CHANNEL_ALLOW_HOSTS": "127.0.0.1"})
    victim = create_project(srv.store_url, tmp, srv.env, "victim")
    srv.start()
    try:
        token = json.loads((tmp / "server.json").read_text("utf-8"))["token"]
        # rows of this month (and of the test's fixed November), so month forecasts and budgets read rows
        recent = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        with httpx.Client(base_url=srv.url, headers=_basic(victim["public_key"], victim["secret_key"]),
                          timeout=30) as v:
            event = {"type": "generation", "id": "v-o1", "trace_id": "v-t1", "name": "victim-call",
                     "model": "gpt-4o", "start_time": recent, "user_id": sweep.VICTIM_USER,
                     "metadata": {"team": sweep.VICTIM_MARKER, "x": sweep.VICTIM_MARKER},
                     "usage": {"input_tokens": 100, "output_tokens": 10}}
            assert v.post("/v1/ingest", json={"events": [event]}).status_code == 200
            assert v.put("/v1/channels/leak", json={"webhook": "http://127.0.0.1:9/hook",
                                                    "secret": sweep.VICTIM_CHANNEL_SECRET}).status_code == 200
            assert v.post("/v1/budgets", json={"name": "victim-budget", "window": "month", "limit": "5",
                                               "scope": {"metadata.team": sweep.VICTIM_MARKER}}).status_code == 201
        with srv.client() as c:
            own = [{**sweep.ingest_event(), "id": f"a-o{i}", "metadata": {"team": "alpha", "x": "alpha"},
                    **({"start_time": recent, "end_time": None} if i else {})} for i in range(3)]
            assert c.post("/v1/ingest", json={"events": own}).status_code == 200
        digest = [hashlib.sha256(s.encode()).hexdigest() for s in (victim["secret_key"], srv.secret_key, token)]
        secrets = [sweep.VICTIM_MARKER, sweep.VICTIM_USER, sweep.VICTIM_CHANNEL_SECRET, victim["secret_key"],
                   victim["public_key"], token, *digest]
        yield Setup(srv, victim, secrets, str(tmp))
    finally:
        srv.stop()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)


def _routes(client: httpx.Client) -> list[tuple[str, str, list[str]]]:
    """(method, path, declared query parameter names) of every route in the server's OpenAPI document."""
    spec = client.get("/openapi.json").json()
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
            found.append((method.upper(), path, names))
    return found


def _probes(client: httpx.Client, data_dir: str) -> Iterator[tuple[str, sweep.Probe]]:
    """Every payload as each path parameter and as the key of a ``metadata.<key>`` parameter; the core payloads
    as each accepted query parameter, as a parameter name, and as each field of the route's JSON."""
    every = sweep.payloads(data_dir)
    core = sweep.core_payloads(data_dir)
    for method, path, declared in _routes(client):
        names = list(dict.fromkeys([*declared, *sweep.accepted_names(client, method, path),
                                    *sweep.DYNAMIC_NAMES.get(path, ())]))
        base = dict(sweep.BASE_PARAMS.get(path, {}))
        templates = sweep.BODIES.get((method, path))
        body_route = method in ("POST", "PUT", "PATCH")
        plain_body = templates[0] if templates else ({} if body_route else None)
        plain = sweep.plain_path(path)
        key = f"{method} {path}"
        for payload in every:
            if "{" in path:
                for filled in sweep.fill(path, payload):
                    yield key, sweep.Probe(method, filled, tuple(base.items()), plain_body, body_route, payload)
            for name in names:
                if name.startswith("metadata."):
                    for params in ({**base, f"metadata.{payload}": "alpha"}, {**base, name: payload}):
                        yield key, sweep.Probe(method, plain, tuple(params.items()), plain_body, body_route, payload)
        for payload in core:
            for name in names:
                yield key, sweep.Probe(method, plain, tuple({**base, name: payload}.items()), plain_body, body_route,
                                  payload)
            named = {**base, payload: "1"}
            yield key, sweep.Probe(method, plain, tuple(named.items()), plain_body, body_route, payload)
            if body_route and not templates:
                for body in sweep.generic_bodies(payload):
                    yield key, sweep.Probe(method, plain, tuple(base.items()), body, True, payload)
            for (route, name), json_templates in sweep.JSON_PARAMS.items():
                if route != path or method != "GET":
                    continue
                for template in json_templates:
                    for variant in sweep.mutations(template, payload):
                        params = {**base, name: json.dumps(variant)}
                        yield key, sweep.Probe(method, path, tuple(params.items()), None, False, payload)
            for template in templates or ():
                for variant in sweep.mutations(template, payload):
                    yield key, sweep.Probe(method, plain, tuple(base.items()), variant, True, payload)


def _send(client: httpx.Client, probe: sweep.Probe) -> httpx.Response:
    url = probe.path
    if probe.params:
        url += "?" + urllib.parse.urlencode(probe.params)
    if not probe.has_body:
        return client.request(probe.method, url)
    content = json.dumps(probe.body).encode()
    return client.request(probe.method, url, content=content, headers={"content-type": "application/json"})


def _again(send: Callable[[], httpx.Response]) -> httpx.Response:
    """``send()``, once more on a new connection when a kept-alive one was closed under it (a loaded machine
    can pause the client past the server's keep-alive timeout); a server that drops it twice fails."""
    try:
        return send()
    except httpx.TransportError:
        return send()


def test_every_route_and_parameter_refuses_hostile_input(setup: Setup) -> None:
    failures: list[str] = []
    tried = 0
    routes: dict[str, int] = {}
    forms = sweep.echo_forms(sweep.payloads(setup.data_dir))
    with setup.server.client() as client:
        for route, probe in _probes(client, setup.data_dir):
            tried += 1
            try:
                answer = _again(partial(_send, client, probe))
            except httpx.TransportError as exc:  # the server dropped the connection twice
                why: str | None = type(exc).__name__
            else:
                why = sweep.verdict(answer, forms, setup.secrets)
            routes[route] = routes.get(route, 0)
            if why is not None:
                routes[route] += 1
                failures.append(f"{probe.describe()} -> {why}")
    with httpx.Client(base_url=setup.server.url, timeout=30,
                      headers=_basic(setup.victim["public_key"], setup.victim["secret_key"])) as v:
        kept = v.get("/v1/events").json()["data"]
        assert [e["id"] for e in kept] == ["v-o1"], "the victim's observation changed"
        assert [c["name"] for c in v.get("/v1/channels").json()["data"]] == ["leak"]
        assert [b["name"] for b in v.get("/v1/budgets").json()["data"]] == ["victim-budget"]
    print(f"sweep: {tried} requests over {len(routes)} routes, {len(failures)} failed")
    for route, failed in sorted(routes.items()):
        if failed:
            print(f"  {failed:5d} {route}")
    assert len(routes) >= 40, sorted(routes)
    assert not failures, f"{len(failures)} of {tried} requests failed:\n" + "\n".join(failures[:40])


# extreme dates ---------------------------------------------------------------------------------------------------

def _date_probes() -> Iterator[tuple[str, dict[str, str], str]]:
    """(path, params, the field a 400 must name) for each extreme date in each date field of the query routes."""
    for date in sweep.EXTREME_DATES:
        for name in ("from", "to"):
            for granularity in (None, "day", "month", "week", "minute"):
                for zone in ("UTC", "Pacific/Kiritimati", "Etc/GMT+12"):
                    query: dict[str, Any] = {"metrics": ["sum:cost"], "timezone": zone, name: date}
                    if granularity:
                        query["granularity"] = granularity
                    yield "/v1/metrics", {"query": json.dumps(query)}, name
            yield "/v1/traces", {name: date}, name
            yield "/v1/users/u1/costs", {name: date}, name
            yield "/v1/events", {name: date}, name
        yield "/v1/users/u1/costs", {"date": date}, "date"
        for timeframe in ("minute", "day"):
            yield "/v1/stats", {"to": date, "timeframe": timeframe}, "to"
        for name in ("fromTimestamp", "toTimestamp"):
            yield "/api/public/metrics/daily", {name: date}, name
            for route in ("/api/public/metrics", "/api/public/v2/metrics"):
                for granularity in ("day", "month", "auto"):
                    query = sweep.langfuse_query()
                    query.pop("config")
                    query.pop("orderBy")
                    query["timeDimension"] = {"granularity": granularity}
                    query[name] = date
                    yield route, {"query": json.dumps(query)}, name
        for operator in (">", ">=", "<", "<="):
            query = sweep.langfuse_query()
            query["filters"] = [{"column": "startTime", "operator": operator, "value": date, "type": "datetime"}]
            yield "/api/public/metrics", {"query": json.dumps(query)}, "filters"
        first = json.dumps([date, "o1"]).encode()
        import base64

        yield "/v1/events", {"cursor": base64.urlsafe_b64encode(first).decode().rstrip("=")}, "cursor"
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12", "America/Sao_Paulo"):
        yield "/v1/forecast", {"timezone": zone}, "timezone"


def test_extreme_dates_are_a_400_naming_the_field(setup: Setup) -> None:
    failures: list[str] = []
    tried = 0
    with setup.server.client() as client:
        for path, params, field in _date_probes():
            tried += 1
            try:
                answer = _again(partial(client.get, path, params=params))
            except httpx.TransportError as exc:  # the server dropped the connection twice
                failures.append(f"{path} {params} -> {type(exc).__name__}")
                continue
            if answer.status_code >= 500:
                failures.append(f"{path} {params} -> {answer.status_code} {answer.text[:200]}")
            elif answer.status_code == 400 and not any(name in answer.json().get("message", "")
                                                       for name in (field, "granularity")):
                failures.append(f"{path} {params} -> 400 without {field!r}: {answer.text[:200]}")
    print(f"dates: {tried} requests, {len(failures)} failed")
    assert not failures, f"{len(failures)} of {tried} requests failed:\n" + "\n".join(failures[:40])


def test_data_dir_is_not_in_answers(setup: Setup) -> None:
    """A sanity check of the checker: the data directory (where server.json lives) is never sent back."""
    assert Path(setup.data_dir, "server.json").exists()
    with setup.server.client() as client:
        assert setup.data_dir not in client.get("/v1/metrics", params={"query": "{}"}).text
