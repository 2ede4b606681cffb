"""Spans as OTLP/HTTP JSON (`telemetry.tracing.protocol: http/json`).

OTLP's JSON mapping of the protobuf ExportTraceServiceRequest: lowerCamelCase field names,
trace and span ids as hex (not base64), 64-bit integers as decimal strings, enums as numbers.
Fields are filled as OpenTelemetry's SDK filled them (tests read the JSON back into the
protobuf message and compare it with telemetry/otlp_protobuf.py's and with the SDK's encoder's
for the same spans). Built as plain dicts straight from the span records and serialised by
orjson; the resource and scope, the same for every batch, are built once.

OTLP/HTTP receivers (the OpenTelemetry Collector, Jaeger, Tempo...) accept JSON and protobuf at
the same path, told apart by `Content-Type`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from edgeproxy.telemetry.attribute_memo import AttributeMemo
from edgeproxy.telemetry.spans import Attributes, AttributeValue, Span

CONTENT_TYPE = "application/json"
HAS_IS_REMOTE = 0x100  # OTLP SpanFlags, as the SDK's encoder sets them
IS_REMOTE = 0x200
Json = dict[str, Any]


def _value(value: AttributeValue) -> Json:
    """An attribute value as OTLP's AnyValue (bool before int: a bool is an int in Python)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"doubleValue": value}


def _key_value(key: str, value: AttributeValue) -> Json:
    return {"key": key, "value": _value(value)}


def _attributes(values: Attributes) -> list[Json]:
    return [_key_value(key, value) for key, value in values.items()]


def _span(span: Span, attributes: list[Json]) -> Json:
    encoded: Json = {
        "traceId": span.trace_id.to_bytes(16, "big").hex(),  # not f"{:032x}": twice the CPU
        "spanId": span.span_id.to_bytes(8, "big").hex(),
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": attributes,
        "flags": HAS_IS_REMOTE | IS_REMOTE if span.parent_remote else HAS_IS_REMOTE,
        "status": (
            {"code": span.status, "message": span.status_message}
            if span.status_message
            else {"code": span.status}
        ),
    }
    if span.tracestate:
        encoded["traceState"] = span.tracestate
    if span.parent_id:
        encoded["parentSpanId"] = span.parent_id.to_bytes(8, "big").hex()
    return encoded


class JsonEncoder:
    """ExportTraceServiceRequest bodies for the spans of one resource and scope, attributes
    built once each and remembered (telemetry/attribute_memo.py)."""

    __slots__ = ("_attributes", "_resource", "_scope")
    content_type = CONTENT_TYPE

    def __init__(self, resource: Attributes, scope: str, remembered: int = 4096) -> None:
        self._resource = {"attributes": _attributes(resource)}
        self._scope = {"name": scope}
        self._attributes: AttributeMemo[Json, list[Json]] = AttributeMemo(
            _key_value, list, remembered
        )

    def __call__(self, spans: Sequence[Span]) -> bytes:
        attributes = self._attributes
        encoded = [
            _span(span, attributes.shared(span.shared) + attributes(span.attributes))
            for span in spans
        ]
        scope_spans = [{"scope": self._scope, "spans": encoded}]
        return orjson.dumps(
            {"resourceSpans": [{"resource": self._resource, "scopeSpans": scope_spans}]}
        )
