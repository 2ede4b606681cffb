"""The `telemetry` section: what the request metrics label by key, the telemetry events,
feedback, tracing, and (as it is built) incident detection.

    telemetry:
      metrics:
        key_labels: [storefront-web]   # key ids that get their own series; the rest: other
      events:                          # telemetry events, batched in the background
        webhook: {url: https://observatory.example/v1/events}
        file: /var/log/edgeproxy/events.jsonl
      feedback: {enabled: true}        # POST /v1/feedback, /admin/recommendations
      incidents:                       # on by default; /admin/incidents
        webhook: {url: https://hooks.slack.example/T000/B000, format: slack}
      tracing:                         # OpenTelemetry spans over OTLP/HTTP
        enabled: true
        endpoint: http://otel-collector:4318/v1/traces
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeproxy.config_reader import Reader, show
from edgeproxy.config_spec import NAMES, TEXT, Kind, optional_section, read, section, setting
from edgeproxy.telemetry.event_settings import EventsSettings, parse_events
from edgeproxy.telemetry.feedback_settings import FeedbackSettings, parse_feedback
from edgeproxy.telemetry.incident_settings import IncidentSettings, parse_incidents
from edgeproxy.telemetry.tracing_settings import TracingSettings, parse_tracing

SECTION = "telemetry"
MAX_KEY_LABELS = 1000  # each is a series of every per-key metric


def _metrics(r: Reader, raw: Any, path: str) -> MetricsSettings:
    settings = read(r, MetricsSettings, raw, path)
    if settings.shared_dir is not None and not Path(settings.shared_dir).is_dir():
        r.fail(f"{path}.shared_dir", f"no directory at {show(settings.shared_dir)}")
    if len(settings.key_labels) > MAX_KEY_LABELS:
        r.fail(
            f"{path}.key_labels",
            f"at most {MAX_KEY_LABELS} keys, got {show(len(settings.key_labels))}",
        )
    return settings


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    key_labels: tuple[str, ...] = setting(
        (),
        NAMES,
        "Virtual key ids that get series of their own; the others share `other`.",
        example=["storefront-web"],
    )
    # Where the worker processes of one pod share their request metrics (None: one process).
    shared_dir: str | None = setting(
        None,
        Kind(
            lambda r, path, value: r.text(path, value) or None,
            TEXT.json,
            "directory path",
            "/tmp/edgeproxy-metrics",
        ),
        "Where the worker processes of one pod share their request metrics.",
        example="/tmp/edgeproxy-metrics",
    )


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    metrics: MetricsSettings = section(
        MetricsSettings, "What the request metrics label by key.", parse=_metrics
    )
    events: EventsSettings | None = optional_section(  # telemetry events (docs/events.md)
        EventsSettings,
        "Telemetry events for an observability platform (docs/events.md).",
        parse=parse_events,
    )
    feedback: FeedbackSettings = section(  # docs/feedback.md
        FeedbackSettings, "The apps' quality scores (docs/feedback.md).", parse=parse_feedback
    )
    incidents: IncidentSettings = section(  # docs/incidents.md
        IncidentSettings, "Incident detection (docs/incidents.md).", parse=parse_incidents
    )
    tracing: TracingSettings = section(  # docs/observability.md
        TracingSettings, "OpenTelemetry spans (docs/observability.md).", parse=parse_tracing
    )


def parse_telemetry(r: Reader, top: Mapping[str, Any]) -> TelemetryConfig:
    return read(r, TelemetryConfig, top.get(SECTION), SECTION)
