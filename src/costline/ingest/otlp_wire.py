"""OTLP/HTTP trace export bodies -> validated spans (wire-formats.md A.3-A.5), for ``otlp.py``.

Protobuf (``ExportTraceServiceRequest``) and OTLP/JSON (lowerCamelCase keys, hex ids in any case, int64 as string
or number, integer enums, unknown fields ignored). A span with a bad id, time or attribute becomes an
``ItemError`` naming the field; an OTLP/JSON body whose structure above the spans is wrong is rejected whole.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from costline.core.limits import MAX_INTEGER, parse_count, preview
from costline.ingest import otel_attributes as oa
from costline.ingest import otel_values as ov
from costline.ingest.batch import IngestError, ItemError, parse_json_body

_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_HEX = frozenset("0123456789abcdef")
_ZERO_SPAN, _ZERO_TRACE = bytes(8), bytes(16)
_PB_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


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
        environment=oa.environment({}, resource), release=ov.text(resource, "langfuse.release"),
        version=ov.text(resource, "service.version"),
    )


@dataclass(slots=True)  # not frozen: internal, and built once per span (a frozen init is slower)
class Span:
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


# ---------------------------------------------------------------- protobuf


def from_protobuf(body: bytes) -> list[Span | ItemError]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception as exc:  # google.protobuf.message.DecodeError (untyped module); any failure = undecodable
        raise IngestError(f"request body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    items: list[Span | ItemError] = []
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
                    items.append(Span(
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


def from_json(body: bytes) -> list[Span | ItemError]:
    if not body.strip():
        return []
    document = parse_json_body(body)
    if not isinstance(document, dict):
        raise IngestError(f"OTLP/JSON body must be an object with resourceSpans, got {type(document).__name__}")
    try:
        return list(_json_spans(document))
    except _MalformedError as exc:
        raise IngestError(str(exc)) from None


def _json_spans(document: Mapping[str, Any]) -> Iterator[Span | ItemError]:
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
) -> Span | ItemError:
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
        return Span(  # positional, in field order: measurably faster than keywords once per span
            path, scope, trace, span, parent,
            name if isinstance(name, str) else "",
            start_ns, end_ns, attrs,
            code if isinstance(code, int) and not isinstance(code, bool) else 0,
            message if isinstance(message, str) else "",
            _plan(tuple(attrs)),
        )
    except _MalformedError as exc:
        return ItemError(item_id, str(exc))
