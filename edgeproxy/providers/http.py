"""Forwarding over HTTP: one keep-alive pool per provider and the upstream deadlines.

Deadlines (from the provider's `timeouts`): `connect` for the TCP/TLS handshake, `first_byte`
until the response headers arrive, `idle` for the longest gap between body chunks and `total`
for the whole exchange. aiohttp's own `total=300` default is switched off: it would cut long
streams and never notice a stalled one.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import MutableMapping

import aiohttp
from yarl import URL

from edgeproxy import errors
from edgeproxy.config import ProviderConfig, Timeouts
from edgeproxy.operations import Operation
from edgeproxy.providers.base import (
    CLIENT_CHAT,
    OutboundRequest,
    Provider,
    forwarded_headers,
    relayed_headers,
)

# Bodies relayed as they arrive rather than read whole: SSE, and AWS's binary event stream.
STREAM_TYPES = frozenset({"text/event-stream", "application/vnd.amazon.eventstream"})


class HttpUpstream:
    """An aiohttp response being relayed, with the idle and total deadlines applied to reads.

    A body that is not an event stream arrives already read (`body`), under the same deadline
    that covered the headers: one timer per non-streaming request instead of two.
    """

    __slots__ = (
        "_body",
        "_deadline",
        "_finished",
        "_idle",
        "_loop",
        "_provider",
        "_response",
        "_timeouts",
        "headers",
    )

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        provider: str,
        timeouts: Timeouts,
        deadline: float | None,
        body: bytes | None = None,
    ) -> None:
        self._response = response
        self._provider = provider
        self._timeouts = timeouts
        self._idle = timeouts.idle
        self._deadline = deadline
        self._loop = asyncio.get_running_loop()
        self._body = body
        self._finished = body is not None
        self.headers = relayed_headers(response.headers)

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def is_event_stream(self) -> bool:
        return self._body is None

    async def read(self) -> bytes:
        if self._body is not None:
            return self._body
        try:
            async with asyncio.timeout_at(self._deadline):
                body = await self._response.read()
        except TimeoutError:
            raise self._timed_out("total") from None
        except aiohttp.ClientError as exc:
            raise errors.upstream_broken(self._provider, repr(exc)) from None
        self._finished = True
        return body

    async def next_chunk(self) -> bytes:
        until = self._loop.time() + self._idle
        deadline = self._deadline
        if deadline is not None and deadline < until:
            until = deadline
        try:
            async with asyncio.timeout_at(until):
                chunk = await self._response.content.readany()
        except TimeoutError:
            raise self._timed_out("total" if until == deadline else "idle") from None
        except aiohttp.ClientError as exc:
            raise errors.upstream_broken(self._provider, repr(exc)) from None
        if not chunk:
            self._finished = True
        return chunk

    def _timed_out(self, phase: str) -> errors.ProxyError:
        seconds = self._idle if phase == "idle" else self._timeouts.total or 0.0
        return errors.upstream_timeout(self._provider, phase, seconds)

    def close(self) -> None:
        if self._finished:
            self._response.release()
        else:
            self._response.close()


class BufferedUpstream:
    """A complete answer the proxy holds (assembled from several upstream calls, or stored in
    the cache); `stream`: it is an event stream, given whole as its one chunk."""

    __slots__ = ("_body", "headers", "is_event_stream", "status")

    def __init__(
        self, status: int, headers: MutableMapping[str, str], body: bytes, stream: bool = False
    ) -> None:
        self.status = status
        self.headers = headers
        self._body = body
        self.is_event_stream = stream

    async def read(self) -> bytes:
        return self._body

    async def next_chunk(self) -> bytes:
        if not self.is_event_stream:
            return b""
        body, self._body = self._body, b""
        return body

    def close(self) -> None:
        """Nothing to release: the connections went back to the pool when the bodies were read."""


class HttpProvider(Provider):
    """Shared by every HTTP provider kind; subclasses name their paths and auth headers."""

    native_chat: Operation | None = None  # the chat endpoint translated requests go to

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._urls = {op: config.base_url + self.path_for(op) for op in self.operations}
        if self.native_chat is not None:  # other dialects' chat is translated into ours
            for operation in CLIENT_CHAT:
                self._urls.setdefault(operation, self._urls[self.native_chat])
        self._fixed_headers = {
            "content-type": "application/json",
            **config.headers,
            **self.auth_headers(),
        }
        self._session: aiohttp.ClientSession | None = None
        self._timeouts = config.timeouts

    def path_for(self, operation: Operation) -> str:
        return operation.path

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Credential headers for this provider, computed once at load."""

    def request_headers(self, request: OutboundRequest) -> dict[str, str]:
        """The client's forwardable headers on a same-dialect route; on a translated route
        they mean nothing to the provider, so only the provider's own are sent."""
        if request.client_headers is not None:
            headers = forwarded_headers(request.client_headers, self._fixed_headers)
        else:
            headers = dict(self._fixed_headers)
        headers["x-request-id"] = request.request_id
        return headers

    def url_for(self, request: OutboundRequest) -> str:
        return self._urls[request.operation]

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.config.max_connections,
            limit_per_host=0,
            keepalive_timeout=30,
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeouts.connect),
            raise_for_status=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # never replay one client's cookies for another
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def in_use(self) -> int:
        """Connections currently lent out of the pool (for leak checks and readiness)."""
        if self._session is None:
            return 0
        connector = self._session.connector
        return 0 if connector is None else len(connector._acquired)

    async def send(self, request: OutboundRequest) -> HttpUpstream | BufferedUpstream:
        return await self.post(request, self.url_for(request), self.request_headers(request))

    async def post(
        self,
        request: OutboundRequest,
        url: str | URL,
        headers: dict[str, str],
        body: bytes | None = None,
    ) -> HttpUpstream:
        """POST the request's body (or `body`) under its deadlines; returns once headers
        arrive (with the body too, unless it is a stream)."""
        session = self._session
        if session is None:
            raise errors.upstream_unreachable(self.name, "provider pool is not open")
        timeouts = self._timeouts
        deadline = request.deadline
        first_byte = asyncio.get_running_loop().time() + timeouts.first_byte
        phase = "first byte"
        if deadline is not None and deadline <= first_byte:
            first_byte, phase = deadline, "total"
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout_at(first_byte) as window:
                response = await session.post(
                    url,
                    data=request.body if body is None else body,
                    headers=headers,
                    allow_redirects=False,
                )
                if response.content_type in STREAM_TYPES:
                    return HttpUpstream(response, self.name, timeouts, deadline)
                phase = "total"
                window.reschedule(deadline)
                body = await response.read()
        except BaseException as exc:
            if response is not None:
                response.close()
            raise self._failure(exc, phase) from None
        return HttpUpstream(response, self.name, timeouts, deadline, body)

    def _failure(self, exc: BaseException, phase: str) -> BaseException:
        """The ProxyError for what went wrong before the body was in hand (else `exc` itself)."""
        timeouts = self._timeouts
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return errors.upstream_timeout(self.name, "connect", timeouts.connect)
        if isinstance(exc, TimeoutError):
            seconds = timeouts.first_byte if phase == "first byte" else timeouts.total or 0.0
            return errors.upstream_timeout(self.name, phase, seconds)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return errors.upstream_unreachable(self.name, repr(exc))
        if isinstance(exc, aiohttp.ClientError):
            return errors.upstream_broken(self.name, repr(exc))
        return exc
