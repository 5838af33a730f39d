"""Shared fixtures: a fixed clock, the bundled catalog's price book, isolated data directories."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from costline.catalog.genai import load_genai_catalog
from costline.core.resolve import PriceBook

#: The instant tests price at, unless a test is about time.
AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def bundled_book() -> PriceBook:
    records, providers = load_genai_catalog()
    return PriceBook(records, providers)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty costline data directory, with the environment pointing at it."""
    folder = tmp_path / "costline-data"
    monkeypatch.setenv("COSTLINE_DATA_DIR", str(folder))
    monkeypatch.delenv("COSTLINE_PRICE_FILES", raising=False)
    monkeypatch.delenv("COSTLINE_BUNDLED_PRICES", raising=False)
    return folder
