"""One tenant cannot stall the others, and channels cannot reach into the server's network: a real
``costline serve`` over DuckDB, real HTTP receivers on loopback (the only addresses anything is sent to).

Nothing here asserts a duration: a request that must not wait has a time-out, and the test fails if it
expires.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server.harness import Server, create_project, make_server

from costline.server.auth import Authenticator
from costline.server.auth import create_project as create_store_project
from costline.store import open_store

SECRET = "isolation-test-secret-0123456789"


class Receiver:
    """A webhook receiver on 127.0.0.1; requests to /slow wait until ``release`` is set (at most 60 s)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.paths.append(self.path)
                if self.path.startswith("/slow"):
                    outer.release.wait(60)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server that allows 127.0.0.1 (the receivers), with a second project."""
    tmp = tmp_path_factory.mktemp("isolation")
    srv, _ = make_server("duckdb", tmp, {"COSTLINE_CHANNEL_ALLOW_HOSTS": "127.0.0.1"})
    other = create_project(srv.store_url, tmp, srv.env, name="other")
    srv.start()
    yield srv, other
    srv.stop()


def _client(srv: Server, keys: dict[str, str] | None = None, timeout: float = 30) -> httpx.Client:
    auth = (keys["public_key"], keys["secret_key"]) if keys else (srv.public_key, srv.secret_key)
    return httpx.Client(base_url=srv.url, auth=auth, timeout=timeout)


# one tenant cannot stall the others ----------------------------------------------------------------------------------
def test_forty_slow_test_sends_leave_the_server_to_others(served: tuple[Server, dict[str, str]],
                                                          receiver: Receiver) -> None:
    srv, other = served
    with _client(srv) as c:
        assert c.put("/v1/channels/slow", json={"webhook": f"{receiver.url}/slow", "secret": SECRET}
                     ).status_code == 200
        assert c.post("/v1/alerts", json={"name": "t", "kind": "unpriced", "channels": ["slow"]}).status_code == 201
    with _client(srv, other) as c:
        assert c.put("/v1/channels/fast", json={"webhook": f"{receiver.url}/fast", "secret": SECRET}
                     ).status_code == 200
        assert c.post("/v1/alerts", json={"name": "t2", "kind": "unpriced", "channels": ["fast"]}).status_code == 201

    def send_test() -> httpx.Response:
        with _client(srv, timeout=120) as c:
            return c.post("/v1/alerts/t/test")

    pool = ThreadPoolExecutor(40)
    try:
        answers = [pool.submit(send_test) for _ in range(40)]
        for _ in range(300):  # until the receiver holds the project's test sends
            if len([p for p in receiver.paths if p == "/slow"]) >= 2:
                break
            threading.Event().wait(0.1)
        assert len([p for p in receiver.paths if p == "/slow"]) == 2
        # meanwhile another project is served: metrics (a store read), ingestion, its own test send; each must
        # answer within its time-out (the test fails if one expires)
        with _client(srv, other, timeout=20) as c:
            assert c.get("/metrics").status_code == 200
            assert c.get("/api/public/health").status_code == 200
            event = {"id": uuid.uuid4().hex, "model": "gpt-4o", "start_time": datetime.now(UTC).isoformat(),
                     "usage": {"input_tokens": 10, "output_tokens": 10}}
            assert c.post("/v1/ingest", json={"events": [event]}).status_code == 200
            sent = c.post("/v1/alerts/t2/test")
            assert sent.status_code == 200 and sent.json() == {"deliveries": [{"channel": "fast", "status": "sent"}]}
        receiver.release.set()
        results = [a.result(timeout=120) for a in answers]
    finally:
        receiver.release.set()
        pool.shutdown(wait=True)
    busy = [r for r in results if r.status_code == 429]
    assert len(busy) >= 36, [r.status_code for r in results]  # two at a time per project
    assert all(r.headers["Retry-After"] == "5" and "test sends in progress" in r.json()["message"] for r in busy)
    done = [r for r in results if r.status_code != 429]
    assert done and all(r.json() == {"deliveries": [{"channel": "slow", "status": "sent"}]} for r in done)


def test_a_pathological_project_price_does_not_stall_pricing(served: tuple[Server, dict[str, str]]) -> None:
    """``^(a+)+$`` would take Python's re about a day on the 40-character name; with RE2 the request answers
    (within the client's time-out) and the name is simply unpriced."""
    srv, _ = served
    with _client(srv, timeout=60) as c:
        body = {"modelName": "evil", "matchPattern": "^(a+)+$", "unit": "TOKENS", "inputPrice": 0.000001,
                "outputPrice": 0.000002}
        created = c.post("/api/public/models", json=body)
        assert created.status_code == 200, created.text
        events = [{"id": uuid.uuid4().hex, "model": model, "start_time": datetime.now(UTC).isoformat(),
                   "usage": {"input_tokens": 1_000_000, "output_tokens": 1_000_000}}
                  for model in ("a" * 40 + "b", "a" * 60 + "b", "aaaa")]
        costs = c.post("/v1/ingest", json={"events": events}).json()["costs"]
        # 1M × $0.000001 + 1M × $0.000002 = $3 for the name the pattern matches
        assert [(x["status"], x.get("total")) for x in costs] == [("unpriced", None), ("unpriced", None),
                                                                  ("priced", "3")]
        for pattern, why in [("^(?=x)a", "invalid perl operator: (?="), (r"(a)\1", "invalid escape sequence"),
                             ("a" * 1001, "at most 1000")]:
            bad = c.post("/api/public/models", json={**body, "matchPattern": pattern})
            assert bad.status_code == 400 and bad.json()["message"].startswith("matchPattern: "), bad.text
            assert why in bad.json()["message"]
        assert c.delete(f"/api/public/models/{created.json()['id']}").status_code == 200


def test_key_lookups_are_cached_for_five_seconds_at_most(tmp_path: Path) -> None:
    store = open_store(f"duckdb:///{tmp_path / 'keys.duckdb'}")
    try:
        new = create_store_project(store, "p", datetime.now(UTC))
        now = [1000.0]
        auth = Authenticator(store, lambda: datetime.now(UTC), monotonic=lambda: now[0])
        header = f"Bearer {new.secret_key}"
        assert auth.ttl_s == 5.0 and not auth.fast(header)  # nothing yet: the store must be read
        key = auth.authenticate(header)
        assert key is not None and key.project_id == new.project.id
        now[0] += 4.9
        assert auth.fast(header)  # still remembered: no store call, safe on the event loop
        now[0] += 0.2  # past 5 s: the next request reads the store again (a revoked key stops working)
        assert not auth.fast(header)
        assert auth.authenticate("Bearer sk-cl-wrong") is None
    finally:
        store.close()



def test_a_burst_with_a_new_key_looks_it_up_once(tmp_path: Path) -> None:
    """Forty requests with one key the server has not seen, all in flight together (a Langfuse SDK with
    ``flushAt: 1`` starting up): one store lookup between them, every one answered as that key's project; a
    wrong secret in the same burst is still refused."""
    import asyncio

    from costline.catalog.book import load_price_book
    from costline.server.app import create_app
    from costline.settings import Settings

    settings = Settings.from_env({}, data_dir=tmp_path, store_url=f"duckdb:///{tmp_path / 'burst.duckdb'}")
    store = open_store(settings.resolved_store_url)
    lookups: list[str] = []
    try:
        new = create_store_project(store, "p", datetime.now(UTC))
        find = store.find_key_by_public

        def counted(public_key: str) -> Any:
            lookups.append(public_key)
            return find(public_key)

        store.find_key_by_public = counted  # type: ignore[method-assign]
        app = create_app(settings, store, load_price_book(settings))
        good = httpx.BasicAuth(new.public_key, new.secret_key)
        bad = httpx.BasicAuth(new.public_key, "sk-cl-wrong")

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
                return await asyncio.gather(*(c.get("/api/public/projects", auth=good) for _ in range(40)),
                                            c.get("/api/public/projects", auth=bad))

        replies = asyncio.run(burst())
        assert [r.status_code for r in replies] == [200] * 40 + [401]
        assert {r.json()["data"][0]["id"] for r in replies[:40]} == {new.project.id}
        assert lookups == [new.public_key] * 2  # one for the good header, one for the bad
    finally:
        store.close()

# channels cannot reach into the network ------------------------------------------------------------------------------
REFUSED = [
    ("meta", {"webhook": "http://169.254.169.254/latest/meta-data/", "secret": SECRET}, "a link-local address"),
    ("dec", {"webhook": "http://2852039166/latest/meta-data/", "secret": SECRET}, "a link-local address"),
    ("lo2", {"webhook": "http://127.0.0.2:8787/", "secret": SECRET}, "a loopback address"),
    ("v6", {"webhook": "http://[::1]:8787/", "secret": SECRET}, "a loopback address"),
    ("mapped", {"webhook": "http://[::ffff:a9fe:a9fe]/", "secret": SECRET}, "a link-local address"),
    ("ula", {"webhook": "http://[fd12:3456::1]/", "secret": SECRET}, "a private address"),
    ("any", {"webhook": "http://0.0.0.0:8787/", "secret": SECRET}, "the unspecified address"),
    ("lan", {"webhook": "https://10.0.0.1/hook", "secret": SECRET}, "a private address"),
    ("json", {"apprise": "json://169.254.169.254/"}, "a link-local address"),
    ("smtp", {"apprise": "mailto://u:p@example.com?smtp=192.168.0.10&from=a@example.com&to=b@example.com"},
     "a private address"),
]


def test_channels_to_internal_addresses_are_refused(served: tuple[Server, dict[str, str]]) -> None:
    srv, _ = served
    with _client(srv) as c:
        for name, spec, why in REFUSED:
            answer = c.put(f"/v1/channels/{name}", json=spec)
            assert answer.status_code == 400, (name, answer.text)
            kind = "webhook" if "webhook" in spec else "apprise"
            message = answer.json()["message"]
            assert message.startswith(f"channels.{name}.{kind}: ") and why in message, message
        applied = c.post("/v1/control/apply", json={"document": {"version": 1, "channels": {
            "ok": {"webhook": "http://127.0.0.1:9/x", "secret": SECRET},
            "meta": {"webhook": "http://169.254.169.254/", "secret": SECRET}}}, "source": "api:ssrf"})
        assert applied.status_code == 400 and applied.json()["message"].startswith("channels.meta.webhook: ")
        names = {ch["name"] for ch in c.get("/v1/channels").json()["data"]}
    assert not names & {name for name, _, _ in REFUSED} and "ok" not in names  # nothing was saved


def test_a_saved_channel_is_checked_again_when_sent(tmp_path: Path, receiver: Receiver) -> None:
    """A channel saved while its host was allowed (or resolved to a public address) is refused at send time
    once it resolves to loopback and is not allowed: ``localhost`` here, without the allow-list."""
    srv, _ = make_server("duckdb", tmp_path)
    control = tmp_path / "costline.yaml"
    control.write_text(json.dumps({"version": 1, "channels": {"rebound": {
        "webhook": f"http://localhost:{receiver.port}/rebound", "secret": SECRET}},
        "alerts": [{"name": "r", "kind": "unpriced", "channels": ["rebound"]}]}), "utf-8")
    saved = subprocess.run([sys.executable, "-m", "costline", "apply", str(control), "--store", srv.store_url],
                           capture_output=True, text=True, timeout=120, check=False,
                           env={**srv.env, "COSTLINE_CHANNEL_ALLOW_HOSTS": "localhost"})
    assert saved.returncode == 0, saved.stderr
    refused = subprocess.run([sys.executable, "-m", "costline", "apply", str(control), "--store", srv.store_url],
                             capture_output=True, text=True, timeout=120, check=False, env=srv.env)
    assert refused.returncode != 0 and "channels.rebound.webhook: localhost resolves to a loopback address" in (
        refused.stderr)
    srv.start()
    try:
        with _client(srv) as c:
            answer = c.post("/v1/alerts/r/test")
            assert answer.status_code == 502 and answer.json() == {
                "deliveries": [{"channel": "rebound", "status": "failed"}]}
            [entry] = c.get("/v1/alerts/history").json()["data"]
    finally:
        srv.stop()
    assert "/rebound" not in receiver.paths  # nothing reached the receiver
    assert entry["attempts"] == 1 and entry["error"] == (
        "channel 'rebound': the destination is not allowed (a loopback address); channels deliver to public "
        "addresses only, unless the operator allows the host")
