"""Langfuse REST bodies → events: envelopes, every event type, usage shapes, costs, scores, per-item errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costline.catalog.user_file import compile_price_data
from costline.core.events import ObservationEvent, merge_observation, price_observation
from costline.core.resolve import PriceBook
from costline.core.usage import Usage
from costline.ingest.batch import IngestError, ItemError
from costline.ingest.langfuse import EVENT_TYPES, OBSERVATION_TYPES, decode_ingestion, decode_scores

DATA = Path(__file__).resolve().parents[1] / "data" / "langfuse"
T0 = datetime(2024, 5, 7, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text("utf-8"))


def envelope(kind: str, body: dict[str, Any], eid: str = "ev-1", ts: str | None = "2024-05-07T12:00:00Z") -> dict:
    out: dict[str, Any] = {"id": eid, "type": kind, "body": body}
    if ts is not None:
        out["timestamp"] = ts
    return out


def one_observation(body: dict[str, Any], kind: str = "generation-create") -> ObservationEvent:
    decoded = decode_ingestion({"batch": [envelope(kind, body)]})
    assert decoded.errors == [], decoded.errors
    assert len(decoded.observations) == 1
    return decoded.observations[0]


def one_error(body: dict[str, Any], kind: str = "generation-create") -> ItemError:
    decoded = decode_ingestion({"batch": [envelope(kind, body)]})
    assert decoded.accepted == [] and len(decoded.errors) == 1
    return decoded.errors[0]


# -- the SDK's own payloads ---------------------------------------------------------------------------------


def test_v2_batch_decodes_every_event_in_order():
    d = decode_ingestion(load("ingestion_v2_batch"))
    assert d.errors == []
    assert d.accepted == [f"0d3f6f4e-6a5b-4c1e-9a6d-2f1f8f0b1a0{i}" for i in range(1, 8)]  # sdk-log included
    (trace,) = d.traces
    assert trace.id == "7a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
    assert (trace.name, trace.user_id, trace.session_id) == ("support-chat", "user-42", "session-7")
    assert trace.timestamp == T0 and trace.tags == ("prod", "chat") and trace.public is False
    assert (trace.release, trace.version, trace.environment) == ("2024.05.1", "v3", "production")
    assert trace.metadata == {"plan": "pro", "region": "eu"}

    span, span_update, create, update, event = d.observations
    assert (span.id, span.type, span.name) == ("span-retrieve", "span", "retrieve")
    assert span.start_time == T0 + timedelta(milliseconds=10)
    assert span.attributes is None and span.usage is None and span.user_id is None
    # an update does not reset the type (span-update could follow an agent-create) nor the start time
    assert (span_update.id, span_update.type, span_update.start_time) == ("span-retrieve", None, None)
    assert span_update.end_time == T0 + timedelta(milliseconds=440)

    assert (create.id, create.type, create.parent_id) == ("gen-answer", "generation", "span-retrieve")
    assert create.model == "gpt-4o-2024-08-06" and create.usage is None
    assert create.model_parameters == {"temperature": 0.2, "max_tokens": 256, "service_tier": "flex", "stream": False}
    # string / bool / int values select price tiers; the float temperature does not
    assert create.attributes == {"feature": "support", "max_tokens": "256", "service_tier": "flex", "stream": "false"}
    assert create.user_id is None and create.session_id is None  # only traces carry them

    assert (update.id, update.type, update.start_time) == ("gen-answer", "generation", None)
    assert update.end_time == T0 + timedelta(milliseconds=2790)
    assert update.completion_start_time == T0 + timedelta(milliseconds=1100)
    # usageDetails (raw OpenAI, inclusive) wins over the legacy usage; zero details are dropped
    assert update.usage == Usage.of(input_tokens=1117, cache_read_tokens=1024, output_tokens=46)
    assert update.provided_cost is None

    # no body.id: the envelope id, so a retried envelope writes the same row
    assert (event.id, event.type, event.level) == ("0d3f6f4e-6a5b-4c1e-9a6d-2f1f8f0b1a06", "event", "DEBUG")


def test_v4_score_create_envelope():
    d = decode_ingestion(load("ingestion_v4_score"))
    assert d.accepted == ["9f2c41d7a3b84e0f8c6d5a1b2e3f4a5b"] and d.errors == []
    (score,) = d.scores
    assert score.id == "4675bb89b2732fad" and score.name == "quality" and score.value == Decimal("0.9")
    assert (score.trace_id, score.observation_id) == ("e7630a7bd6e42bba34479da2ed5a8624", "dcfe5b0eacae905e")
    assert score.environment == "staging"
    # no body.timestamp: the envelope's
    assert score.timestamp == datetime(2026, 3, 2, 10, 15, 30, 123456, tzinfo=UTC)


def test_v3_tags_only_trace_create_does_not_move_the_trace():
    d = decode_ingestion(load("ingestion_v3_trace_tags"))
    (trace,) = d.traces
    assert trace.id == "e7630a7bd6e42bba34479da2ed5a8624" and trace.tags == ("experiment-7", "eval")
    assert trace.timestamp is None and trace.name is None and trace.user_id is None


def test_v5_scores_array():
    d = decode_scores(load("scores_v5_array"))
    assert d.errors == [] and d.accepted == ["4675bb89b2732fad", "b1c2d3e4f5a6b7c8"]
    quality, overall = d.scores
    assert quality.value == Decimal("0.9") and quality.data_type is None
    assert quality.timestamp == datetime(2026, 3, 2, 10, 15, 30, 123456, tzinfo=UTC)
    assert overall.value == Decimal("1.0") and overall.data_type == "BOOLEAN" and overall.observation_id is None


# -- event types ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("obs_type", OBSERVATION_TYPES)
def test_every_create_type(obs_type):
    obs = one_observation({"id": "o1", "traceId": "t1"}, kind=f"{obs_type}-create")
    assert (obs.id, obs.trace_id, obs.type) == ("o1", "t1", obs_type)
    assert obs.start_time == T0  # no startTime: the envelope timestamp


@pytest.mark.parametrize(("kind", "body", "expected"), [
    ("observation-create", {"id": "o1", "type": "GENERATION"}, "generation"),
    ("observation-create", {"id": "o1", "type": "EVENT"}, "event"),
    ("observation-update", {"id": "o1", "type": "SPAN"}, "span"),
    ("observation-update", {"id": "o1"}, None),
    ("generation-update", {"id": "o1"}, "generation"),
    ("span-update", {"id": "o1"}, None),
])
def test_observation_and_update_types(kind, body, expected):
    obs = one_observation(body, kind=kind)
    assert obs.type == expected
    assert obs.start_time == (T0 if kind.endswith("create") else None)


def test_every_event_type_is_accepted():
    batch = [envelope(kind, {"id": f"x{i}", "name": "n", "value": 1, "type": "SPAN"}, eid=f"e{i}")
             for i, kind in enumerate(EVENT_TYPES)]
    d = decode_ingestion({"batch": batch})
    assert d.errors == [] and d.accepted == [f"e{i}" for i in range(len(EVENT_TYPES))]
    assert (len(d.traces), len(d.scores), len(d.observations)) == (1, 1, len(EVENT_TYPES) - 3)


def test_unknown_type_is_an_item_error_naming_the_choices():
    error = one_error({}, kind="trace-upsert")
    assert error.id == "ev-1" and error.status == 400
    assert error.message.startswith("batch[0].type: unknown event type 'trace-upsert'; expected one of trace-create")


# -- partial batches and field errors -------------------------------------------------------------------------


def test_partial_batch_keeps_good_items_and_names_bad_fields():
    batch = [
        envelope("trace-create", {"id": "t1", "name": "ok"}, eid="e0"),
        envelope("generation-create", {"id": "g1", "usageDetails": {"input": -5, "output": 2}}, eid="e1"),
        {"type": "span-create", "body": {"id": "s1"}},
        envelope("span-create", ["not", "an", "object"], eid="e3"),  # type: ignore[arg-type]
        envelope("span-create", {"id": "s2", "startTime": "yesterday"}, eid="e4"),
        envelope("span-create", {"id": "s3", "level": "INFO"}, eid="e5"),
        envelope("generation-update", {"model": "gpt-4o"}, eid="e6"),
        envelope("span-create", {"id": "s4", "environment": "Prod"}, eid="e7"),
        envelope("trace-create", {"id": "t2", "tags": "a,b"}, eid="e8"),
        envelope("observation-create", {"id": "o9"}, eid="e9"),
        envelope("generation-create", {"id": "g2", "model": 4}, eid="e10"),
        envelope("span-create", {"id": "s5", "name": "fine"}, eid="e11"),
        "junk",
    ]
    d = decode_ingestion({"batch": batch})
    assert d.accepted == ["e0", "e11"]
    assert [t.id for t in d.traces] == ["t1"] and [o.id for o in d.observations] == ["s5"]
    assert [(e.id, e.message) for e in d.errors] == [
        ("e1", "batch[1].body.usageDetails.input: expected a non-negative integer, got -5"),
        ("batch[2]", "batch[2].id: required"),
        ("e3", "batch[3].body: expected an object, got a list"),
        ("e4", "batch[4].body.startTime: expected an ISO 8601 date-time, got 'yesterday'"),
        ("e5", "batch[5].body.level: expected one of DEBUG, DEFAULT, WARNING, ERROR, got 'INFO'"),
        ("e6", "batch[6].body.id: required"),
        ("e7", "batch[7].body.environment: expected at most 40 lowercase letters, digits, '-' or '_', "
               "not starting with 'langfuse', got 'Prod'"),
        ("e8", "batch[8].body.tags: expected a list of strings, got 'a,b'"),
        ("e9", "batch[9].body.type: required"),
        ("e10", "batch[10].body.model: expected a string, got 4"),
        ("batch[12]", "batch[12]: expected an object, got 'junk'"),
    ]
    assert all(e.status == 400 for e in d.errors)


@pytest.mark.parametrize(("data", "message"), [
    ([], "batch: expected a JSON object with a `batch` list, got a list"),
    ({"metadata": {}}, "batch: required field is missing"),
    ({"batch": {"id": "x"}}, "batch: expected a list of events, got an object"),
])
def test_top_level_shape_is_a_400(data, message):
    with pytest.raises(IngestError) as info:
        decode_ingestion(data)
    assert str(info.value) == message and info.value.status == 400


def test_empty_batch():
    d = decode_ingestion({"batch": []})
    assert (d.accepted, d.errors, d.observations) == ([], [], [])


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-07T12:00:00Z", T0),
    ("2024-05-07T12:00:00.000Z", T0),
    ("2024-05-07T12:00:00+00:00", T0),
    ("2024-05-07T14:00:00+02:00", T0),
    ("2024-05-07T12:00:00", T0),  # naive = UTC
    ("2024-05-07T12:00:00.123456789Z", T0 + timedelta(microseconds=123456)),
])
def test_timestamps_become_aware_utc(text, expected):
    obs = one_observation({"id": "o", "startTime": text, "endTime": text})
    assert obs.start_time == expected and obs.end_time == expected
    assert obs.start_time.tzinfo is UTC


# -- usage -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    # legacy usage: input/output are the whole prompt and completion; total is never added
    ({"usage": {"input": 230, "output": 45, "total": 275, "unit": "TOKENS"}},
     Usage.of(input_tokens=230, output_tokens=45)),
    ({"usage": {"promptTokens": 100, "completionTokens": 20, "totalTokens": 120}},
     Usage.of(input_tokens=100, output_tokens=20)),
    ({"usage": {"input": 1234, "unit": "CHARACTERS"}}, Usage.of(input_characters=1234)),
    # Langfuse buckets are disjoint: input = 400 + 1600 cached = 2000; output = 120 + 380 reasoning = 500
    ({"usageDetails": {"input": 400, "input_cache_read": 1600, "output": 120, "output_reasoning": 380,
                       "total": 2500}},
     Usage.of(input_tokens=2000, cache_read_tokens=1600, output_tokens=500, output_reasoning_tokens=380)),
    # Anthropic's counts are disjoint too: input = 100 + 500 + 2000 = 2600
    ({"usageDetails": {"input_tokens": 100, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 2000,
                       "output_tokens": 250}},
     Usage.of(input_tokens=2600, cache_read_tokens=500, cache_write_tokens=2000, output_tokens=250)),
    # the raw OpenAI dict of langfuse.openai (wire-formats B.9) is inclusive
    ({"usageDetails": {"completion_tokens": 20, "prompt_tokens": 100, "total_tokens": 120,
                       "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0,
                                                     "reasoning_tokens": 5, "rejected_prediction_tokens": 0},
                       "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 40}}},
     Usage.of(input_tokens=100, cache_read_tokens=40, output_tokens=20, output_reasoning_tokens=5)),
    ({"usageDetails": {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120,
                       "input_tokens_details": {"cached_tokens": 40},
                       "output_tokens_details": {"reasoning_tokens": 5}}},
     Usage.of(input_tokens=100, cache_read_tokens=40, output_tokens=20, output_reasoning_tokens=5)),
    # price-list keys: Gemini buckets (disjoint as Langfuse prices them) and search counts
    ({"usageDetails": {"promptTokenCount": 1000, "cached_content_token_count": 300, "candidatesTokenCount": 200,
                       "thoughtsTokenCount": 50, "grounding_queries": 2}},
     Usage.of(input_tokens=1300, cache_read_tokens=300, output_tokens=250, output_reasoning_tokens=50,
              web_searches=2)),
    # integer strings parsed, nested objects dropped, keys without a costline unit ignored
    ({"usageDetails": {"input": "12", "output": 3, "service_tier": "standard",
                       "server_tool_use": {"web_search_requests": 1}}},
     Usage.of(input_tokens=12, output_tokens=3)),
    # two aliases of one bucket add up, as Langfuse sums them
    ({"usageDetails": {"input": 10, "prompt_token_count": 5, "output": 1}}, Usage.of(input_tokens=15, output_tokens=1)),
    # usageDetails wins over usage
    ({"usageDetails": {"input": 5, "output": 1}, "usage": {"input": 999, "output": 999}},
     Usage.of(input_tokens=5, output_tokens=1)),
])
def test_usage_shapes(body, expected):
    assert one_observation({"id": "g", **body}).usage == expected


@pytest.mark.parametrize("body", [
    {},
    {"usage": {"input": None, "output": None, "total": None, "unit": "TOKENS"}},
    {"usageDetails": {}},
    {"usageDetails": {"foo": 3}},
])
def test_no_usage(body):
    assert one_observation({"id": "g", **body}).usage is None


@pytest.mark.parametrize(("body", "message"), [
    ({"usageDetails": {"input": -5, "output": 1}},
     "batch[0].body.usageDetails.input: expected a non-negative integer, got -5"),
    ({"usageDetails": {"input": 1.5}}, "batch[0].body.usageDetails.input: expected a non-negative integer, got 1.5"),
    ({"usageDetails": {"input": True}},
     "batch[0].body.usageDetails.input: expected a non-negative integer, got a boolean (True)"),
    ({"usageDetails": {"total": 7}},
     "batch[0].body.usageDetails.total: a token total without input/output buckets cannot be priced"),
    ({"usageDetails": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                       "prompt_tokens_details": {"cached_tokens": 40}}},
     "batch[0].body.usageDetails: cache_read_tokens (40) exceeds input_tokens (10), which includes it"),
    ({"usage": {"input": 1, "unit": "LITRES"}}, "batch[0].body.usage.unit: unknown unit 'LITRES'"),
    ({"usageDetails": [1, 2]}, "batch[0].body.usageDetails: expected an object, got a list"),
])
def test_usage_errors_name_the_field(body, message):
    assert one_error({"id": "g", **body}).message.startswith(message)


# -- provided cost ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    # aliases → units (0.0002 + 0.0001 cached), unknown web_search folded into the total:
    # 0.001 + 0.0002 + 0.0001 + 0.003 + 0.01 = 0.0143
    ({"costDetails": {"input": 0.001, "input_cached_tokens": 0.0002, "input_cache_read": 0.0001,
                      "output_reasoning": 0.003, "web_search": 0.01}},
     {"input_tokens": Decimal("0.001"), "cache_read_tokens": Decimal("0.0003"),
      "output_reasoning_tokens": Decimal("0.003"), "total": Decimal("0.0143")}),
    ({"costDetails": {"input": 0.001, "total": 0.005}}, {"input_tokens": Decimal("0.001"), "total": Decimal("0.005")}),
    ({"costDetails": {"total": "0.0042"}}, {"total": Decimal("0.0042")}),
    # legacy usage costs (floats through repr: 0.0000675 stays 0.0000675)
    ({"usage": {"input": 230, "output": 45, "inputCost": 0.000115, "outputCost": 0.0000675, "totalCost": 0.0001825}},
     {"input_tokens": Decimal("0.000115"), "output_tokens": Decimal("0.0000675"), "total": Decimal("0.0001825")}),
    # costDetails wins over the legacy costs
    ({"costDetails": {"output": 0.5}, "usage": {"input": 1, "inputCost": 9}},
     {"output_tokens": Decimal("0.5"), "total": Decimal("0.5")}),
    ({"costDetails": {}}, None),
    ({"costDetails": {"input": None}}, None),
])
def test_provided_cost(body, expected):
    assert one_observation({"id": "g", **body}).provided_cost == expected


@pytest.mark.parametrize(("body", "message"), [
    ({"costDetails": {"input": -0.1}}, "batch[0].body.costDetails.input: expected a non-negative number, got -0.1"),
    ({"costDetails": {"total": "abc"}}, "batch[0].body.costDetails.total: 'abc' is not a number"),
    ({"usage": {"input": 1, "outputCost": -1}}, "batch[0].body.usage.outputCost: expected a non-negative number"),
])
def test_cost_errors_name_the_field(body, message):
    assert one_error({"id": "g", **body}).message.startswith(message)


def test_decoded_generation_prices_through_the_core():
    """The provided-cost keys are costline units the cost engine accepts, and attributes pick a tier."""
    entry = {"model": "acme-chat",
             "rates": {"input_tokens": 1, "cache_read_tokens": Decimal("0.1"), "output_tokens": 4},
             "tiers": [{"name": "flex", "when": [{"attribute": {"key": "service_tier", "values": ["flex"]}}],
                        "rates": {"input_tokens": Decimal("0.5"), "cache_read_tokens": Decimal("0.05"),
                                  "output_tokens": 2}}]}
    book = PriceBook(compile_price_data({"prices": [entry]}, "test"))
    priced = one_observation({"id": "g", "model": "acme-chat", "startTime": "2024-05-07T12:00:00Z",
                              "modelParameters": {"service_tier": "flex"},
                              "usageDetails": {"input": 600, "input_cached_tokens": 400, "output": 100}})
    obs = price_observation(merge_observation(None, priced, "p", T0), book)
    # flex: 600 × 0.5 + 400 × 0.05 + 100 × 2 per million = 0.0003 + 0.00002 + 0.0002
    assert obs.total_cost == Decimal("0.00052") and obs.pricing_status == "priced"
    provided = one_observation({"id": "g2", "model": "acme-chat", "startTime": "2024-05-07T12:00:00Z",
                                "usageDetails": {"input": 600, "output": 100},
                                "costDetails": {"input": 0.01, "output_reasoning": 0.002, "web_search": 0.5}})
    obs = price_observation(merge_observation(None, provided, "p", T0), book)
    assert obs.total_cost == Decimal("0.512") and obs.pricing_status == "provided"


# -- scores -----------------------------------------------------------------------------------------------------


def test_single_score_object_gets_an_id_from_the_factory():
    d = decode_scores({"name": "helpful", "value": "yes", "dataType": "CATEGORICAL", "traceId": "t1",
                       "comment": "ok", "metadata": {"by": "judge"}, "sessionId": "s1"},
                      id_factory=lambda: "fixed-id")
    (score,) = d.scores
    assert d.accepted == ["fixed-id"] and score.id == "fixed-id" and score.value == "yes"
    assert (score.trace_id, score.session_id, score.comment) == ("t1", "s1", "ok")
    assert score.metadata == {"by": "judge"} and score.timestamp is None


def test_default_score_id_is_a_uuid4_hex():
    (score,) = decode_scores({"name": "n", "value": 1}).scores
    assert len(score.id) == 32 and int(score.id, 16) >= 0


def test_score_array_with_bad_items_keeps_the_good_ones():
    d = decode_scores([
        {"name": "a", "value": 1},
        {"value": 2},
        {"name": "c"},
        {"name": "d", "value": "good", "dataType": "CATEGORICAL"},
        {"name": "e", "value": "x", "dataType": "NUMERIC"},
        {"name": "f", "value": 2, "dataType": "BOOLEAN"},
        {"name": "g", "value": 1, "dataType": "PERCENT"},
        {"name": "h", "value": True, "timestamp": "2026-03-02T10:15:30Z"},
        7,
    ], id_factory=iter(f"id{i}" for i in range(10)).__next__)
    assert d.accepted == ["id0", "id1", "id2"]
    assert [s.value for s in d.scores] == [Decimal(1), "good", Decimal(1)]
    assert [(e.id, e.message) for e in d.errors] == [
        ("1", "[1].name: required"),
        ("2", "[2].value: required"),
        ("4", "[4].value: expected a number for dataType NUMERIC, got 'x'"),
        ("5", "[5].value: a BOOLEAN score must be 1 or 0, got 2"),
        ("6", "[6].dataType: expected one of NUMERIC, BOOLEAN, CATEGORICAL, CORRECTION, TEXT, got 'PERCENT'"),
        ("8", "[8]: expected an object, got 7"),
    ]


def test_single_score_error_has_no_index():
    d = decode_scores({"name": "n"})
    assert [(e.id, e.message) for e in d.errors] == [("0", "value: required")]


def test_scores_body_must_be_object_or_array():
    with pytest.raises(IngestError, match="expected a score object or an array of scores"):
        decode_scores("quality=1")


def test_score_create_without_body_id_takes_the_envelope_id():
    d = decode_ingestion({"batch": [envelope("score-create", {"name": "q", "value": 0.5, "traceId": "t"}, eid="E")]})
    assert d.scores[0].id == "E" and d.scores[0].timestamp == T0
