"""Each request's OpenTelemetry spans, exported over OTLP/HTTP (the `otel` extra).

A SERVER span per request, named `{gen_ai.operation.name} {model}` as the GenAI semantic
conventions name operations, begun when the request's first byte was read and parented by the
client's W3C `traceparent` (and `tracestate`) when it sent one. Under it, an INTERNAL span for
the cache lookup and a CLIENT span per upstream attempt (each retry and hedge its own), whose
context goes upstream as the attempt's `traceparent`. A failed attempt's span ends with its
outcome; the answer's stays open while it is relayed, and ends with the request's, carrying its
token usage. Every span name and string attribute passes through the configuration's
`Redactor`: a client's model name or request id cannot carry a credential into a trace.

Imported only when `telemetry.tracing` is on (telemetry/tracing.py decides, once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from edgeproxy.dialects.neutral import Usage
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange, Reply
from edgeproxy.operations import CLIENT_PATHS
from edgeproxy.redact import Redactor
from edgeproxy.routing.router import Deployment
from edgeproxy.telemetry.request_metrics import GENAI_OPERATIONS, GENAI_PROVIDERS
from edgeproxy.telemetry.tracing_settings import TracingSettings

Attributes = dict[str, AttributeValue]
_W3C = TraceContextTextMapPropagator()
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ROUTES = {operation: path for path, operation in CLIENT_PATHS.items()}
# A stream the provider accepted, then failed with its own error event before any content.
_STREAM_ERROR_EVENT = "stream_error_event"


class OtelTracer:
    """Spans for every request, sent in batches from the SDK's own thread (never the loop)."""

    __slots__ = ("_deployments", "_provider", "_redactor", "_tracer")

    def __init__(
        self, settings: TracingSettings, redactor: Redactor, exporter: SpanExporter | None = None
    ) -> None:
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
            resource=Resource.create({"service.name": settings.service_name}),
            shutdown_on_exit=False,  # the proxy's shutdown flushes (`close`)
        )
        self._provider.add_span_processor(_processor(settings, exporter))
        self._tracer = self._provider.get_tracer("edgeproxy")
        self._redactor = redactor
        # Bounded: the configured deployments.
        self._deployments: dict[Deployment, tuple[Attributes, Attributes]] = {}

    def begin(self, exchange: Exchange) -> RequestSpans:
        operation = GENAI_OPERATIONS[exchange.operation.label]
        model = self._redactor.text(exchange.model)
        attributes = self.scrubbed(
            {
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": model,
                "http.request.method": "POST",
                "http.route": _ROUTES[exchange.operation],
                "edgeproxy.request_id": exchange.request_id,
                "edgeproxy.stream": exchange.stream,
            }
        )
        waited = time.monotonic() - exchange.started  # since its first byte was read
        span = self._tracer.start_span(
            f"{operation} {model}",
            context=_W3C.extract(exchange.headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=time.time_ns() - round(waited * 1e9),
        )
        return RequestSpans(self, span, operation)

    def start(self, name: str, parent: Context, kind: SpanKind, attributes: Attributes) -> Span:
        return self._tracer.start_span(
            self._redactor.text(name), parent, kind, self.scrubbed(attributes)
        )

    def scrubbed(self, attributes: Attributes) -> Attributes:
        """`attributes` with every secret masked in their string values."""
        text = self._redactor.text
        return {k: text(v) if isinstance(v, str) else v for k, v in attributes.items()}

    def deployment(self, deployment: Deployment) -> tuple[Attributes, Attributes]:
        """Which provider and deployment `deployment` is, and where its attempts go (its host
        and port): worked out once each."""
        found = self._deployments.get(deployment)
        if found is None:
            config = deployment.provider.config
            who: Attributes = {
                "gen_ai.provider.name": GENAI_PROVIDERS.get(config.kind, config.kind),
                "edgeproxy.provider": config.name,
                "edgeproxy.deployment": deployment.name,
            }
            url = urlsplit(config.base_url)
            where: Attributes = {}
            if url.hostname:
                where["server.address"] = url.hostname
                where["server.port"] = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
            found = self._deployments[deployment] = (who, where)
        return found

    async def close(self) -> None:
        await asyncio.to_thread(self._provider.shutdown)


def _processor(settings: TracingSettings, exporter: SpanExporter | None) -> SpanProcessor:
    """Batches to the configured OTLP/HTTP endpoint, in the configured encoding; a given
    exporter gets each span as it ends (tests read them at once)."""
    if exporter is not None:
        return SimpleSpanProcessor(exporter)
    headers = {name: secret.reveal() for name, secret in settings.headers}
    if settings.protocol == "http/json":
        from edgeproxy.telemetry.otlp_json import OtlpJsonExporter

        return BatchSpanProcessor(OtlpJsonExporter(settings.endpoint, headers))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint, headers=headers))


