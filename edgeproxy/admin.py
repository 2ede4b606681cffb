"""The admin listener: liveness and readiness probes (later metrics and guarded actions)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from aiohttp import web


def build_admin_app(is_ready: Callable[[], bool]) -> web.Application:
    """`/healthz` answers while the process runs; `/readyz` once pools are open, until draining."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"status": "ok"}), content_type="application/json")

    async def readyz(_: web.Request) -> web.Response:
        ready = is_ready()
        return web.Response(
            status=200 if ready else 503,
            body=orjson.dumps({"status": "ready" if ready else "not ready"}),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
