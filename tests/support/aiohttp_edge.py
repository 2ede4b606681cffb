"""The data listener on aiohttp's server, behind the same handler as the raw one.

aiohttp's request becomes a `handlers.ClientRequest` and its `StreamResponse` serves as the
relay's `ClientResponse`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from aiohttp import web
from multidict import CIMultiDict

from edgeproxy import errors, inbound
from edgeproxy.dialects.codec import codec_for
from edgeproxy.errors import ProxyError
from edgeproxy.handlers import ProxyHandlers, client_dialect
from edgeproxy.relay import Relay


class AiohttpRequest:
    __slots__ = ("body", "headers", "method", "path", "received")

    def __init__(self, request: web.Request, body: bytes, received: float) -> None:
        self.method = request.method
        self.path = request.path
        self.headers: Mapping[str, str] = request.headers
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

    async def finish(self) -> web.StreamResponse:
        """The response for aiohttp to complete (a stream: its rest written, then its end)."""
        response = self.response
        assert response is not None, "the relay answers every request"
        if isinstance(response, web.Response) or not self.ended:  # whole, or its client left
            return response
        await self.drain()
        await response.write_eof()
        return response


def build_data_app(handlers: ProxyHandlers, relay: Relay, max_body: int) -> web.Application:
    """An aiohttp application serving every path through `handlers`."""
    app = web.Application(client_max_size=max_body)

    async def serve(request: web.Request) -> web.StreamResponse:
        received = asyncio.get_running_loop().time()
        response = AiohttpResponse(request)
        try:
            body = await _read_body(request, max_body)
        except ProxyError as err:
            codec = codec_for(client_dialect(request.path, request.headers))
            relay.fail(response, err, codec, inbound.request_id(request.headers))
            return await response.finish()
        await handlers(AiohttpRequest(request, body, received), response)
        return await response.finish()

    app.router.add_route("*", "/{tail:.*}", serve)
    return app


async def _read_body(request: web.Request, max_body: int) -> bytes:
    length = request.content_length
    if length is not None and length > max_body:
        raise errors.payload_too_large(max_body)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.payload_too_large(max_body) from None
