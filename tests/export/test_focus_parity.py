"""FOCUS rows for what a real server stored: a call priced by a project price (created through the Langfuse
models API, scoped to no provider) keeps its real provider, and costs with no model (the SDK's ``add_cost``
service costs) are exported as Usage rows of their own, named by service and operation.

Project price: $2 per 1M input and $8 per 1M output tokens (``inputPrice`` 0.000002, ``outputPrice``
0.000008 per token): 1000 × 2 + 200 × 8 = 2000 + 1600 = 3600 per 1M = 0.0036.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from click.testing import CliRunner
from tests.server.harness import make_server

from costline.cli import cli
from costline.sdk.request_costs import add_cost
from costline.sdk.tracker import Tracker


def test_project_priced_call_keeps_its_provider_and_service_costs_are_rows(tmp_path: Path, data_dir: Path) -> None:
    server, _ = make_server("duckdb", tmp_path)
    server.start()
    try:
        with server.client() as c:
            r = c.post("/api/public/models", json={"modelName": "gpt-4o", "matchPattern": "(?i)^gpt-4o$",
                                                   "unit": "TOKENS", "inputPrice": 0.000002,
                                                   "outputPrice": 0.000008})
            assert r.status_code in (200, 201), r.text
        tracker = Tracker(host=server.url, public_key=server.public_key, secret_key=server.secret_key,
                          flush_interval=0.05)
        try:
            with tracker.trace(name="request"):
                with tracker.generation(name="chat", model="gpt-4o") as g:  # no provider sent
                    g.update(usage={"input_tokens": 1000, "output_tokens": 200})
                add_cost("lambda", "execution", "gb-seconds", 2, amount="0.0000334", tracker=tracker)
                add_cost("lambda", "execution", "gb-seconds", "1.5", amount="0.000025", tracker=tracker)
                add_cost("dynamodb", "write", "request-units", 3, amount="0.00000375", tracker=tracker)
            assert tracker.flush(timeout=30)
        finally:
            tracker.shutdown(timeout=30)
    finally:
        server.stop()
    out = tmp_path / "focus.csv"
    day = datetime.now(UTC).date()
    result = CliRunner().invoke(cli, ["export", "--store", server.store_url, "--from", day.isoformat(),
                                      "--to", (day + timedelta(days=2)).isoformat(),
                                      "--project", server.project_id, "--format", "focus", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    with out.open(newline="", encoding="utf-8") as handle:
        rows = {(r["ServiceName"], r["SkuId"]): r for r in csv.DictReader(handle)}
    model = rows[("openai API", "gpt-4o")]
    assert (model["ProviderName"], model["x_Model"], D(model["BilledCost"])) == ("openai", "gpt-4o", D("0.0036"))
    lam = rows[("lambda", "lambda:execution")]
    # 0.0000334 + 0.000025 = 0.0000584 for 2 + 1.5 = 3.5 GB-seconds
    assert D(lam["BilledCost"]) == D("0.0000584") and D(lam["PricingQuantity"]) == D("3.5")
    assert (lam["ChargeCategory"], lam["PricingUnit"], lam["ServiceCategory"]) == ("Usage", "gb-seconds", "Other")
    assert lam["ProviderName"] == "lambda" and "lambda execution" in lam["ChargeDescription"]
    dyn = rows[("dynamodb", "dynamodb:write")]
    assert D(dyn["BilledCost"]) == D("0.00000375") and D(dyn["PricingQuantity"]) == 3
    # everything recorded is billed: 0.0036 + 0.0000584 + 0.00000375
    assert sum(D(r["BilledCost"]) for r in rows.values()) == D("0.00366215")
    assert "no model name" not in result.stderr
