"""OTLP/HTTP export: the proxy's protobuf and JSON encoders (telemetry/otlp_protobuf.py,
otlp_json.py) build the message OpenTelemetry's SDK builds for the same spans, read back by
opentelemetry-proto; the exporter (telemetry/span_export.py) batches, retries what the receiver
asks it to retry, drops what it refuses, drops and counts what does not fit its buffer, and
sends what it holds at shutdown."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from edgeproxy.telemetry.otlp_json import JsonEncoder
from edgeproxy.telemetry.otlp_protobuf import ProtobufEncoder
from edgeproxy.telemetry.span_export import OtlpSender, SpanExporter
from edgeproxy.telemetry.spans import CLIENT, ERROR, INTERNAL, SERVER, Attributes, Span
from tests.support.otlp import JSON, PROTOBUF, as_protobuf, receiver
from tests.support.poll import eventually
from tests.support.redis_servers import free_port

RESOURCE: Attributes = {"service.name": "edgeproxy-test", "telemetry.sdk.language": "python"}
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
CLIENT_SPAN_ID = 0xB7AD6B7169203331
SDK_KINDS = {INTERNAL: SpanKind.INTERNAL, SERVER: SpanKind.SERVER, CLIENT: SpanKind.CLIENT}


def record(name: str, kind: int, span_id: int, parent_id: int, **fields: Any) -> Span:
    span = Span(
        TRACE_ID,
        span_id,
        name,
        kind,
        parent_id=parent_id,
        parent_remote=fields.pop("parent_remote", False),
        tracestate=fields.pop("tracestate", "vendor=abc,other=1"),
        start_ns=1_700_000_000_000_000_000 + span_id % 1000,
        attributes=fields.pop("attributes", {}),
    )
    span.end_ns = span.start_ns + 12_345_678
    for field, value in fields.items():
        setattr(span, field, value)
    return span


def spans() -> list[Span]:
    """Spans of every shape the proxy makes: a remote parent with tracestate, attributes of
    each type, an error status with and without a message; a root span; and two spans sharing
    attributes besides their own."""
    attributes: Attributes = {
        "gen_ai.request.model": "gpt-4o",
        "edgeproxy.attempts": 2,
        "edgeproxy.ratio": 0.25,
        "edgeproxy.stream": True,
        "edgeproxy.cached": False,
        "edgeproxy.none": 0,
        "edgeproxy.negative": -3,
        "edgeproxy.big": 2**62,
        "edgeproxy.empty": "",
        "edgeproxy.unicode": "modèle ✓",
    }
    server = record("chat gpt-4o", SERVER, 0x1111, CLIENT_SPAN_ID, parent_remote=True)
    server.attributes = attributes
    server.status = ERROR
    shared: Attributes = {"gen_ai.operation.name": "chat", "server.port": 443}
    return [
        record("cache lookup", INTERNAL, 0x2222, 0x1111, attributes={"c": "miss"}),
        record(
            "chat gpt-4o",
            CLIENT,
            0x3333,
            0x1111,
            status=ERROR,
            status_message="timeout",
            shared=shared,
            attributes={"gen_ai.usage.input_tokens": 21},
        ),
        server,
        record("chat root", SERVER, 0x4444, 0, tracestate="", shared=shared, attributes={"a": 1}),
    ]


def sdk_span(span: Span) -> ReadableSpan:
    """`span` as the SDK's own record, for its encoder."""
    state = TraceState([tuple(m.split("=", 1)) for m in span.tracestate.split(",") if m])  # type: ignore[misc]
    flags = TraceFlags(TraceFlags.SAMPLED)
    parent = (
        SpanContext(TRACE_ID, span.parent_id, span.parent_remote, flags, state)
        if span.parent_id
        else None
    )
    return ReadableSpan(
        name=span.name,
        context=SpanContext(TRACE_ID, span.span_id, False, flags, state),
        parent=parent,
        resource=Resource(RESOURCE),
        attributes={**span.shared, **span.attributes},
        kind=SDK_KINDS[span.kind],
        status=Status(StatusCode(span.status), span.status_message or None),
        start_time=span.start_ns,
        end_time=span.end_ns,
        instrumentation_scope=InstrumentationScope("edgeproxy"),
    )


