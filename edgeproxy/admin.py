"""The admin listener: liveness and readiness probes, what routing knows right now, the
cache's counters and purges, and the status page.

Who may do what is decided in one place, a middleware in front of every route (so a route
added later is covered without a line of its own):
- the probes (`/healthz`, `/readyz`) and `/metrics` answer anyone: kubelet and Prometheus
  reach the pod IP without credentials, and none of them carries content (metrics are counters
  labelled with configured names); so does the status page's HTML (`/ui`), which holds no
  data: its figures come from `/admin/stats`;
- with `admin.token` set, everything else needs it as a bearer token, compared in constant time;
- without one, an action that changes state (any method but GET, HEAD and OPTIONS) is refused
  (403), and reads stay open.
Every answer the listener sends is masked by the proxy's one scrubber (edgeproxy.redact).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware

from edgeproxy.admin_incidents import incident_routes
from edgeproxy.admin_ui import PAGE_PATH, status_routes
from edgeproxy.cache.tiered import RedisUnavailable, TieredCache
from edgeproxy.config_reader import Secret
from edgeproxy.redact import Redactor
from edgeproxy.routing.affinity import ResponseAffinity
from edgeproxy.telemetry.metrics import CONTENT_TYPE
from edgeproxy.telemetry.stats import LiveStats

if TYPE_CHECKING:  # redis-py is imported only when keys are kept in Redis
    from edgeproxy.security.keystore import RedisKeyStore
    from edgeproxy.telemetry.recommend import Recommender

Handler = Callable[[web.Request], Any]
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", PAGE_PATH})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NEEDS_TOKEN = {
    "error": "admin actions that change state need admin.token to be set (purges and key "
    "changes reach every sidecar)"
}
_TOKEN_REQUIRED = {"error": "admin token required (Authorization: Bearer ...)"}


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _authorized(request: web.Request, expected: bytes) -> bool:
    """Whether the request's bearer token has the digest `expected`. Digests are compared, so
    the comparison takes the same time whatever was sent, its length included."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    matches = hmac.compare_digest(_digest(given.strip()), expected)
    return scheme.lower() == "bearer" and matches


