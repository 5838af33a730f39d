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

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import partial
from operator import itemgetter
from types import MappingProxyType
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from costline.core.events import ObservationEvent, TraceEvent
from costline.core.limits import MAX_INTEGER, LimitError, check_observation, check_trace, parse_count, preview
from costline.errors import CostlineError, UsageError
from costline.ingest import otel_attributes as oa
from costline.ingest.batch import Decoded, IngestError, ItemError, parse_json_body

__all__ = ["decode_otlp", "encode_response"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_HEX = frozenset("0123456789abcdef")
_ZERO_SPAN, _ZERO_TRACE = bytes(8), bytes(16)
_TRACE_UPDATE_KEYS = (
    "langfuse.trace.name", "langfuse.trace.input", "langfuse.trace.output", "langfuse.trace.tags", "langfuse.tags",
    "user.id", "session.id", "langfuse.user.id", "langfuse.session.id", "gen_ai.conversation.id",
)
_TRACE_META_KEYS = ("langfuse_user_id", "langfuse_session_id", "langfuse_tags")
_NO_TRACE_META: Mapping[str, Any] = MappingProxyType(dict.fromkeys(_TRACE_META_KEYS))
_PB_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})
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


class _MalformedError(Exception):
    """A malformed part of the request; the message names the field."""


@dataclass(frozen=True, slots=True)
class _Scope:
    """What one ResourceSpans + ScopeSpans pair says about all of its spans, derived once."""

    resource: Mapping[str, Any]
    v5: bool  # Langfuse SDK >= 5: metadata values are JSON-encoded
    old_langfuse_python: bool  # Langfuse Python SDK <= 3.3: generations sent as spans
    environment: str | None  # from the resource alone: used when the span sends no environment key
    release: str | None
    version: str | None


def _scope(resource: Mapping[str, Any], name: str, version: str) -> _Scope:
    v5, old_langfuse_python = oa.langfuse_sdk(name, version, resource)
    return _Scope(
        resource=resource, v5=v5, old_langfuse_python=old_langfuse_python,
        environment=oa.environment({}, resource), release=oa.text(resource, "langfuse.release"),
        version=oa.text(resource, "service.version"),
    )


@dataclass(slots=True)  # not frozen: internal, and built once per span (a frozen init is slower)
class _Span:
    path: str
    scope: _Scope
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attrs: Mapping[str, Any]
    status_code: int
    status_message: str
    plan: oa.Plan


#: attribute key sets seen -> their plan; most batches hold a few key sets (one per instrumentation and span kind)
_PLANS: dict[tuple[str, ...], oa.Plan] = {}
_MAX_PLANS = 512
_MAX_PLANNED_KEYS = 64  # a span with more attributes is planned each time, never cached (bounded memory)


def _plan(keys: tuple[str, ...]) -> oa.Plan:
    plan = _PLANS.get(keys)
    if plan is None:
        plan = oa.plan_for(keys)
        if len(keys) <= _MAX_PLANNED_KEYS and sum(map(len, keys)) <= 64 * _MAX_PLANNED_KEYS:
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()
            _PLANS[keys] = plan
    return plan


def decode_otlp(body: bytes, content_type: str) -> Decoded:
    """Decode one OTLP/HTTP trace export request body (already un-gzipped)."""
    kind = (content_type or "").lower()
    if "application/x-protobuf" in kind:
        items = _from_protobuf(body)
    elif "application/json" in kind:
        items = _from_json(body)
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


# ---------------------------------------------------------------- ids and times


