"""W3C trace context read as OpenTelemetry's propagator reads it (telemetry/w3c.py), and the
sampler: ParentBased(TraceIdRatioBased) with the SDK's own bound (telemetry/request_spans.py)."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from edgeproxy.exchange import Exchange
from edgeproxy.operations import Operation
from edgeproxy.redact import Redactor
from edgeproxy.telemetry import request_spans
from edgeproxy.telemetry.request_spans import (
    RequestSpans,
    SpanTracer,
    UnsampledTrace,
    sampling_bound,
)
from edgeproxy.telemetry.w3c import Parent, parent_of, traceparent, tracestate
from tests.support.otlp import KeptSpans

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"

TRACEPARENTS = [
    VALID,
    f"00-{TRACE_ID}-{SPAN_ID}-00",
    f"00-{TRACE_ID}-{SPAN_ID}-03",
    f" \t{VALID} ",  # optional whitespace around it
    f"01-{TRACE_ID}-{SPAN_ID}-01",  # a future version, exactly four fields
    f"01-{TRACE_ID}-{SPAN_ID}-01-what-comes-next",  # a future version's extra fields
    f"cc-{TRACE_ID}-{SPAN_ID}-09-x",
    # Invalid: each starts a new trace.
    "",
    f"ff-{TRACE_ID}-{SPAN_ID}-01",  # the version that will never be
    f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 is 55 characters
    f"00-{TRACE_ID}-{SPAN_ID}-01-",
    f"01-{TRACE_ID}-{SPAN_ID}-01x",  # after the flags only a '-' may follow
    f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero ids
    f"00-{TRACE_ID}-{'0' * 16}-01",
    f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",  # lowercase hex only
    f"0A-{TRACE_ID}-{SPAN_ID}-01",
    f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",  # wrong lengths
    f"00-{TRACE_ID}0-{SPAN_ID}-01",
    f"00-{TRACE_ID}-{SPAN_ID}1-01",
    f"00-{TRACE_ID}-{SPAN_ID}-1",
    f"0-{TRACE_ID}-{SPAN_ID}-01",
    f"00_{TRACE_ID}_{SPAN_ID}_01",
    f"00-{TRACE_ID}-{SPAN_ID}-0g",
    f"01-{TRACE_ID}-{SPAN_ID}-01-{'x' * 500}",  # beyond 512 characters
]
TRACESTATES = [
    "vendor=opaque",
    "vendor=opaque,other=1",
    " vendor=opaque , other=1 ",  # optional whitespace trimmed
    "vendor=opaque,,other=1",  # empty members allowed, dropped
    "tenant@system=v,a-b_c*d/e=x y",
    ",".join(f"k{i}=v" for i in range(32)),
    # Dropped whole:
    ",".join(f"k{i}=v" for i in range(33)),  # more than 32 members
    "vendor=opaque,vendor=again",  # a repeated key
    "Vendor=opaque",  # keys are lowercase
    "vendor=",  # a value is not empty
    "vendor=a=b",  # nor holds '='
    "vendor=opaque,junk",
    "vendor=ends with a space ",
    "k=" + "v" * 8190,  # beyond 8192 characters
]


def sdk_parent(headers: dict[str, str]) -> Parent | None:
    """What OpenTelemetry's propagator makes of `headers`, as our Parent."""
    context = get_current_span(TraceContextTextMapPropagator().extract(headers))
    found = context.get_span_context()
    if not found.is_valid:
        return None
    state = found.trace_state.to_header() if found.trace_state else ""
    return Parent(found.trace_id, found.span_id, int(found.trace_flags), state)


@pytest.mark.parametrize("header", TRACEPARENTS)
def test_traceparent_is_read_as_opentelemetry_reads_it(header: str) -> None:
    headers = {"traceparent": header}
    assert parent_of(headers) == sdk_parent(headers)


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        (VALID, True),
        (f"01-{TRACE_ID}-{SPAN_ID}-01-more", True),
        (f"ff-{TRACE_ID}-{SPAN_ID}-01", False),
        (f"00-{TRACE_ID}-{SPAN_ID}-01-more", False),
        (f"00-{'0' * 32}-{SPAN_ID}-01", False),
        (f"00-{TRACE_ID}-{'0' * 16}-01", False),
        (f"00-{TRACE_ID.upper()}-{SPAN_ID}-01", False),
        (VALID[:-1], False),
    ],
)
def test_an_invalid_traceparent_names_no_parent(header: str, valid: bool) -> None:
    parent = parent_of({"traceparent": header})
    assert (parent is not None) is valid
    if parent is not None:
        assert (f"{parent.trace_id:032x}", f"{parent.span_id:016x}") == (TRACE_ID, SPAN_ID)
        assert parent.flags == 1


