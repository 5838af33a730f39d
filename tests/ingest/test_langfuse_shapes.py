"""Langfuse REST shapes: models API body ↔ costline price entry, and stored rows as Langfuse trace JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langfuse.api.commons.types.model import Model
from langfuse.api.core.pydantic_utilities import parse_obj_as

from costline.catalog.langfuse import import_langfuse
from costline.catalog.user_file import compile_price_data
from costline.core.cost import calc_cost
from costline.core.events import Observation, Score, Trace
from costline.core.price import PriceRecord, Source
from costline.core.usage import Usage
from costline.ingest.batch import IngestError
from costline.ingest.langfuse_shapes import dumps_json, entry_to_model, model_body_to_entry, trace_to_langfuse
from costline.store.base import StoredPrice

SUBSET = Path(__file__).resolve().parents[1] / "data" / "prices" / "langfuse-subset.json"
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
T0 = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
BODY_KEYS = ("modelName", "matchPattern", "startDate", "unit", "pricingTiers", "tokenizerId", "tokenizerConfig")


def subset() -> list[dict[str, Any]]:
    return json.loads(SUBSET.read_text("utf-8"), parse_float=Decimal)


def subset_body(name: str) -> dict[str, Any]:
    model = next(m for m in subset() if m["modelName"] == name)
    return {k: model[k] for k in BODY_KEYS if k in model}


def stored(body: Any, model_id: str = "m1") -> StoredPrice:
    return StoredPrice("p1", model_id, model_body_to_entry(body, model_id=model_id), NOW, NOW + timedelta(hours=1))


def compile_entry(entry: dict[str, Any]) -> PriceRecord:
    (record,) = compile_price_data({"prices": [entry]}, "test", source=Source.PROJECT)
    return record


def as_sdk_model(model: dict[str, Any]) -> Model:
    """What the Langfuse SDK's ``api.models.get`` makes of our JSON (its own pydantic model)."""
    return parse_obj_as(Model, json.loads(dumps_json(model)))


def as_put_body(model: dict[str, Any]) -> dict[str, Any]:
    """A Model read back and sent again (what a user's copy script does)."""
    tiers = [{k: v for k, v in t.items() if k != "id"} for t in model["pricingTiers"]]
    return {"modelName": model["modelName"], "matchPattern": model["matchPattern"], "startDate": model["startDate"],
            "unit": model["unit"], "pricingTiers": tiers, "tokenizerId": model["tokenizerId"],
            "tokenizerConfig": model["tokenizerConfig"]}


# -- models: flat prices ----------------------------------------------------------------------------------------


def test_flat_prices_body_to_entry_and_back():
    # floats, as a plain JSON parser gives them: converted through repr, so 1e-06 is exactly 0.000001
    body = {"modelName": "acme-large", "matchPattern": "(?i)^acme-large$", "unit": "TOKENS", "inputPrice": 1e-06,
            "outputPrice": 3e-06, "startDate": "2026-01-01T00:00:00Z"}
    result = model_body_to_entry(body, model_id="m1")
    assert result["entry"] == {
        "model": "acme-large", "match": {"regex": "^acme-large$", "case_sensitive": False},
        "valid_from": "2026-01-01T00:00:00.000Z", "rates": {"input_tokens": Decimal(1), "output_tokens": Decimal(3)},
    }
    assert result["langfuse"]["pricingTiers"] == [{
        "name": "Standard", "isDefault": True, "priority": 0, "conditions": [],
        "prices": {"input": Decimal("0.000001"), "output": Decimal("0.000003")},
    }]
    record = compile_entry(result["entry"])
    assert record.match.matches("ACME-Large", "acme-large") and not record.match.matches("acme-large-2", "")
    assert record.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    cost = calc_cost(Usage.of(input_tokens=1500, output_tokens=200), record, at=NOW)
    assert cost.total == Decimal("0.0021")  # 1500 × 1 + 200 × 3 per million

    model = entry_to_model(StoredPrice("p1", "m1", result, NOW, NOW))
    assert model == {
        "id": "m1", "modelName": "acme-large", "matchPattern": "(?i)^acme-large$",
        "startDate": "2026-01-01T00:00:00.000Z", "unit": "TOKENS", "inputPrice": Decimal("0.000001"),
        "outputPrice": Decimal("0.000003"), "totalPrice": None,
        "prices": {"input": {"price": Decimal("0.000001")}, "output": {"price": Decimal("0.000003")}},
        "pricingTiers": [{"id": "m1_tier_default", "name": "Standard", "isDefault": True, "priority": 0,
                          "conditions": [], "prices": {"input": Decimal("0.000001"), "output": Decimal("0.000003")}}],
        "tokenizerId": None, "tokenizerConfig": None, "isLangfuseManaged": False,
        "createdAt": "2026-03-01T09:30:00.000Z", "updatedAt": "2026-03-01T09:30:00.000Z",
    }
    sdk = as_sdk_model(model)
    assert sdk.input_price == 1e-06 and sdk.pricing_tiers[0].is_default
    assert sdk.start_date == datetime(2026, 1, 1, tzinfo=UTC)
    # the JSON carries the exact digits, not a float's
    assert b'"inputPrice":0.000001,' in dumps_json(model)


