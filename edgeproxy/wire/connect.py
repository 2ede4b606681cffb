"""Opening a connection to one origin: DNS, TCP to each address in turn, the proxy's CONNECT
tunnel when there is one, then TLS, all within the connect timeout.

TLS always goes through `loop.start_tls` on an open TCP transport, with or without a tunnel,
so a failed handshake leaves a transport this module aborts itself: `close()` on a TLS
transport would wait for a shutdown exchange with a peer that is already failing.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TypeVar

from edgeproxy.wire.dns import Resolver
from edgeproxy.wire.egress import Proxy, TunnelAnswer, authority, request_tunnel
from edgeproxy.wire.upstream_connection import UpstreamConnection
from edgeproxy.wire.upstream_errors import ConnectFailed

P = TypeVar("P", bound=asyncio.BaseProtocol)


class Dialer:
    """Connects `UpstreamConnection`s to host:port, over TLS when given a context."""

    __slots__ = ("_host", "_port", "_proxy", "_resolver", "_ssl", "_timeout", "label")

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        proxy: Proxy | None,
        resolver: Resolver,
        timeout: float,
    ) -> None:
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._proxy = proxy
        self._resolver = resolver
        self._timeout = timeout
        self.label = authority(host, port)

    async def dial(self, connection: UpstreamConnection, deadline: float | None) -> None:
        """Connect `connection`; ConnectFailed (timed_out=True past the connect timeout), or
        TimeoutError when the caller's `deadline` comes first."""
        limit = asyncio.get_running_loop().time() + self._timeout
        deadline_first = deadline is not None and deadline < limit
        try:
            async with asyncio.timeout_at(deadline if deadline_first else limit):
                await self._connect(connection)
        except TimeoutError:
            if deadline_first:
                raise
            raise ConnectFailed(
                f"{self.label}: connecting timed out after {self._timeout:g} s", timed_out=True
            ) from None

    async def _connect(self, connection: UpstreamConnection) -> None:
        if self._ssl is None:
            await self._tcp(lambda: connection)
            return
        if self._proxy is None:
            transport, _ = await self._tcp(asyncio.Protocol)
        else:
            transport, answer = await self._tcp(TunnelAnswer)
            try:
                await request_tunnel(transport, answer, self._proxy, self._host, self._port)
            except BaseException:
                transport.abort()
                raise
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(transport, connection, self._ssl, server_hostname=self._host)
        except BaseException as exc:
            transport.abort()
            if isinstance(exc, OSError):
                raise ConnectFailed(f"{self.label}: TLS handshake failed: {exc}") from None
            raise
        if tls is None:  # lost between the handshake's end and this line
            raise ConnectFailed(f"{self.label}: connection lost right after the TLS handshake")
        connection.connection_made(tls)

    async def _tcp(self, factory: Callable[[], P]) -> tuple[asyncio.Transport, P]:
        """A TCP connection to the first address of the origin (or its proxy) that answers."""
        proxy = self._proxy
        host, port = (self._host, self._port) if proxy is None else (proxy.host, proxy.port)
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for family, sockaddr in await self._resolver.resolve(host, port):
            try:
                transport, protocol = await loop.create_connection(
                    factory, sockaddr[0], sockaddr[1], family=family
                )
            except OSError as exc:
                failure = exc
                continue
            return transport, protocol
        self._resolver.forget(host, port)
        raise ConnectFailed(f"{authority(host, port)}: TCP connect failed: {failure}")
