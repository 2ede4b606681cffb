"""A webhook receiver on a random port: it keeps what it was posted (headers and JSON body)
and answers each post with the next scripted status (200 once the script is used up)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.serving import serving


@dataclass
class Sink:
    url: str = ""
    statuses: list[int] = field(default_factory=list)
    posts: list[tuple[dict[str, str], Any]] = field(default_factory=list)

    @property
    def bodies(self) -> list[Any]:
        return [body for _, body in self.posts]


@asynccontextmanager
async def webhook_sink(*statuses: int) -> AsyncIterator[Sink]:
    sink = Sink(statuses=list(statuses))

    async def take(request: web.Request) -> web.Response:
        sink.posts.append((dict(request.headers), await request.json()))
        return web.Response(status=sink.statuses.pop(0) if sink.statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", take)
    async with serving(app) as base:
        sink.url = base + "/hook"
        yield sink
