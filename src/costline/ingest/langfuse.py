"""Langfuse REST ingestion bodies → costline events (pure decoders).

``decode_ingestion`` reads a ``POST /api/public/ingestion`` body (the batch API of Langfuse SDK v2, and what
v3/v4 still use for scores and trace tags); ``decode_scores`` reads a ``POST /api/public/scores`` body (one
``CreateScoreRequest`` object, or the JSON array the v5 SDK sends). Shapes: reference/wire-formats.md §D.1,
§D.2. Each bad item becomes an ``ItemError`` naming the field path
(``batch[3].body.usageDetails.input: expected a non-negative integer, got -5``); the good items are kept.

Contract decisions:

* **Ids.** The envelope ``id`` is the dedupe key reported in ``accepted``. A create without ``body.id``
  (trace, observation or score) takes the envelope id, so a retried envelope writes the same row (Langfuse
  would draw a random id). Update events need ``body.id``. ``decode_scores`` draws ids from ``id_factory``
  (uuid4 hex) for scores without one: the only non-pure step.
* **Types.** ``trace-create`` → ``TraceEvent``; ``<type>-create`` / ``-update`` → ``ObservationEvent`` with
  ``type`` = ``<type>`` (``observation-*`` read ``body.type``, lowercased); ``score-create`` → ``ScoreEvent``;
  ``sdk-log`` is accepted and dropped. ``span-update`` does not set a type (it must not turn an ``agent`` back
  into a ``span``); ``generation-update`` sets ``generation`` so an update seen first is still priced.
* **Times.** ISO 8601 with ``Z``, an offset or none (naive = UTC) → aware UTC. An observation create without
  ``startTime`` starts at the envelope ``timestamp`` (as in Langfuse); a score without ``timestamp`` too.
  A trace takes only ``body.timestamp``: a tags-only ``trace-create`` (v3/v4 ``run_batched_evaluation``)
  must not move an existing trace.
* **Usage.** ``usageDetails`` wins over the legacy ``usage``; both are read by ``extract_usage(...,
  "langfuse")`` (disjoint Langfuse buckets, or the inclusive OpenAI shape when ``*_tokens_details`` objects
  are present) into an inclusive ``Usage``. As in Langfuse's ``RawUsageDetails``, integer strings are parsed
  and nested objects dropped. Gemini and search keys of the Langfuse price list (``promptTokenCount``,
  ``thoughts_token_count``, ``grounding_queries``, ...) are read as the unit ``catalog.langfuse.USAGE_KEYS``
  gives them. Keys with no costline unit at all (Anthropic's ``service_tier``, ``foo``) are ignored: no price
  can name them, so Langfuse would not cost them either. A usage holding only nulls is "not sent"; a count
  that is negative or not an integer, a lone ``total``, or a subset above its parent is an item error.
* **Provided cost.** ``costDetails`` (else the legacy ``usage.inputCost`` / ``outputCost`` / ``totalCost``)
  → ``provided_cost`` keyed by costline unit: ``input`` → ``input_tokens``, ``output`` → ``output_tokens``,
  and every key of ``USAGE_KEYS`` (cache-read, cache-write, reasoning, audio aliases ...) → its unit, summed
  when two aliases name one unit. ``total`` stays ``total``; when absent it is the sum of **every** key,
  so keys with no unit are folded into the total (the cost engine shows them as ``other``). Provided costs
  are then authoritative, as in Langfuse.
* **Attributes.** Langfuse pricing tiers test a top-level key of ``modelParameters`` or ``metadata``
  compared as a string; costline variants read ``attributes``. So for priced types (generation, embedding)
  the string, boolean (``"true"``) and integer top-level values of ``metadata`` and then ``modelParameters``
  (which wins) become attributes, e.g. ``modelParameters.service_tier`` → ``{"service_tier": "flex"}``.
* Observations carry no ``userId`` / ``sessionId`` in Langfuse (only traces do): they stay ``None``.
  ``input`` / ``output`` are not stored. Non-object ``metadata`` is kept as ``{"metadata": value}``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from costline.catalog.langfuse import USAGE_KEYS
from costline.core.events import LEVELS, PRICED_TYPES, ObservationEvent, ScoreEvent, TraceEvent
from costline.core.limits import (
    MAX_ID_LENGTH,
    LimitError,
    TimeRangeError,
    check_observation,
    check_score,
    check_text,
    check_trace,
    iso_utc,
    parse_count,
    preview,
)
from costline.core.money import to_decimal
from costline.core.units import UNITS
from costline.core.usage import Usage
from costline.errors import CostlineError, ExtractionError, UsageError
from costline.extract import extract_usage
from costline.ingest.batch import Decoded, IngestError, ItemError

__all__ = ["EVENT_TYPES", "OBSERVATION_TYPES", "decode_ingestion", "decode_scores"]

#: Langfuse observation types (lowercase, as costline stores them).
OBSERVATION_TYPES: Final = (
    "span", "generation", "event", "agent", "tool", "chain", "retriever", "evaluator", "embedding", "guardrail",
)
_CREATES: Final = {f"{t}-create": t for t in OBSERVATION_TYPES}
_UPDATES: Final = {"span-update": None, "generation-update": "generation"}
#: Every envelope ``type`` accepted.
EVENT_TYPES: Final = (
    "trace-create", *_CREATES, *_UPDATES, "observation-create", "observation-update", "score-create", "sdk-log",
)
SCORE_TYPES: Final = ("NUMERIC", "BOOLEAN", "CATEGORICAL", "CORRECTION", "TEXT")
_ENVIRONMENT = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")
_OPENAI_DETAILS: Final = ("prompt_tokens_details", "completion_tokens_details",
                          "input_tokens_details", "output_tokens_details")
#: usage keys ``extract_usage(..., "langfuse")`` reads as they are (besides ``input_*`` / ``output_*``)
_EXTRACT_KEYS: Final = frozenset({
    "input", "output", "prompt_tokens", "completion_tokens", "promptTokens", "completionTokens",
    "cache_read_input_tokens", "cache_read_tokens", "cache_creation_input_tokens", "cache_write_tokens",
    "reasoning_tokens", "total", "total_tokens", "totalTokens",
})
#: the name under which ``extract_usage`` reads each costline unit
_EXTRACT_NAME: Final = {"input_tokens": "input", "output_tokens": "output", "cache_read_tokens": "cache_read_tokens",
                        "output_reasoning_tokens": "reasoning_tokens", "web_searches": "web_searches"}
#: price-list usage keys extract_usage does not know (Gemini names, search counts) → a name it reads
_RENAMES: Final = {
    key: _EXTRACT_NAME[unit] for key, unit in USAGE_KEYS.items()
    if unit in _EXTRACT_NAME and key not in _EXTRACT_KEYS and not key.startswith(("input_", "output_"))
}
_LEGACY_COST: Final = {"inputCost": "input", "outputCost": "output", "totalCost": "total"}
#: event field -> the Langfuse body field, for limit errors
_NAMES: Final = {
    "trace_id": "traceId", "parent_id": "parentObservationId", "start_time": "startTime", "end_time": "endTime",
    "completion_start_time": "completionStartTime", "status_message": "statusMessage",
    "model_parameters": "modelParameters", "provided_cost": "costDetails", "user_id": "userId",
    "session_id": "sessionId", "observation_id": "observationId", "data_type": "dataType",
    "attributes": "metadata",
}


class _BadItemError(Exception):
    """One item cannot be read; the message names the field path."""


def decode_ingestion(data: Any) -> Decoded:
    """Decode a ``POST /api/public/ingestion`` body ``{"batch": [...], "metadata"?: ...}``."""
    if not isinstance(data, Mapping):
        raise IngestError(f"batch: expected a JSON object with a `batch` list, got {_describe(data)}")
    batch = data.get("batch")
    if batch is None:
        raise IngestError("batch: required field is missing")
    if not isinstance(batch, list):
        raise IngestError(f"batch: expected a list of events, got {_describe(batch)}")
    out = Decoded()
    for index, envelope in enumerate(batch):
        path = f"batch[{index}]"
        key = path
        if isinstance(envelope, Mapping) and isinstance(envelope.get("id"), str) and envelope["id"]:
            key = envelope["id"]
        try:
            _decode_envelope(envelope, path, out, key)
        except _BadItemError as exc:
            out.errors.append(ItemError(key, str(exc)))
            continue
        out.accepted.append(key)
    return out


def decode_scores(data: Any, *, id_factory: Callable[[], str] | None = None) -> Decoded:
    """Decode a ``POST /api/public/scores`` body: one score object, or an array of them (v5 SDK).

    Item errors carry the item's index as id (``"2"``, message ``[2].value: required``); a single object's
    paths have no index (``value: required``).
    """
    new_id = id_factory or (lambda: uuid.uuid4().hex)
    single = isinstance(data, Mapping)
    if not single and not isinstance(data, list):
        raise IngestError(f"(body): expected a score object or an array of scores, got {_describe(data)}")
    items = [data] if single else data
    out = Decoded()
    for index, item in enumerate(items):
        path = "" if single else f"[{index}]"
        try:
            body = _require_object(item, path or "(body)")
            score = _score(body, path, score_id=None, default_time=None, new_id=new_id)
        except _BadItemError as exc:
            out.errors.append(ItemError(str(index), str(exc)))
            continue
        out.scores.append(score)
        out.accepted.append(score.id)
    return out


# envelopes ----------------------------------------------------------------------------------------------


def _decode_envelope(envelope: Any, path: str, out: Decoded, key: str) -> None:
    envelope = _require_object(envelope, path)
    envelope_id = _text(envelope, "id", path, required=True)
    assert envelope_id is not None
    _limit(check_text, envelope_id, _join(path, "id"), MAX_ID_LENGTH)
    kind = envelope.get("type")
    if kind not in EVENT_TYPES:
        raise _BadItemError(
            f"{_join(path, 'type')}: unknown event type {kind!r}; expected one of {', '.join(EVENT_TYPES)}"
        )
    sent_at = _time(envelope, "timestamp", path)
    if kind == "sdk-log":
        return
    body_path = _join(path, "body")
    body = _require_object(envelope.get("body"), body_path)
    if kind == "trace-create":
        trace = _trace(body, body_path, envelope_id)
        _limit(check_trace, trace, _NAMES, prefix=body_path)
        out.traces.append(trace)
    elif kind == "score-create":
        out.scores.append(_score(body, body_path, score_id=envelope_id, default_time=sent_at, new_id=None))
    else:
        observation = _observation(kind, body, body_path, envelope_id, sent_at)
        _limit(check_observation, observation, _NAMES, prefix=body_path)
        if key != observation.id:
            out.keys[len(out.observations)] = key
        out.observations.append(observation)


def _trace(body: Mapping[str, Any], path: str, envelope_id: str) -> TraceEvent:
    return TraceEvent(
        id=_text(body, "id", path) or envelope_id,
        name=_text(body, "name", path),
        timestamp=_time(body, "timestamp", path),
        user_id=_text(body, "userId", path),
        session_id=_text(body, "sessionId", path),
        tags=_tags(body, path),
        metadata=_metadata(body),
        environment=_environment(body, path),
        release=_text(body, "release", path),
        version=_text(body, "version", path),
        public=_bool(body, "public", path),
    )


def _observation(
    kind: str, body: Mapping[str, Any], path: str, envelope_id: str, sent_at: datetime | None
) -> ObservationEvent:
    create = kind.endswith("-create")
    if kind.startswith("observation-"):
        raw_type = _text(body, "type", path, required=create)
        obs_type = raw_type.lower() if raw_type is not None else None
        if obs_type is not None and obs_type not in OBSERVATION_TYPES:
            raise _BadItemError(f"{_join(path, 'type')}: unknown observation type {raw_type!r}; expected one of "
                                f"{', '.join(t.upper() for t in OBSERVATION_TYPES)}")
    else:
        obs_type = _CREATES[kind] if create else _UPDATES[kind]
    obs_id = _text(body, "id", path, required=not create) or envelope_id
    start = _time(body, "startTime", path)
    level = _text(body, "level", path)
    if level is not None and level not in LEVELS:
        raise _BadItemError(f"{_join(path, 'level')}: expected one of {', '.join(LEVELS)}, got {level!r}")
    metadata = _metadata(body)
    parameters = _object(body, "modelParameters", path)
    return ObservationEvent(
        id=obs_id,
        trace_id=_text(body, "traceId", path),
        parent_id=_text(body, "parentObservationId", path),
        type=obs_type,
        name=_text(body, "name", path),
        start_time=start if start is not None or not create else sent_at,
        end_time=_time(body, "endTime", path),
        completion_start_time=_time(body, "completionStartTime", path),
        model=_text(body, "model", path),
        usage=_usage(body, path),
        provided_cost=_provided_cost(body, path),
        attributes=_attributes(metadata, parameters) if obs_type in PRICED_TYPES else None,
        metadata=metadata,
        environment=_environment(body, path),
        version=_text(body, "version", path),
        level=level,
        status_message=_text(body, "statusMessage", path),
        model_parameters=dict(parameters) if parameters is not None else None,
    )


def _score(
    body: Mapping[str, Any], path: str, *, score_id: str | None, default_time: datetime | None,
    new_id: Callable[[], str] | None,
) -> ScoreEvent:
    name = _text(body, "name", path, required=True)
    assert name is not None
    given = _text(body, "id", path)
    data_type = _text(body, "dataType", path)
    if data_type is not None and data_type not in SCORE_TYPES:
        raise _BadItemError(f"{_join(path, 'dataType')}: expected one of {', '.join(SCORE_TYPES)}, got {data_type!r}")
    value = _score_value(body, path, data_type)
    timestamp = _time(body, "timestamp", path)
    chosen = given or score_id or (new_id() if new_id is not None else None)
    assert chosen is not None
    score = ScoreEvent(
        id=chosen,
        name=name,
        value=value,
        trace_id=_text(body, "traceId", path),
        observation_id=_text(body, "observationId", path),
        session_id=_text(body, "sessionId", path),
        data_type=data_type,
        comment=_text(body, "comment", path),
        timestamp=timestamp or default_time,
        environment=_environment(body, path),
        metadata=_metadata(body),
    )
    _limit(check_score, score, _NAMES, prefix=path)
    return score


def _limit(check: Callable[..., object], *args: Any, prefix: str | None = None) -> None:
    """Run a ``core.limits`` check; its error, prefixed with the item's path, is the item's error."""
    try:
        check(*args)
    except LimitError as exc:
        raise _BadItemError(f"{_join(prefix, str(exc)) if prefix is not None else exc}") from None


def _score_value(body: Mapping[str, Any], path: str, data_type: str | None) -> Decimal | str:
    where = _join(path, "value")
    raw = body.get("value")
    if raw is None:
        raise _BadItemError(f"{where}: required")
    if isinstance(raw, str):
        if data_type in ("NUMERIC", "BOOLEAN"):
            raise _BadItemError(f"{where}: expected a number for dataType {data_type}, got {raw!r}")
        return raw
    value = Decimal(int(raw)) if isinstance(raw, bool) else _number(raw, where)
    if data_type == "BOOLEAN" and value not in (0, 1):
        raise _BadItemError(f"{where}: a BOOLEAN score must be 1 or 0, got {_describe(raw)}")
    return value


# usage and cost -----------------------------------------------------------------------------------------


def _usage(body: Mapping[str, Any], path: str) -> Usage | None:
    key = "usageDetails" if body.get("usageDetails") is not None else "usage"
    raw = _object(body, key, path)
    if raw is None:
        return None
    cleaned = _clean_usage(raw, _join(path, key))
    if cleaned is None:
        return None
    try:
        return extract_usage({key: cleaned}, "langfuse").usage
    except ExtractionError as exc:  # its message starts with the path inside {key: ...}
        raise _BadItemError(f"{path}.{exc}") from None
    except UsageError as exc:  # a subset above its parent: the message names both numbers
        raise _BadItemError(f"{_join(path, key)}: {exc}") from None


def _clean_usage(raw: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """What ``extract_usage`` should read: nulls, nested objects and unit-less keys dropped, integer strings
    parsed, price-list aliases renamed; ``None`` when nothing is left."""
    if any(isinstance(raw.get(k), Mapping) for k in _OPENAI_DETAILS):
        return dict(raw)  # the inclusive OpenAI shape: extract reads it whole
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or isinstance(value, Mapping | list) or key in _LEGACY_COST:
            continue
        if key == "unit":
            out[key] = value
            continue
        name = _usage_key(str(key))
        if name is None:
            continue
        if isinstance(value, str):
            value = parse_count(value) if parse_count(value) is not None else value
        if name in out:  # two aliases of one bucket: Langfuse adds them up
            for part, where in ((out[name], _join(path, name)), (value, _join(path, str(key)))):
                if isinstance(part, bool) or not isinstance(part, int) or part < 0:
                    raise _BadItemError(f"{where}: expected a non-negative integer, got {_describe(part)}")
            value = out[name] + value
        out[name] = value
    return out if any(k != "unit" for k in out) else None


def _usage_key(key: str) -> str | None:
    if key in _EXTRACT_KEYS or key.startswith(("input_", "output_", "cached_modality_")):
        return key
    if key in _RENAMES:
        return _RENAMES[key]
    if key in UNITS and UNITS[key].family != "tokens":
        return key
    return None


def _provided_cost(body: Mapping[str, Any], path: str) -> dict[str, Decimal] | None:
    details = _object(body, "costDetails", path)
    # (Langfuse cost key, value, field path)
    entries = [(str(k), v, _join(_join(path, "costDetails"), str(k))) for k, v in (details or {}).items()]
    if not details:
        usage = _object(body, "usage", path) or {}
        entries = [(name, usage.get(key), _join(_join(path, "usage"), key)) for key, name in _LEGACY_COST.items()]
    result: dict[str, Decimal] = {}
    everything = Decimal(0)
    total: Decimal | None = None
    for key, value, where in entries:
        if value is None:
            continue
        amount = _number(value, where, non_negative=True)
        everything += amount
        unit = USAGE_KEYS.get(key) or (key if key in UNITS else None)
        if key == "total":
            total = amount
        elif unit is not None:
            result[unit] = result.get(unit, Decimal(0)) + amount
    if not result and total is None and not everything:
        return None
    result["total"] = total if total is not None else everything
    return result


def _attributes(metadata: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None) -> dict[str, str] | None:
    found: dict[str, str] = {}
    for source in (metadata, parameters):
        for key, value in (source or {}).items():
            if isinstance(value, bool):
                found[str(key)] = "true" if value else "false"
            elif isinstance(value, str | int):
                found[str(key)] = str(value)
    return found or None


# field readers ------------------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if value is None or isinstance(value, str | int | float | Decimal):
        return "null" if value is None else preview(value)
    return {"dict": "an object", "list": "a list"}.get(type(value).__name__, type(value).__name__)


def _require_object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _BadItemError(f"{path}: expected an object, got {_describe(value)}")
    return value


def _text(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise _BadItemError(f"{_join(path, key)}: required")
        return None
    if not isinstance(value, str):
        raise _BadItemError(f"{_join(path, key)}: expected a string, got {_describe(value)}")
    return value


def _bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _BadItemError(f"{_join(path, key)}: expected true or false, got {_describe(value)}")


def _object(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    return _require_object(value, _join(path, key))


def _number(value: Any, where: str, *, non_negative: bool = False) -> Decimal:
    try:
        number = to_decimal(value, field=where)
    except CostlineError as exc:
        raise _BadItemError(str(exc)) from None
    if non_negative and number < 0:
        raise _BadItemError(f"{where}: expected a non-negative number, got {_describe(value)}")
    return number


def _time(obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    """An ISO 8601 date-time (``Z``, an offset or none; naive means UTC) as an aware UTC datetime."""
    value = obj.get(key)
    if value is None:
        return None
    where = _join(path, key)
    if not isinstance(value, str):
        raise _BadItemError(f"{where}: expected an ISO 8601 date-time string, got {_describe(value)}")
    try:
        return iso_utc(value)
    except ValueError as exc:
        why = str(exc) if isinstance(exc, TimeRangeError) else ""
        raise _BadItemError(f"{where}: expected an ISO 8601 date-time, got {preview(value)}{why}") from None


def _tags(obj: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
    value = obj.get("tags")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise _BadItemError(f"{_join(path, 'tags')}: expected a list of strings, got {_describe(value)}")
    return tuple(value)


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = obj.get("metadata")
    if value is None:
        return None
    return dict(value) if isinstance(value, Mapping) else {"metadata": value}


def _environment(obj: Mapping[str, Any], path: str) -> str | None:
    value = _text(obj, "environment", path)
    if value is not None and not _ENVIRONMENT.match(value):
        raise _BadItemError(
            f"{_join(path, 'environment')}: expected at most 40 lowercase letters, digits, '-' or '_', "
            f"not starting with 'langfuse', got {value!r}"
        )
    return value
