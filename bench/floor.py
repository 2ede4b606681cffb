"""The floor: the least an aiohttp proxy can do, measured in the same run as edgeproxy.

`python -m bench --floor` puts this in the proxy's place. It reads the body, maps the model
name, forwards it over one keep-alive pool and returns the answer: no header rules, no
deadlines, no errors in the client's dialect, no streaming. Whatever edgeproxy adds above
this is the price of being a correct proxy; what this adds over a direct call is aiohttp's.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
import orjson
import uvloop
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


def build(upstream: str) -> web.Application:
    app = web.Application()

    async def pool(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        yield
        await app[SESSION].close()

    async def chat(request: web.Request) -> web.Response:
        payload = orjson.loads(await request.read())
        payload["model"] = "bench-upstream-model"
        async with app[SESSION].post(
            upstream + "/v1/chat/completions", data=orjson.dumps(payload), headers=UPSTREAM_HEADERS
        ) as response:
            body = await response.read()
            return web.Response(status=response.status, body=body, content_type="application/json")

    async def models(_: web.Request) -> web.Response:
        return web.Response(body=b'{"object":"list","data":[]}', content_type="application/json")

    app.cleanup_ctx.append(pool)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


if __name__ == "__main__":
    port, upstream = int(sys.argv[1]), sys.argv[2]
    uvloop.install()
    web.run_app(build(upstream), host="127.0.0.1", port=port, access_log=None, print=None)
