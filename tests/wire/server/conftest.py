"""The server's tests (a directory of their own, so these fixtures and the loop choice apply
to them alone) run twice: on uvloop, as the server does in production, and on asyncio's own
loop, whose transports differ in when they read, write and report. Every test starts servers
through `serve`, and leaves no client connection, handler task or loop error behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from edgeproxy.wire.limits import Limits
from edgeproxy.wire.server import Handler, HttpServer, Reject, Request, Response
from tests.support.poll import eventually
from tests.wire.server.raw_client import RawClient


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every wire test on both loops (pytest-asyncio's hook, local to this directory)."""
    return {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


async def answer_ok(request: Request, response: Response) -> None:
    """The plainest handler: 200 with a body naming what it received."""
    body = f"{request.method} {request.target} {len(request.body)}".encode()
    response.send(200, [("content-type", "text/plain")], body)


async def settle(server: HttpServer) -> None:
    """Wait until the server holds no connection and no handler task."""
    await eventually(
        lambda: server.connections == 0 and server.handlers_running == 0,
        "the server to let go of every connection and task",
    )


@dataclass
class Served:
    """A server under test and the raw clients a test opened to it."""

    server: HttpServer
    port: int
    clients: list[RawClient] = field(default_factory=list)

    async def connect(self, receive_buffer: int | None = None) -> RawClient:
        client = await RawClient.connect(self.port, receive_buffer)
        self.clients.append(client)
        return client


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Whatever reaches the loop's exception handler fails the test."""
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield errors
    loop.set_exception_handler(None)
    assert not errors, f"errors reached the event loop: {errors}"


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[Served] = []
    before = asyncio.all_tasks()

    async def start(
        handler: Handler = answer_ok, limits: Limits | None = None, reject: Reject | None = None
    ) -> Served:
        server = HttpServer(handler, limits or Limits(), reject)
        _, port = await server.start("127.0.0.1", 0)
        served = Served(server, port)
        started.append(served)
        return served

    yield start
    for served in started:
        for client in served.clients:
            await client.close()
        await settle(served.server)
        await served.server.shutdown(grace=1.0)
    leftover = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}
    assert not leftover, f"tasks left behind: {leftover}"
