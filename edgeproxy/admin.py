"""The admin listener: liveness and readiness probes, and what routing knows right now."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from edgeproxy.config import Secret

Handler = Callable[[web.Request], Any]


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def _authorized(request: web.Request, token: Secret | None) -> bool:
    """With `admin.token` set, admin endpoints other than the probes need it as a bearer token."""
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.reveal().encode()
    )


def build_admin_app(
    is_ready: Callable[[], bool],
    routing_status: Callable[[], dict[str, Any]],
    token: Secret | None,
) -> web.Application:
    """`/healthz` answers while the process runs; `/readyz` once pools are open, until draining;
    `/admin/routing` lists groups and deployments with breaker state, latency, success rate,
    in-flight and local ceilings."""

    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready = is_ready()
        return _json({"status": "ready" if ready else "not ready"}, 200 if ready else 503)

    async def routing(request: web.Request) -> web.Response:
        if not _authorized(request, token):
            return _json({"error": "admin token required (Authorization: Bearer ...)"}, 401)
        return _json(routing_status())

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/admin/routing", routing)
    return app
