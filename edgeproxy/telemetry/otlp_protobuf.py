"""Spans as OTLP/HTTP protobuf (`telemetry.tracing.protocol: http/protobuf`, the default).

The protobuf wire encoding of an ExportTraceServiceRequest, written by hand: only the fields the
proxy fills (the resource's attributes, the scope's name; each span's ids, parent, tracestate,
name, kind, times, attributes, status and flags), each as opentelemetry-proto numbers it
(tests parse the bytes with opentelemetry-proto and compare them with the JSON encoder's and
with the SDK's encoder's). The SDK's encoder builds a message object per span, attribute and
value (111 µs for a request's three spans); this writes bytes, and the resource and scope,
the same for every batch, once.

    ExportTraceServiceRequest  1 resource_spans
    ResourceSpans              1 resource (1 attributes), 2 scope_spans
    ScopeSpans                 1 scope (1 name), 2 spans
    Span                       1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name,
                               6 kind, 7 start (fixed64), 8 end (fixed64), 9 attributes,
                               15 status (2 message, 3 code), 16 flags (fixed32)
    KeyValue                   1 key, 2 value: AnyValue 1 string, 2 bool, 3 int64, 4 double
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from edgeproxy.telemetry.attribute_memo import AttributeMemo
from edgeproxy.telemetry.otlp_json import HAS_IS_REMOTE, IS_REMOTE
from edgeproxy.telemetry.spans import Attributes, AttributeValue, SharedAttributes, Span

CONTENT_TYPE = "application/x-protobuf"
_DOUBLE = struct.Struct("<d")
_LOW_64_BITS = (1 << 64) - 1
# Each field's key (field number << 3 | wire type): 0 varint, 1 fixed64, 2 bytes, 5 fixed32.
_TRACE_ID, _SPAN_ID, _TRACE_STATE, _PARENT_ID, _NAME = b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x2a"
_KIND, _START, _END, _ATTRIBUTE, _STATUS = b"\x30", b"\x39", b"\x41", b"\x4a", b"\x7a"
_FLAGS = b"\x85\x01"
_REMOTE_FLAGS = _FLAGS + struct.pack("<I", HAS_IS_REMOTE | IS_REMOTE)
_LOCAL_FLAGS = _FLAGS + struct.pack("<I", HAS_IS_REMOTE)
# Fields whose key and length (or value) are the same in every span, written at once.
_TRACE_ID_16 = _TRACE_ID + b"\x10"
_SPAN_ID_8 = _SPAN_ID + b"\x08"
_PARENT_ID_8 = _PARENT_ID + b"\x08"
_TIMES = struct.Struct("<cQcQ")  # start and end, each a fixed64 after its key
_KINDS = tuple(_KIND + bytes((kind,)) for kind in range(6))  # OTLP's SpanKind: 0 to 5


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes or a message."""
    return key + _varint(len(payload)) + payload


def _value(value: AttributeValue) -> bytes:
    """An AnyValue (bool before int: a bool is an int in Python)."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value & _LOW_64_BITS)  # int64: two's complement
    return b"\x21" + _DOUBLE.pack(value)


def _key_value(key: str, value: AttributeValue, field: bytes) -> bytes:
    """A KeyValue, as the field `field` of its message."""
    return _field(field, _field(b"\x0a", key.encode()) + _field(b"\x12", _value(value)))


def _attributes(values: SharedAttributes, field: bytes) -> bytes:
    return b"".join(_key_value(key, value, field) for key, value in values.items())


def _status(code: int, message: str) -> bytes:
    status = _field(b"\x12", message.encode()) if message else b""
    if code:
        status += b"\x18" + _varint(code)
    return _field(_STATUS, status)


_STATUSES = tuple(_status(code, "") for code in range(3))  # OTLP's StatusCode: 0 to 2


def _span(span: Span, attributes: bytes) -> bytes:
    parts = [
        _TRACE_ID_16,
        span.trace_id.to_bytes(16, "big"),
        _SPAN_ID_8,
        span.span_id.to_bytes(8, "big"),
    ]
    if span.tracestate:
        parts.append(_field(_TRACE_STATE, span.tracestate.encode()))
    if span.parent_id:
        parts += (_PARENT_ID_8, span.parent_id.to_bytes(8, "big"))
    parts += (
        _field(_NAME, span.name.encode()),
        _KINDS[span.kind],
        _TIMES.pack(_START, span.start_ns, _END, span.end_ns),
        attributes,
        (
            _status(span.status, span.status_message)
            if span.status_message
            else _STATUSES[span.status]
        ),
        _REMOTE_FLAGS if span.parent_remote else _LOCAL_FLAGS,
    )
    return _field(b"\x12", b"".join(parts))


class ProtobufEncoder:
    """ExportTraceServiceRequest bodies for the spans of one resource and scope, attributes
    encoded once each and remembered (telemetry/attribute_memo.py)."""

    __slots__ = ("_attributes", "_head")
    content_type = CONTENT_TYPE

    def __init__(self, resource: Attributes, scope: str, remembered: int = 4096) -> None:
        # ResourceSpans.resource, then ScopeSpans.scope: the same before every batch's spans.
        self._head = (
            _field(b"\x0a", _attributes(resource, b"\x0a")),
            _field(b"\x0a", _field(b"\x0a", scope.encode())),
        )
        self._attributes: AttributeMemo[bytes, bytes] = AttributeMemo(
            _span_attribute, b"".join, remembered
        )

    def __call__(self, spans: Sequence[Span]) -> bytes:
        resource, scope = self._head
        attributes = self._attributes
        encoded = b"".join(
            _span(span, attributes.shared(span.shared) + attributes(span.attributes))
            for span in spans
        )
        return _field(b"\x0a", resource + _field(b"\x12", scope + encoded))


def _span_attribute(key: str, value: AttributeValue) -> bytes:
    return _key_value(key, value, _ATTRIBUTE)