def test_protobuf_encoding_is_the_message_the_sdks_encoder_builds() -> None:
    ours = ProtobufEncoder(RESOURCE, "edgeproxy")(spans())
    assert ExportTraceServiceRequest.FromString(ours) == encode_spans(
        [sdk_span(span) for span in spans()]
    )


@pytest.mark.parametrize("encoder", [ProtobufEncoder, JsonEncoder])
def test_an_encoder_encodes_what_it_remembered_as_it_did_the_first_time(
    encoder: type[ProtobufEncoder | JsonEncoder],
) -> None:
    encode = encoder(RESOURCE, "edgeproxy")
    batch = spans()
    assert encode(batch) == encode(batch) == encoder(RESOURCE, "edgeproxy")(spans())


def test_json_encoding_is_the_same_message_as_the_protobuf_encoding() -> None:
    as_json = JsonEncoder(RESOURCE, "edgeproxy")(spans())
    as_bytes = ProtobufEncoder(RESOURCE, "edgeproxy")(spans())
    from_json, from_bytes = as_protobuf(as_json), ExportTraceServiceRequest.FromString(as_bytes)
    assert from_json == from_bytes
    (ours,) = from_bytes.resource_spans
    (theirs,) = from_json.resource_spans
    for mine, other in zip(ours.scope_spans[0].spans, theirs.scope_spans[0].spans, strict=True):
        assert mine.ListFields() == other.ListFields()  # field by field


