"""Request records as the telemetry makes them, with only what a test cares about given."""

from __future__ import annotations

from edgeproxy.telemetry.record import RequestRecord


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
    return RequestRecord(
        request_id=request_id,
        route="chat",
        model=group,
        group=group,
        provider=None if deployment is None else "p",
        deployment=deployment,
        status=status,
        cache=None if deployment is not None else "hit-l1",
        attempts=0 if deployment is None else 1,
        fallback=False,
        stream=False,
        key_id=key_id,
        team=None,
        input_tokens=10,
        output_tokens=5,
        cached_tokens=0,
        cost_usd=cost_usd,
        saved_usd=0.0,
        started=0.0,
        duration=0.5,
        queued=0.0,
        cache_time=None,
        upstream_wait=0.0 if ttfb is None else ttfb,
        upstream_ttfb=ttfb,
    )
