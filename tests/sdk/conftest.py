"""SDK tests: no COSTLINE_* settings leak in from the environment; trackers are shut down after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.providers.openai_server import OpenAIFake

from costline.sdk import Tracker
from costline.sdk.config import ENV_VARS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_VARS.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COSTLINE_DATA_DIR", str(tmp_path / "costline-data"))
    monkeypatch.delenv("COSTLINE_PRICE_FILES", raising=False)


# -- shared by the integration tests: the local OpenAI-protocol server and an in-memory tracker ------------
#: what the server reports unless a test says otherwise: 2006 prompt tokens of which 1920 cached, 300 output
OPENAI_USAGE = {"prompt_tokens": 2006, "completion_tokens": 300, "cached_tokens": 1920}


@pytest.fixture(scope="session")
def server() -> Iterator[OpenAIFake]:
    with OpenAIFake().running() as fake:
        yield fake


@pytest.fixture
def fake(server: OpenAIFake) -> OpenAIFake:
    server.reset()
    server.usage = dict(OPENAI_USAGE)
    return server


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    t = Tracker()  # no host and no store: local mode, events kept in memory
    yield t
    t.shutdown()


def generations(tracker: Tracker) -> list[dict[str, Any]]:
    return [e for e in tracker.events() if e.get("type") == "generation"]
