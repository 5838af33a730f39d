"""Time the dashboard's pages (overview, breakdown by day x model, top users, traces) at N stored events.

    python bench/dashboard.py [--events 100000] [--rounds 5] [--keep DIR]

Data: the generator of bench/query.py (N generations over October 2026, 20 models, 10,000 users on the trace
rows, 2 % unpriced) in a DuckDB file, one project with a key. The app is costline's own (``create_app`` with
the real store, price book and a clock fixed at 2026-10-31 12:00 UTC) driven in-process over ASGI with HTTP
Basic, so each figure is a whole page: the queries, the template, the bytes. The median of ``--rounds`` after a
warm-up is reported. The default N is small so the script runs in seconds; docs/benchmarks.md has the 1M figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from costline.catalog.book import load_price_book  # noqa: E402
from costline.server.auth import hash_secret  # noqa: E402
from costline.settings import Settings  # noqa: E402
from costline.store import open_store  # noqa: E402
from costline.store.base import ApiKey, Project  # noqa: E402
from query import generate_duckdb, timed  # noqa: E402

NOW = datetime(2026, 10, 31, 12, tzinfo=UTC)
PAGES = {
    "overview (Europe/Berlin)": "/?timezone=Europe/Berlin",
    "breakdown day x model, 30 days": "/ui/breakdown?by=model&granularity=day&from=2026-10-01&to=2026-11-01"
                                      "&timezone=Europe/Berlin",
    "top users, 30 days": "/ui/users?from=2026-10-01&to=2026-11-01&timezone=UTC",
    "most expensive traces, 7 days": "/ui/traces?timezone=UTC",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the generated DuckDB file in this folder")
    args = parser.parse_args()
    from fastapi.testclient import TestClient

    from costline.server.app import create_app

    folder = args.keep or Path(tempfile.mkdtemp(prefix="costline-bench-"))
    path = folder / f"query-{args.events}.duckdb"
    print(f"DuckDB, {args.events:,} observations ({path})")
    if not path.exists():
        generate_duckdb(path, args.events)
    store = open_store(f"duckdb:///{path}")
    if store.get_project("p1") is None:
        store.create_project(Project("p1", "bench", NOW), ApiKey("p1", "pk-bench", hash_secret("sk-bench"), NOW))
    settings = Settings.from_env({}, data_dir=folder, store_url=f"duckdb:///{path}")
    app = create_app(settings, store, load_price_book(settings), clock=lambda: NOW)
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            client.auth = ("pk-bench", "sk-bench")
            for name, url in PAGES.items():
                reply = client.get(url)
                assert reply.status_code == 200, reply.text[:500]
                seconds = timed(lambda u=url: client.get(u), args.rounds)  # type: ignore[misc]
                print(f"  {name:34s} {seconds * 1000:8.0f} ms  {len(reply.content) / 1024:6.0f} KiB")
    finally:
        store.close()
        if args.keep is None:
            path.unlink()


if __name__ == "__main__":
    main()
