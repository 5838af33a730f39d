"""Dashboard sign-in and page security against a real ``costline serve``, over plain HTTP (httpx).

Redirects to /login, failed sign-ins that do not say which half was wrong, cookie flags, CSRF and Origin
refusal, sign-out, the admin token, HTTP Basic, escaping of user text, the Content-Security-Policy, and the
CSV download (exact figures, formula cells neutralised).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from tests.server.dashboard_data import XSS_MODEL, XSS_USER, Receiver, seed
from tests.server.harness import Server, make_server

from costline.server.dashboard.params import csv_cell, money

VENDOR = Path(__file__).parents[2] / "src" / "costline" / "server" / "dashboard" / "static" / "vendor"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    receiver = Receiver()
    srv, _ = make_server("duckdb", tmp_path_factory.mktemp("dash-auth"), {"COSTLINE_CHANNEL_ALLOW_HOSTS": "127.0.0.1"})
    srv.start()
    try:
        with srv.client() as client:
            seed(client, datetime.now(UTC), receiver.url)
        yield srv
    finally:
        srv.stop()
        receiver.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(srv: Server, public: str | None = None, secret: str | None = None) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=srv.url, timeout=30)
    form = client.get("/login")
    reply = client.post("/login", data={"csrf": _csrf(form.text), "next": "/ui/budgets",
                                        "public_key": srv.public_key if public is None else public,
                                        "secret_key": srv.secret_key if secret is None else secret})
    return client, reply


def test_pages_redirect_to_login_and_assets_are_public(server: Server) -> None:
    for path in ("/", "/ui/breakdown", "/ui/users/alice", "/ui/traces/t-1", "/ui/budgets", "/ui/cloud"):
        reply = httpx.get(server.url + path + "?timezone=UTC")
        assert reply.status_code == 303, path
        assert reply.headers["location"].startswith("/login?next=" + path.replace("/", "%2F"))
    login = httpx.get(server.url + "/login")
    assert login.status_code == 200 and 'name="secret_key"' in login.text
    assert httpx.get(server.url + "/ui/static/vendor/uPlot-1.6.32.iife.min.js").status_code == 200
    assert httpx.get(server.url + "/ui/static/app.js").status_code == 200
    # the API still answers 401 without a key
    assert httpx.get(server.url + "/v1/metrics").status_code == 401


def test_vendored_chart_library_is_present_with_its_licence() -> None:
    assert (VENDOR / "uPlot-1.6.32.iife.min.js").stat().st_size > 10_000
    assert (VENDOR / "uPlot-1.6.32.min.css").stat().st_size > 1_000
    assert "MIT License" in (VENDOR / "uPlot-LICENSE.txt").read_text()


def test_bad_credentials_do_not_say_which_part_was_wrong(server: Server) -> None:
    messages = []
    for public, secret in ((server.public_key, "sk-cl-wrong"), ("pk-cl-nobody", server.secret_key), ("", "x")):
        client, reply = sign_in(server, public, secret)
        with closing(client):
            assert reply.status_code == 401
            assert "costline_session" not in reply.cookies
            messages.append(re.search(r'class="error" role="alert">([^<]+)<', reply.text).group(1))  # type: ignore[union-attr]
            assert client.get("/ui/budgets").status_code == 303
    assert len(set(messages)) == 1
    assert "public key" in messages[0] and "secret key" in messages[0]


def test_sign_in_sets_a_signed_httponly_samesite_cookie_and_sign_out_ends_it(server: Server) -> None:
    client, reply = sign_in(server)
    with closing(client):
        assert reply.status_code == 303 and reply.headers["location"] == "/ui/budgets"
        cookie = next(h for h in reply.headers.get_list("set-cookie") if h.startswith("costline_session="))
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
        assert any(f.startswith("max-age=43200") for f in flags)
        page = client.get("/ui/budgets")
        assert page.status_code == 200 and "Monthly project" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert "<script>" not in page.text.replace('<script src="', "")  # no inline script at all
        # a tampered cookie is no session
        value = client.cookies["costline_session"]
        forged = httpx.get(server.url + "/ui/budgets", cookies={"costline_session": value[:-2] + "AA"})
        assert forged.status_code == 303
        # sign-out without the CSRF token is refused, with it the session ends
        refused = client.post("/logout", data={})
        assert refused.status_code == 403
        assert client.get("/ui/budgets").status_code == 200
        out = client.post("/logout", data={"csrf": _csrf(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert client.get("/ui/budgets").status_code == 303


def test_forms_from_another_origin_are_refused(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        form = client.get("/login")
        reply = client.post("/login", headers={"Origin": "http://evil.example"},
                            data={"csrf": _csrf(form.text), "public_key": server.public_key,
                                  "secret_key": server.secret_key})
        assert reply.status_code == 403 and "costline_session" not in reply.cookies
        # a sign-in form token without its cookie is refused too
        fresh = httpx.post(server.url + "/login", data={"csrf": _csrf(form.text), "public_key": server.public_key,
                                                        "secret_key": server.secret_key})
        assert fresh.status_code == 403
    client, _ = sign_in(server)
    with closing(client):
        page = client.get("/ui/budgets")
        cross = client.post("/logout", data={"csrf": _csrf(page.text)}, headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403
        assert client.get("/ui/budgets").status_code == 200


def test_open_redirect_is_not_possible(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        form = client.get("/login")
        reply = client.post("/login", data={"csrf": _csrf(form.text), "next": "//evil.example/x",
                                            "public_key": server.public_key, "secret_key": server.secret_key})
        assert reply.status_code == 303 and reply.headers["location"] == "/"


def test_http_basic_is_accepted_and_bad_basic_is_401(server: Server) -> None:
    page = httpx.get(server.url + "/ui/budgets", auth=(server.public_key, server.secret_key))
    assert page.status_code == 200 and "Monthly project" in page.text
    bad = httpx.get(server.url + "/ui/budgets", auth=(server.public_key, "nope"))
    assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Basic")


def test_the_local_admin_token_signs_in_to_the_only_project(server: Server) -> None:
    token = json.loads((server.data_dir / "server.json").read_text())["token"]
    client, reply = sign_in(server, "", token)
    with closing(client):
        assert reply.status_code == 303
        page = client.get("/ui/budgets")
        assert page.status_code == 200 and "Monthly project" in page.text and "switch project" in page.text
        chooser = client.get("/ui/project")
        assert chooser.status_code == 200 and server.project_id in chooser.text


def test_user_text_is_escaped(server: Server) -> None:
    auth = (server.public_key, server.secret_key)
    for path in ("/ui/users?timezone=UTC", "/?timezone=UTC", "/ui/breakdown?timezone=UTC&by=model"):
        html = httpx.get(server.url + path, auth=auth).text
        assert "<script>alert" not in html, path
    users = httpx.get(server.url + "/ui/users?timezone=UTC", auth=auth).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in users
    models = httpx.get(server.url + "/ui/breakdown?timezone=UTC&by=model", auth=auth).text
    assert "&lt;script&gt;alert(&#39;m&#39;)&lt;/script&gt;" in models
    assert XSS_USER not in users and XSS_MODEL not in models


def test_bad_parameters_are_a_clear_400_page(server: Server) -> None:
    auth = (server.public_key, server.secret_key)
    reply = httpx.get(server.url + "/ui/breakdown?timezone=Mars/Olympus", auth=auth)
    assert reply.status_code == 400 and "timezone" in reply.text and "Mars/Olympus" in reply.text
    reply = httpx.get(server.url + "/ui/breakdown?timezone=UTC&by=colour", auth=auth)
    assert reply.status_code == 400 and "by: unknown dimension" in reply.text


def test_csv_download_is_the_table_with_exact_amounts(server: Server) -> None:
    auth = (server.public_key, server.secret_key)
    today = datetime.now(UTC).date().isoformat()
    reply = httpx.get(server.url + "/ui/breakdown", auth=auth, params={
        "timezone": "UTC", "by": "user", "from": today, "format": "csv"})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    by_user = {r["user"]: r for r in rows}
    assert Decimal(by_user["alice"]["sum_cost"]) == Decimal("0.0075")  # gpt-4o 1,000 in / 500 out
    assert Decimal(by_user[XSS_USER]["sum_cost"]) == Decimal("0.0009")


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    assert csv_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert csv_cell("+cmd") == "'+cmd" and csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("\tx") == "'\tx" and csv_cell("\rx") == "'\rx" and csv_cell("-x") == "'-x"
    assert csv_cell("-0.5") == "-0.5" and csv_cell("+3") == "+3" and csv_cell("1e-5") == "1e-5"
    assert csv_cell("gpt-4o") == "gpt-4o" and csv_cell(None) == ""


def test_money_display() -> None:
    assert money(Decimal("0.0084")) == "$0.0084"
    assert money(Decimal("0.045")) == "$0.0450"
    assert money(Decimal("0.0009")) == "$0.0009" and money(Decimal("0.000001")) == "$0.000001"
    assert money(Decimal("1234.5")) == "$1,234.50"
    assert money(Decimal(0)) == "$0.00"
    assert money(Decimal("-2.61")) == "-$2.61"
    assert money(None) == "unpriced"


def test_a_revoked_key_ends_its_dashboard_session(server: Server) -> None:
    token = json.loads((server.data_dir / "server.json").read_text())["token"]
    admin = {"Authorization": f"Bearer {token}"}
    made = httpx.post(f"{server.url}/v1/admin/projects/{server.project_id}/keys", headers=admin, timeout=30)
    assert made.status_code in (200, 201), made.text
    public, secret = made.json()["public_key"], made.json()["secret_key"]
    client, reply = sign_in(server, public, secret)
    with closing(client):
        assert reply.status_code == 303
        assert client.get("/ui/traces").status_code == 200
        revoked = httpx.post(f"{server.url}/v1/admin/keys/{public}/revoke", headers=admin, timeout=30)
        assert revoked.status_code == 200, revoked.text
        page = client.get("/ui/traces")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    # and the revoked key cannot sign in again
    second, again = sign_in(server, public, secret)
    with closing(second):
        assert again.status_code == 401
