"""One structured line per request, written only when `server.access_log` is on.

Built from the request's record after its answer (never per chunk), so it holds what the
proxy did and never a header, a prompt or an answer, hence never a credential.

With the proxy's own log set up (telemetry/logging.py `configure`), lines go straight to its
handler, which writes them in batches: about 6 µs a line, where a logging record, its
formatting and its write cost about 20 µs. Otherwise (the proxy used as a library, or a test
capturing records) each line is an ordinary record of the `edgeproxy.access` logger.
"""

from __future__ import annotations

import logging

from edgeproxy.telemetry.logging import LineHandler, line_handler
from edgeproxy.telemetry.record import RequestRecord

NAME = "edgeproxy.access"
log = logging.getLogger(NAME)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class AccessLog:
    __slots__ = ("_handler",)

    def __init__(self) -> None:
        self._handler: LineHandler | None = (
            line_handler() if log.isEnabledFor(logging.INFO) else None
        )

    def __call__(self, record: RequestRecord) -> None:
        fields = {
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
        }
        if self._handler is not None:
            self._handler.add("info", NAME, "request", fields)
        else:
            log.info("request", extra=fields)
