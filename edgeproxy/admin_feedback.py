"""`GET /admin/recommendations` on the admin listener: per model group, the cheapest deployment
whose quality and latency stay within bounds of the best (edgeproxy/telemetry/recommend.py).

The query may override the configured bounds for one look: `quality_tolerance` and
`latency_tolerance` (numbers >= 0), `min_count` (an integer >= 1); a value that is not one is
a 400 naming it. Like `/admin/routing` it is a read: open without `admin.token`, behind it
with one (edgeproxy.admin's guard).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from edgeproxy.telemetry.recommend import Bounds, Recommender


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def _tolerance(query: Mapping[str, str], name: str, configured: float) -> float | None:
    """The query's `name` (the configured value when absent), None when not a number >= 0."""
    given = query.get(name)
    if given is None:
        return configured
    try:
        value = float(given)
    except ValueError:
        return None
    return value if 0 <= value < math.inf else None


def asked_bounds(query: Mapping[str, str], configured: Bounds) -> Bounds | str:
    """The configured bounds with the query's overrides, or what is wrong with one."""
    quality = _tolerance(query, "quality_tolerance", configured.quality_tolerance)
    if quality is None:
        return "quality_tolerance: expected a number >= 0"
    latency = _tolerance(query, "latency_tolerance", configured.latency_tolerance)
    if latency is None:
        return "latency_tolerance: expected a number >= 0"
    given = query.get("min_count")
    if given is None:
        return Bounds(quality, latency, configured.min_count)
    if not given.isdecimal() or int(given) < 1:
        return "min_count: expected an integer >= 1"
    return Bounds(quality, latency, int(given))


def recommendation_routes(app: web.Application, current: Callable[[], Recommender | None]) -> None:
    """Add `GET /admin/recommendations` to `app`; `current` gives the running configuration's
    recommender, asked per request so the route follows a reload (404 while feedback is off)."""

    async def show(request: web.Request) -> web.Response:
        recommend = current()
        if recommend is None:
            return _json({"error": "feedback is off (telemetry.feedback.enabled)"}, 404)
        bounds = asked_bounds(request.query, recommend.bounds)
        if isinstance(bounds, str):
            return _json({"error": bounds}, 400)
        return _json(recommend(bounds))

    app.router.add_get("/admin/recommendations", show)
