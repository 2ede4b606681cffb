"""Each request's spans, as telemetry/spans.py records, sent by telemetry/span_export.py.

A SERVER span per request, named `{gen_ai.operation.name} {model}` as the GenAI semantic
conventions name operations, begun when the request's first byte was read and parented by the
client's W3C `traceparent` (and `tracestate`) when it sent one. Under it, an INTERNAL span for
the cache lookup and a CLIENT span per upstream attempt (each retry and hedge its own), whose
context goes upstream as the attempt's `traceparent`. A failed attempt's span ends with its
outcome; the answer's stays open while it is relayed, and ends with the request's, carrying its
token usage. Every span name and string attribute passes through the configuration's
`Redactor`: a client's model name or request id cannot carry a credential into a trace.

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
from urllib.parse import urlsplit

from edgeproxy.dialects.neutral import Usage
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange, Reply, Trace
from edgeproxy.operations import CLIENT_PATHS
from edgeproxy.redact import Redactor
from edgeproxy.routing.router import Deployment
from edgeproxy.telemetry.request_metrics import GENAI_OPERATIONS, GENAI_PROVIDERS
from edgeproxy.telemetry.spans import (
    CLIENT,
    ERROR,
    INTERNAL,
    SERVER,
    Attributes,
    Span,
    SpanSink,
    new_span_id,
    new_trace_id,
)
from edgeproxy.telemetry.w3c import RANDOM_TRACE_ID, SAMPLED, parent_of, traceparent

Ended = Callable[[Span], None]
_LOW_64_BITS: Final = (1 << 64) - 1
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ROUTES = {operation: path for path, operation in CLIENT_PATHS.items()}
# A stream the provider accepted, then failed with its own error event before any content.
_STREAM_ERROR_EVENT = "stream_error_event"


def sampling_bound(ratio: float) -> int:
    """TraceIdRatioBased's bound: a trace is sampled when its id's low 64 bits are below it."""
    return round(ratio * (1 << 64))


class SpanTracer:
    """Spans for every sampled request, each handed to `sink` as it ends (the exporter's
    buffer, or a test's list)."""

    __slots__ = ("_bound", "_deployments", "_sink", "ended", "text")

    def __init__(self, sample_ratio: float, redactor: Redactor, sink: SpanSink) -> None:
        self._bound = sampling_bound(sample_ratio)
        self.text = redactor.text  # `text(value)`: `value` with every secret masked
        self._sink = sink
        self.ended: Ended = sink.add
        # Bounded: the configured deployments.
        self._deployments: dict[Deployment, tuple[Attributes, Attributes]] = {}

    def begin(self, exchange: Exchange) -> Trace:
        parent = parent_of(exchange.headers)
        if parent is None:
            trace_id = new_trace_id()
            sampled = trace_id & _LOW_64_BITS < self._bound
            flags = RANDOM_TRACE_ID | SAMPLED if sampled else RANDOM_TRACE_ID
            parent_id, tracestate = 0, ""
        else:
            trace_id, parent_id, tracestate = parent.trace_id, parent.span_id, parent.tracestate
            sampled = bool(parent.flags & SAMPLED)
            flags = parent.flags & (RANDOM_TRACE_ID | SAMPLED)
        if not sampled:
            return UnsampledTrace(trace_id, flags, tracestate)
        operation = GENAI_OPERATIONS[exchange.operation.label]
        text = self.text
        model = text(exchange.model)
        attributes: Attributes = {
            "gen_ai.operation.name": text(operation),
            "gen_ai.request.model": model,
            "http.request.method": "POST",
            "http.route": text(_ROUTES[exchange.operation]),
            "edgeproxy.request_id": text(exchange.request_id),
            "edgeproxy.stream": exchange.stream,
        }
        waited = time.monotonic() - exchange.started  # since its first byte was read
        span = Span(
            trace_id,
            new_span_id(),
            text(f"{operation} {model}"),
            SERVER,
            parent_id=parent_id,
            parent_remote=parent is not None,
            tracestate=tracestate,
            start_ns=time.time_ns() - round(waited * 1e9),
            attributes=attributes,
        )
        return RequestSpans(self, span, operation, flags)

    def deployment(self, deployment: Deployment) -> tuple[Attributes, Attributes]:
        """Which provider and deployment `deployment` is, and where its attempts go (its host
        and port), secrets masked: worked out once each."""
        found = self._deployments.get(deployment)
        if found is None:
            text = self.text
            config = deployment.provider.config
            who: Attributes = {
                "gen_ai.provider.name": text(GENAI_PROVIDERS.get(config.kind, config.kind)),
                "edgeproxy.provider": text(config.name),
                "edgeproxy.deployment": text(deployment.name),
            }
            url = urlsplit(config.base_url)
            where: Attributes = {}
            if url.hostname:
                where["server.address"] = text(url.hostname)
                where["server.port"] = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
            found = self._deployments[deployment] = (who, where)
        return found

    async def close(self) -> None:
        await asyncio.to_thread(self._sink.close)


class RequestSpans:
    """One sampled request's SERVER span and the spans under it."""

    __slots__ = ("_answering", "_flags", "_operation", "_span", "_tracer")

    def __init__(self, tracer: SpanTracer, span: Span, operation: str, flags: int) -> None:
        self._tracer = tracer
        self._span = span
        self._operation = operation
        self._flags = flags
        self._answering: list[AttemptSpan] = []  # answers that were (or may be) relayed

    def _child(self, name: str, kind: int, attributes: Attributes) -> Span:
        server = self._span
        return Span(
            server.trace_id,
            new_span_id(),
            name,
            kind,
            parent_id=server.span_id,
            parent_remote=False,
            tracestate=server.tracestate,
            start_ns=time.time_ns(),
            attributes=attributes,
        )

    def cache_lookup(self) -> Callable[[Exchange], None]:
        tracer = self._tracer
        span = self._child(tracer.text("cache lookup"), INTERNAL, {})

        def ended(exchange: Exchange) -> None:
            if exchange.cache_status is not None:
                span.attributes["edgeproxy.cache.status"] = tracer.text(exchange.cache_status)
            span.end_ns = time.time_ns()
            tracer.ended(span)

        return ended

    def attempt(self, deployment: Deployment, model: str) -> AttemptSpan:
        tracer = self._tracer
        model = tracer.text(model)
        who, where = tracer.deployment(deployment)
        attributes: Attributes = {
            "gen_ai.operation.name": tracer.text(self._operation),
            "gen_ai.request.model": model,
            "http.request.method": "POST",
            **who,
            **where,
        }
        span = self._child(tracer.text(f"{self._operation} {model}"), CLIENT, attributes)
        headers = {"traceparent": traceparent(span.trace_id, span.span_id, self._flags)}
        if span.tracestate:
            headers["tracestate"] = span.tracestate
        return AttemptSpan(tracer.ended, span, headers, deployment, self._answering)

    def end(self, exchange: Exchange) -> None:
        span = self._span
        status = exchange.status
        usage = exchange.usage
        for attempt in self._answering:
            attempt.end(usage if attempt.deployment is exchange.deployment else None)
        tracer = self._tracer
        attributes = span.attributes
        attributes["http.response.status_code"] = status
        attributes["edgeproxy.attempts"] = exchange.attempts
        if exchange.group is not None:
            attributes["edgeproxy.model_group"] = tracer.text(exchange.group.name)
        if exchange.cache_status is not None:
            attributes["edgeproxy.cache.status"] = tracer.text(exchange.cache_status)
        if exchange.deployment is not None:
            attributes.update(tracer.deployment(exchange.deployment)[0])
        if usage is not None:
            _add_usage(attributes, usage)
        if status >= 500:  # a client's mistake (4xx) is no failure of the proxy's
            attributes["error.type"] = str(status)
            span.status = ERROR
        span.end_ns = time.time_ns()
        tracer.ended(span)


class AttemptSpan:
    """One upstream attempt's CLIENT span, and its context as W3C headers for the provider."""

    __slots__ = ("_answering", "_ended", "_span", "deployment", "headers")

    def __init__(
        self,
        ended: Ended,
        span: Span,
        headers: dict[str, str],
        deployment: Deployment,
        answering: list[AttemptSpan],
    ) -> None:
        self._ended = ended
        self._span = span
        self.headers = headers
        self.deployment = deployment
        self._answering = answering

    def answered(self, reply: Reply | None, success: bool) -> None:
        attributes = self._span.attributes
        error = None
        if isinstance(reply, ProxyError):  # no HTTP answer: unreachable, timed out, broken
            error = reply.code
        elif reply is not None:
            attributes["http.response.status_code"] = reply.status
            if reply.status >= 400:
                error = str(reply.status)
            elif not success:
                error = _STREAM_ERROR_EVENT
        if error is not None:
            attributes["error.type"] = error
            self._span.status = ERROR
        if success:
            self._answering.append(self)
        else:
            self._end()

    def broke(self, error: BaseException) -> None:
        self._span.attributes["error.type"] = type(error).__name__
        self._span.status = ERROR
        self._end()

    def end(self, usage: Usage | None) -> None:
        """The request is over: the answer this attempt brought has been relayed (`usage`:
        its tokens), or was let go for another attempt's (None)."""
        if usage is not None:
            _add_usage(self._span.attributes, usage)
        self._end()

    def _end(self) -> None:
        span = self._span
        if not span.end_ns:  # ended once: a later outcome changes nothing
            span.end_ns = time.time_ns()
            self._ended(span)


def _add_usage(attributes: Attributes, usage: Usage) -> None:
    attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
    attributes["gen_ai.usage.output_tokens"] = usage.output_tokens


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
        headers = {"traceparent": traceparent(self._trace_id, new_span_id(), self._flags)}
        if self._tracestate:
            headers["tracestate"] = self._tracestate
        return UnsampledAttempt(headers)

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