def test_total_price_prices_input_and_output_alike():
    body = {"modelName": "embed", "matchPattern": "^embed-v1$", "totalPrice": "0.00000002"}
    result = model_body_to_entry(body, model_id="e")
    assert result["entry"]["match"] == {"regex": "^embed-v1$", "case_sensitive": True}
    assert result["entry"]["rates"] == {"input_tokens": Decimal("0.02"), "output_tokens": Decimal("0.02")}
    model = entry_to_model(StoredPrice("p1", "e", result, NOW, NOW))
    assert (model["totalPrice"], model["inputPrice"], model["unit"]) == (Decimal("0.00000002"), None, "TOKENS")


def test_characters_unit():
    body = {"modelName": "tts", "matchPattern": "(?i)^tts-1$", "unit": "CHARACTERS", "inputPrice": Decimal("0.000015")}
    entry = model_body_to_entry(body, model_id="t")["entry"]
    assert entry["rates"] == {"input_characters": Decimal(15)}
    assert calc_cost(Usage.of(input_characters=1000), compile_entry(entry), at=NOW).total == Decimal("0.015")


def test_put_body_round_trip_is_stable():
    first = stored({"modelName": "acme", "matchPattern": "acme", "inputPrice": 2e-06, "outputPrice": 8e-06,
                    "tokenizerId": "openai", "tokenizerConfig": {"tokensPerMessage": 3}})
    again = stored(as_put_body(entry_to_model(first)))
    assert again.entry == first.entry
    assert entry_to_model(again)["tokenizerConfig"] == {"tokensPerMessage": 3}


# -- models: tiers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt-4o", "gemini-2.5-pro", "gpt-5.6-sol", "claude-opus-4-8"])
def test_tiered_model_compiles_like_the_catalog_importer(name):
    body = subset_body(name)
    result = model_body_to_entry(body, model_id="m1")
    mine = compile_entry(result["entry"])
    imported = next(r for r in import_langfuse(subset(), source_name="x").records if r.model == name)
    assert dict(mine.rates) == dict(imported.rates)
    assert [(v.name, v.conditions, dict(v.rates)) for v in mine.variants] == [
        (v.name, v.conditions, dict(v.rates)) for v in imported.variants
    ]
    assert mine.match == imported.match
    # and the model reads back as it was written: same tiers, conditions and prices
    model = entry_to_model(StoredPrice("p1", "m1", result, NOW, NOW))
    written = sorted(body["pricingTiers"], key=lambda t: t["priority"])
    assert [{k: v for k, v in t.items() if k != "id"} for t in model["pricingTiers"]] == [
        {k: v for k, v in t.items() if k != "id"} for t in written
    ]
    as_sdk_model(model)


