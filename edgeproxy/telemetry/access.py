"""One structured line per request, written only when `server.access_log` is on.

Built from the request's record after its answer (never per chunk), so it holds what the
proxy did and never a header, a prompt or an answer, hence never a credential.
"""

from __future__ import annotations

import logging

from edgeproxy.telemetry.record import RequestRecord

log = logging.getLogger("edgeproxy.access")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class AccessLog:
    __slots__ = ()

    def __call__(self, record: RequestRecord) -> None:
        log.info(
            "request",
            extra={
                "request_id": record.request_id,
                "key_id": record.key_id,
                "team": record.team,
                "endpoint": record.route,
                "model": record.model,
                "model_group": record.group,
                "provider": record.provider,
                "deployment": record.deployment,
                "status": record.status,
                "cache": record.cache,
                "attempts": record.attempts,
                "stream": record.stream,
                "input_tokens": record.input_tokens,
                "output_tokens": record.output_tokens,
                "cached_tokens": record.cached_tokens,
                "cost_usd": round(record.cost_usd, 9),
                "saved_usd": round(record.saved_usd, 9),
                "queue_ms": _ms(record.queued),
                "cache_ms": _ms(record.cache_time),
                "upstream_ttfb_ms": _ms(record.upstream_ttfb),
                "upstream_ms": _ms(record.upstream_wait),
                "overhead_ms": _ms(record.overhead),
                "duration_ms": _ms(record.duration),
            },
        )
