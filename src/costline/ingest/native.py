"""The native ingestion format (``POST /v1/ingest``), documented in docs/api.md.

``{"events": [{"type": "generation", "id": ..., "model": ..., "usage": {...}}, {"type": "trace", ...}]}``.
Usage is given in costline units or, with ``usage_format``, as a raw provider usage object (``"openai"``,
``"anthropic"``, ...). A provided ``cost`` wins per component.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costline.core.events import LEVELS, ObservationEvent, TraceEvent
from costline.core.limits import (
    MAX_ENVIRONMENT_LENGTH,
    MAX_ID_LENGTH,
    MAX_MODEL_LENGTH,
    MAX_PROVIDER_LENGTH,
    MAX_USER_LENGTH,
    LimitError,
    check_observation,
    check_trace,
)
from costline.core.usage import Usage
from costline.errors import CostlineError
from costline.extract import extract_usage
from costline.ingest.batch import Decoded, IngestError, ItemError
from costline.ingest.fields import (
    FieldError,
    money_map,
    opt_mapping,
    opt_str,
    opt_str_map,
    opt_tags,
    opt_time,
    req_id,
)

OBSERVATION_TYPES = ("generation", "embedding", "span", "event", "agent", "tool", "chain", "retriever",
                     "evaluator", "guardrail")
MAX_EVENTS = 10_000


def decode_native(data: Any) -> Decoded:
    if not isinstance(data, Mapping) or not isinstance(data.get("events"), list):
        raise IngestError("body: expected an object with an `events` list")
    events = data["events"]
    if len(events) > MAX_EVENTS:
        raise IngestError(f"events: at most {MAX_EVENTS} events per request, got {len(events)}", status=413)
    out = Decoded(merge=False)
    for index, item in enumerate(events):
        path = f"events[{index}]"
        try:
            if not isinstance(item, Mapping):
                raise FieldError(f"{path}: expected an object, got {type(item).__name__}")
            kind = item.get("type", "generation")
            if kind == "trace":
                trace = _trace(item, path)
                _check(check_trace, trace, path)
                out.traces.append(trace)
            elif kind in OBSERVATION_TYPES:
                observation = _observation(item, kind, path)
                _check(check_observation, observation, path)
                out.observations.append(observation)
            else:
                raise FieldError(f"{path}.type: unknown type {kind!r}; expected trace or one of "
                                 f"{', '.join(OBSERVATION_TYPES)}")
            out.accepted.append(str(item["id"]))
        except CostlineError as exc:
            item_id = item.get("id") if isinstance(item, Mapping) else None
            out.errors.append(ItemError(str(item_id) if isinstance(item_id, str) else str(index), str(exc)))
    return out


_NAMES = {"provided_cost": "cost"}


def _check(check: Any, event: Any, path: str) -> None:
    try:
        check(event, _NAMES)
    except LimitError as exc:
        raise FieldError(f"{path}.{exc}") from None


def _usage(item: Mapping[str, Any], path: str) -> Usage | None:
    raw = opt_mapping(item, "usage", path)
    if raw is None:
        return None
    fmt = opt_str(item, "usage_format", path)
    try:
        if fmt:
            return extract_usage(raw, fmt).usage
        return Usage(raw)
    except CostlineError as exc:
        raise FieldError(f"{path}.usage: {exc}") from None


def _observation(item: Mapping[str, Any], kind: str, path: str) -> ObservationEvent:
    level = opt_str(item, "level", path)
    if level is not None and level.upper() not in LEVELS:
        raise FieldError(f"{path}.level: expected one of {', '.join(LEVELS)}, got {level!r}")
    cost = item.get("cost")
    trace_id = opt_str(item, "trace_id", path, max_length=MAX_ID_LENGTH)
    obs_id = req_id(item, "id", path)
    return ObservationEvent(
        id=obs_id,
        trace_id=trace_id or obs_id,
        parent_id=opt_str(item, "parent_id", path, max_length=MAX_ID_LENGTH),
        type=kind,
        name=opt_str(item, "name", path),
        start_time=opt_time(item, "start_time", path),
        end_time=opt_time(item, "end_time", path),
        completion_start_time=opt_time(item, "completion_start_time", path),
        model=opt_str(item, "model", path, max_length=MAX_MODEL_LENGTH),
        provider=opt_str(item, "provider", path, max_length=MAX_PROVIDER_LENGTH),
        usage=_usage(item, path),
        provided_cost=money_map(cost, f"{path}.cost") if cost is not None else None,
        attributes=opt_str_map(item, "attributes", path),
        user_id=opt_str(item, "user_id", path, max_length=MAX_USER_LENGTH),
        session_id=opt_str(item, "session_id", path, max_length=MAX_USER_LENGTH),
        tags=opt_tags(item, "tags", path),
        metadata=opt_mapping(item, "metadata", path),
        environment=opt_str(item, "environment", path, max_length=MAX_ENVIRONMENT_LENGTH),
        release=opt_str(item, "release", path),
        version=opt_str(item, "version", path),
        level=level.upper() if level else None,
        status_message=opt_str(item, "status_message", path),
        model_parameters=opt_mapping(item, "model_parameters", path),
    )


def _trace(item: Mapping[str, Any], path: str) -> TraceEvent:
    public = item.get("public")
    if public is not None and not isinstance(public, bool):
        raise FieldError(f"{path}.public: expected true or false")
    return TraceEvent(
        id=req_id(item, "id", path),
        name=opt_str(item, "name", path),
        timestamp=opt_time(item, "timestamp", path),
        user_id=opt_str(item, "user_id", path, max_length=MAX_USER_LENGTH),
        session_id=opt_str(item, "session_id", path, max_length=MAX_USER_LENGTH),
        tags=opt_tags(item, "tags", path),
        metadata=opt_mapping(item, "metadata", path),
        environment=opt_str(item, "environment", path, max_length=MAX_ENVIRONMENT_LENGTH),
        release=opt_str(item, "release", path),
        version=opt_str(item, "version", path),
        public=public,
    )