def test_gpt_4o_fast_tier():
    result = model_body_to_entry(subset_body("gpt-4o"), model_id="m1")
    assert result["entry"]["rates"] == {"input_tokens": Decimal("2.5"), "cache_read_tokens": Decimal("1.25"),
                                        "output_tokens": Decimal(10)}
    assert result["entry"]["tiers"] == [{
        "name": "Fast mode",
        "when": [{"attribute": {"key": "service_tier", "values": ["fast", "priority"]}}],
        "rates": {"input_tokens": Decimal("4.25"), "cache_read_tokens": Decimal("2.125"), "output_tokens": Decimal(17)},
    }]
    record = compile_entry(result["entry"])
    usage = Usage.of(input_tokens=1000, cache_read_tokens=400, output_tokens=100)
    # standard: 600 × 2.5 + 400 × 1.25 + 100 × 10 = 3000 per million
    assert calc_cost(usage, record, at=NOW).total == Decimal("0.003")
    # priority: 600 × 4.25 + 400 × 2.125 + 100 × 17 = 5100 per million
    assert calc_cost(usage, record, at=NOW, attributes={"service_tier": "priority"}).total == Decimal("0.0051")
    model = entry_to_model(StoredPrice("p1", "m1", result, NOW, NOW))
    fast = model["pricingTiers"][1]
    assert (fast["id"], fast["name"], fast["priority"], fast["isDefault"]) == ("m1_tier_1", "Fast mode", 1, False)
    assert fast["conditions"] == [{"source": "model_parameters", "key": "service_tier", "operator": "in",
                                   "values": ["fast", "priority"]}]
    assert model["prices"]["input_cache_read"] == {"price": Decimal("0.00000125")}  # every alias kept


def test_gemini_long_context_tier_is_a_usage_condition():
    entry = model_body_to_entry(subset_body("gemini-2.5-pro"), model_id="g")["entry"]
    (tier,) = entry["tiers"]
    # "(input|prompt|cached)" gt 200000 sums every input bucket = costline's inclusive input_tokens
    assert tier["when"] == [{"usage": {"units": ["input_tokens"], "op": "gt", "value": Decimal(200000)}}]
    record = compile_entry(entry)
    small = calc_cost(Usage.of(input_tokens=200_000, output_tokens=1000), record, at=NOW)
    large = calc_cost(Usage.of(input_tokens=200_001, output_tokens=1000), record, at=NOW)
    assert small.variants == () and large.variants == (tier["name"],)


@pytest.mark.parametrize("model", subset(), ids=lambda m: m["modelName"])
def test_every_subset_model_is_accepted_and_reads_back_for_the_sdk(model):
    body = {k: model[k] for k in BODY_KEYS if k in model}
    price = stored(body)
    compile_entry(price.entry["entry"])
    sdk = as_sdk_model(entry_to_model(price))
    assert sdk.model_name == model["modelName"] and sdk.match_pattern == model["matchPattern"]
    assert len(sdk.pricing_tiers) == len(model["pricingTiers"]) and not sdk.is_langfuse_managed


def test_plain_price_file_entry_reads_as_a_model():
    price = StoredPrice("p1", "x", {"model": "acme", "rates": {"input_tokens": Decimal("1.5"), "requests": 2}},
                        NOW, NOW)
    model = entry_to_model(price)
    assert model["matchPattern"] == "(?i)^acme$"
    assert model["prices"] == {"input": {"price": Decimal("0.0000015")}, "requests": {"price": Decimal("0.002")}}
    as_sdk_model(model)


# -- models: bad bodies ----------------------------------------------------------------------------------------

GOOD = {"modelName": "m", "matchPattern": "(?i)^m$"}
STD = {"name": "Standard", "isDefault": True, "priority": 0, "conditions": [],
       "prices": {"input": 1e-06, "input_cached_tokens": 5e-07, "output": 2e-06}}
FLEX = {"name": "Flex", "priority": 1, "prices": {"input": 5e-07, "output": 1e-06},
        "conditions": [{"source": "model_parameters", "key": "service_tier", "operator": "in", "values": ["flex"]}]}


