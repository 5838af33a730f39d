"""OTLP/HTTP trace export -> observation and trace events (wire-formats.md A.3-A.5, B.1-B.7, C.2).

Pure: the HTTP route un-gzips the body and sends the reply; this module only decodes and encodes.

* ``application/x-protobuf``: ``ExportTraceServiceRequest``; ``application/json``: OTLP/JSON (lowerCamelCase keys,
  hex ids in any case, int64 as string or number, integer enums, unknown fields ignored); else 415.
* One ``ObservationEvent`` per span (the attribute rules are in ``otel_attributes``). Unlike Langfuse, which
  rejects the whole batch, a span with a bad id, a malformed value or inconsistent usage is rejected on its own
  (an ``ItemError`` naming the field, e.g. ``resourceSpans[0].scopeSpans[1].spans[3].spanId: ...``); the others
  are kept. An OTLP/JSON body whose structure above the spans is wrong is rejected whole (400).
* One ``TraceEvent`` per trace id that has a root span (no parent, or ``langfuse.internal.as_root``) or a span
  carrying trace attributes; several in one batch are merged (the root's values win).
* Metadata: ``langfuse.observation.metadata`` (a JSON object) and ``langfuse.observation.metadata.<key>``;
  Langfuse SDK v5 (scope ``langfuse-sdk``, version >= 5) JSON-encodes every value, so they are decoded; older
  SDKs send raw values, kept as sent. Other attributes are not copied into metadata; ``gen_ai.request.*`` /
  ``llm.invocation_parameters`` go to ``model_parameters``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from types import MappingProxyType
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from costline.core.events import ObservationEvent, TraceEvent
from costline.core.limits import LimitError, check_observation, check_trace
from costline.errors import CostlineError, UsageError
from costline.ingest import otel_attributes as oa
from costline.ingest import otel_usage as ou
from costline.ingest import otel_values as ov
from costline.ingest.batch import Decoded, IngestError, ItemError
from costline.ingest.otlp_wire import Span, from_json, from_protobuf

__all__ = ["decode_otlp", "encode_response"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRACE_UPDATE_KEYS = (
    "langfuse.trace.name", "langfuse.trace.input", "langfuse.trace.output", "langfuse.trace.tags", "langfuse.tags",
    "user.id", "session.id", "langfuse.user.id", "langfuse.session.id", "gen_ai.conversation.id",
)
_TRACE_META_KEYS = ("langfuse_user_id", "langfuse_session_id", "langfuse_tags")
_NO_TRACE_META: Mapping[str, Any] = MappingProxyType(dict.fromkeys(_TRACE_META_KEYS))
#: event field -> where a span carries it, for limit errors
_NAMES = {
    "id": "spanId", "trace_id": "traceId", "parent_id": "parentSpanId", "start_time": "startTimeUnixNano",
    "end_time": "endTimeUnixNano", "model": "attributes (model)", "provider": "attributes (provider)",
    "user_id": "attributes (user id)", "session_id": "attributes (session id)", "tags": "attributes (tags)",
    "metadata": "attributes (metadata)", "model_parameters": "attributes (model parameters)",
    "attributes": "attributes (service tier)", "provided_cost": "attributes (cost)",
    "environment": "attributes (environment)", "release": "attributes (release)",
    "version": "attributes (version)", "status_message": "status.message",
}


#: TraceEvent fields a span reports, but for its id and name
_TRACE_VALUES = ("timestamp", "user_id", "session_id", "tags", "metadata", "environment", "release", "version",
                 "public")
# _events builds both events positionally: importing this module fails if their fields are reordered or renamed
if tuple(f.name for f in fields(TraceEvent)) != ("id", "name", *_TRACE_VALUES) or tuple(
    f.name for f in fields(ObservationEvent)
) != (
    "id", "trace_id", "parent_id", "type", "name", "start_time", "end_time", "completion_start_time", "model",
    "provider", "usage", "provided_cost", "attributes", "user_id", "session_id", "tags", "metadata",
    "environment", "release", "version", "level", "status_message", "model_parameters",
):
    raise ImportError("costline.ingest.otlp builds ObservationEvent / TraceEvent positionally: update _events")


def decode_otlp(body: bytes, content_type: str) -> Decoded:
    """Decode one OTLP/HTTP trace export request body (already un-gzipped)."""
    kind = (content_type or "").lower()
    if "application/x-protobuf" in kind:
        items = from_protobuf(body)
    elif "application/json" in kind:
        items = from_json(body)
    else:
        raise IngestError(
            f"unsupported content type {content_type!r}; use application/x-protobuf or application/json", status=415
        )
    return _decode(items)


def encode_response(rejected: int, message: str, content_type: str) -> bytes:
    """An ``ExportTraceServiceResponse`` in the request's content type (protobuf unless it is JSON).

    Nothing rejected: an empty protobuf body or ``{}``; else ``partial_success`` with the count and message.
    """
    as_json = "application/json" in (content_type or "").lower()
    if rejected <= 0:
        return b"{}" if as_json else b""
    if as_json:
        return orjson.dumps({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}})
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = rejected
    response.partial_success.error_message = message
    return bytes(response.SerializeToString())


def _time(nanos: int) -> datetime | None:
    return None if not nanos else _EPOCH + timedelta(0, 0, nanos // 1000)  # (days, seconds, microseconds)


#: (is root, the trace event, the trace name the span sent, the trace name to use if no span sends one)
_TraceItem = tuple[bool, TraceEvent, str | None, str | None]


def _decode(items: list[Span | ItemError]) -> Decoded:
    out = Decoded(merge=False)  # spans are complete when exported: replace, never read-merge
    observations, accepted, errors = out.observations, out.accepted, out.errors
    traces: dict[str, list[_TraceItem]] = {}
    for item in items:
        if isinstance(item, ItemError):
            errors.append(item)
            continue
        try:
            observation, trace = _events(item)
        except CostlineError as exc:
            errors.append(ItemError(item.span_id, f"{item.path}.{exc}"))
            continue
        try:
            check_observation(observation, _NAMES)
            if trace is not None:
                check_trace(trace[1], _NAMES)
        except LimitError as exc:
            errors.append(ItemError(item.span_id, f"{item.path}.{exc}"))
            continue
        observations.append(observation)
        accepted.append(observation.id)
        if trace is not None:
            found = traces.get(item.trace_id)
            if found is None:
                traces[item.trace_id] = [trace]
            else:
                found.append(trace)
    out.traces = [events[0][1] if len(events) == 1 else _merge_traces(trace_id, events)
                  for trace_id, events in traces.items()]
    return out


def _events(span: Span) -> tuple[ObservationEvent, _TraceItem | None]:
    """The span's observation, and what it says of its trace (``None``: nothing).

    The trace event is the one a trace of this span alone gets: named by ``langfuse.trace.name``, else after
    the span when it is a root. Its name is the observation's name or passes the same check, so checking this
    event refuses exactly what checking the trace values as sent would.
    """
    a, scope, plan = span.attrs, span.scope, span.plan
    name = (ov.text(a, "gen_ai.tool.name") if plan.tool_keys else None) or span.name or None
    provider = oa.provider(a, plan) if plan.provider_keys else None
    aggregate = oa.is_aggregate(a)
    try:
        usage, usage_cost = ou.usage(a, provider, aggregate, plan)
    except UsageError as exc:
        if str(exc).startswith("attributes["):
            raise
        raise UsageError(f"attributes (token usage): {exc}") from None
    user_id = ov.text(a, *plan.user_keys)
    session_id = ov.text(a, *plan.session_keys)
    obs_meta: dict[str, Any] = {}
    trace_meta: dict[str, Any] = {}
    from_meta = _NO_TRACE_META
    tags = completion_start = status_message = trace_name = None
    release, version = scope.release, scope.version
    if plan.langfuse:  # only the Langfuse SDKs send these; others skip the work
        obs_meta = oa.metadata(a, oa.OBSERVATION_METADATA, scope.v5, plan.observation_metadata)
        trace_meta = oa.metadata(a, oa.TRACE_METADATA, scope.v5, plan.trace_metadata)
        if obs_meta or trace_meta:  # the SDK's trace keys in metadata stand in for missing trace attributes
            from_meta = {key: obs_meta.get(key, trace_meta.get(key)) for key in _TRACE_META_KEYS}
            user_id = user_id or ov.text(from_meta, "langfuse_user_id")
            session_id = session_id or ov.text(from_meta, "langfuse_session_id")
        tags = oa.tags(ov.first(a, "langfuse.trace.tags", "langfuse.tags")) or oa.tags(from_meta["langfuse_tags"])
        release = ov.text(a, "langfuse.release") or release
        version = ov.text(a, "langfuse.version") or version
        completion_start = oa.iso_time(a.get("langfuse.observation.completion_start_time"))
        status_message = ov.text(a, "langfuse.observation.status_message")
        trace_name = ov.text(a, "langfuse.trace.name")
    environment = oa.environment(a, scope.resource) if plan.environment else scope.environment
    start = _time(span.start_ns)
    observation = ObservationEvent(  # positional, in field order (checked at import): faster than keywords
        span.span_id, span.trace_id, span.parent_id, oa.observation_type(a, scope.old_langfuse_python, plan),
        name, start, _time(span.end_ns), completion_start, oa.model(a, aggregate, plan), provider, usage,
        ou.provided_cost(a, aggregate, plan) or usage_cost,
        oa.price_attributes(a, plan) if plan.tier_keys else None, user_id, session_id, tags, obs_meta or None,
        environment, release, version, oa.level(a, span.status_code),
        status_message or span.status_message or None, oa.model_parameters(a, plan),
    )
    is_root = span.parent_id is None or ov.is_true(a.get("langfuse.internal.as_root"))
    public = a.get("langfuse.trace.public")
    if not is_root and not (  # a child span reports trace values only when it carries trace attributes
        ov.first(a, *_TRACE_UPDATE_KEYS) is not None or bool(trace_meta) or ov.is_true(public)
        or any(from_meta[key] is not None for key in _TRACE_META_KEYS)
    ):
        return observation, None
    root_name = name if is_root else None
    trace = TraceEvent(  # positional, in field order (checked at import)
        span.trace_id, trace_name if trace_name is not None else root_name, start if is_root else None, user_id,
        session_id, tags, trace_meta or None, environment, release, version,
        None if public is None else ov.is_true(public),
    )
    return observation, (is_root, trace, trace_name, root_name)


def _merge_traces(trace_id: str, events: list[_TraceItem]) -> TraceEvent:
    """One event for the spans of one trace: later values win, the root span's over its children's; the trace
    is named by ``langfuse.trace.name`` from any span, else after its (first) root span."""
    events = sorted(events, key=itemgetter(0))  # stable: children first, then roots
    _, first, first_name, _ = events[0]
    merged: dict[str, Any] = {"name": first_name, **{field: getattr(first, field) for field in _TRACE_VALUES}}
    for _, event, sent_name, _ in events[1:]:
        if sent_name is not None:
            merged["name"] = sent_name
        for field in _TRACE_VALUES:
            value = getattr(event, field)
            if value is not None and field != "metadata":
                merged[field] = value
        if event.metadata:
            merged["metadata"] = {**(merged["metadata"] or {}), **event.metadata}
    if merged["name"] is None:  # named after its (first) root span
        for _, _, _, root_name in events:
            if root_name:
                merged["name"] = root_name
                break
    return TraceEvent(id=trace_id, **merged)
