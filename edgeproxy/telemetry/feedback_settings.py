"""The `telemetry.feedback` settings, apart from the feedback itself so that the
configuration reads them without importing routing (docs/feedback.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeproxy.config_reader import Reader
from edgeproxy.config_spec import (
    BOOLEAN,
    COUNT,
    FRACTION,
    NONNEGATIVE_NUMBER,
    POSITIVE_DURATION,
    read,
    setting,
)


@dataclass(frozen=True, slots=True)
class FeedbackSettings:
    """`telemetry.feedback`: how long and how many served ids are remembered, how many scores
    make a deployment's quality, and the bounds of the routing recommendations."""

    enabled: bool = setting(False, BOOLEAN, "Serve POST /v1/feedback and /admin/recommendations.")
    window: float = setting(
        3600.0,
        POSITIVE_DURATION,
        "How long a served answer may be rated; also the window of the traffic the "
        "recommendations weigh.",
    )
    max_ids: int = setting(
        100_000, COUNT, "Served answers remembered at most; past it the oldest is forgotten first."
    )
    min_count: int = setting(
        20, COUNT, "Scores before a deployment's quality is used (routing and recommendations)."
    )
    quality_samples: int = setting(
        500, COUNT, "A deployment's quality is the mean of its latest this many scores."
    )
    quality_tolerance: float = setting(
        0.02, FRACTION, "A recommended deployment's quality is at least the best one's minus this."
    )
    latency_tolerance: float = setting(
        0.25,
        NONNEGATIVE_NUMBER,
        "Its median time to first byte is at most the best one's times 1 + this.",
    )


def parse_feedback(r: Reader, raw: Any, path: str) -> FeedbackSettings:
    settings = read(r, FeedbackSettings, raw, path)
    if settings.min_count > settings.quality_samples:
        r.fail(f"{path}.min_count", "must not exceed quality_samples (the scores averaged)")
    return settings