def guard(token: Secret | None, redact: Redactor) -> Middleware:
    """The middleware deciding who may do what (see the module docstring), masking answers."""
    expected = _digest(token.reveal()) if token is not None else None

    @web.middleware
    async def middleware(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            if expected is None and request.method not in READ_METHODS:
                return _json(_NEEDS_TOKEN, 403)
            if expected is not None and not _authorized(request, expected):
                return _json(_TOKEN_REQUIRED, 401)
        response: web.StreamResponse = await handler(request)
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            response.body = redact.bytes(response.body)
        return response

    return middleware


@dataclass(frozen=True, slots=True)
class CacheView:
    """The cache the admin routes act on, and this sidecar's namespace in it."""

    cache: TieredCache
    namespace: str


_CACHE_OFF = {"error": "the cache is off (cache.enabled)"}


def _cache_routes(app: web.Application, current: Callable[[], CacheView | None]) -> None:
    """`GET /admin/cache` (counters) and the purges: `DELETE /admin/cache/entries/{key}`,
    `/admin/cache/tags/{tag}` (both `?namespace=`, by default this sidecar's `cache.namespace`)
    and `/admin/cache/namespaces/{namespace}`. A purge reaches every sidecar's L1 through
    Redis. `current` is asked per request, so the routes follow a configuration reload (404
    while the cache is off)."""

    async def stats(_: web.Request) -> web.Response:
        view = current()
        return _json(view.cache.snapshot()) if view is not None else _json(_CACHE_OFF, 404)

    def purge(action: Callable[[web.Request, CacheView], Awaitable[dict[str, int]]]) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            view = current()
            if view is None:
                return _json(_CACHE_OFF, 404)
            try:
                removed = await action(request, view)
            except RedisUnavailable as exc:
                return _json(
                    {"error": f"Redis is unavailable ({exc}); only this sidecar's L1 was purged"},
                    503,
                )
            return _json({"removed": removed})

        return handle

    def namespace(request: web.Request, view: CacheView) -> str:
        return request.query.get("namespace") or view.namespace

    app.router.add_get("/admin/cache", stats)
    app.router.add_delete(
        "/admin/cache/entries/{key}",
        purge(lambda r, v: v.cache.delete(r.match_info["key"], namespace(r, v))),
    )
    app.router.add_delete(
        "/admin/cache/tags/{tag}",
        purge(lambda r, v: v.cache.delete_tag(namespace(r, v), r.match_info["tag"])),
    )
    app.router.add_delete(
        "/admin/cache/namespaces/{namespace}",
        purge(lambda r, v: v.cache.flush(r.match_info["namespace"])),
    )


def _reload_route(app: web.Application, reload: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """`POST /admin/reload`: read the configuration file again now; the answer is the reload's
    result (edgeproxy.reload), 422 when the new configuration was refused."""

    async def handle(_: web.Request) -> web.Response:
        result = await reload()
        return _json(result, 200 if result["result"] in ("applied", "unchanged") else 422)

    app.router.add_post("/admin/reload", handle)


def build_admin_app(
    is_ready: Callable[[], bool],
    routing_status: Callable[[], dict[str, Any]],
    token: Secret | None,
    *,
    redact: Redactor,
    cache: Callable[[], CacheView | None] | None = None,
    metrics: Callable[[], bytes] | None = None,
    keys: Callable[[], RedisKeyStore | None] | None = None,
    recommender: Callable[[], Recommender | None] | None = None,
    stats: Callable[[], LiveStats] | None = None,
    incidents: Callable[[], dict[str, Any] | None] | None = None,
    reload: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    readiness: Callable[[], dict[str, Any]] | None = None,
    affinity: Callable[[], ResponseAffinity] | None = None,
) -> web.Application:
    """`/healthz` answers while the process runs; `/readyz` once pools are open, until draining;
    `/admin/routing` lists groups and deployments with breaker state, latency, success rate,
    in-flight and local ceilings; `/admin/cache` shows and purges the cache; `/admin/keys`
    manages the keys kept in Redis (edgeproxy.admin_keys); `/admin/recommendations` suggests
    routing from the apps' feedback (edgeproxy.admin_feedback); `/ui` is the status page and
    `/admin/stats` its figures (edgeproxy.admin_ui); `/admin/incidents` lists open and recent
    incidents (edgeproxy.admin_incidents); `/metrics` is for Prometheus (open, like the
    probes: it holds counters, never content); `POST /admin/reload` reloads the configuration;
    `/admin/affinity/{answer_id}` says which deployment holds a Responses answer.

    The sources are functions asked per request, so the routes follow a configuration reload;
    `readiness` adds details to `/readyz` (the last reload's failure)."""

    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready = is_ready()
        answer: dict[str, Any] = {"status": "ready" if ready else "not ready"}
        if readiness is not None:
            answer.update(readiness())
        return _json(answer, 200 if ready else 503)

    async def routing(_: web.Request) -> web.Response:
        return _json(routing_status())

    app = web.Application(middlewares=[guard(token, redact)])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/admin/routing", routing)
    if metrics is not None:

        async def scrape(_: web.Request) -> web.Response:
            return web.Response(body=metrics(), headers={"content-type": CONTENT_TYPE})

        app.router.add_get("/metrics", scrape)
    if cache is not None:
        _cache_routes(app, cache)
    if reload is not None:
        _reload_route(app, reload)
    if keys is not None:
        from edgeproxy.admin_keys import key_routes

        key_routes(app, keys, token)
    if recommender is not None:
        from edgeproxy.admin_feedback import recommendation_routes

        recommendation_routes(app, recommender)
    if stats is not None:
        status_routes(app, stats)
    if incidents is not None:
        incident_routes(app, incidents)
    if affinity is not None:
        _affinity_route(app, affinity)
    return app


def _affinity_route(app: web.Application, affinity: Callable[[], ResponseAffinity]) -> None:
    """`GET /admin/affinity/{answer_id}`: which deployment gave a Responses answer, and to which
    key, as this process remembers it (the pod's other workers ask, edgeproxy.pod_affinity)."""

    async def holder(request: web.Request) -> web.Response:
        found = affinity().holder(request.match_info["answer_id"])
        if found is None:
            return _json({"error": "no answer with this id is remembered here"}, 404)
        return _json({"deployment": found.deployment, "key": found.key})

    app.router.add_get("/admin/affinity/{answer_id}", holder)
