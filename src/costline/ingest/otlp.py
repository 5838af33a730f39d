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
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from costline.core.events import ObservationEvent, TraceEvent
from costline.errors import CostlineError, UsageError
from costline.ingest import otel_attributes as oa
from costline.ingest.batch import Decoded, IngestError, ItemError

__all__ = ["decode_otlp", "encode_response"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_HEX = frozenset("0123456789abcdef")
_TRACE_UPDATE_KEYS = (
    "langfuse.trace.name", "langfuse.trace.input", "langfuse.trace.output", "langfuse.trace.tags", "langfuse.tags",
    "user.id", "session.id", "langfuse.user.id", "langfuse.session.id", "gen_ai.conversation.id",
)
_TRACE_META_KEYS = ("langfuse_user_id", "langfuse_session_id", "langfuse_tags")


class _MalformedError(Exception):
    """A malformed part of the request; the message names the field."""


@dataclass(frozen=True, slots=True)
class _Span:
    path: str
    resource: Mapping[str, Any]
    scope_name: str
    scope_version: str
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attrs: Mapping[str, Any]
    status_code: int
    status_message: str


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


def _id(raw: object, size: int, where: str, *, optional: bool = False) -> str | None:
    """A ``size``-byte id as lower-case hex: raw bytes (protobuf) or a hex string (OTLP/JSON, any case).

    A base64 string of the right length is accepted too (proto3 JSON as ``json_format`` writes it).
    """
    if raw is None or raw in (b"", ""):
        if optional:
            return None
        raise _MalformedError(f"{where}: required field is missing")
    if isinstance(raw, bytes):
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


def _nanos(value: object, where: str) -> int:
    if value is None or value == "":
        return 0
    number: object = value
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise _MalformedError(f"{where}: expected unix nanoseconds (an integer or a decimal string), got {value!r}")
    return number


def _time(nanos: int) -> datetime | None:
    return None if not nanos else _EPOCH + timedelta(microseconds=nanos // 1000)


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
            scope = scope_spans.scope
            for i, span in enumerate(scope_spans.spans):
                path = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                fields_ = {
                    "trace_id": span.trace_id, "span_id": span.span_id, "parent_id": span.parent_span_id,
                    "name": span.name, "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                    "status_code": span.status.code, "status_message": span.status.message,
                }
                items.append(_span(path, resource, scope.name, scope.version, fields_,
                                   partial(_pb_attributes, span.attributes)))
    return items


def _pb_attributes(values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in values:
        assert isinstance(kv, KeyValue)
        out[kv.key] = _pb_value(kv.value)
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
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(f"request body is not valid JSON: {exc}") from None
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
            scope = _obj(scope_spans.get("scope"), f"{spath}.scope")
            scope_name, scope_version = scope.get("name"), scope.get("version")
            for i, raw in enumerate(_list(scope_spans, "spans", spath)):
                path = f"{spath}.spans[{i}]"
                if not isinstance(raw, dict):
                    yield ItemError(path, f"{path}: expected a span object, got {type(raw).__name__}")
                    continue
                status = raw.get("status")
                status = status if isinstance(status, dict) else {}
                fields_ = {
                    "trace_id": raw.get("traceId"), "span_id": raw.get("spanId"), "parent_id": raw.get("parentSpanId"),
                    "name": raw.get("name"), "start": raw.get("startTimeUnixNano"), "end": raw.get("endTimeUnixNano"),
                    "status_code": status.get("code"), "status_message": status.get("message"),
                }
                yield _span(
                    path, resource, scope_name if isinstance(scope_name, str) else "",
                    scope_version if isinstance(scope_version, str) else "", fields_,
                    partial(_json_attributes, raw.get("attributes"), f"{path}.attributes"),
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
    path: str, resource: Mapping[str, Any], scope_name: str, scope_version: str, raw: Mapping[str, Any],
    read_attributes: Callable[[], dict[str, Any]],
) -> _Span | ItemError:
    """Validate one span's ids, times and attributes; an ``ItemError`` names the first bad field."""
    item_id = path
    try:
        span_id = _id(raw["span_id"], 8, f"{path}.spanId")
        assert span_id is not None
        item_id = span_id
        trace_id = _id(raw["trace_id"], 16, f"{path}.traceId")
        assert trace_id is not None
        code = raw["status_code"]
        if isinstance(code, str):
            code = _STATUS_CODES.get(code, int(code) if code.isdigit() else 0)
        name, message = raw["name"], raw["status_message"]
        return _Span(
            path=path, resource=resource, scope_name=scope_name, scope_version=scope_version,
            trace_id=trace_id, span_id=span_id, parent_id=_id(raw["parent_id"], 8, f"{path}.parentSpanId",
                                                              optional=True),
            name=name if isinstance(name, str) else "",
            start_ns=_nanos(raw["start"], f"{path}.startTimeUnixNano"),
            end_ns=_nanos(raw["end"], f"{path}.endTimeUnixNano"),
            attrs=read_attributes(),
            status_code=code if isinstance(code, int) and not isinstance(code, bool) else 0,
            status_message=message if isinstance(message, str) else "",
        )
    except _MalformedError as exc:
        return ItemError(item_id, str(exc))


def _decode(items: list[_Span | ItemError]) -> Decoded:
    out = Decoded()
    traces: dict[str, list[tuple[bool, TraceEvent, str | None]]] = {}
    for item in items:
        if isinstance(item, ItemError):
            out.errors.append(item)
            continue
        try:
            observation, trace, is_root, fallback_name = _events(item)
        except CostlineError as exc:
            out.errors.append(ItemError(item.span_id, f"{item.path}.{exc}"))
            continue
        out.observations.append(observation)
        out.accepted.append(observation.id)
        if trace is not None:
            traces.setdefault(trace.id, []).append((is_root, trace, fallback_name))
    out.traces = [_merge_traces(events) for events in traces.values()]
    return out


def _events(span: _Span) -> tuple[ObservationEvent, TraceEvent | None, bool, str | None]:
    """(observation, trace event or None, is root, the trace name to use if none is sent: a root's name)."""
    a, resource = span.attrs, span.resource
    v5 = span.scope_name == "langfuse-sdk" and oa.version_tuple(span.scope_version)[:1] >= (5,)
    name = oa.text(a, "gen_ai.tool.name") or span.name or None
    provider = oa.provider(a)
    try:
        usage, usage_cost = oa.usage(a, provider)
    except UsageError as exc:
        if str(exc).startswith("attributes["):
            raise
        raise UsageError(f"attributes (token usage): {exc}") from None
    obs_meta = oa.metadata(a, "langfuse.observation.metadata", v5)
    trace_meta = oa.metadata(a, "langfuse.trace.metadata", v5)
    from_meta = {key: obs_meta.get(key, trace_meta.get(key)) for key in _TRACE_META_KEYS}
    user_id = oa.text(a, "langfuse.user.id", "user.id") or oa.text(from_meta, "langfuse_user_id")
    session_id = (oa.text(a, "langfuse.session.id", "session.id", "gen_ai.conversation.id")
                  or oa.text(from_meta, "langfuse_session_id"))
    tags = oa.tags(oa.first(a, "langfuse.trace.tags", "langfuse.tags")) or oa.tags(from_meta["langfuse_tags"])
    environment = oa.environment(a, resource)
    release = oa.text(a, "langfuse.release") or oa.text(resource, "langfuse.release")
    version = oa.text(a, "langfuse.version") or oa.text(resource, "service.version")
    start = _time(span.start_ns)
    observation = ObservationEvent(
        id=span.span_id, trace_id=span.trace_id, parent_id=span.parent_id,
        type=oa.observation_type(a, span.scope_name, span.scope_version, resource), name=name,
        start_time=start, end_time=_time(span.end_ns),
        completion_start_time=oa.iso_time(a.get("langfuse.observation.completion_start_time")),
        model=oa.model(a), provider=provider, usage=usage, provided_cost=oa.provided_cost(a) or usage_cost,
        attributes=oa.price_attributes(a), user_id=user_id, session_id=session_id, tags=tags,
        metadata=obs_meta or None, environment=environment, release=release, version=version,
        level=oa.level(a, span.status_code),
        status_message=oa.text(a, "langfuse.observation.status_message") or span.status_message or None,
        model_parameters=oa.model_parameters(a),
    )
    is_root = span.parent_id is None or oa.is_true(a.get("langfuse.internal.as_root"))
    public = a.get("langfuse.trace.public")
    updates = (
        oa.first(a, *_TRACE_UPDATE_KEYS) is not None or bool(trace_meta) or oa.is_true(public)
        or any(from_meta[key] is not None for key in _TRACE_META_KEYS)
    )
    if not (is_root or updates):
        return observation, None, False, None
    trace = TraceEvent(
        id=span.trace_id, name=oa.text(a, "langfuse.trace.name"),
        timestamp=start if is_root else None, user_id=user_id, session_id=session_id, tags=tags,
        metadata=trace_meta or None, environment=environment, release=release, version=version,
        public=None if public is None else oa.is_true(public),
    )
    return observation, trace, is_root, name if is_root else None


_TRACE_FIELDS = tuple(f.name for f in fields(TraceEvent) if f.name not in ("id", "metadata"))


def _merge_traces(events: list[tuple[bool, TraceEvent, str | None]]) -> TraceEvent:
    """One event per trace: later values win, the root span's over its children's; the trace is named by
    ``langfuse.trace.name`` from any span, else after its root span."""
    ordered = [e for root, e, _ in events if not root] + [e for root, e, _ in events if root]
    merged = ordered[0]
    for event in ordered[1:]:
        changes: dict[str, Any] = {f: getattr(event, f) for f in _TRACE_FIELDS if getattr(event, f) is not None}
        if event.metadata:
            changes["metadata"] = {**(merged.metadata or {}), **event.metadata}
        merged = replace(merged, **changes)
    if merged.name is None:
        merged = replace(merged, name=next((n for _, _, n in events if n), None))
    return merged
