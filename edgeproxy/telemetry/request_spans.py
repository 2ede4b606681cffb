"""Each request's spans, recorded as it runs and handed to a telemetry/spans.py sink as they end
(the exporter's buffer, telemetry/span_export.py).

A SERVER span per request, named `{gen_ai.operation.name} {model}` as the GenAI semantic
conventions name operations, begun when the request's first byte was read and parented by the
client's W3C `traceparent` (and `tracestate`) when it sent one. Under it, an INTERNAL span for
the cache lookup and a CLIENT span per upstream attempt (each retry and hedge its own), whose
context goes upstream as the attempt's `traceparent`. A failed attempt's span ends with its
outcome; the answer's stays open while it is relayed, and ends with the request's, carrying its
token usage.

On the event loop a request records only what cannot wait: ids, the sampling decision, each
attempt's `traceparent` (sent at once), timestamps, and the raw values the attributes come
from (scalars and long-lived objects such as the Deployment, never the Exchange and its
bodies). Each record's `span()` works out the rest, names and attributes with every secret
masked (telemetry/span_attributes.py), where spans are handled a batch at a time: in the
exporter's thread, just before they are encoded. The SERVER and INTERNAL spans' ids, needed by
no one on the way, are drawn there too.

Sampling is OpenTelemetry's ParentBased(TraceIdRatioBased(sample_ratio)): a client's sampled
flag decides; without one, the trace id's low 64 bits against the ratio. An unsampled request
records nothing, but each attempt still sends a `traceparent` upstream (the trace's id, a span
id of its own, not sampled), as the SDK's non-recording spans did.

Imported only when `telemetry.tracing` is on (telemetry/tracing.py decides, once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

from edgeproxy.dialects.neutral import Usage
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange, Reply, Trace
from edgeproxy.operations import Operation
from edgeproxy.redact import Redactor
from edgeproxy.routing.router import Deployment
from edgeproxy.telemetry.span_attributes import Described, SpanAttributes
from edgeproxy.telemetry.spans import (
    CLIENT,
    ERROR,
    INTERNAL,
    SERVER,
    UNSET,
    Span,
    SpanRecord,
    SpanSink,
    new_span_id,
    new_trace_id,
)
from edgeproxy.telemetry.w3c import RANDOM_TRACE_ID, SAMPLED, parent_of, traceparent

_LOW_64_BITS: Final = (1 << 64) - 1


def sampling_bound(ratio: float) -> int:
    """TraceIdRatioBased's bound: a trace is sampled when its id's low 64 bits are below it."""
    return round(ratio * (1 << 64))


class SpanTracer:
    """Spans for every sampled request, each handed to `sink` as it ends (the exporter's
    buffer, or a test's list)."""

    __slots__ = ("_bound", "_sink", "attributes", "ended")

    def __init__(self, sample_ratio: float, redactor: Redactor, sink: SpanSink) -> None:
        self._bound = sampling_bound(sample_ratio)
        self.attributes = SpanAttributes(redactor)  # read by `span()`, in the exporter's thread
        self._sink = sink
        self.ended: Callable[[SpanRecord], None] = sink.add

    def begin(self, exchange: Exchange) -> Trace:
        parent = parent_of(exchange.headers)
        if parent is None:
            trace_id = new_trace_id()
            if trace_id & _LOW_64_BITS >= self._bound:
                return UnsampledTrace(trace_id, RANDOM_TRACE_ID, "")
            return RequestSpans(self, exchange, trace_id, RANDOM_TRACE_ID | SAMPLED)
        flags = parent.flags & (RANDOM_TRACE_ID | SAMPLED)
        if not flags & SAMPLED:
            return UnsampledTrace(parent.trace_id, flags, parent.tracestate)
        return RequestSpans(
            self,
            exchange,
            parent.trace_id,
            flags,
            parent_id=parent.span_id,
            tracestate=parent.tracestate,
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._sink.close)


class RequestSpans:
    """One sampled request's SERVER span, and what the spans under it share. `parent_id` 0:
    the request began its own trace."""

    __slots__ = (
        "_begun_ns",
        "_waited",
        "answering",
        "attempts",
        "cache_status",
        "deployment",
        "end_ns",
        "flags",
        "group",
        "model",
        "operation",
        "parent_id",
        "request_id",
        "span_id",
        "status",
        "stream",
        "trace_id",
        "tracer",
        "tracestate",
        "usage",
    )

    def __init__(
        self,
        tracer: SpanTracer,
        exchange: Exchange,
        trace_id: int,
        flags: int,
        *,
        parent_id: int = 0,
        tracestate: str = "",
    ) -> None:
        self._waited = time.monotonic() - exchange.started  # since its first byte was read
        self._begun_ns = time.time_ns()
        self.tracer = tracer
        self.trace_id = trace_id
        self.span_id = 0  # drawn by `server_span_id`, when a span is worked out
        self.parent_id = parent_id
        self.flags = flags
        self.tracestate = tracestate
        self.operation: Operation = exchange.operation
        self.model = exchange.model
        self.request_id = exchange.request_id
        self.stream = exchange.stream
        # The last attempt whose answer was (or may be) relayed, each linked to the one before.
        self.answering: AttemptSpan | None = None

    def cache_lookup(self) -> Callable[[Exchange], None]:
        return CacheLookupSpan(self).ended

    def attempt(self, deployment: Deployment, model: str) -> AttemptSpan:
        return AttemptSpan(self, deployment, model)

    def end(self, exchange: Exchange) -> None:
        # What only the end knows (typed as span_attributes.RequestValues reads it), read only
        # once the span has been handed on.
        end_ns = self.end_ns = time.time_ns()
        deployment = self.deployment = exchange.deployment
        usage = self.usage = exchange.usage
        self.status = exchange.status
        self.attempts = exchange.attempts
        self.group = exchange.group
        self.cache_status = exchange.cache_status
        attempt = self.answering
        while attempt is not None:
            attempt.relayed(usage if attempt.deployment is deployment else None, end_ns)
            attempt = attempt.answered_before
        self.tracer.ended(self)

    def server_span_id(self) -> int:
        """The SERVER span's id, drawn the first time a span of the request is worked out
        (only ever in one thread: the exporter's, or the loop's for a test's sink)."""
        span_id = self.span_id
        if not span_id:
            span_id = self.span_id = new_span_id()
        return span_id

    def child(
        self, span_id: int, kind: int, start_ns: int, end_ns: int, described: Described
    ) -> Span:
        """A span of this request, under its SERVER span."""
        name, shared, attributes = described
        return Span(
            self.trace_id,
            span_id,
            name,
            kind,
            parent_id=self.server_span_id(),
            parent_remote=False,
            tracestate=self.tracestate,
            start_ns=start_ns,
            attributes=attributes,
            shared=shared,
            end_ns=end_ns,
            status=ERROR if "error.type" in shared else UNSET,
        )

    def span(self) -> Span:
        name, shared, attributes = self.tracer.attributes.request(self)
        return Span(
            self.trace_id,
            self.server_span_id(),
            name,
            SERVER,
            parent_id=self.parent_id,
            parent_remote=self.parent_id != 0,
            tracestate=self.tracestate,
            start_ns=self._begun_ns - round(self._waited * 1e9),
            attributes=attributes,
            shared=shared,
            end_ns=self.end_ns,
            status=ERROR if "error.type" in shared else UNSET,
        )


class CacheLookupSpan:
    """The cache stage's INTERNAL span."""

    __slots__ = ("_end_ns", "_request", "_start_ns", "_status")

    def __init__(self, request: RequestSpans) -> None:
        self._start_ns = time.time_ns()
        self._request = request

    def ended(self, exchange: Exchange) -> None:
        self._end_ns = time.time_ns()
        self._status = exchange.cache_status
        self._request.tracer.ended(self)

    def span(self) -> Span:
        request = self._request
        described = request.tracer.attributes.cache_lookup(self._status)
        return request.child(new_span_id(), INTERNAL, self._start_ns, self._end_ns, described)


class AttemptSpan:
    """One upstream attempt's CLIENT span, and its context as W3C headers for the provider."""

    __slots__ = (
        "answered_before",
        "deployment",
        "end_ns",
        "error",
        "headers",
        "model",
        "request",
        "span_id",
        "start_ns",
        "status",
        "success",
        "usage",
    )

    answered_before: AttemptSpan | None  # set when it answers: see RequestSpans.answering

    def __init__(self, request: RequestSpans, deployment: Deployment, model: str) -> None:
        self.start_ns = time.time_ns()
        self.span_id = span_id = new_span_id()
        context = traceparent(request.trace_id, span_id, request.flags)
        self.headers = (
            {"traceparent": context, "tracestate": request.tracestate}
            if request.tracestate
            else {"traceparent": context}
        )
        self.request = request
        self.deployment = deployment
        self.model = model
        self.status = 0  # the HTTP answer's, 0 when none came
        self.error: str | None = None  # the proxy's error code, or the exception's name
        self.success = False
        self.usage: Usage | None = None
        self.end_ns = 0

    def answered(self, reply: Reply | None, success: bool) -> None:
        if isinstance(reply, ProxyError):  # no HTTP answer: unreachable, timed out, broken
            self.error = reply.code
        elif reply is not None:
            self.status = reply.status
        self.success = success
        if success:
            request = self.request
            self.answered_before = request.answering
            request.answering = self
        else:
            self._end(time.time_ns())

    def broke(self, error: BaseException) -> None:
        if not self.end_ns:  # ended once: a later outcome changes nothing
            self.error = type(error).__name__
            self._end(time.time_ns())

    def relayed(self, usage: Usage | None, end_ns: int) -> None:
        """The request is over: the answer this attempt brought has been relayed (`usage`:
        its tokens), or was let go for another attempt's (None)."""
        if not self.end_ns:
            self.usage = usage
            self._end(end_ns)

    def _end(self, end_ns: int) -> None:
        if not self.end_ns:
            self.end_ns = end_ns
            self.request.tracer.ended(self)

    def span(self) -> Span:
        request = self.request
        described = request.tracer.attributes.attempt(self, request.operation)
        return request.child(self.span_id, CLIENT, self.start_ns, self.end_ns, described)


class UnsampledTrace:
    """A request the sampler left out: it records nothing, but its attempts still carry the
    trace's context upstream, marked not sampled."""

    __slots__ = ("_flags", "_trace_id", "_tracestate")

    def __init__(self, trace_id: int, flags: int, tracestate: str) -> None:
        self._trace_id = trace_id
        self._flags = flags
        self._tracestate = tracestate

    def cache_lookup(self) -> Callable[[Exchange], None]:
        return _nothing

    def attempt(self, deployment: Deployment, model: str) -> UnsampledAttempt:
        context = traceparent(self._trace_id, new_span_id(), self._flags)
        if self._tracestate:
            return UnsampledAttempt({"traceparent": context, "tracestate": self._tracestate})
        return UnsampledAttempt({"traceparent": context})

    def end(self, exchange: Exchange) -> None:
        pass


class UnsampledAttempt:
    """An unsampled request's attempt: its context goes upstream, nothing is recorded."""

    __slots__ = ("headers",)

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def answered(self, reply: Reply | None, success: bool) -> None:
        pass

    def broke(self, error: BaseException) -> None:
        pass


def _nothing(exchange: Exchange) -> None:
    pass
