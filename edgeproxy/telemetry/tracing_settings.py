"""`telemetry.tracing`: where the proxy's spans go (telemetry/request_spans.py), over OTLP/HTTP.

    telemetry:
      tracing:
        enabled: true
        endpoint: http://otel-collector:4318/v1/traces
        service_name: edgeproxy        # default: $OTEL_SERVICE_NAME, else edgeproxy
        resource_attributes:           # over those of $OTEL_RESOURCE_ATTRIBUTES
          deployment.environment.name: prod
        sample_ratio: 0.1              # of traces the proxy starts; a client's choice is kept
        protocol: http/json            # or http/protobuf (the default; every receiver takes it)
        headers:                       # sent to the collector; secrets (masked everywhere)
          authorization: Bearer ${OTLP_TOKEN}

No extra is needed: the proxy encodes OTLP itself (telemetry/otlp_protobuf.py, otlp_json.py).
The spans' resource is read as OpenTelemetry's SDKs read it: `OTEL_RESOURCE_ATTRIBUTES` and
`OTEL_SERVICE_NAME` from the environment (as Kubernetes' downward API sets them), with what the
file says on top.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

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

PROTOCOLS = ("http/protobuf", "http/json")  # as OTEL_EXPORTER_OTLP_PROTOCOL names them
DEFAULT_SERVICE = "edgeproxy"


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
    service_name: str = setting(
        "",
        NONEMPTY_TEXT,
        "service.name of the spans.",
        example=DEFAULT_SERVICE,
        shown=f"$OTEL_SERVICE_NAME, else {DEFAULT_SERVICE}",
    )
    resource_attributes: tuple[tuple[str, str], ...] = setting(
        (),
        Kind(
            lambda r, path, value: tuple(r.string_map(path, value).items()),
            STRING_MAP.json,
            "mapping of strings",
            {"deployment.environment.name": "prod"},
            lambda value: None,
        ),
        "The spans' resource, over $OTEL_RESOURCE_ATTRIBUTES.",
        shown="$OTEL_RESOURCE_ATTRIBUTES",
    )
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


def parse_tracing(r: Reader, raw: Any, path: str) -> TracingSettings:
    """The section, its resource completed from the environment as OpenTelemetry's SDKs do:
    `OTEL_RESOURCE_ATTRIBUTES` under the file's `resource_attributes`, and `service.name` from
    the file, else `OTEL_SERVICE_NAME`, else that variable's attributes, else edgeproxy."""
    settings = read(r, TracingSettings, raw, path)
    if not settings.enabled:
        return settings
    inherited = _environment_resource(r)
    given = dict(settings.resource_attributes)
    service = (
        settings.service_name
        or given.pop("service.name", "")
        or r.env.get("OTEL_SERVICE_NAME", "").strip()
        or inherited.get("service.name", "")
        or DEFAULT_SERVICE
    )
    resource = {k: v for k, v in (inherited | given).items() if k != "service.name"}
    return replace(settings, service_name=service, resource_attributes=tuple(resource.items()))


def _environment_resource(r: Reader) -> dict[str, str]:
    """`OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs split by commas, values percent-encoded
    (W3C Baggage's format, as the OpenTelemetry specification reads it)."""
    attributes: dict[str, str] = {}
    for pair in r.env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        if not pair.strip():
            continue
        key, equals, value = pair.strip().partition("=")
        try:
            decoded = unquote(value.strip(), errors="strict")
        except UnicodeDecodeError:
            decoded = ""
        if not equals or not key.strip() or not decoded:
            r.fail("OTEL_RESOURCE_ATTRIBUTES", f"expected key=value pairs, got {pair!r}")
            return {}
        attributes[key.strip()] = decoded
    return attributes
