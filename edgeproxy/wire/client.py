"""A keep-alive HTTP/1.1 client pool for one upstream origin, on asyncio protocols.

It stands where aiohttp's ClientSession stood on the forwarding path, where most of the
client's CPU per request was aiohttp's own Python code. It moves bytes: bodies are never
decoded (a gzip answer comes back as sent, and no Accept-Encoding is added), and header text
is latin-1 both ways, so every byte passes through unchanged.

When a connection goes back to the pool: only after a response that ended on the wire with
keep-alive (not `Connection: close`, not HTTP/1.0 without keep-alive, not a close-delimited
body, no bytes after its end), never paused. A pooled connection the server closes (EOF or
reset while idle) leaves the pool as its protocol sees it. One that turns out closed when it is
handed over, before any byte of the request was written, is replaced and the request sent on
the new one; once a byte was written the request is never sent again (ConnectionBroken): an
LLM call is not idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from urllib.parse import urlsplit

from multidict import CIMultiDict

from edgeproxy.wire.connect import Dialer
from edgeproxy.wire.dns import Resolver
from edgeproxy.wire.egress import DEFAULT_PORTS, Proxy, bracketed, proxy_for
from edgeproxy.wire.upstream_connection import UpstreamConnection
from edgeproxy.wire.upstream_errors import (
    ConnectFailed,
    ConnectionBroken,
    PoolTimeout,
    UpstreamError,
)

__all__ = [
    "ConnectFailed",
    "ConnectionBroken",
    "PoolTimeout",
    "Resolver",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamResponse",
    "proxy_for",
]

# Methods whose requests carry no Content-Length when they have no body (RFC 9110 8.6).
_NO_CONTENT_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE"})
# How long close() waits for aborted connections to report their end.
_CLOSE_WAIT = 5.0


class UpstreamPool:
    """Connections to one origin (`https://api.openai.com`, `http://127.0.0.1:8001`), at most
    `max_connections` open; callers beyond that wait in FIFO order."""

    __slots__ = (
        "_busy",
        "_closed",
        "_connections",
        "_dialer",
        "_fixed_breaks",
        "_fixed_lines",
        "_idle",
        "_idle_timeout",
        "_label",
        "_max",
        "_target_prefix",
        "_waiters",
    )

    def __init__(
        self,
        origin: str,
        *,
        max_connections: int = 100,
        connect_timeout: float = 5.0,
        idle_timeout: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        proxy: str | None = None,
        dns_ttl: float = 60.0,
        resolver: Resolver | None = None,
    ) -> None:
        parts = urlsplit(origin)
        scheme = parts.scheme.lower()
        host = parts.hostname
        if (
            scheme not in DEFAULT_PORTS
            or not host
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ValueError("origin must be http(s)://host[:port] and nothing more")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        port = parts.port or DEFAULT_PORTS[scheme]
        tls = None
        if scheme == "https":
            tls = ssl_context or _default_tls(ca_file)
        egress = Proxy(proxy) if proxy else None
        self._dialer = Dialer(
            host,
            port,
            ssl_context=tls,
            proxy=egress,
            resolver=resolver or Resolver(dns_ttl),
            timeout=connect_timeout,
        )
        self._label = self._dialer.label
        host_header = bracketed(host) if port == DEFAULT_PORTS[scheme] else self._label
        self._fixed_lines = f"Host: {host_header}\r\n"
        self._target_prefix = ""
        if egress is not None and tls is None:  # plain HTTP through a proxy: absolute-form
            self._target_prefix = f"http://{host_header}"
            if egress.authorization is not None:
                self._fixed_lines += f"Proxy-Authorization: {egress.authorization}\r\n"
        self._fixed_breaks = self._fixed_lines.count("\n")
        self._max = max_connections
        self._idle_timeout = idle_timeout
        self._busy = 0  # connections lent out or being opened
        self._idle: list[UpstreamConnection] = []
        self._waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self._connections: set[UpstreamConnection] = set()
        self._closed = False

    @property
    def in_use(self) -> int:
        """Connections lent out, or being opened for a request."""
        return self._busy

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        deadline: float | None,
    ) -> UpstreamResponse:
        """Send a request (`target` in origin-form, sent as given; Host and Content-Length are
        added here) and return once the final response head is in. `deadline` (loop time)
        bounds the whole wait: for a connection, connecting, and the head (TimeoutError).
        ValueError, before anything is sent, for a line break in the request line or a header,
        or a character outside latin-1."""
        head = self._head(method, target, headers, len(body))
        connection = self._take_idle() or await self._acquire(deadline)
        if connection.closed:
            # Closed while it was handed over: nothing of this request was written yet.
            connection = await self._open(deadline)
            if connection.closed:
                self._discard(connection)
                raise ConnectFailed(f"{self._label}: closed before the request was sent")
        try:
            connection.send(head, body, bodiless=method == "HEAD")
            while connection.awaiting_head:
                await connection.wait(deadline)
        except BaseException:
            self._discard(connection)
            raise
        if connection.failure is not None:
            self._discard(connection)
            raise ConnectionBroken(connection.failure)
        return UpstreamResponse(self, connection)

    async def close(self) -> None:
        """Close every connection (those lent out are aborted under their callers) and turn
        away waiting and later requests."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(UpstreamError(f"{self._label}: the pool is closed"))
        connections = list(self._connections)
        for connection in connections:
            connection.abort()
        if connections:
            await asyncio.wait([connection.lost for connection in connections], timeout=_CLOSE_WAIT)

    def _head(self, method: str, target: str, headers: list[tuple[str, str]], length: int) -> bytes:
        lines = [f"{method} {self._target_prefix}{target} HTTP/1.1\r\n{self._fixed_lines}"]
        if length or method not in _NO_CONTENT_METHODS:
            lines.append(f"Content-Length: {length}\r\n")
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        lines.append("\r\n")
        head = "".join(lines)
        # A CR or LF inside a method, target or header would start a line of its own.
        breaks = len(lines) + self._fixed_breaks
        if head.count("\n") != breaks or head.count("\r") != breaks:
            raise ValueError("a line break inside the request line or a header")
        try:
            return head.encode("latin-1")
        except UnicodeEncodeError:  # its repr would quote the whole head, credentials too
            raise ValueError(
                "a character outside latin-1 in the request line or a header"
            ) from None

    # Lending connections out and taking them back.

    def _take_idle(self) -> UpstreamConnection | None:
        if not self._idle:
            return None
        connection = self._idle.pop()  # the most recently used: the least likely to be stale
        if connection.idle_timer is not None:
            connection.idle_timer.cancel()
            connection.idle_timer = None
        self._busy += 1
        return connection

    async def _acquire(self, deadline: float | None) -> UpstreamConnection:
        if self._closed:
            raise UpstreamError(f"{self._label}: the pool is closed")
        if self._busy < self._max:
            self._busy += 1
        else:
            connection = await self._wait_turn(deadline)
            if connection is not None:
                return connection
        return await self._open(deadline)

    async def _wait_turn(self, deadline: float | None) -> UpstreamConnection | None:
        """A connection handed over by a caller done with it, or None: a free slot to open one
        in."""
        waiter: asyncio.Future[UpstreamConnection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except TimeoutError:
            self._give_up_turn(waiter)
            raise PoolTimeout(
                f"{self._label}: all {self._max} connections stayed in use until the deadline"
            ) from None
        except BaseException:
            self._give_up_turn(waiter)
            raise

    def _give_up_turn(self, waiter: asyncio.Future[UpstreamConnection | None]) -> None:
        """Leave the queue; what was handed over in the meantime goes on to the next caller."""
        if waiter.cancelled():
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        elif waiter.exception() is None:
            connection = waiter.result()
            if connection is None:
                self._free_slot()
            else:
                self._hand_on(connection)

    async def _open(self, deadline: float | None) -> UpstreamConnection:
        """A new connection in a slot the caller holds; the slot is freed if this fails."""
        connection = UpstreamConnection(self._label, self._forget)
        try:
            await self._dialer.dial(connection, deadline)
        except BaseException:
            self._free_slot()
            raise
        if self._closed:
            self._discard(connection)
            raise UpstreamError(f"{self._label}: the pool is closed")
        if not connection.closed:
            self._connections.add(connection)
        return connection

    def _give_back(self, connection: UpstreamConnection) -> None:
        if connection.reusable:
            connection.recycle()
            self._hand_on(connection)
        else:
            self._discard(connection)

    def _hand_on(self, connection: UpstreamConnection) -> None:
        """A connection ready for a request goes to the longest waiting caller, else idle."""
        if connection.closed or self._closed:
            self._discard(connection)
            return
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(connection)
            return
        self._busy -= 1
        self._idle.append(connection)
        connection.idle_timer = connection.loop.call_later(self._idle_timeout, connection.abort)

    def _discard(self, connection: UpstreamConnection) -> None:
        connection.abort()
        self._free_slot()

    def _free_slot(self) -> None:
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(None)  # the slot passes to the waiter, which opens a connection
        else:
            self._busy -= 1

    def _next_waiter(self) -> asyncio.Future[UpstreamConnection | None] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def _forget(self, connection: UpstreamConnection) -> None:
        """The connection closed: it is neither open nor idle any more."""
        self._connections.discard(connection)
        if connection.idle_timer is not None:
            connection.idle_timer.cancel()
            connection.idle_timer = None
            self._idle.remove(connection)


class UpstreamResponse:
    """A response whose status line and headers are in; its body follows through `read` or
    `next_chunk`. Reading the body to its end gives the connection back to the pool; `release`
    gives it back early (aborting it unless the whole body already arrived), and is a no-op
    afterwards. A failed or timed-out read aborts the connection; a cancelled one leaves it
    readable (a stream others follow is read on after its first reader was cancelled)."""

    __slots__ = ("_connection", "_pool", "complete", "headers", "reason", "status")

    def __init__(self, pool: UpstreamPool, connection: UpstreamConnection) -> None:
        self._pool = pool
        self._connection: UpstreamConnection | None = connection
        self.status = connection.status
        self.reason = connection.reason
        self.headers: CIMultiDict[str] = connection.headers
        self.complete = False  # the caller was handed the body's end

    async def read(self, deadline: float | None, limit: int | None = None) -> bytes:
        """The whole body, which must have arrived by `deadline` (loop time); past `limit`
        bytes the connection is dropped and ConnectionBroken raised, so an answer that never
        ends cannot take every byte of memory."""
        parts = []
        size = 0
        while chunk := await self.next_chunk(deadline):
            size += len(chunk)
            if limit is not None and size > limit:
                self._drop()
                raise ConnectionBroken(f"an answer over {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def next_chunk(self, deadline: float | None) -> bytes:
        """The body bytes received since the last call (waiting for some if there are none
        yet), b"" at the end; TimeoutError if nothing arrives by `deadline`."""
        connection = self._connection
        if connection is None:
            if self.complete:
                return b""
            raise ConnectionBroken("the response was released before its end")
        if connection.chunks:
            return connection.take()
        try:
            while connection.awaiting_body:
                await connection.wait(deadline)
        except asyncio.CancelledError:
            raise  # the response stays readable: its owner may read on, or release it
        except BaseException:
            self._drop()
            raise
        if connection.chunks:
            return connection.take()
        if connection.failure is not None:
            self._drop()
            raise ConnectionBroken(connection.failure)
        self.complete = True
        self.release()
        return b""

    def release(self) -> None:
        connection = self._connection
        if connection is not None:
            self._connection = None
            self._pool._give_back(connection)

    def _drop(self) -> None:
        connection = self._connection
        if connection is not None:
            self._connection = None
            self._pool._discard(connection)


def _default_tls(ca_file: str | None) -> ssl.SSLContext:
    """The system's CA store (or `ca_file`), hostname checks, and ALPN offering HTTP/1.1 only."""
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context