def _id(raw: object, size: int, path: str, field: str, *, optional: bool = False) -> str | None:
    """A ``size``-byte id as lower-case hex: raw bytes (protobuf) or a hex string (OTLP/JSON, any case).

    A base64 string of the right length is accepted too (proto3 JSON as ``json_format`` writes it).
    """
    if isinstance(raw, bytes) and len(raw) == size:  # the common case (protobuf) first
        value = raw.hex()
        if value.strip("0"):
            return value
    if raw is None or raw in (b"", ""):
        if optional:
            return None
        raise _MalformedError(f"{path}.{field}: required field is missing")
    where = f"{path}.{field}"
    if isinstance(raw, bytes):  # protobuf
        if len(raw) != size:
            raise _MalformedError(f"{where}: expected {size} bytes, got {len(raw)}")
        value = raw.hex()
    elif isinstance(raw, str):
        value = raw.strip().lower()
        if len(value) != 2 * size or not set(value) <= _HEX:
            try:
                decoded = base64.b64decode(raw.strip(), validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            if len(decoded) != size:
                raise _MalformedError(f"{where}: expected {2 * size} hex characters, got {raw!r}")
            value = decoded.hex()
    else:
        raise _MalformedError(f"{where}: expected a hex string, got {type(raw).__name__}")
    if not value.strip("0"):
        if optional:
            return None  # an all-zero parent is "no parent"
        raise _MalformedError(f"{where}: an all-zero id is invalid")
    return value


def _nanos(value: object, path: str, field: str) -> int:
    if type(value) is int and 0 <= value <= MAX_INTEGER:  # protobuf
        return value
    if value is None or value == "":
        return 0
    number: object = value
    if isinstance(value, str):
        number = parse_count(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise _MalformedError(
            f"{path}.{field}: expected unix nanoseconds (an integer or a decimal string), got {preview(value)}"
        )
    if number > MAX_INTEGER:
        raise _MalformedError(f"{path}.{field}: {preview(value)} is out of range (0 .. 2^63-1 nanoseconds)")
    return number


def _time(nanos: int) -> datetime | None:
    return None if not nanos else _EPOCH + timedelta(0, 0, nanos // 1000)  # (days, seconds, microseconds)


# ---------------------------------------------------------------- protobuf


def _from_protobuf(body: bytes) -> list[_Span | ItemError]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception as exc:  # google.protobuf.message.DecodeError (untyped module); any failure = undecodable
        raise IngestError(f"request body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    items: list[_Span | ItemError] = []
    for r, resource_spans in enumerate(request.resource_spans):
        resource = _pb_attributes(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope = _scope(resource, scope_spans.scope.name, scope_spans.scope.version)
            spans_path = f"resourceSpans[{r}].scopeSpans[{s}].spans"
            for i, span in enumerate(scope_spans.spans):
                span_id, trace_id, parent = span.span_id, span.trace_id, span.parent_span_id
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                status = span.status
                if (  # the common case, valid ids and times, without _span's checks (same result)
                    len(span_id) == 8 and span_id != _ZERO_SPAN and len(trace_id) == 16 and trace_id != _ZERO_TRACE
                    and (not parent or len(parent) == 8) and start <= MAX_INTEGER and end <= MAX_INTEGER
                ):
                    attrs = _pb_attributes(span.attributes)
                    items.append(_Span(
                        f"{spans_path}[{i}]", scope, trace_id.hex(), span_id.hex(),
                        parent.hex() if parent and parent != _ZERO_SPAN else None, span.name, start, end, attrs,
                        status.code, status.message, _plan(tuple(attrs)),
                    ))
                    continue
                items.append(_span(
                    f"{spans_path}[{i}]", scope, trace_id, span_id, parent, span.name, start, end,
                    status.code, status.message, partial(_pb_attributes, span.attributes),
                ))
    return items


def _pb_attributes(values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in values:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = getattr(value, kind) if kind in _PB_SCALARS else _pb_value(value)
    return out


def _pb_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)


# ---------------------------------------------------------------- OTLP/JSON


def _from_json(body: bytes) -> list[_Span | ItemError]:
    if not body.strip():
        return []
    document = parse_json_body(body)
    if not isinstance(document, dict):
        raise IngestError(f"OTLP/JSON body must be an object with resourceSpans, got {type(document).__name__}")
    try:
        return list(_json_spans(document))
    except _MalformedError as exc:
        raise IngestError(str(exc)) from None


def _json_spans(document: Mapping[str, Any]) -> Iterator[_Span | ItemError]:
    for r, resource_spans in enumerate(_list(document, "resourceSpans", "")):
        rpath = f"resourceSpans[{r}]"
        resource_spans = _obj(resource_spans, rpath)
        resource_obj = _obj(resource_spans.get("resource"), f"{rpath}.resource")
        resource = _json_attributes(resource_obj.get("attributes"), f"{rpath}.resource.attributes")
        for s, scope_spans in enumerate(_list(resource_spans, "scopeSpans", rpath)):
            spath = f"{rpath}.scopeSpans[{s}]"
            scope_spans = _obj(scope_spans, spath)
            scope_obj = _obj(scope_spans.get("scope"), f"{spath}.scope")
            scope_name, scope_version = scope_obj.get("name"), scope_obj.get("version")
            scope = _scope(resource, scope_name if isinstance(scope_name, str) else "",
                           scope_version if isinstance(scope_version, str) else "")
            for i, raw in enumerate(_list(scope_spans, "spans", spath)):
                path = f"{spath}.spans[{i}]"
                if not isinstance(raw, dict):
                    yield ItemError(path, f"{path}: expected a span object, got {type(raw).__name__}")
                    continue
                status = raw.get("status")
                status = status if isinstance(status, dict) else {}
                yield _span(
                    path, scope, raw.get("traceId"), raw.get("spanId"), raw.get("parentSpanId"), raw.get("name"),
                    raw.get("startTimeUnixNano"), raw.get("endTimeUnixNano"), status.get("code"),
                    status.get("message"), partial(_json_attributes, raw.get("attributes"), f"{path}.attributes"),
                )


def _obj(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _MalformedError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _MalformedError(f"{path + '.' if path else ''}{key}: expected an array, got {type(value).__name__}")
    return value


def _json_attributes(values: object, where: str) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, list):
        raise _MalformedError(f"{where}: expected an array of {{key, value}}, got {type(values).__name__}")
    out: dict[str, Any] = {}
    for i, kv in enumerate(values):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise _MalformedError(f"{where}[{i}]: expected an object with a string key")
        out[kv["key"]] = _json_value(kv.get("value"), f'{where}["{kv["key"]}"]')
    return out


def _json_value(value: object, where: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _MalformedError(f"{where}: expected an AnyValue object, got {type(value).__name__}")
    for key, check in (("stringValue", str), ("boolValue", bool), ("bytesValue", str)):
        if key in value:
            if not isinstance(value[key], check):
                raise _MalformedError(f"{where}.{key}: expected a {check.__name__}, got {value[key]!r}")
            return value[key]
    if "intValue" in value:
        raw = value["intValue"]
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError
            return int(raw)
        except ValueError:
            raise _MalformedError(f"{where}.intValue: expected an integer, got {raw!r}") from None
    if "doubleValue" in value:
        raw = value["doubleValue"]
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise ValueError
            return float(raw)
        except ValueError:
            raise _MalformedError(f"{where}.doubleValue: expected a number, got {raw!r}") from None
    if "arrayValue" in value:
        items = _list(_obj(value["arrayValue"], f"{where}.arrayValue"), "values", f"{where}.arrayValue")
        return [_json_value(v, f"{where}.arrayValue.values[{i}]") for i, v in enumerate(items)]
    if "kvlistValue" in value:
        kvlist = _obj(value["kvlistValue"], f"{where}.kvlistValue")
        return _json_attributes(kvlist.get("values"), f"{where}.kvlistValue.values")
    return None


# ---------------------------------------------------------------- spans -> events


def _span(
    path: str, scope: _Scope, trace_id: object, span_id: object, parent_id: object, name: object, start: object,
    end: object, code: object, message: object, read_attributes: Callable[[], dict[str, Any]],
) -> _Span | ItemError:
    """Validate one span's ids, times and attributes; an ``ItemError`` names the first bad field."""
    item_id = path
    try:
        span = _id(span_id, 8, path, "spanId")
        assert span is not None
        item_id = span
        trace = _id(trace_id, 16, path, "traceId")
        assert trace is not None
        if isinstance(code, str):
            code = _STATUS_CODES.get(code, parse_count(code) or 0)
        parent = _id(parent_id, 8, path, "parentSpanId", optional=True)
        start_ns = _nanos(start, path, "startTimeUnixNano")
        end_ns = _nanos(end, path, "endTimeUnixNano")
        attrs = read_attributes()
        return _Span(  # positional, in field order: measurably faster than keywords once per span
            path, scope, trace, span, parent,
            name if isinstance(name, str) else "",
            start_ns, end_ns, attrs,
            code if isinstance(code, int) and not isinstance(code, bool) else 0,
            message if isinstance(message, str) else "",
            _plan(tuple(attrs)),
        )
    except _MalformedError as exc:
        return ItemError(item_id, str(exc))


#: (is root, the trace event, the trace name the span sent, the trace name to use if no span sends one)
_TraceItem = tuple[bool, TraceEvent, str | None, str | None]


def _decode(items: list[_Span | ItemError]) -> Decoded:
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


def _events(span: _Span) -> tuple[ObservationEvent, _TraceItem | None]:
    """The span's observation, and what it says of its trace (``None``: nothing).

    The trace event is the one a trace of this span alone gets: named by ``langfuse.trace.name``, else after
    the span when it is a root. Its name is the observation's name or passes the same check, so checking this
    event refuses exactly what checking the trace values as sent would.
    """
    a, scope, plan = span.attrs, span.scope, span.plan
    name = (oa.text(a, "gen_ai.tool.name") if plan.tool_keys else None) or span.name or None
    provider = oa.provider(a, plan) if plan.provider_keys else None
    aggregate = oa.is_aggregate(a)
    try:
        usage, usage_cost = oa.usage(a, provider, aggregate, plan)
    except UsageError as exc:
        if str(exc).startswith("attributes["):
            raise
        raise UsageError(f"attributes (token usage): {exc}") from None
    user_id = oa.text(a, *plan.user_keys)
    session_id = oa.text(a, *plan.session_keys)
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
            user_id = user_id or oa.text(from_meta, "langfuse_user_id")
            session_id = session_id or oa.text(from_meta, "langfuse_session_id")
        tags = oa.tags(oa.first(a, "langfuse.trace.tags", "langfuse.tags")) or oa.tags(from_meta["langfuse_tags"])
        release = oa.text(a, "langfuse.release") or release
        version = oa.text(a, "langfuse.version") or version
        completion_start = oa.iso_time(a.get("langfuse.observation.completion_start_time"))
        status_message = oa.text(a, "langfuse.observation.status_message")
        trace_name = oa.text(a, "langfuse.trace.name")
    environment = oa.environment(a, scope.resource) if plan.environment else scope.environment
    start = _time(span.start_ns)
    observation = ObservationEvent(  # positional, in field order (checked at import): faster than keywords
        span.span_id, span.trace_id, span.parent_id, oa.observation_type(a, scope.old_langfuse_python, plan),
        name, start, _time(span.end_ns), completion_start, oa.model(a, aggregate, plan), provider, usage,
        oa.provided_cost(a, aggregate, plan) or usage_cost,
        oa.price_attributes(a, plan) if plan.tier_keys else None, user_id, session_id, tags, obs_meta or None,
        environment, release, version, oa.level(a, span.status_code),
        status_message or span.status_message or None, oa.model_parameters(a, plan),
    )
    is_root = span.parent_id is None or oa.is_true(a.get("langfuse.internal.as_root"))
    public = a.get("langfuse.trace.public")
    if not is_root and not (  # a child span reports trace values only when it carries trace attributes
        oa.first(a, *_TRACE_UPDATE_KEYS) is not None or bool(trace_meta) or oa.is_true(public)
        or any(from_meta[key] is not None for key in _TRACE_META_KEYS)
    ):
        return observation, None
    root_name = name if is_root else None
    trace = TraceEvent(  # positional, in field order (checked at import)
        span.trace_id, trace_name if trace_name is not None else root_name, start if is_root else None, user_id,
        session_id, tags, trace_meta or None, environment, release, version,
        None if public is None else oa.is_true(public),
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
