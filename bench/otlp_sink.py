"""`python -m bench.otlp_sink PORT`: where the observed proxy's traces go (bench/observed.py).

An OpenTelemetry collector stand-in that reads each POST's body and answers 200 with nothing,
so the proxy's exporter does all of its work (batching, encoding, sending) and none of it
fails. It answers any path, GET /v1/models (the bench's readiness probe) included, and counts
what it was sent in its log when it stops.
"""

from __future__ import annotations

import argparse
import logging

import uvloop
from aiohttp import web

log = logging.getLogger("bench.otlp_sink")
RECEIVED = web.AppKey("received", list[int])  # posts, bytes


def build() -> web.Application:
    app = web.Application()
    app[RECEIVED] = [0, 0]

    async def accept(request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "POST":
            app[RECEIVED][0] += 1
            app[RECEIVED][1] += len(body)
        return web.Response()

    async def tally(app: web.Application) -> None:
        posts, size = app[RECEIVED]
        log.warning("otlp sink: %d posts, %d bytes received", posts, size)

    app.router.add_route("*", "/{path:.*}", accept)
    app.on_cleanup.append(tally)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_sink")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvloop.install()
    web.run_app(build(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