def test_json_ids_are_hex_and_64_bit_integers_are_strings_as_otlp_json_wants() -> None:
    (resource,) = orjson.loads(JsonEncoder(RESOURCE, "edgeproxy")(spans()))["resourceSpans"]
    assert {"key": "service.name", "value": {"stringValue": "edgeproxy-test"}} in resource[
        "resource"
    ]["attributes"]
    (scope,) = resource["scopeSpans"]
    assert scope["scope"] == {"name": "edgeproxy"}
    server = next(span for span in scope["spans"] if span["spanId"] == "0000000000001111")
    assert server["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert server["parentSpanId"] == "b7ad6b7169203331"
    assert server["traceState"] == "vendor=abc,other=1"
    assert server["flags"] == 0x300  # its parent is remote
    assert isinstance(server["startTimeUnixNano"], str)
    assert {"key": "edgeproxy.attempts", "value": {"intValue": "2"}} in server["attributes"]
    assert server["status"] == {"code": 2}


class Recorded:
    """A span's record, as a request hands it to the exporter."""

    def __init__(self, span: Span) -> None:
        self._span = span

    def span(self) -> Span:
        return self._span


def added(exporter: SpanExporter, count: int) -> None:
    for _ in range(count):
        exporter.add(Recorded(spans()[0]))


@pytest.fixture
def exporters() -> Iterator[list[SpanExporter]]:
    """Exporters made by a test, closed after it (their threads end)."""
    made: list[SpanExporter] = []
    yield made
    for exporter in made:
        exporter.close(flush_timeout=5.0)


@pytest.mark.parametrize(
    ("protocol", "encoder"), [(PROTOBUF, ProtobufEncoder), (JSON, JsonEncoder)]
)
async def test_shutdown_sends_what_is_held_in_batches_of_512(
    exporters: list[SpanExporter], protocol: str, encoder: type[ProtobufEncoder | JsonEncoder]
) -> None:
    async with receiver() as collector:
        exporter = SpanExporter(encoder(RESOURCE, "edgeproxy"), collector.url, {}, interval=60)
        exporters.append(exporter)
        added(exporter, 600)
        await asyncio.to_thread(exporter.close)
    assert [len(post.spans) for post in collector.posts] == [512, 88]
    assert {post.content_type for post in collector.posts} == {protocol}


async def test_a_full_buffer_drops_and_counts_what_does_not_fit_and_logs_it(
    exporters: list[SpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    async with receiver() as collector:
        exporter = SpanExporter(
            ProtobufEncoder(RESOURCE, "edgeproxy"), collector.url, {}, max_queue=10, interval=60
        )
        exporters.append(exporter)
        added(exporter, 15)  # far from a batch of 512: nothing is sent before shutdown
        assert exporter.dropped == 5
        with caplog.at_level(logging.WARNING, logger="edgeproxy.tracing"):
            await asyncio.to_thread(exporter.close)
    assert exporter.dropped == 5
    assert len(collector.spans) == 10
    assert "dropped 5 spans: the buffer of 10 was full" in caplog.text


class Unencodable:
    """A record whose span cannot be worked out (a bug)."""

    def span(self) -> Span:
        raise KeyError("unknown operation")


async def test_a_batch_that_cannot_be_encoded_is_dropped_and_logged_and_the_next_is_sent(
    exporters: list[SpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    async with receiver() as collector:
        exporter = SpanExporter(
            ProtobufEncoder(RESOURCE, "edgeproxy"), collector.url, {}, interval=60
        )
        exporters.append(exporter)
        exporter.add(Unencodable())
        added(exporter, 512)  # the first batch, with the bad record; then a batch of 1
        with caplog.at_level(logging.ERROR, logger="edgeproxy.tracing"):
            await asyncio.to_thread(exporter.close)
    assert [len(post.spans) for post in collector.posts] == [1]
    assert "dropped 512 spans: they could not be encoded" in caplog.text


async def test_a_batch_is_retried_when_the_receiver_answers_503_then_200(
    exporters: list[SpanExporter],
) -> None:
    async with receiver() as collector:
        collector.statuses += [503]
        exporter = SpanExporter(ProtobufEncoder(RESOURCE, "edgeproxy"), collector.url, {})
        exporters.append(exporter)
        added(exporter, 512)  # a full batch goes at once
        await eventually(lambda: len(collector.posts) == 2, "the batch, sent again")
        await asyncio.to_thread(exporter.close)
    assert [len(post.spans) for post in collector.posts] == [512, 512]  # the same batch, again


@pytest.mark.parametrize(
    ("statuses", "delivered", "sent"),
    [
        ([], True, 1),
        ([503, 429], True, 3),
        ([502, 504, 503], False, 3),
        ([400], False, 1),
    ],
)
async def test_the_sender_retries_what_the_receiver_asks_and_drops_what_it_refuses(
    statuses: list[int], delivered: bool, sent: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with receiver() as collector:
        collector.statuses += statuses
        sender = OtlpSender(collector.url, {"authorization": "Bearer t"}, JSON, threading.Event())
        body = JsonEncoder(RESOURCE, "edgeproxy")(spans())
        with caplog.at_level(logging.WARNING, logger="edgeproxy.tracing"):
            result = await asyncio.to_thread(sender.send, body, 4)
        sender.close()
    assert result is delivered
    assert len(collector.posts) == sent
    assert {(post.content_type, post.authorization) for post in collector.posts} == {
        (JSON, "Bearer t")
    }
    assert ("dropped 4 spans" in caplog.text) is not delivered


async def test_a_receiver_that_is_down_drops_the_batch_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    stop.set()  # at shutdown: no waiting between tries
    sender = OtlpSender(f"http://127.0.0.1:{free_port()}/v1/traces", {}, PROTOBUF, stop, 1.0)
    with caplog.at_level(logging.WARNING, logger="edgeproxy.tracing"):
        assert not await asyncio.to_thread(sender.send, b"", 3)
    assert "dropped 3 spans: the trace receiver answered nothing (connection failed)" in (
        caplog.text
    )
