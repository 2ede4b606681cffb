"""The floor: the least an aiohttp proxy can do, measured in the same run as edgeproxy.

`make bench` runs it beside the proxy as the reference its CPU targets are ratios to, and
`python -m bench --floor` puts it in the proxy's place. It reads the body, maps the model
name, forwards it over one keep-alive pool and returns the answer; a stream (`"stream": true`)
is relayed chunk by chunk as it arrives. No header rules, no deadlines, no errors in the
client's dialect, no usage watching. Whatever edgeproxy adds above this is the price of being
a correct proxy; what this adds over a direct call is aiohttp's.

With `--cache` (the l1-hit scenarios under `--floor`) it also keeps every successful answer
in a dict keyed by the raw request body and answers a byte-identical request from it, marked
`x-edgeproxy-cache: hit-l1` like edgeproxy's hits: no canonical key, no policy, no TTL or
bounds, no replay in another shape. What edgeproxy's L1 hit costs above this is the price of
a cache that can be trusted; this itself is what aiohttp costs to answer at all.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
import orjson
import uvloop
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
_HIT = {"x-edgeproxy-cache": "hit-l1"}
_MISS = {"x-edgeproxy-cache": "miss"}


def build(upstream: str, cache: bool = False) -> web.Application:
    app = web.Application()
    answers: dict[bytes, bytes] = {}

    async def pool(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        yield
        await app[SESSION].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if cache and (kept := answers.get(raw)) is not None:
            return web.Response(body=kept, content_type="application/json", headers=_HIT)
        payload = orjson.loads(raw)
        payload["model"] = "bench-upstream-model"
        async with app[SESSION].post(
            upstream + "/v1/chat/completions", data=orjson.dumps(payload), headers=UPSTREAM_HEADERS
        ) as response:
            if payload.get("stream") is True:
                return await _relay(request, response)
            body = await response.read()
        if cache and response.status == 200:
            answers[raw] = body
        return web.Response(
            status=response.status,
            body=body,
            content_type="application/json",
            headers=_MISS if cache else None,
        )

    async def models(_: web.Request) -> web.Response:
        return web.Response(body=b'{"object":"list","data":[]}', content_type="application/json")

    app.cleanup_ctx.append(pool)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    """Each chunk the upstream's socket gave to the client as it came: what a streaming
    aiohttp proxy cannot do with less."""
    content_type = upstream.headers.get("content-type", "text/event-stream")
    response = web.StreamResponse(status=upstream.status, headers={"content-type": content_type})
    await response.prepare(request)
    async for chunk in upstream.content.iter_any():
        await response.write(chunk)
    await response.write_eof()
    return response


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("port", type=int)
    parser.add_argument("upstream")
    parser.add_argument("--cache", action="store_true", help="answer repeated bodies from a dict")
    args = parser.parse_args()
    uvloop.install()
    web.run_app(
        build(args.upstream, args.cache),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )
