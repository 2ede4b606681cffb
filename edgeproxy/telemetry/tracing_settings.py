"""`telemetry.tracing`: where OpenTelemetry spans go (telemetry/otel.py, the `otel` extra).

    telemetry:
      tracing:
        enabled: true
        endpoint: http://otel-collector:4318/v1/traces
        service_name: edgeproxy
        sample_ratio: 0.1              # of traces the proxy starts; a client's choice is kept
        protocol: http/json            # or http/protobuf (the default; every receiver takes it)
        headers:                       # sent to the collector; secrets (masked everywhere)
          authorization: Bearer ${OTLP_TOKEN}

Asking for tracing without the extra installed is a configuration error that says how to
install it, found at load rather than at the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeproxy.config_reader import HEADER_NAME, Reader, Secret
from edgeproxy.extras import OTEL, OTEL_PACKAGES, missing

PROTOCOLS = ("http/protobuf", "http/json")  # as OTEL_EXPORTER_OTLP_PROTOCOL names them


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OTLP over HTTP: its exporter needs `requests` and protobuf, where the gRPC one needs
    grpcio, several times their size. `http/json` encodes spans in less than half the CPU
    (telemetry/otlp_json.py) for receivers that take JSON, as the Collector does."""

    enabled: bool = False
    endpoint: str = "http://localhost:4318/v1/traces"
    service_name: str = "edgeproxy"
    sample_ratio: float = 1.0
    protocol: str = "http/protobuf"
    headers: tuple[tuple[str, Secret], ...] = ()  # names in lower case


def parse_tracing(r: Reader, raw: Any, path: str) -> TracingSettings:
    s = r.section(
        raw, path, ("enabled", "endpoint", "service_name", "sample_ratio", "protocol", "headers")
    )
    d = TracingSettings()
    enabled = r.get(s, path, "enabled", r.boolean, d.enabled)
    absent = missing(OTEL_PACKAGES) if enabled else []
    if absent:
        r.fail(
            f"{path}.enabled",
            f"needs the {OTEL} extra (pip install 'edgeproxy[{OTEL}]'); "
            f"missing: {', '.join(absent)}",
        )
    headers = r.get(s, path, "headers", r.string_map, {})
    for name in headers:
        if not HEADER_NAME(name):
            r.fail(f"{path}.headers", f"{name!r} is not an HTTP header name")
    return TracingSettings(
        enabled=enabled,
        endpoint=r.get(s, path, "endpoint", r.url, d.endpoint),
        service_name=r.get(s, path, "service_name", r.nonempty_text, d.service_name),
        sample_ratio=r.get(s, path, "sample_ratio", r.fraction, d.sample_ratio),
        protocol=r.get(s, path, "protocol", r.choice(PROTOCOLS), d.protocol),
        headers=tuple((name.lower(), Secret(value)) for name, value in headers.items()),
    )
