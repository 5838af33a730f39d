"""Shared fixture for the extraction tests: realistic provider payloads under tests/data/payloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PAYLOADS = Path(__file__).resolve().parent.parent / "data" / "payloads"


@pytest.fixture
def load() -> Callable[[str], Any]:
    """``load("openai_chat_plain")`` -> the parsed JSON of tests/data/payloads/openai_chat_plain.json."""

    def _load(name: str) -> Any:
        return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))

    return _load
