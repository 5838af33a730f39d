"""SDK tests: no COSTLINE_* settings leak in from the environment; trackers are shut down after each test."""

from __future__ import annotations

from pathlib import Path

import pytest

from costline.sdk.config import ENV_VARS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_VARS.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COSTLINE_DATA_DIR", str(tmp_path / "costline-data"))
    monkeypatch.delenv("COSTLINE_PRICE_FILES", raising=False)
