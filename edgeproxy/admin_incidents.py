"""`GET /admin/incidents` on the admin listener: the open incidents and the recently resolved
ones, newest first, as `{"open": [...], "recent": [...]}` (edgeproxy.telemetry.incidents).
Who may read it is admin.py's middleware's decision, as for every admin route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web


def incident_routes(app: web.Application, listing: Callable[[], dict[str, Any] | None]) -> None:
    """`listing` is asked per request, so the route follows a configuration reload; None: a
    reload switched incident detection off (404)."""

    async def incidents(_: web.Request) -> web.Response:
        found = listing()
        if found is None:
            found, status = {"error": "incident detection is off (telemetry.incidents)"}, 404
        else:
            status = 200
        return web.Response(
            body=orjson.dumps(found), status=status, content_type="application/json"
        )

    app.router.add_get("/admin/incidents", incidents)
