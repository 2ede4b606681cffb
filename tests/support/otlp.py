"""Reading what the proxy exports over OTLP/HTTP JSON back into OpenTelemetry's protobuf
message, so tests compare it with what the SDK's own encoder builds."""

from __future__ import annotations

import base64
from typing import Any

import orjson


def as_protobuf(body: bytes) -> Any:
    """An OTLP JSON body read back into the protobuf message: OTLP JSON writes ids in hex
    where protobuf's own JSON mapping has base64."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    def rebase(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: base64.b64encode(bytes.fromhex(value)).decode()
                if key in {"traceId", "spanId", "parentSpanId"}
                else rebase(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [rebase(item) for item in node]
        return node

    return json_format.ParseDict(rebase(orjson.loads(body)), ExportTraceServiceRequest())