@pytest.mark.parametrize("header", TRACESTATES)
def test_tracestate_is_kept_or_dropped_as_opentelemetry_does(header: str) -> None:
    headers = {"traceparent": VALID, "tracestate": header}
    parent = parent_of(headers)
    assert parent is not None
    assert parent == sdk_parent(headers)
    assert parent.tracestate == tracestate(header)


def test_a_kept_tracestate_is_the_clients_members_as_they_were() -> None:
    assert tracestate(" vendor=opaque ,, other=1") == "vendor=opaque,other=1"
    assert tracestate("vendor=opaque,vendor=again") == ""
    assert tracestate(None) == ""


def test_an_attempts_traceparent_is_version_00() -> None:
    assert traceparent(int(TRACE_ID, 16), int(SPAN_ID, 16), 1) == VALID


@pytest.mark.parametrize("ratio", [0.0, 1e-9, 0.1, 0.25, 1 / 3, 0.5, 0.999, 1.0])
def test_the_sampling_bound_is_the_sdks(ratio: float) -> None:
    assert sampling_bound(ratio) == TraceIdRatioBased(ratio).bound


def exchange(headers: dict[str, str]) -> Exchange:
    return Exchange(
        request_id="r",
        operation=Operation.CHAT,
        headers=headers,
        body=b"{}",
        payload={},
        model="m",
        stream=False,
        started=time.monotonic(),
    )


@pytest.mark.parametrize(
    ("low_bits", "sampled"),
    [(0, True), ((1 << 62) - 1, True), (1 << 62, False), ((1 << 64) - 1, False)],
)
def test_a_trace_the_proxy_starts_is_sampled_when_its_ids_low_64_bits_are_under_the_bound(
    monkeypatch: pytest.MonkeyPatch, low_bits: int, sampled: bool
) -> None:
    trace_id = (0xABCDEF << 64) | low_bits  # the high bits do not count
    monkeypatch.setattr(request_spans, "new_trace_id", lambda: trace_id)
    tracer = SpanTracer(0.25, Redactor(()), KeptSpans())
    trace = tracer.begin(exchange({}))
    assert isinstance(trace, RequestSpans if sampled else UnsampledTrace)


@pytest.mark.parametrize(("flags", "sampled"), [("01", True), ("03", True), ("00", False)])
@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_a_clients_sampled_flag_decides_whatever_the_ratio(
    flags: str, sampled: bool, ratio: float
) -> None:
    tracer = SpanTracer(ratio, Redactor(()), KeptSpans())
    trace = tracer.begin(exchange({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-{flags}"}))
    assert isinstance(trace, RequestSpans if sampled else UnsampledTrace)


def test_an_unsampled_requests_attempts_carry_the_trace_upstream_and_nothing_is_kept() -> None:
    kept = KeptSpans()
    tracer = SpanTracer(1.0, Redactor(()), kept)
    given = {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-02", "tracestate": "vendor=opaque"}
    trace = tracer.begin(exchange(given))
    trace.cache_lookup()(exchange(given))
    first, second = (trace.attempt(None, "m") for _ in range(2))  # type: ignore[arg-type]
    first.answered(None, False)
    trace.end(exchange(given))
    headers = [first.headers, second.headers]
    for sent in headers:
        assert sent["traceparent"].startswith(f"00-{TRACE_ID}-")
        assert sent["traceparent"].endswith("-02")  # not sampled, its trace id random
        assert SPAN_ID not in sent["traceparent"]
        assert sent["tracestate"] == "vendor=opaque"
    assert headers[0]["traceparent"] != headers[1]["traceparent"]  # a span id each
    assert kept == []
