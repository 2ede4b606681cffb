"""What tests need to see the proxy's spans: a sink that keeps them as they end, and a local
OTLP/HTTP receiver that decodes what was really sent, with opentelemetry-proto (a dev
dependency: the proxy itself encodes OTLP without it)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from edgeproxy.telemetry.spans import Span, SpanRecord
from tests.support.serving import serving

JSON = "application/json"
PROTOBUF = "application/x-protobuf"


class KeptSpans(list[Span]):
    """A span sink (`ProxyServer(span_sink=...)`) keeping each span as it ends, in order,
    turned from its record into the span as the exporter's thread turns it."""

    def add(self, record: SpanRecord) -> None:
        self.append(record.span())

    def close(self) -> None:
        pass


def as_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """An OTLP JSON body read back into the protobuf message: OTLP JSON writes ids in hex
    where protobuf's own JSON mapping has base64."""
    from google.protobuf import json_format

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


def decoded(content_type: str, body: bytes) -> ExportTraceServiceRequest:
    """An export request as it was sent, in either encoding."""
    if content_type == JSON:
        return as_protobuf(body)
    assert content_type == PROTOBUF, content_type
    return ExportTraceServiceRequest.FromString(body)


@dataclass
class Post:
    content_type: str
    authorization: str
    body: bytes

    @property
    def export(self) -> ExportTraceServiceRequest:
        return decoded(self.content_type, self.body)

    @property
    def spans(self) -> list[Any]:
        return [
            span
            for resource_spans in self.export.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]


@dataclass
class Receiver:
    """A trace receiver on loopback: it answers the statuses queued in `statuses` (then 200)
    and keeps each POST."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)

    @property
    def spans(self) -> list[Any]:
        return [span for post in self.posts for span in post.spans]


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    kept = Receiver()

    async def collect(request: web.Request) -> web.Response:
        authorization = request.headers.get("authorization", "")
        kept.posts.append(Post(request.content_type, authorization, await request.read()))
        status = kept.statuses.pop(0) if kept.statuses else 200
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, status=status, content_type=PROTOBUF)

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    async with serving(app) as base:
        kept.url = base + "/v1/traces"
        yield kept
