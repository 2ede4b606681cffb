"""`telemetry.tracing`: where OpenTelemetry spans go (telemetry/otel.py, the `otel` extra).

    telemetry:
      tracing:
        enabled: true
        endpoint: http://otel-collector:4318/v1/traces
        service_name: edgeproxy
        sample_ratio: 0.1              # of traces the proxy starts; a client's choice is kept
        headers:                       # sent to the collector; secrets (masked everywhere)
          authorization: Bearer ${OTLP_TOKEN}

Asking for tracing without the extra installed is a configuration error that says how to
install it, found at load rather than at the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeproxy.config_reader import HEADER_NAME, Reader, Secret
from edgeproxy.config_spec import (
    BOOLEAN,
    FRACTION,
    NONEMPTY_TEXT,
    STRING_MAP,
    Kind,
    read,
    setting,
    url,
)
from edgeproxy.extras import OTEL, OTEL_PACKAGES, missing


def secret_headers(r: Reader, path: str, value: Any) -> tuple[tuple[str, Secret], ...]:
    """Headers whose values are credentials: names checked and lower-cased, values `Secret`."""
    headers = r.string_map(path, value)
    for name in headers:
        if not HEADER_NAME(name):
            r.fail(path, f"{name!r} is not an HTTP header name")
    return tuple((name.lower(), Secret(value)) for name, value in headers.items())


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OTLP over HTTP (protobuf): its exporter needs `requests` and protobuf, where the gRPC
    one needs grpcio, several times their size."""

    enabled: bool = setting(False, BOOLEAN, "Export spans (pip install 'edgeproxy[otel]').")
    endpoint: str = setting(
        "http://localhost:4318/v1/traces", url(), "The collector's OTLP/HTTP traces endpoint."
    )
    service_name: str = setting("edgeproxy", NONEMPTY_TEXT, "service.name of the spans.")
    sample_ratio: float = setting(
        1.0, FRACTION, "Of the traces the proxy starts; a client's sampling choice is kept."
    )
    headers: tuple[tuple[str, Secret], ...] = setting(  # names in lower case
        (),
        Kind(
            secret_headers,
            STRING_MAP.json,
            "mapping of strings",
            {"authorization": "Bearer ${OTLP_TOKEN}"},
            lambda value: None,
        ),
        "Sent to the collector; secrets, masked everywhere.",
    )


def parse_tracing(r: Reader, raw: Any, path: str) -> TracingSettings:
    settings = read(r, TracingSettings, raw, path)
    absent = missing(OTEL_PACKAGES) if settings.enabled else []
    if absent:
        r.fail(
            f"{path}.enabled",
            f"needs the {OTEL} extra (pip install 'edgeproxy[{OTEL}]'); "
            f"missing: {', '.join(absent)}",
        )
    return settings
