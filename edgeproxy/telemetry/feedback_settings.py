"""The `telemetry.feedback` settings, apart from the feedback itself so that the
configuration reads them without importing routing (docs/feedback.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeproxy.config_reader import Reader


@dataclass(frozen=True, slots=True)
class FeedbackSettings:
    """`telemetry.feedback`: how long and how many served ids are remembered, how many scores
    make a deployment's quality, and the bounds of the routing recommendations."""

    enabled: bool = False
    window: float = 3600.0
    max_ids: int = 100_000
    min_count: int = 20
    quality_samples: int = 500
    quality_tolerance: float = 0.02
    latency_tolerance: float = 0.25


def parse_feedback(r: Reader, raw: Any, path: str) -> FeedbackSettings:
    s = r.section(raw, path, tuple(FeedbackSettings.__dataclass_fields__))
    d = FeedbackSettings()
    settings = FeedbackSettings(
        enabled=r.get(s, path, "enabled", r.boolean, d.enabled),
        window=r.get(s, path, "window", r.positive_duration, d.window),
        max_ids=r.get(s, path, "max_ids", r.count, d.max_ids),
        min_count=r.get(s, path, "min_count", r.count, d.min_count),
        quality_samples=r.get(s, path, "quality_samples", r.count, d.quality_samples),
        quality_tolerance=r.get(s, path, "quality_tolerance", r.fraction, d.quality_tolerance),
        latency_tolerance=r.get(
            s, path, "latency_tolerance", r.nonnegative_number, d.latency_tolerance
        ),
    )
    if settings.min_count > settings.quality_samples:
        r.fail(f"{path}.min_count", "must not exceed quality_samples (the scores averaged)")
    return settings
