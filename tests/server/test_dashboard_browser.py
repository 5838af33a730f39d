"""The dashboard in a real browser: Debian's chromium driven by Playwright against a real ``costline serve``.

Signs in through the form, visits every page in the Europe/Berlin zone (the browser's, put in the address by
the page's script), and checks every figure twice: against the hand-worked value (tests/server/
dashboard_data.py) and against the API's answer to the same question for the same range and zone. Also: no
console errors, no request to any other origin, and a screenshot of each page in artifacts/screenshots/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from tests.server.dashboard_data import PAST_TOTAL, TODAY_TOTAL, TRACE_1_TOTAL, XSS_USER, Receiver, seed
from tests.server.harness import Server, drop_postgres_schema, make_server, postgres_url

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).parents[2] / "artifacts" / "screenshots"
ZONE = "Europe/Berlin"
FOCUS_TOTAL = Decimal("20.52022672899")  # published with the FOCUS 1.0 sample (tests/data/focus)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                              "(apt-get install -y chromium)")
ROWS_JS = """sel => Array.from(document.querySelectorAll(sel + ' tbody tr')).map(
    tr => Array.from(tr.cells).map(td => td.dataset.value !== undefined ? td.dataset.value : td.textContent.trim()))"""


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def seeded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, datetime]]:
    receiver = Receiver()
    srv, schema = make_server(request.param, tmp_path_factory.mktemp(f"dash-browser-{request.param}"),
                               {"COSTLINE_CHANNEL_ALLOW_HOSTS": "127.0.0.1"})
    srv.start()
    now = datetime.now(UTC)
    try:
        with srv.client() as client:
            seed(client, now, receiver.url)
            sample = Path(__file__).parents[1] / "data" / "focus" / "focus-1.0-sample.csv"
            imported = client.post("/v1/cloud/imports", params={"format": "focus", "filename": sample.name},
                                   content=sample.read_bytes())
            assert imported.status_code == 200, imported.text
        yield srv, now
    finally:
        srv.stop()
        receiver.close()
        base = postgres_url()
        if schema and base:
            drop_postgres_schema(base, schema)


class Browser:
    """One signed-in page that records console errors and every URL it requests."""

    def __init__(self, srv: Server, page: Any) -> None:
        self.srv = srv
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: str, shot: str | None = None) -> None:
        self.page.goto(self.srv.url + path)
        self.page.wait_for_load_state("networkidle")
        if shot:
            SHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)

    def value(self, selector: str) -> Decimal:
        return Decimal(self.page.locator(selector).first.get_attribute("data-value"))

    def rows(self, table: str) -> list[list[str]]:
        found: list[list[str]] = self.page.evaluate(ROWS_JS, table)
        return found


@pytest.fixture(scope="module")
def browser(seeded: tuple[Server, datetime]) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    srv, _ = seeded
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = chromium.new_context(viewport={"width": 1280, "height": 900}, timezone_id=ZONE)
        b = Browser(srv, context.new_page())
        b.open("/")
        assert "/login" in b.page.url
        SHOTS.mkdir(parents=True, exist_ok=True)
        b.page.screenshot(path=str(SHOTS / "login.png"))
        b.page.fill("#public_key", srv.public_key)
        b.page.fill("#secret_key", srv.secret_key)
        b.page.click("button[type=submit]")
        b.page.wait_for_load_state("networkidle")
        yield b
        context.close()
        chromium.close()
    own = urlsplit(srv.url)
    for url in b.requests:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == (own.scheme, own.netloc) or parts.scheme == "data", url
    assert b.errors == []


def api(srv: Server, path: str, **params: str) -> Any:
    reply = httpx.get(srv.url + path, params=params, headers=srv.headers, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def metrics(srv: Server, query: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api(srv, "/v1/metrics", query=json.dumps(query))["data"]
    return rows


def local_midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(ZONE)).isoformat()


def month_bounds(now: datetime) -> tuple[date, date, date]:
    """First days of the previous, this and the next month in the test zone."""
    today = now.astimezone(ZoneInfo(ZONE)).date()
    this = today.replace(day=1)
    before = (this - timedelta(days=1)).replace(day=1)
    after = (this + timedelta(days=32)).replace(day=1)
    return before, this, after


def test_overview(browser: Browser, seeded: tuple[Server, datetime]) -> None:
    srv, now = seeded
    browser.open("/", "overview")
    assert f"timezone={ZONE.replace('/', '%2F')}" in browser.page.url  # the browser's zone, detected by the page
    today = now.astimezone(ZoneInfo(ZONE)).date()
    before, this, after = month_bounds(now)
    day = metrics(srv, {"from": local_midnight(today), "to": local_midnight(today + timedelta(days=1)),
                        "metrics": ["sum:cost", "count", "unpriced"]})[0]
    month = metrics(srv, {"from": local_midnight(this), "to": local_midnight(after), "metrics": ["sum:cost"]})[0]
    last = metrics(srv, {"from": local_midnight(before), "to": local_midnight(this), "metrics": ["sum:cost"]})[0]
    assert browser.value("#card-day .money") == Decimal(day["sum_cost"]) == TODAY_TOTAL
    assert "3 calls" in browser.page.inner_text("#card-day") and day["count"] == 3 and day["unpriced"] == 1
    assert browser.value("#card-month .money") == Decimal(month["sum_cost"]) == TODAY_TOTAL
    assert browser.page.locator("#card-month .money").nth(1).get_attribute("data-value") == last["sum_cost"]
    assert Decimal(last["sum_cost"]) == PAST_TOTAL
    forecast = api(srv, "/v1/forecast", timezone=ZONE)
    assert browser.value("#card-forecast .money") == Decimal(forecast["projected"])
    assert "Monthly project" in browser.page.inner_text("#nearest ~ table")
    assert "big-call" in browser.page.inner_text("#alerts ~ table")
    assert browser.page.locator(".chart canvas").count() >= 1  # uPlot drew the chart
    browser.page.set_viewport_size({"width": 390, "height": 844})
    browser.page.wait_for_timeout(200)
    browser.page.screenshot(path=str(SHOTS / "overview-phone.png"), full_page=True)
    width = browser.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the overview scrolls sideways on a phone ({width} px)"
    browser.page.set_viewport_size({"width": 1280, "height": 900})


def test_breakdown_buckets_days_in_the_chosen_zone(browser: Browser, seeded: tuple[Server, datetime]) -> None:
    srv, now = seeded
    before, this, _ = month_bounds(now)
    base = f"/ui/breakdown?by=model&granularity=day&from={before}&to={this}"
    browser.open(base, "breakdown")
    shown = browser.rows("#breakdown")
    answer = metrics(srv, {"from": before.isoformat(), "to": this.isoformat(), "timezone": ZONE, "granularity": "day",
                           "dimensions": ["model"], "limit": 10000,
                           "metrics": ["sum:cost", "count", "unpriced"]})
    api_rows = {(r["time"][:10], r["model"] or "(none)"): r for r in answer}
    page_rows = {(r[0][:10], r[1]): r for r in shown}
    assert page_rows.keys() == api_rows.keys()
    for key, row in page_rows.items():
        expected = api_rows[key]
        assert Decimal(row[2] or "0") == Decimal(expected["sum_cost"] or "0"), key
        assert int(row[4]) == expected["count"] and int(row[5]) == expected["unpriced"]
    d10, d11 = before.replace(day=10).isoformat(), before.replace(day=11).isoformat()
    assert Decimal(page_rows[(d10, "gpt-4o")][2]) == Decimal("0.045")
    assert Decimal(page_rows[(d10, "gpt-4o-mini")][2]) == Decimal("0.0009")
    assert Decimal(page_rows[(d11, "gpt-4o-mini")][2]) == Decimal("0.0009")  # 23:30 UTC is 00:30 in Berlin
    # the same range in UTC puts both gpt-4o-mini calls on day 10
    browser.open(base + "&timezone=UTC")
    utc = {(r[0][:10], r[1]): r for r in browser.rows("#breakdown")}
    assert Decimal(utc[(d10, "gpt-4o-mini")][2]) == Decimal("0.0018") and (d11, "gpt-4o-mini") not in utc
    # two dimensions, no time: model x environment
    browser.open(f"/ui/breakdown?by=model&by2=environment&from={before}&to={this}")
    two = {(r[0], r[1]): r[2] for r in browser.rows("#breakdown")}
    assert Decimal(two[("gpt-4o", "production")]) == Decimal("0.045")
    assert two[("acme-llm-9", "staging")] == ""  # unpriced: no amount, never $0


def test_users_and_sessions(browser: Browser, seeded: tuple[Server, datetime]) -> None:
    srv, now = seeded
    before, _, _ = month_bounds(now)
    end = now.astimezone(ZoneInfo(ZONE)).date() + timedelta(days=1)
    window = {"from": before.isoformat(), "to": end.isoformat(), "timezone": ZONE}
    browser.open(f"/ui/users?from={before}&to={end}", "users")
    shown = {r[0]: Decimal(r[1] or "0") for r in browser.rows("#top")}
    answer = metrics(srv, {**window, "dimensions": ["user"], "metrics": ["sum:cost"]})
    assert shown == {r["user"]: Decimal(r["sum_cost"] or "0") for r in answer if r["user"] is not None}
    assert shown["alice"] == Decimal("0.0534")  # 0.045 + 0.0009 + 0.0075
    assert shown["bob"] == Decimal("0.0009") and shown[XSS_USER] == Decimal("0.0009")
    browser.open(f"/ui/users/alice?from={before}&to={end}", "user")
    costs = api(srv, "/v1/users/alice/costs", **window)
    assert browser.value("#user-total .money") == Decimal(costs["total_cost"]) == Decimal("0.0534")
    by_model = {r[0]: Decimal(r[1]) for r in browser.rows("#by-model")}
    assert by_model == {m["model"] or "(none)": Decimal(m["total_cost"]) for m in costs["by_model"]}
    assert "Per user per day" in browser.page.inner_text("main")
    browser.open(f"/ui/sessions?from={before}&to={end}", "sessions")
    sessions = {r[0]: Decimal(r[1] or "0") for r in browser.rows("#top")}
    assert sessions == {"s-1": TRACE_1_TOTAL, "s-2": Decimal("0.0009"), "s-3": Decimal("0.0075")}


def test_traces_and_a_trace_tree(browser: Browser, seeded: tuple[Server, datetime]) -> None:
    srv, now = seeded
    before, this, _ = month_bounds(now)
    browser.open(f"/ui/traces?from={before}&to={this}", "traces")
    shown = browser.rows("#traces")
    listed = api(srv, "/v1/traces", **{"from": before.isoformat(), "to": this.isoformat(), "timezone": ZONE})["data"]
    assert [r[1] for r in shown] == [t["name"] or "" for t in listed]
    assert Decimal(shown[0][5]) == Decimal(listed[0]["total_cost"]) == TRACE_1_TOTAL
    browser.page.click("#traces tbody tr:first-child a")
    browser.page.wait_for_load_state("networkidle")
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.page.screenshot(path=str(SHOTS / "trace.png"), full_page=True)
    trace = api(srv, "/v1/traces/t-1")
    assert browser.value("#trace-total .money") == Decimal(trace["total_cost"]) == TRACE_1_TOTAL
    gen1 = browser.page.locator("#obs-gen-1")
    components = {r[0]: Decimal(r[1]) for r in gen1.locator("table.cost").evaluate(
        "t => Array.from(t.rows).map(tr => [tr.cells[0].textContent.trim(), tr.cells[1].dataset.value])")}
    assert components == {"input_tokens": Decimal("0.025"), "output_tokens": Decimal("0.02")}
    text = gen1.inner_text()
    assert "openai:gpt-4o" in text and "2.5" in text and "per 1M" in text
    # the tree: the generations sit under their span
    assert "depth-1" in (gen1.get_attribute("class") or "")


def test_budgets_cloud_and_prices(browser: Browser, seeded: tuple[Server, datetime]) -> None:
    srv, _ = seeded
    browser.open("/ui/budgets", "budgets")
    status = api(srv, "/v1/budgets/monthly")["status"]
    assert browser.value("#budget-monthly td.num") == Decimal(status["used"])
    assert Decimal(status["used"]) >= TODAY_TOTAL
    assert "big-call" in browser.page.inner_text("#deliveries")
    # a per-user budget lists its top spenders this window, each measured as the API measures it
    alice = api(srv, "/v1/budgets/per-user-day", user="alice")["status"]
    shown = browser.value('#budgets tr[data-budget="per-user-day"][data-subject="alice"] td.num')
    assert shown == Decimal(alice["used"]) == Decimal("0.0075")  # gpt-4o 1,000 in / 500 out, today
    assert browser.page.locator('#budgets tr[data-budget="per-user-day"]').count() == 2  # alice and the <script> user
    browser.open("/ui/cloud?from=2024-08-01&to=2024-11-01&timezone=UTC", "cloud")
    assert browser.value("#card-cloud .money") == FOCUS_TOTAL
    assert browser.value("#card-llm .money") == Decimal(0)
    assert "Amazon Elastic Compute Cloud" in browser.page.inner_text("#cloud-service")
    browser.open("/ui/prices?q=gpt-4o-mini&model=gpt-4o-mini", "prices")
    explained = browser.page.inner_text("#explain")
    assert "0.15" in explained and "0.6" in explained and "per 1M" in explained
    assert "gpt-4o-mini" in browser.page.inner_text("#catalog")


def test_keyboard_reaches_the_pages_and_the_filters(browser: Browser) -> None:
    browser.open("/")
    page = browser.page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    focused = []
    for _ in range(12):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.textContent.trim() || document.activeElement.name"))
    for label in ("Overview", "Breakdown", "Users", "Traces", "Budgets & alerts", "Cloud", "Prices", "Sign out"):
        assert label in focused, focused
    # change the stack with the keyboard only: the labelled select, then Tab to Apply and Enter
    page.focus("select[name=stack]")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Apply"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state("networkidle")
    assert "stack=" in page.url and "by provider" in page.inner_text("#over-time")


def test_no_console_errors_and_no_request_to_another_origin(browser: Browser) -> None:
    assert browser.requests, "the page made no requests at all"
    assert any(u.endswith("/ui/static/vendor/uPlot-1.6.32.iife.min.js") for u in browser.requests)
    own = urlsplit(browser.srv.url)
    foreign = [u for u in browser.requests if (urlsplit(u).scheme, urlsplit(u).netloc) != (own.scheme, own.netloc)
               and urlsplit(u).scheme != "data"]
    assert foreign == []
    assert browser.errors == []
