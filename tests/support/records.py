"""Request records as the telemetry makes them, with only what a test cares about given."""

from __future__ import annotations

import dataclasses
from typing import Any

from edgeproxy.telemetry.record import RequestRecord

# A plain answered chat request; tests change only the fields they care about (`record`).
RECORD = RequestRecord(
    request_id="r",
    route="chat",
    model="g",
    group="g",
    provider="p",
    deployment="a",
    status=200,
    cache=None,
    attempts=1,
    fallback=False,
    stream=False,
    key_id=None,
    team=None,
    input_tokens=10,
    output_tokens=5,
    cached_tokens=0,
    cost_usd=0.0,
    saved_usd=0.0,
    started=0.0,
    wall=1_700_000_000.0,
    duration=0.5,
    queued=0.0,
    cache_time=None,
    upstream_wait=0.2,
    upstream_ttfb=0.2,
)


def record(**changes: Any) -> RequestRecord:
    return dataclasses.replace(RECORD, **changes)


def answered(
    request_id: str,
    deployment: str | None = "a",
    *,
    group: str = "g",
    status: int = 200,
    cost_usd: float = 0.0,
    ttfb: float | None = 0.2,
    key_id: str | None = None,
) -> RequestRecord:
    """One request's record: `deployment` None is a cache answer."""
    return record(
        request_id=request_id,
        model=group,
        group=group,
        provider=None if deployment is None else "p",
        deployment=deployment,
        status=status,
        cache=None if deployment is not None else "hit-l1",
        attempts=0 if deployment is None else 1,
        key_id=key_id,
        cost_usd=cost_usd,
        upstream_wait=0.0 if ttfb is None else ttfb,
        upstream_ttfb=ttfb,
    )
