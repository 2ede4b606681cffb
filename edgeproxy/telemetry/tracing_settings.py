"""`telemetry.tracing`: where the proxy's spans go (telemetry/request_spans.py), over OTLP/HTTP.

    telemetry:
      tracing:
        enabled: true
        endpoint: http://otel-collector:4318/v1/traces
        service_name: edgeproxy
        sample_ratio: 0.1              # of traces the proxy starts; a client's choice is kept
        protocol: http/json            # or http/protobuf (the default; every receiver takes it)
        headers:                       # sent to the collector; secrets (masked everywhere)
          authorization: Bearer ${OTLP_TOKEN}

No extra is needed: the proxy encodes OTLP itself (telemetry/otlp_protobuf.py, otlp_json.py).
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
    setting,
    url,
)

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
    """OTLP over HTTP, encoded by the proxy itself: protobuf, which every receiver takes, or
    JSON, which the Collector, Jaeger and Tempo take too."""

    enabled: bool = setting(False, BOOLEAN, "Export spans over OTLP/HTTP.")
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
        "The OTLP/HTTP encoding: protobuf or JSON.",
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