@pytest.mark.parametrize(("body", "message"), [
    ([], "(body): expected a JSON object, got list"),
    ({"matchPattern": "x", "inputPrice": 1}, "modelName: required"),
    ({"modelName": "m", "inputPrice": 1}, "matchPattern: required"),
    ({**GOOD, "matchPattern": "(?i)^(gpt-4o$", "inputPrice": 1},
     "matchPattern: '^(gpt-4o$' is not a pattern costline can use (missing )"),
    ({**GOOD, "unit": "SECONDS", "inputPrice": 1}, "unit: costline prices TOKENS and CHARACTERS models only"),
    ({**GOOD, "tokenizerId": "llama", "inputPrice": 1}, "tokenizerId: expected one of openai, claude or null"),
    ({**GOOD, "inputPrice": -1e-06}, "inputPrice: must not be negative, got -1e-06"),
    ({**GOOD, "inputPrice": "cheap"}, "inputPrice: 'cheap' is not a number"),
    ({**GOOD, "inputPrice": 1e-06, "pricingTiers": [STD]}, "pricingTiers: cannot be combined with the flat"),
    ({**GOOD, "inputPrice": 1e-06, "totalPrice": 1e-06}, "totalPrice: cannot be set together with inputPrice"),
    (GOOD, "pricingTiers: required (or the flat inputPrice / outputPrice / totalPrice)"),
    ({**GOOD, "startDate": "next week", "inputPrice": 1}, "startDate: expected an ISO 8601 date or date-time"),
    ({**GOOD, "pricingTiers": [STD, {**STD, "name": "Other"}]}, "pricingTiers[1].priority: duplicate priority 0"),
    ({**GOOD, "pricingTiers": [STD, {**STD, "name": "Other", "priority": 1}]},
     "pricingTiers[1].priority: the default tier must have priority 0"),
    ({**GOOD, "pricingTiers": [FLEX]}, "pricingTiers: expected exactly one default tier (isDefault: true, priority 0, "
                                       "no conditions), found 0"),
    ({**GOOD, "pricingTiers": [{**STD, "conditions": FLEX["conditions"]}]},
     "pricingTiers[0].conditions: the default tier must have no conditions"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "name": "Standard"}]}, "pricingTiers[1].name: duplicate tier name"),
    ({**GOOD, "pricingTiers": [STD, FLEX, {**FLEX, "name": "Flex 2"}]},
     "pricingTiers[2].priority: duplicate priority 1"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "conditions": []}]},
     "pricingTiers[1].conditions: a non-default tier needs a condition"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "priority": "1"}]}, "pricingTiers[1].priority: expected an integer"),
    ({**GOOD, "pricingTiers": [{**STD, "prices": {}}]}, "pricingTiers[0].prices: expected at least one price"),
    ({**GOOD, "pricingTiers": [{**STD, "prices": {"input": -1}}]},
     "pricingTiers[0].prices.input: must not be negative"),
    ({**GOOD, "pricingTiers": [{**STD, "prices": {"input": 1e-06, "image_generation": 0.04}}]},
     "pricingTiers[0].prices.image_generation: usage type 'image_generation' has no costline unit"),
    ({**GOOD, "pricingTiers": [{**STD, "prices": {**STD["prices"], "input_cache_read": 6e-07}}]},
     "pricingTiers[0].prices.input_cache_read: prices cache_read_tokens at 6E-7 but input_cached_tokens prices it "
     "at 5E-7; costline has one rate per unit"),
    ({**GOOD, "pricingTiers": [{**STD, "prices": {"input": 1e-06, "total": 1e-06}}]},
     "pricingTiers[0].prices.total: a total price next to input/output prices would count those units twice"),
    ({**GOOD, "pricingTiers": [{**STD, "prices": {"input_cached_tokens": 1e-06}}]},
     "pricingTiers: the prices do not compile:"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "conditions": [{"source": "headers", "key": "x", "values": ["y"]}]}]},
     "pricingTiers[1].conditions[0].source: expected one of model_parameters, metadata, got 'headers'"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "conditions": [{"usageDetailPattern": "input", "operator": ">",
                                                              "value": 10}]}]},
     "pricingTiers[1].conditions[0].operator: expected one of gt, gte, lt, lte, eq, neq, got '>'"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "conditions": [{"usageDetailPattern": "(input", "operator": "gt",
                                                              "value": 10}]}]},
     "pricingTiers[1].conditions[0].usageDetailPattern: '(input' is not a pattern costline can use"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "conditions": [{"usageDetailPattern": "audio", "operator": "gt",
                                                              "value": 10}]}]},
     "pricingTiers[1].conditions[0].usageDetailPattern: usage condition pattern 'audio' matches none"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "prices": STD["prices"], "conditions": [
        {"usageDetailPattern": "^input$", "operator": "gt", "value": 10}]}]},
     "pricingTiers[1].conditions[0].usageDetailPattern: usage condition pattern '^input$' counts input_tokens "
     "without its part cache_read_tokens"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "conditions": [{"key": "tier"}]}]},
     "pricingTiers[1].conditions[0].source: expected one of"),
    ({**GOOD, "pricingTiers": [STD, {**FLEX, "conditions": [{"foo": 1}]}]},
     "pricingTiers[1].conditions[0]: expected a usage condition"),
])
def test_bad_model_bodies_are_400s_naming_the_field(body, message):
    with pytest.raises(IngestError) as info:
        model_body_to_entry(body, model_id="m")
    assert info.value.status == 400
    assert str(info.value).startswith(message), str(info.value)


