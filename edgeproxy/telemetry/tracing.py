"""Tracing's seam: decided once at load, so a proxy without it asks nothing of it per request.

With `telemetry.tracing` off there is no tracer at all: the handlers hold None and the cache
stage is not wrapped, and OpenTelemetry is never imported. With it on, `build_tracer` imports
the OpenTelemetry implementation (telemetry/otel.py, the `otel` extra; the configuration was
refused at load if the extra is missing), and each request carries its spans on the exchange
(`Exchange.trace`): handlers begin and end them, dispatch gives each upstream attempt its own,
and the cache stage is wrapped here, so the stages' own code holds no tracing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from edgeproxy.exchange import Exchange, Reply, Stage, Trace
from edgeproxy.redact import Redactor
from edgeproxy.telemetry.tracing_settings import TracingSettings

if TYPE_CHECKING:  # the `otel` extra: imported only when tracing is configured
    from opentelemetry.sdk.trace.export import SpanExporter


class Tracer(Protocol):
    def begin(self, exchange: Exchange) -> Trace:
        """The request's spans, its own begun at its first byte read, under the client's
        W3C trace context when it sent one."""

    async def close(self) -> None:
        """Send the spans still held, then stop exporting (at shutdown)."""


def build_tracer(
    settings: TracingSettings, redactor: Redactor, exporter: SpanExporter | None = None
) -> Tracer | None:
    """The tracer `settings` ask for, None when tracing is off. Every name and string attribute
    of a span passes through `redactor`. `exporter`: where spans go instead of the configured
    OTLP endpoint (tests keep them in memory)."""
    if not settings.enabled:
        return None
    from edgeproxy.telemetry.otel import OtelTracer

    return OtelTracer(settings, redactor, exporter)


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
