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
      tracing:                         # OpenTelemetry spans over OTLP/HTTP (the `otel` extra)
        enabled: true
        endpoint: http://otel-collector:4318/v1/traces
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeproxy.config_reader import Reader, show
from edgeproxy.telemetry.event_settings import EventsSettings, parse_events
from edgeproxy.telemetry.feedback_settings import FeedbackSettings, parse_feedback
from edgeproxy.telemetry.incident_settings import IncidentSettings, parse_incidents
from edgeproxy.telemetry.tracing_settings import TracingSettings, parse_tracing


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    key_labels: tuple[str, ...] = ()
    # Where the worker processes of one pod share their request metrics (None: one process).
    shared_dir: str | None = None


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    events: EventsSettings | None = None  # telemetry events (docs/events.md)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)  # docs/feedback.md
    incidents: IncidentSettings = field(default_factory=IncidentSettings)  # docs/incidents.md
    tracing: TracingSettings = field(default_factory=TracingSettings)  # docs/observability.md


SECTION = "telemetry"
MAX_KEY_LABELS = 1000  # each is a series of every per-key metric


def parse_telemetry(r: Reader, top: Mapping[str, Any]) -> TelemetryConfig:
    s = r.section(
        top.get(SECTION), SECTION, ("metrics", "events", "feedback", "incidents", "tracing")
    )
    return TelemetryConfig(
        metrics=_metrics(r, s.get("metrics"), f"{SECTION}.metrics"),
        events=parse_events(r, s.get("events"), f"{SECTION}.events"),
        feedback=parse_feedback(r, s.get("feedback"), f"{SECTION}.feedback"),
        incidents=parse_incidents(r, s.get("incidents"), f"{SECTION}.incidents"),
        tracing=parse_tracing(r, s.get("tracing"), f"{SECTION}.tracing"),
    )


def _metrics(r: Reader, raw: Any, path: str) -> MetricsSettings:
    s = r.section(raw, path, ("key_labels", "shared_dir"))
    keys = r.get(s, path, "key_labels", r.names, ())
    shared = r.get(s, path, "shared_dir", r.text, "") or None
    if shared is not None and not Path(shared).is_dir():
        r.fail(f"{path}.shared_dir", f"no directory at {show(shared)}")
    if len(keys) > MAX_KEY_LABELS:
        r.fail(f"{path}.key_labels", f"at most {MAX_KEY_LABELS} keys, got {show(len(keys))}")
    return MetricsSettings(key_labels=keys, shared_dir=shared)