# -- traces ----------------------------------------------------------------------------------------------------


def observations() -> list[Observation]:
    generation = Observation(
        project_id="p1", id="gen", trace_id="t1", parent_id="root", type="generation", name="answer",
        start_time=T0 + timedelta(milliseconds=100), end_time=T0 + timedelta(seconds=7, milliseconds=125),
        completion_start_time=T0 + timedelta(milliseconds=940), model="o4-mini", resolved_model="o4-mini",
        usage={"input_tokens": 2000, "cache_read_tokens": 1600, "cache_write_tokens": 100, "output_tokens": 500,
               "output_reasoning_tokens": 380},
        # 300 × 1 + 1600 × 0.1 + 100 × 1.25 + 500 × 3 per million (reasoning at the output rate)
        cost={"input_tokens": Decimal("0.0003"), "cache_read_tokens": Decimal("0.00016"),
              "cache_write_tokens": Decimal("0.000125"), "output_tokens": Decimal("0.0015")},
        total_cost=Decimal("0.002085"), pricing_status="priced", price_id="project:p1:m1",
        model_parameters={"reasoning_effort": "medium"}, metadata={"feature": "support"}, environment="production",
    )
    root = Observation(project_id="p1", id="root", trace_id="t1", type="agent", name="support-agent", start_time=T0,
                       end_time=T0 + timedelta(seconds=7, milliseconds=500), environment="production",
                       user_id="user-42", tags=("prod",))
    unpriced = Observation(project_id="p1", id="gen2", trace_id="t1", parent_id="root", type="generation",
                           start_time=T0 + timedelta(seconds=8), model="mystery-llm",
                           usage={"input_tokens": 10, "output_tokens": 5}, pricing_status="unpriced",
                           pricing_reason="no price for model 'mystery-llm'", level="WARNING")
    return [generation, unpriced, root]


def test_trace_shape():
    trace = Trace(project_id="p1", id="t1", timestamp=T0, name="support-chat", user_id="user-42",
                  session_id="session-7", tags=("prod", "chat"), metadata={"plan": "pro"}, environment="production",
                  release="r1", version="v3")
    scores = [Score("p1", "s1", "quality", Decimal("0.9"), T0, trace_id="t1"),
              Score("p1", "s2", "overall", Decimal(1), T0, trace_id="t1", data_type="BOOLEAN"),
              Score("p1", "s3", "tone", "friendly", T0, trace_id="t1", observation_id="gen")]
    shape = trace_to_langfuse(trace, "t1", observations(), scores)
    assert {k: v for k, v in shape.items() if k not in ("observations", "scores")} == {
        "id": "t1", "timestamp": "2025-06-01T09:30:00.000Z", "name": "support-chat", "input": None, "output": None,
        "sessionId": "session-7", "release": "r1", "version": "v3", "userId": "user-42", "metadata": {"plan": "pro"},
        "tags": ["prod", "chat"], "public": False, "environment": "production",
        "htmlPath": "/project/p1/traces/t1",
        "latency": Decimal(8),  # first start 09:30:00 to the last end (gen2 has none: its start, 09:30:08)
        "totalCost": Decimal("0.002085"),  # the unpriced generation adds nothing
    }
    root, gen, gen2 = shape["observations"]  # by start time
    assert [o["type"] for o in (root, gen, gen2)] == ["AGENT", "GENERATION", "GENERATION"]
    assert gen == {
        "id": "gen", "traceId": "t1", "type": "GENERATION", "name": "answer",
        "startTime": "2025-06-01T09:30:00.100Z", "endTime": "2025-06-01T09:30:07.125Z",
        "completionStartTime": "2025-06-01T09:30:00.940Z", "model": "o4-mini",
        "modelParameters": {"reasoning_effort": "medium"}, "input": None, "output": None,
        "usage": {"input": 2000, "output": 500, "total": 2500, "unit": "TOKENS"},
        # disjoint: 2000 − 1600 cached − 100 cache write = 300; 500 − 380 reasoning = 120
        "usageDetails": {"input": 300, "input_cached_tokens": 1600, "input_cache_creation": 100, "output": 120,
                         "output_reasoning_tokens": 380, "total": 2500},
        "costDetails": {"input": Decimal("0.0003"), "input_cached_tokens": Decimal("0.00016"),
                        "input_cache_creation": Decimal("0.000125"), "output": Decimal("0.0015"),
                        "total": Decimal("0.002085")},
        "calculatedInputCost": Decimal("0.000585"), "calculatedOutputCost": Decimal("0.0015"),
        "calculatedTotalCost": Decimal("0.002085"), "inputPrice": None, "outputPrice": None, "totalPrice": None,
        "modelId": "project:p1:m1", "level": "DEFAULT", "statusMessage": None, "parentObservationId": "root",
        "environment": "production", "version": None, "metadata": {"feature": "support"},
        "latency": Decimal("7.025"), "timeToFirstToken": Decimal("0.84"),
        "promptId": None, "promptName": None, "promptVersion": None,
    }
    assert (gen2["calculatedTotalCost"], gen2["calculatedInputCost"], gen2["costDetails"]) == (None, None, {})
    assert gen2["usageDetails"] == {"input": 10, "output": 5, "total": 15} and gen2["level"] == "WARNING"
    assert root["usage"] == {"input": 0, "output": 0, "total": 0, "unit": "TOKENS"} and root["usageDetails"] == {}
    assert root["calculatedTotalCost"] is None and root["latency"] == Decimal("7.5")

    quality, overall, tone = shape["scores"]
    assert (quality["dataType"], quality["value"], quality["source"]) == ("NUMERIC", Decimal("0.9"), "API")
    assert (overall["value"], overall["stringValue"]) == (Decimal(1), "True")
    assert (tone["dataType"], tone["value"], tone["stringValue"]) == ("CATEGORICAL", None, "friendly")