class RequestSpans:
    """One request's SERVER span and the spans under it."""

    __slots__ = ("_answering", "_context", "_operation", "_span", "_tracer")

    def __init__(self, tracer: OtelTracer, span: Span, operation: str) -> None:
        self._tracer = tracer
        self._span = span
        self._context = set_span_in_context(span)
        self._operation = operation
        self._answering: list[AttemptSpan] = []  # answers that were (or may be) relayed

    def cache_lookup(self) -> Callable[[Exchange], None]:
        span = self._tracer.start("cache lookup", self._context, SpanKind.INTERNAL, {})

        def ended(exchange: Exchange) -> None:
            if exchange.cache_status is not None:
                span.set_attribute("edgeproxy.cache.status", exchange.cache_status)
            span.end()

        return ended

    def attempt(self, deployment: Deployment, model: str) -> AttemptSpan:
        attributes: Attributes = {
            "gen_ai.operation.name": self._operation,
            "gen_ai.request.model": model,
            "http.request.method": "POST",
        }
        who, where = self._tracer.deployment(deployment)
        attributes.update(who)
        attributes.update(where)
        name = f"{self._operation} {model}"
        span = self._tracer.start(name, self._context, SpanKind.CLIENT, attributes)
        return AttemptSpan(span, deployment, self._answering)

    def end(self, exchange: Exchange) -> None:
        span = self._span
        status = exchange.status
        usage = exchange.usage
        for attempt in self._answering:
            attempt.end(usage if attempt.deployment is exchange.deployment else None)
        if not span.is_recording():
            return
        attributes: Attributes = {
            "http.response.status_code": status,
            "edgeproxy.attempts": exchange.attempts,
        }
        if exchange.group is not None:
            attributes["edgeproxy.model_group"] = exchange.group.name
        if exchange.cache_status is not None:
            attributes["edgeproxy.cache.status"] = exchange.cache_status
        if exchange.deployment is not None:
            attributes.update(self._tracer.deployment(exchange.deployment)[0])
        if usage is not None:
            attributes.update(_usage(usage))
        if status >= 500:  # a client's mistake (4xx) is no failure of the proxy's
            attributes["error.type"] = str(status)
            span.set_status(StatusCode.ERROR)
        span.set_attributes(self._tracer.scrubbed(attributes))
        span.end()


class AttemptSpan:
    """One upstream attempt's CLIENT span, and its context as W3C headers for the provider."""

    __slots__ = ("_answering", "_span", "deployment", "headers")

    def __init__(self, span: Span, deployment: Deployment, answering: list[AttemptSpan]) -> None:
        self._span = span
        self.deployment = deployment
        self._answering = answering
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, set_span_in_context(span))
        self.headers: Mapping[str, str] = carrier

    def answered(self, reply: Reply | None, success: bool) -> None:
        span = self._span
        error = None
        if isinstance(reply, ProxyError):  # no HTTP answer: unreachable, timed out, broken
            error = reply.code
        elif reply is not None:
            span.set_attribute("http.response.status_code", reply.status)
            if reply.status >= 400:
                error = str(reply.status)
            elif not success:
                error = _STREAM_ERROR_EVENT
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(StatusCode.ERROR)
        if success:
            self._answering.append(self)
        else:
            span.end()

    def broke(self, error: BaseException) -> None:
        self._span.set_attribute("error.type", type(error).__name__)
        self._span.set_status(StatusCode.ERROR)
        self._span.end()

    def end(self, usage: Usage | None) -> None:
        """The request is over: the answer this attempt brought has been relayed (`usage`:
        its tokens), or was let go for another attempt's (None)."""
        if usage is not None:
            self._span.set_attributes(_usage(usage))
        self._span.end()


def _usage(usage: Usage) -> Attributes:
    return {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
