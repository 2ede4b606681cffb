"""OTLP/HTTP JSON export (telemetry/otlp_json.py): the same message as the SDK's protobuf
encoder builds, in OTLP's JSON mapping, and a sender that retries what the receiver asks it
to retry and drops what it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from aiohttp import web

from tests.support.otlp import as_protobuf
from tests.support.redis_servers import free_port
from tests.support.requires import require_otel

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _spans() -> list[ReadableSpan]:
    """Spans of every shape the proxy makes, and some it does not: a remote parent with
    tracestate, attributes of each type, an event, a link, an error status."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode, set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "edgeproxy-test"}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("edgeproxy", "1.2.3")
    parent = TraceContextTextMapPropagator().extract(
        {"traceparent": TRACEPARENT, "tracestate": "vendor=abc,other=1"}
    )
    attributes: dict[str, Any] = {
        "gen_ai.request.model": "gpt-4o",
        "edgeproxy.attempts": 2,
        "edgeproxy.ratio": 0.25,
        "edgeproxy.stream": True,
        "edgeproxy.names": ["a", "b"],
    }
    server = tracer.start_span("chat gpt-4o", parent, SpanKind.SERVER, attributes)
    inside = set_span_in_context(server)
    lookup = tracer.start_span("cache lookup", inside, SpanKind.INTERNAL, {})
    lookup.add_event("miss", {"edgeproxy.cache.status": "miss"})
    lookup.end()
    link = Link(server.get_span_context(), {"edgeproxy.why": "hedge"})
    attempt = tracer.start_span("chat gpt-4o", inside, SpanKind.CLIENT, {}, links=[link])
    attempt.set_status(Status(StatusCode.ERROR, "upstream_timeout"))
    attempt.end()
    server.end()
    provider.shutdown()
    return list(kept.get_finished_spans())


def test_json_encoding_is_the_message_the_sdks_protobuf_encoder_builds() -> None:
    require_otel()
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from edgeproxy.telemetry.otlp_json import encode

    spans = _spans()
    assert as_protobuf(encode(spans)) == encode_spans(spans)


def test_ids_are_hex_and_64_bit_integers_are_strings_as_otlp_json_wants() -> None:
    require_otel()
    from edgeproxy.telemetry.otlp_json import encode

    (resource,) = orjson.loads(encode(_spans()))["resourceSpans"]
    (scope,) = resource["scopeSpans"]
    assert scope["scope"] == {"name": "edgeproxy", "version": "1.2.3"}
    server = next(span for span in scope["spans"] if span["kind"] == 2)
    assert server["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert server["parentSpanId"] == "b7ad6b7169203331"
    assert server["traceState"] == "vendor=abc,other=1"
    assert isinstance(server["startTimeUnixNano"], str)
    assert {"key": "edgeproxy.attempts", "value": {"intValue": "2"}} in server["attributes"]


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, list[int], list[tuple[str, bytes]]]]:
    """A trace receiver answering the statuses queued in its list (then 200), keeping each
    request's content type and body."""
    statuses: list[int] = []
    received: list[tuple[str, bytes]] = []

    async def collect(request: web.Request) -> web.Response:
        received.append((request.content_type, await request.read()))
        return web.json_response({}, status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/v1/traces", statuses, received
    await runner.cleanup()


@pytest.mark.parametrize(
    ("statuses", "exported", "sent"),
    [
        ([], True, 1),
        ([503, 429], True, 3),
        ([503, 503, 503], False, 3),
        ([400], False, 1),
    ],
)
async def test_a_batch_is_retried_when_the_receiver_asks_and_dropped_when_it_refuses(
    collector: tuple[str, list[int], list[tuple[str, bytes]]],
    statuses: list[int],
    exported: bool,
    sent: int,
) -> None:
    require_otel()
    from opentelemetry.sdk.trace.export import SpanExportResult

    from edgeproxy.telemetry.otlp_json import OtlpJsonExporter

    url, queued, received = collector
    queued += statuses
    exporter = OtlpJsonExporter(url, {"authorization": "Bearer t"})
    result = await asyncio.to_thread(exporter.export, _spans())
    exporter.shutdown()
    assert (result is SpanExportResult.SUCCESS) is exported
    assert len(received) == sent
    assert {content_type for content_type, _ in received} == {"application/json"}
    assert len(as_protobuf(received[-1][1]).resource_spans[0].scope_spans[0].spans) == 3


async def test_a_receiver_that_is_not_there_fails_the_batch_without_raising() -> None:
    require_otel()
    from opentelemetry.sdk.trace.export import SpanExportResult

    from edgeproxy.telemetry.otlp_json import OtlpJsonExporter

    exporter = OtlpJsonExporter(f"http://127.0.0.1:{free_port()}/v1/traces", {}, timeout=1.0)
    result = await asyncio.to_thread(exporter.export, _spans())
    exporter.shutdown()
    assert result is SpanExportResult.FAILURE