def test_trace_json_has_exact_numbers():
    shape = trace_to_langfuse(None, "t1", observations())
    text = dumps_json(shape)
    assert b'"totalCost":0.002085' in text and b'"calculatedInputCost":0.000585' in text
    data = json.loads(text, parse_float=Decimal)
    assert data["totalCost"] == Decimal("0.002085") and data["observations"][1]["latency"] == Decimal("7.025")
    with pytest.raises(TypeError):
        json.dumps(shape)  # a float would round money: Decimals only go through dumps_json


def test_trace_without_a_trace_row_takes_its_fields_from_the_observations():
    shape = trace_to_langfuse(None, "t1", observations())
    assert shape["timestamp"] == "2025-06-01T09:30:00.000Z" and shape["name"] == "support-agent"
    assert shape["userId"] == "user-42" and shape["tags"] == ["prod"] and shape["environment"] == "production"
    assert shape["scores"] == [] and shape["metadata"] == {}


def test_trace_with_neither_row_nor_observations():
    with pytest.raises(LookupError):
        trace_to_langfuse(None, "t404", [])
    shape = trace_to_langfuse(Trace("p1", "t2", T0), "t2", [])
    assert (shape["totalCost"], shape["latency"], shape["observations"]) == (Decimal(0), None, [])


def test_usage_details_other_units_and_ttl_split():
    obs = Observation(
        project_id="p", id="o", trace_id="t", start_time=T0, type="generation",
        usage={"input_tokens": 5000, "cache_read_tokens": 1000, "cache_write_tokens": 3000,
               "cache_write_5m_tokens": 2000, "cache_write_1h_tokens": 500, "output_tokens": 300, "web_searches": 2},
        cost={"input_tokens": Decimal("0.003"), "web_searches": Decimal("0.02"), "other": Decimal("0.001")},
        total_cost=Decimal("0.024"),
    )
    (view,) = trace_to_langfuse(None, "t", [obs])["observations"]
    # 5000 − 1000 − 3000 = 1000 uncached; cache write 3000 = 500 unsplit + 2000 (5m) + 500 (1h)
    assert view["usageDetails"] == {"input": 1000, "input_cached_tokens": 1000, "input_cache_creation": 500,
                                    "input_cache_creation_5m": 2000, "input_cache_creation_1h": 500, "output": 300,
                                    "total": 5300, "web_searches": 2}
    assert view["costDetails"] == {"input": Decimal("0.003"), "web_searches": Decimal("0.02"),
                                   "other": Decimal("0.001"), "total": Decimal("0.024")}
    assert (view["calculatedInputCost"], view["calculatedOutputCost"]) == (Decimal("0.003"), Decimal(0))
