"""Tracing's seam: decided once at load, so a proxy without it asks nothing of it per request.

With `telemetry.tracing` off there is no tracer at all: the handlers hold None, the cache stage
is not wrapped, and no tracing module is imported. With it on, `build_tracer` imports the
proxy's own tracer (telemetry/request_spans.py, its spans exported by telemetry/span_export.py;
no OpenTelemetry package is needed), and each request carries its spans on the exchange
(`Exchange.trace`): handlers begin and end them, dispatch gives each upstream attempt its own,
and the cache stage is wrapped here, so the stages' own code holds no tracing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from edgeproxy.exchange import Exchange, Reply, Stage, Trace
from edgeproxy.redact import Redactor
from edgeproxy.telemetry.tracing_settings import TracingSettings

if TYPE_CHECKING:  # imported only when tracing is configured
    from edgeproxy.telemetry.spans import SpanSink


class Tracer(Protocol):
    def begin(self, exchange: Exchange) -> Trace:
        """The request's spans, its own begun at its first byte read, under the client's
        W3C trace context when it sent one."""

    async def close(self) -> None:
        """Send the spans still held, then stop exporting (at shutdown)."""


def build_tracer(
    settings: TracingSettings, redactor: Redactor, sink: SpanSink | None = None
) -> Tracer | None:
    """The tracer `settings` ask for, None when tracing is off. Every name and string attribute
    of a span passes through `redactor`. `sink`: where ended spans go instead of the
    configured OTLP endpoint (tests keep them in memory)."""
    if not settings.enabled:
        return None
    from edgeproxy.telemetry.request_spans import SpanTracer
    from edgeproxy.telemetry.span_export import exporter_for

    sink = sink if sink is not None else exporter_for(settings)
    return SpanTracer(settings.sample_ratio, redactor, sink)


class TracedLookup:
    """The cache stage inside a child span of the request's (built only with tracing on)."""

    __slots__ = ("_stage",)

    def __init__(self, stage: Stage) -> None:
        self._stage = stage

    async def __call__(self, exchange: Exchange) -> Reply | None:
        trace = exchange.trace
        assert trace is not None, "with tracing on, the handlers begin every request's trace"
        ended = trace.cache_lookup()
        try:
            return await self._stage(exchange)
        finally:
            ended(exchange)
