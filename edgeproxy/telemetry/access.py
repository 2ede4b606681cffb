"""One structured line per request, written only when `server.access_log` is on.

Built from the request's record after its answer (never per chunk), so it holds what the
proxy did and never a header, a prompt or an answer, hence never a credential. A call the
proxy forwards without reading it (a stored Responses answer, a path passed through) has a
line of its own kind (`forwarded`): who, what, where to, and how it ended.

With the proxy's own log set up (telemetry/logging.py `configure`), lines go straight to its
handler, which writes them in batches, their secrets masked a batch at a time; the records
themselves come in batches (telemetry/recorder.py): about 5-6 µs a line in the proxy under
load, where a logging record, its formatting and its write cost about 20 µs. Otherwise (the
proxy used as a library, or a test capturing records) each line is an ordinary record of the
`edgeproxy.access` logger.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from edgeproxy.telemetry.logging import LineHandler, line_handler
from edgeproxy.telemetry.record import Forwarded, RequestRecord

NAME = "edgeproxy.access"
log = logging.getLogger(NAME)


class AccessLog:
    __slots__ = ("_handler",)

    def __init__(self) -> None:
        self._handler: LineHandler | None = (
            line_handler() if log.isEnabledFor(logging.INFO) else None
        )

    def __call__(self, record: RequestRecord) -> None:
        cache_time, ttfb = record.cache_time, record.upstream_ttfb
        duration, upstream = record.duration, record.upstream_wait
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
            "queue_ms": round(record.queued * 1000, 3),
            "cache_ms": None if cache_time is None else round(cache_time * 1000, 3),
            "upstream_ttfb_ms": None if ttfb is None else round(ttfb * 1000, 3),
            "upstream_ms": round(upstream * 1000, 3),
            "overhead_ms": round(max(0.0, duration - upstream) * 1000, 3),
            "duration_ms": round(duration * 1000, 3),
        }
        self._write("request", fields, record.wall)

    def forwarded(self, call: Forwarded) -> None:
        fields = {
            "request_id": call.request_id,
            "key_id": call.key_id,
            "team": call.team,
            "endpoint": call.endpoint,
            "method": call.method,
            "path": call.path[:256],
            "provider": call.provider,
            "status": call.status,
            "duration_ms": round(call.duration * 1000, 3),
        }
        self._write("forwarded", fields, time.time())

    def _write(self, message: str, fields: dict[str, Any], wall: float) -> None:
        if self._handler is not None:
            self._handler.add("info", NAME, message, fields, wall)
        else:
            log.info(message, extra=fields)
