"""The admin API of the keys kept in Redis (`auth.redis_keys`), on the admin listener:

    POST   /admin/keys              create a key: 201 with the key, shown this once
    GET    /admin/keys              every key (revoked ones too), never a key or a whole hash
    GET    /admin/keys/{id}         one key
    POST   /admin/keys/{id}/rotate  a new key with the same settings; the old one stops working
    DELETE /admin/keys/{id}         revoke: every sidecar refuses the key within a second

Every route needs `admin.token` as a bearer token (compared in constant time); without a token
configured they are all refused, reads too (a listing tells who the tenants are). Errors are
JSON, `{"error": ...}`, with `problems` naming each field of a refused request.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from edgeproxy.config_reader import Secret
from edgeproxy.security.key_records import InvalidKeyRequest
from edgeproxy.security.keystore import KeyConflict, KeyStoreUnavailable, RedisKeyStore

Route = Callable[[web.Request], Awaitable[web.Response]]

_NO_TOKEN = (
    "managing keys needs admin.token to be set: without it anyone reaching the admin port "
    "could mint keys"
)
_TOKEN_REQUIRED = "admin token required (Authorization: Bearer ...)"


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def _error(status: int, message: str, **more: Any) -> web.Response:
    return _json({"error": message, **more}, status)


def _guarded(token: Secret | None, route: Route) -> Route:
    """`route` behind the token: 403 when none is configured, 401 when it is not presented.
    Digests are compared, so the time taken says nothing about the token's length either."""
    expected = hashlib.sha256(token.reveal().encode()).digest() if token is not None else None

    async def handle(request: web.Request) -> web.Response:
        if expected is None:
            return _error(403, _NO_TOKEN)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        presented = hashlib.sha256(given.strip().encode()).digest()
        if not (hmac.compare_digest(presented, expected) and scheme.lower() == "bearer"):
            return _error(401, _TOKEN_REQUIRED)
        try:
            return await route(request)
        except KeyStoreUnavailable as exc:
            return _error(503, f"the key store is unavailable, nothing was changed: {exc}")
        except KeyConflict as exc:
            return _error(409, str(exc))
        except ValueError as exc:  # a record in Redis that is not one this proxy wrote
            return _error(500, f"a key record in Redis is unreadable: {exc}")

    return handle


def _unknown(key_id: str) -> web.Response:
    return _error(404, f"no key with id {key_id!r}")


_NO_STORE = "keys are not kept in Redis (auth.redis_keys)"


def _with_store(
    current: Callable[[], RedisKeyStore | None],
    route: Callable[[web.Request, RedisKeyStore], Awaitable[web.Response]],
) -> Route:
    """`route` with the key store of the running configuration (404 after a reload turned
    `auth.redis_keys` off)."""

    async def handle(request: web.Request) -> web.Response:
        store = current()
        return await route(request, store) if store is not None else _error(404, _NO_STORE)

    return handle


def key_routes(
    app: web.Application, current: Callable[[], RedisKeyStore | None], token: Secret | None
) -> None:
    """Add the routes of the module docstring to `app`; `current` gives the key store of the
    running configuration, asked per request so the routes follow a reload."""

    async def create(request: web.Request, store: RedisKeyStore) -> web.Response:
        try:
            fields = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "the body is not valid JSON")
        try:
            key, record = await store.create(fields)
        except InvalidKeyRequest as exc:
            return _error(400, "the key cannot be created as asked", problems=exc.problems)
        return _json({**record.view(), "key": key}, 201)

    async def listing(_: web.Request, store: RedisKeyStore) -> web.Response:
        return _json({"keys": [record.view() for record in await store.records()]})

    async def show(request: web.Request, store: RedisKeyStore) -> web.Response:
        key_id = request.match_info["id"]
        record = await store.get(key_id)
        return _json(record.view()) if record is not None else _unknown(key_id)

    async def rotate(request: web.Request, store: RedisKeyStore) -> web.Response:
        key_id = request.match_info["id"]
        rotated = await store.rotate(key_id)
        if rotated is None:
            return _unknown(key_id)
        key, record = rotated
        return _json({**record.view(), "key": key})

    async def revoke(request: web.Request, store: RedisKeyStore) -> web.Response:
        key_id = request.match_info["id"]
        record = await store.revoke(key_id)
        return _json(record.view()) if record is not None else _unknown(key_id)

    app.router.add_post("/admin/keys", _guarded(token, _with_store(current, create)))
    app.router.add_get("/admin/keys", _guarded(token, _with_store(current, listing)))
    app.router.add_get("/admin/keys/{id}", _guarded(token, _with_store(current, show)))
    app.router.add_post("/admin/keys/{id}/rotate", _guarded(token, _with_store(current, rotate)))
    app.router.add_delete("/admin/keys/{id}", _guarded(token, _with_store(current, revoke)))
