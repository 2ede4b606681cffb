"""One structured line per request, written only when `server.access_log` is on."""

from __future__ import annotations

import logging

from edgeproxy.exchange import Exchange

log = logging.getLogger("edgeproxy.access")


class AccessLog:
    """Writes what a request did: never headers or bodies, so never a credential or prompt."""

    __slots__ = ()

    def record(self, exchange: Exchange, now: float) -> None:
        deployment = exchange.deployment
        usage = exchange.usage
        log.info(
            "request",
            extra={
                "request_id": exchange.request_id,
                "endpoint": exchange.operation.label,
                "model": exchange.model,
                "provider": deployment.provider.name if deployment else None,
                "deployment": deployment.name if deployment else None,
                "upstream_model": exchange.upstream_model if deployment else None,
                "attempts": exchange.attempts,
                "stream": exchange.stream,
                "status": exchange.status,
                "duration_ms": round((now - exchange.started) * 1000, 2),
                "input_tokens": usage.input_tokens if usage else None,
                "output_tokens": usage.output_tokens if usage else None,
            },
        )
