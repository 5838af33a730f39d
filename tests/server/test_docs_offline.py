"""`/docs` (Swagger UI) and `/redoc` work without the internet: every script, stylesheet and icon their HTML
references is served by costline itself (fastapi-offline's copies), and no absolute external URL remains."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from tests.server.harness import Server, make_server


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in ("src", "href") and value]


def _references(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    started, _ = make_server("duckdb", tmp_path_factory.mktemp("docs"))
    started.start()
    yield started  # type: ignore[misc]
    started.stop()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_their_own_assets(server: Server, page: str) -> None:
    reply = httpx.get(server.url + page)  # no key on loopback
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    html = reply.text
    assert "cdn.jsdelivr.net" not in html and "fonts.googleapis.com" not in html and "tiangolo" not in html
    assert "http://" not in html and "https://" not in html, html  # nothing absolute, in tags or scripts
    references = _references(html)
    assert references, html  # the page loads a script at least
    for ref in references:
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, f"{page} references {ref}"
        asset = httpx.get(urljoin(server.url + page, ref))
        assert asset.status_code == 200 and asset.content, ref
    scripts = [r for r in references if r.endswith(".js")]
    assert scripts and all(r.startswith("/docs-assets/") for r in scripts)


def test_assets_need_a_key_off_loopback_rules_stay(server: Server, tmp_path: Path) -> None:
    """The assets are open like /docs on loopback; other routes still need a key, and a path that climbs out
    of the asset folder is not served."""
    assert httpx.get(server.url + "/docs-assets/swagger-ui.css").status_code == 200
    assert httpx.get(server.url + "/v1/projects").status_code == 401
    escaped = httpx.get(server.url + "/docs-assets/..%2F..%2Fcore.py")
    assert escaped.status_code == 404
