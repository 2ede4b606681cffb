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
from edgeproxy.config_spec import (
    BOOLEAN,
    FRACTION,
    NONEMPTY_TEXT,
    STRING_MAP,
    Kind,
    choice,
    read,
    setting,
    url,
)
from edgeproxy.extras import OTEL, OTEL_PACKAGES, missing

PROTOCOLS = ("http/protobuf", "http/json")  # as OTEL_EXPORTER_OTLP_PROTOCOL names them


def secret_headers(r: Reader, path: str, value: Any) -> tuple[tuple[str, Secret], ...]:
    """Headers whose values are credentials: names checked and lower-cased, values `Secret`."""
    headers = r.string_map(path, value)
    for name in headers:
        if not HEADER_NAME(name):
            r.fail(path, f"{name!r} is not an HTTP header name")
    return tuple((name.lower(), Secret(value)) for name, value in headers.items())


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OTLP over HTTP: its exporter needs `requests` and protobuf, where the gRPC one needs
    grpcio, several times their size. `http/json` encodes spans in less than half the CPU
    (telemetry/otlp_json.py) for receivers that take JSON, as the Collector does."""

    enabled: bool = setting(False, BOOLEAN, "Export spans (pip install 'edgeproxy[otel]').")
    endpoint: str = setting(
        "http://localhost:4318/v1/traces", url(), "The collector's OTLP/HTTP traces endpoint."
    )
    service_name: str = setting("edgeproxy", NONEMPTY_TEXT, "service.name of the spans.")
    sample_ratio: float = setting(
        1.0, FRACTION, "Of the traces the proxy starts; a client's sampling choice is kept."
    )
    protocol: str = setting(
        "http/protobuf",
        choice(PROTOCOLS),
        "The OTLP/HTTP encoding; http/json costs less than half the CPU (otlp_json.py).",
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
