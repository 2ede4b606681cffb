"""Responses to the wire: framing, batching, backpressure and the client leaving.

uvloop sends each `transport.write` at once, one syscall each. An `Outlet` (one per
connection) keeps the writes made in one event-loop turn and sends them together with one
`writelines` (one `writev`). It also holds the transport's backpressure state, so a
pipelined response inherits a client that is still not reading, and knows when the client is
gone.

A `Response` (one per request) frames what the handler gives it: Content-Length for a whole
body, chunked (HTTP/1.1) or close-delimited (HTTP/1.0) for a stream, no body for HEAD. The
framing and connection headers are the server's: a handler's `content-length`,
`transfer-encoding`, `connection`, `keep-alive` or `date` is dropped, so no handler can
desynchronise the connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http import HTTPStatus

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_SERVER_OWNED = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "date"}
)
_BODILESS = frozenset({204, 304})
_CHUNKED = b"transfer-encoding: chunked\r\n"
_CLOSE = b"connection: close\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_CRLF = b"\r\n"


class ClientGone(ConnectionError):
    """The client went away: nothing written now can reach it."""


class Outlet:
    """The write side of one client connection."""

    __slots__ = (
        "_flush_scheduled",
        "_loop",
        "_pending",
        "_send_timeout",
        "_stall",
        "_transport",
        "_waiter",
        "gone",
        "keep_alive",
        "paused",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        send_timeout: float = 60.0,
    ) -> None:
        self._loop = loop
        self._transport = transport
        self._send_timeout = send_timeout  # a client taking nothing this long is dropped
        self._pending: list[bytes] = []
        self._flush_scheduled = False
        self._waiter: asyncio.Future[None] | None = None
        self._stall: asyncio.TimerHandle | None = None
        self.paused = False  # the transport's buffer is above its high mark
        self.gone = False  # the client left, or the connection was dropped
        self.keep_alive = True  # False once the server is draining: responses then close

    @property
    def buffered(self) -> int:
        """Response bytes held for this client: batched here and in the transport's buffer."""
        return sum(map(len, self._pending)) + self._transport.get_write_buffer_size()

    def write(self, *parts: bytes) -> None:
        """Send `parts` with the other writes of this loop turn."""
        if self.gone:
            raise ClientGone
        self._pending.extend(parts)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_turn)

    def write_now(self, data: bytes) -> None:
        """Send `data`, after whatever this turn batched, at once."""
        if self.gone:
            raise ClientGone
        if self._pending:
            self._pending.append(data)
            self.flush()
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._pending and not self.gone:
            self._transport.writelines(self._pending)
        self._pending = []

    def _flush_turn(self) -> None:
        self._flush_scheduled = False
        self.flush()

    async def drain(self) -> None:
        self.flush()
        while self.paused and not self.gone:
            if self._waiter is None:
                self._waiter = self._loop.create_future()
                # Only while the client takes nothing: progress (resume_writing) cancels it.
                self._stall = self._loop.call_later(self._send_timeout, self.abort)
            # Shielded: one waiter cancelled must not cancel the future others wait on too.
            await asyncio.shield(self._waiter)
        if self.gone:
            raise ClientGone

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._wake()

    def lose(self) -> None:
        """The connection is over: drop what was batched and wake anyone waiting to write."""
        self.gone = True
        self._pending = []
        self._wake()

    def abort(self) -> None:
        self.lose()
        self._transport.abort()

    def _wake(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None


class Response:
    """The handler's one way to answer: `send` a whole response, or `start`, `write`...,
    `end` a streamed one; `abort` when it cannot be completed (a truncated body must never look
    complete). `on_done(keep_alive)` tells the connection the response is over and whether
    the connection may serve another request."""

    __slots__ = (
        "_chunked",
        "_head_only",
        "_keep_alive",
        "_on_done",
        "_outlet",
        "_version",
        "finished",
        "started",
    )

    def __init__(
        self,
        outlet: Outlet,
        version: str,
        head_only: bool,
        keep_alive: bool,
        on_done: Callable[[bool], None],
    ) -> None:
        self._outlet = outlet
        self._version = version
        self._head_only = head_only
        self._keep_alive = keep_alive
        self._on_done = on_done
        self._chunked = False
        self.started = False
        self.finished = False

    @property
    def gone(self) -> bool:
        return self._outlet.gone

    def send(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        """A complete response with Content-Length, in one transport write."""
        self._check_start(status)
        if status in _BODILESS:
            head = self._head(status, headers, b"")
        else:
            head = self._head(status, headers, b"content-length: %d\r\n" % len(body))
            if not self._head_only:
                head += body
        self.started = True
        self._outlet.write_now(head)
        self._finish()

    def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """A streamed response: chunked on HTTP/1.1, close-delimited on HTTP/1.0."""
        if status in _BODILESS:
            raise ValueError(f"a {status} response has no body to stream: use send()")
        self._check_start(status)
        if self._version == "1.1":
            self._chunked = True
            framing = _CHUNKED
        else:
            self._keep_alive = False
            framing = b""
        head = self._head(status, headers, framing)
        self.started = True
        self._outlet.write(head)

    def write(self, data: bytes) -> None:
        """Body bytes of a started response, sent with the other writes of this loop turn.
        Await `drain()` between writes: that is what holds a stream to the client's pace."""
        if not self.started or self.finished:
            raise RuntimeError("write() needs a started, unfinished response")
        if self._outlet.gone:
            raise ClientGone
        if self._head_only or not data:
            return
        if self._chunked:
            self._outlet.write(b"%x\r\n" % len(data), data, _CRLF)
        else:
            self._outlet.write(data)

    async def drain(self) -> None:
        """Send what is batched; wait while the client's buffer is above its high mark."""
        await self._outlet.drain()

    def end(self) -> None:
        """Complete a started response."""
        if not self.started or self.finished:
            raise RuntimeError("end() needs a started, unfinished response")
        if self._chunked and not self._head_only:
            self._outlet.write_now(_LAST_CHUNK)
        else:
            self._outlet.flush()
        self._finish()

    def abort(self) -> None:
        """Drop the connection: the client sees a response cut short, never a complete one."""
        if self.finished:
            return
        self._outlet.abort()
        self._on_done(False)

    def _check_start(self, status: int) -> None:
        if self.started:
            raise RuntimeError("the response has already started")
        if not 200 <= status <= 599:
            raise ValueError(f"status {status} is not a final response status")
        if self._outlet.gone:
            raise ClientGone
        self._keep_alive = self._keep_alive and self._outlet.keep_alive

    def _finish(self) -> None:
        self.finished = True
        self._on_done(self._keep_alive)

    def _head(self, status: int, headers: Iterable[tuple[str, str]], framing: bytes) -> bytes:
        lines = [
            f"{name}: {value}\r\n" for name, value in headers if name.lower() not in _SERVER_OWNED
        ]
        text = "".join(lines)
        if text.count("\n") != len(lines) or text.count("\r") != len(lines):
            raise ValueError("a response header name or value holds CR or LF")
        if not self._keep_alive:
            connection = _CLOSE
        elif self._version == "1.0":
            connection = _KEEP_ALIVE
        else:
            connection = b""
        status_line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status
        return b"".join(
            (status_line, text.encode("latin-1"), framing, connection, _DATE.line(), _CRLF)
        )


class HttpDate:
    """The Date header line, formatted at most once a second."""

    __slots__ = ("_clock", "_line", "_second")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        second = int(self._clock())
        if second != self._second:
            self._second = second
            self._line = b"date: %s\r\n" % formatdate(second, usegmt=True).encode()
        return self._line


_DATE = HttpDate()
