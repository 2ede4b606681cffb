"""The admin listener: liveness and readiness probes, what routing knows right now, and the
cache's counters and purges."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from edgeproxy.cache.tiered import RedisUnavailable, TieredCache
from edgeproxy.config_reader import Secret
from edgeproxy.telemetry.metrics import CONTENT_TYPE

if TYPE_CHECKING:  # redis-py is imported only when keys are kept in Redis
    from edgeproxy.security.keystore import RedisKeyStore

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


_PURGE_NEEDS_TOKEN = {
    "error": "cache purges need admin.token to be set (they change what every sidecar serves)"
}


def _cache_routes(
    app: web.Application, cache: TieredCache, token: Secret | None, own_namespace: str
) -> None:
    """`GET /admin/cache` (counters) and the purges: `DELETE /admin/cache/entries/{key}`,
    `/admin/cache/tags/{tag}` (both `?namespace=`, by default this sidecar's `cache.namespace`)
    and `/admin/cache/namespaces/{namespace}`. A purge reaches every sidecar's L1 through
    Redis."""

    def denied(request: web.Request, purge: bool) -> web.Response | None:
        if purge and token is None:
            return _json(_PURGE_NEEDS_TOKEN, 403)
        if not _authorized(request, token):
            return _json({"error": "admin token required (Authorization: Bearer ...)"}, 401)
        return None

    async def stats(request: web.Request) -> web.Response:
        return denied(request, purge=False) or _json(cache.snapshot())

    def purge(action: Callable[[web.Request], Awaitable[dict[str, int]]]) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            refused = denied(request, purge=True)
            if refused is not None:
                return refused
            try:
                removed = await action(request)
            except RedisUnavailable as exc:
                return _json(
                    {"error": f"Redis is unavailable ({exc}); only this sidecar's L1 was purged"},
                    503,
                )
            return _json({"removed": removed})

        return handle

    def namespace(request: web.Request) -> str:
        return request.query.get("namespace") or own_namespace

    app.router.add_get("/admin/cache", stats)
    app.router.add_delete(
        "/admin/cache/entries/{key}",
        purge(lambda r: cache.delete(r.match_info["key"], namespace(r))),
    )
    app.router.add_delete(
        "/admin/cache/tags/{tag}",
        purge(lambda r: cache.delete_tag(namespace(r), r.match_info["tag"])),
    )
    app.router.add_delete(
        "/admin/cache/namespaces/{namespace}",
        purge(lambda r: cache.flush(r.match_info["namespace"])),
    )


def build_admin_app(
    is_ready: Callable[[], bool],
    routing_status: Callable[[], dict[str, Any]],
    token: Secret | None,
    *,
    cache: TieredCache | None = None,
    metrics: Callable[[], bytes] | None = None,
    cache_namespace: str = "default",
    keys: RedisKeyStore | None = None,
) -> web.Application:
    """`/healthz` answers while the process runs; `/readyz` once pools are open, until draining;
    `/admin/routing` lists groups and deployments with breaker state, latency, success rate,
    in-flight and local ceilings; `/admin/cache` shows and purges the cache; `/admin/keys`
    manages the keys kept in Redis (edgeproxy.admin_keys); `/metrics` is for Prometheus
    (open, like the probes: it holds counters, never content)."""

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
    if metrics is not None:

        async def scrape(_: web.Request) -> web.Response:
            return web.Response(body=metrics(), headers={"content-type": CONTENT_TYPE})

        app.router.add_get("/metrics", scrape)
    if cache is not None:
        _cache_routes(app, cache, token, cache_namespace)
    if keys is not None:
        from edgeproxy.admin_keys import key_routes

        key_routes(app, keys, token)
    return app
