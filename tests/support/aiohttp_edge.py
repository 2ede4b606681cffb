"""The proxy as it was before edgeproxy.wire: the same handler on aiohttp's server.

The reference of the differential test (tests/test_differential.py). `AiohttpProxy` builds the
proxy's state, resources and handler exactly as `edgeproxy.app.ProxyServer` does and serves
them on an aiohttp application the way the data listener did before it was replaced: aiohttp's
request becomes a `relay.ClientRequest`, and its `StreamResponse` serves as the relay's
`ClientResponse`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiohttp import web
from multidict import CIMultiDict

from edgeproxy.app import build_handlers, close_resources, open_resources
from edgeproxy.config import Config
from edgeproxy.handlers import ProxyHandlers
from edgeproxy.state import build_state


class AiohttpRequest:
    """aiohttp's request as the handler reads one: header names in lower case (see
    `relay.ClientRequest`), a repeated field as its first line (what aiohttp's `get` gave)."""

    __slots__ = ("body", "headers", "method", "path", "query", "received")

    def __init__(self, request: web.Request, body: bytes, received: float) -> None:
        self.method = request.method
        self.path = request.path
        self.query = request.query_string
        self.headers: dict[str, str] = {}
        for name, value in request.headers.items():
            self.headers.setdefault(name.lower(), value)
        self.body = body
        self.received = received


class AiohttpResponse:
    """The relay's writes on an aiohttp response: a whole one, or a stream written at drain."""

    __slots__ = ("_pending", "_request", "ended", "response")

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._pending: list[bytes] = []
        self.response: web.StreamResponse | None = None
        self.ended = False

    @property
    def started(self) -> bool:
        return self.response is not None

    @property
    def gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()

    def send(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        self.response = web.Response(status=status, body=body, headers=CIMultiDict(headers))
        self.ended = True

    def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.response = web.StreamResponse(status=status, headers=CIMultiDict(headers))

    def write(self, data: bytes) -> None:
        self._pending.append(data)

    async def drain(self) -> None:
        response = self.response
        assert response is not None, "started before written"
        if not response.prepared:
            await response.prepare(self._request)
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            await response.write(data)

    def end(self) -> None:
        self.ended = True

    def abort(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def finish(self) -> web.StreamResponse:
        """The response for aiohttp to complete (a stream: its rest written, then its end)."""
        response = self.response
        assert response is not None, "the relay answers every request"
        if isinstance(response, web.Response) or not self.ended:  # whole, or its client left
            return response
        await self.drain()
        await response.write_eof()
        return response


def build_data_app(handlers: ProxyHandlers, max_body: int) -> web.Application:
    """An aiohttp application serving every path through `handlers`; a body over `max_body`
    is refused as the raw listener refuses it (`ProxyHandlers.reject`)."""
    app = web.Application(client_max_size=max_body)

    async def serve(request: web.Request) -> web.StreamResponse:
        received = asyncio.get_running_loop().time()
        response = AiohttpResponse(request)
        if not await _body_fits(request, max_body):
            headers, body = handlers.reject(
                413, "request body too large", AiohttpRequest(request, b"", received)
            )
            response.send(413, headers, body)
            return await response.finish()
        body = await request.read()
        await handlers(AiohttpRequest(request, body, received), response)
        return await response.finish()

    app.router.add_route("*", "/{tail:.*}", serve)
    return app


async def _body_fits(request: web.Request, max_body: int) -> bool:
    """Whether the body is within `max_body`: declared so, or read whole without passing it
    (aiohttp keeps what it read for `request.read()`)."""
    length = request.content_length
    if length is not None and length > max_body:
        return False
    try:
        await request.read()
    except web.HTTPRequestEntityTooLarge:
        return False
    return True


class AiohttpProxy:
    """`ProxyServer`'s data listener on aiohttp, with the same state, resources and handler
    (no admin listener: the differential test compares the data plane)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.state = build_state(config)
        server = config.server
        self._runner = web.AppRunner(
            build_data_app(build_handlers(self.state), server.max_body_bytes),
            handler_cancellation=True,  # a client leaving cancels its upstream call
            auto_decompress=False,  # a compressed body is decoded by the handler, bounded
            access_log=None,
            keepalive_timeout=server.keepalive_timeout,
            shutdown_timeout=server.shutdown_grace,
        )
        self.data_address: tuple[str, int] = (server.host, server.port)

    @property
    def url(self) -> str:
        host, port = self.data_address
        return f"http://{host}:{port}"

    async def start(self) -> None:
        server = self.config.server
        await open_resources(self.state)
        await self._runner.setup()
        await web.TCPSite(self._runner, server.host, server.port).start()
        self.data_address = self._runner.addresses[0][:2]

    async def stop(self) -> None:
        self.state.draining = True
        await self._runner.cleanup()
        await close_resources(self.state)
