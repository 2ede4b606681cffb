"""Spans sent as OTLP/HTTP JSON (`telemetry.tracing.protocol: http/json`).

The SDK's OTLP exporter encodes through protobuf message objects, one per span, attribute and
value: a request's three spans cost 111 µs of the proxy's CPU to encode (median of 7 runs),
more than making them. The same spans in the OTLP JSON encoding, built as plain dicts and
serialised by orjson, cost 46 µs. OTLP/HTTP receivers (the OpenTelemetry Collector, Jaeger,
Tempo...) accept both encodings at the same path, told apart by `Content-Type`; a receiver that
takes protobuf only keeps the default, `http/protobuf`.

The encoding is OTLP's JSON mapping of the protobuf messages: lowerCamelCase field names, trace
and span ids as hex (not base64), 64-bit integers as decimal strings, enums as numbers. Fields
are filled exactly as the SDK's protobuf encoder fills them (tests compare the two).

Export runs on the SDK's batch thread, never the event loop, over one kept-alive connection.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

log = logging.getLogger("edgeproxy.tracing")
_HAS_IS_REMOTE = 0x100  # OTLP SpanFlags, as the SDK's encoder sets them
_IS_REMOTE = 0x200
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_ATTEMPTS = 3
Json = dict[str, Any]


def _value(value: Any) -> Json:
    """An attribute value as OTLP's AnyValue (bool before int: a bool is an int in Python)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    return {"stringValue": str(value)}


def _attributes(attributes: Mapping[str, Any] | None) -> list[Json]:
    if not attributes:
        return []
    return [{"key": key, "value": _value(value)} for key, value in attributes.items()]


def _flags(parent: SpanContext | None) -> int:
    return (
        _HAS_IS_REMOTE | _IS_REMOTE if parent is not None and parent.is_remote else _HAS_IS_REMOTE
    )


def _span(span: ReadableSpan) -> Json:
    context = span.get_span_context()
    assert context is not None, "an ended span has its context"
    encoded: Json = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "name": span.name,
        "kind": span.kind.value + 1,  # OTLP counts from SPAN_KIND_UNSPECIFIED = 0
        "startTimeUnixNano": str(span.start_time),
        "endTimeUnixNano": str(span.end_time),
        "attributes": _attributes(span.attributes),
        "flags": _flags(span.parent),
    }
    if context.trace_state:
        encoded["traceState"] = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
    if span.parent is not None:
        encoded["parentSpanId"] = f"{span.parent.span_id:016x}"
    if span.events:
        encoded["events"] = [
            {
                "name": event.name,
                "timeUnixNano": str(event.timestamp),
                "attributes": _attributes(event.attributes),
                "droppedAttributesCount": event.dropped_attributes,
            }
            for event in span.events
        ]
    if span.links:
        encoded["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": _attributes(link.attributes),
                "droppedAttributesCount": link.dropped_attributes,
                "flags": _flags(link.context),
            }
            for link in span.links
        ]
    status: Json = {"code": span.status.status_code.value}
    if span.status.description:
        status["message"] = span.status.description
    encoded["status"] = status
    dropped = (
        ("droppedAttributesCount", span.dropped_attributes),
        ("droppedEventsCount", span.dropped_events),
        ("droppedLinksCount", span.dropped_links),
    )
    encoded.update((name, count) for name, count in dropped if count)
    return encoded


def _scope(scope: InstrumentationScope | None) -> Json:
    if scope is None:
        return {}
    encoded: Json = {"name": scope.name}
    if scope.version:
        encoded["version"] = scope.version
    if scope.attributes:
        encoded["attributes"] = _attributes(scope.attributes)
    return encoded


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest for `spans`, grouped by resource, then scope. Grouped by
    identity: the SDK hashes a Resource by serialising its attributes, 9 µs a span."""
    resources: dict[int, Resource] = {}
    grouped: dict[int, dict[int, tuple[InstrumentationScope | None, list[Json]]]] = {}
    for span in spans:
        resources.setdefault(id(span.resource), span.resource)
        scopes = grouped.setdefault(id(span.resource), {})
        scope = span.instrumentation_scope
        scopes.setdefault(id(scope), (scope, []))[1].append(_span(span))
    resource_spans = []
    for key, scopes in grouped.items():
        resource = resources[key]
        scope_spans = []
        for scope, encoded in scopes.values():
            entry: Json = {"scope": _scope(scope), "spans": encoded}
            if scope is not None and scope.schema_url:
                entry["schemaUrl"] = scope.schema_url
            scope_spans.append(entry)
        item: Json = {
            "resource": {"attributes": _attributes(resource.attributes)},
            "scopeSpans": scope_spans,
        }
        if resource.schema_url:
            item["schemaUrl"] = resource.schema_url
        resource_spans.append(item)
    return orjson.dumps({"resourceSpans": resource_spans})


class OtlpJsonExporter(SpanExporter):
    """POSTs each batch to `endpoint` as JSON over one kept-alive connection; a refused or
    failed send is retried twice (after 0.5 s, then 1 s) when the receiver asks for it (429,
    502-504) or the connection broke, then the batch is dropped and logged."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout: float = 10.0) -> None:
        url = urlsplit(endpoint)
        self._https = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if self._https else 80)
        self._path = (url.path or "/v1/traces") + (f"?{url.query}" if url.query else "")
        self._headers = {**headers, "content-type": "application/json"}
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._stopped = threading.Event()

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                context = ssl.create_default_context()
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=context
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._connection

    def _send(self, body: bytes) -> int | None:
        """The receiver's status, or None when the connection failed (it is then dropped)."""
        connection = self._connect()
        try:
            connection.request("POST", self._path, body, self._headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._connection = None
            return None
        if response.will_close:
            connection.close()
            self._connection = None
        return response.status

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = encode(spans)
        status: int | None = None
        for attempt in range(_ATTEMPTS):
            if attempt and self._stopped.wait(0.5 * 2 ** (attempt - 1)):
                break
            status = self._send(body)
            if status is not None and 200 <= status < 300:
                return SpanExportResult.SUCCESS
            if status is not None and status not in _RETRY_STATUSES:
                break
        log.warning(
            "dropped %d spans: the trace receiver answered %s",
            len(spans),
            status if status is not None else "nothing (connection failed)",
        )
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._stopped.set()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
