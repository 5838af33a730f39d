"""The unmodified Langfuse SDK (newest, and 3.x) reports to costline with only its host and keys changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from tests.server.harness import Server

import costline

CLIENTS = Path(__file__).parent / "clients"
ROOT = Path(__file__).parents[2]
LANGFUSE3_ENV = "COSTLINE_TEST_LANGFUSE3_PYTHON"


def run_app(python: str, script: str, server: Server) -> dict[str, str]:
    env = {
        **os.environ,
        "LANGFUSE_HOST": server.url,
        "LANGFUSE_PUBLIC_KEY": server.public_key,
        "LANGFUSE_SECRET_KEY": server.secret_key,
        "LANGFUSE_TRACING_ENVIRONMENT": "staging",
    }
    env.pop("LANGFUSE_BASE_URL", None)
    proc = subprocess.run([python, str(CLIENTS / script)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr
    ids: dict[str, str] = json.loads(proc.stdout)
    return ids


def check_trace(server: Server, ids: dict[str, str], user: str, session: str) -> None:
    with server.client() as c:
        trace = c.get(f"/api/public/traces/{ids['trace_id']}").json()
    assert trace["userId"] == user and trace["sessionId"] == session
    generation = next(o for o in trace["observations"] if o["id"] == ids["generation_id"])
    assert generation["type"] == "GENERATION" and generation["model"] == "gpt-4o"
    # Langfuse buckets 600 uncached + 400 cached = 1000 input tokens, 200 output; gpt-4o at $2.50 / $1.25
    # cached / $10: 600 × 2.5 + 400 × 1.25 + 200 × 10 = 1500 + 500 + 2000 = 4000 / 1M = 0.004
    engine = costline.cost(model="gpt-4o", provider="openai", input_tokens=1000, cache_read_tokens=400,
                           output_tokens=200, at=datetime.fromisoformat(generation["startTime"].replace("Z", "+00:00")))
    assert D(str(generation["calculatedTotalCost"])) == engine.total == D("0.004")
    assert D(str(trace["totalCost"])) == D("0.004")
    assert generation["environment"] == "staging"


def test_langfuse_sdk_newest(server: Server) -> None:
    ids = run_app(sys.executable, "langfuse_v5_app.py", server)
    check_trace(server, ids, "user-7", "session-7")


def _langfuse3_python() -> str | None:
    candidates = [os.environ.get(LANGFUSE3_ENV), str(ROOT / ".venv-langfuse3" / "bin" / "python")]
    return next((c for c in candidates if c and Path(c).exists()), None)


def test_langfuse_sdk_3x(server: Server) -> None:
    python = _langfuse3_python()
    if python is None:
        pytest.skip(f"no Python with langfuse 3.x: set {LANGFUSE3_ENV} or create .venv-langfuse3 (.ci/run does)")
    ids = run_app(python, "langfuse_v3_app.py", server)
    check_trace(server, ids, "user-3", "session-3")
