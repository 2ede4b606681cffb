"""An HTTP/1.1 server on asyncio protocols (uvloop): parse, queue, hand to a handler, frame.

A `ClientConnection` is one client. It feeds bytes to a `RequestReader` and queues the
parsed requests: pipelined ones are answered strictly in order, one handler at a time, and the
queue is bounded (`max_pipelined` requests, `max_body` bytes) by pausing the transport's
reading. It runs each handler in a task it owns, and keeps one timer for whichever wait is the
client's (head, body or idle). A client that goes away cancels the handler of a response still
in progress, so its upstream call stops at once; a FIN counts as going away, as in nginx.

The parser is llhttp through httptools, chosen by measurement (`python -m bench.wire_server`,
one core each for server and client, medians of 3 interleaved runs on a shared 2-core VM):
  parsing a 1.3 KB JSON POST with 10 header fields into a target, header dict and body:
    httptools 9.4 µs, aiohttp's C parser 21.5 µs (19 µs before its CIMultiDict becomes a
    dict), this package's RequestReader (every check, a Request object) 18.6 µs;
  server CPU per small keep-alive POST, a minimal echo protocol on each parser:
    httptools 64 µs, aiohttp's parser 94.5 µs;
  and for scale, a trivial handler: this server 116.5 µs, aiohttp.web 178.5 µs.
httptools builds nothing the server does not need (aiohttp's parser makes a CIMultiDict, a
yarl URL and a StreamReader per request) and its small API is public, where aiohttp's parser
is a private module whose constructor has changed between releases. Its gaps (no header
limits, HttpParserUpgrade outside HttpParserError, ...) are closed in `request.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

from edgeproxy.wire.limits import Limits
from edgeproxy.wire.request import BETWEEN, IN_BODY, IN_HEAD, Refusal, Request, RequestReader
from edgeproxy.wire.response import ClientGone, Outlet, Response

__all__ = ["ClientGone", "Handler", "HttpServer", "Reject", "Request", "Response", "default_reject"]

log = logging.getLogger("edgeproxy.wire")

Handler = Callable[[Request, Response], Awaitable[None]]
Reject = Callable[[int, str, Request | None], tuple[list[tuple[str, str]], bytes]]

_FEED_SLICE = 16 * 1024  # bytes parsed between checks of the pipelining bound
_LINGER = 2.0  # seconds a closing connection waits on a client that neither reads nor sends
_LINGER_LIMIT = 30.0  # seconds a closing connection waits on a client at most
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def default_reject(
    status: int, message: str, request: Request | None
) -> tuple[list[tuple[str, str]], bytes]:
    """The server's own error answers as a small JSON body."""
    body = json.dumps({"error": {"status": status, "message": message}}).encode()
    return [("content-type", "application/json")], body


class HttpServer:
    """Serves `handler` on one listening socket within `limits`; `reject` renders the errors
    the server answers itself (the client's request, when its head was parsed, lets it answer
    in the client's dialect)."""

    def __init__(self, handler: Handler, limits: Limits, reject: Reject | None = None) -> None:
        self.handler = handler
        self.limits = limits
        self.reject = reject or default_reject
        self.draining = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[ClientConnection] = set()
        self._server: asyncio.Server | None = None
        self._quiet: asyncio.Future[None] | None = None

    @property
    def connections(self) -> int:
        """Open client connections."""
        return len(self._connections)

    @property
    def handlers_running(self) -> int:
        """Handler tasks not yet returned (a handler may run on after its response ends)."""
        return len(self._tasks)

    @property
    def queued_requests(self) -> int:
        """Requests parsed and waiting behind the one their connection is serving."""
        return sum(c.queued for c in self._connections)

    @property
    def buffered_bytes(self) -> int:
        """Response bytes held for clients that have not read them yet."""
        return sum(c.buffered for c in self._connections)

    async def start(self, host: str, port: int, reuse_port: bool = False) -> tuple[str, int]:
        """Listen on host:port (port 0 picks a free one); returns the bound address.
        `reuse_port`: share the port with other processes (SO_REUSEPORT), the kernel
        spreading new connections across them (edgeproxy.workers)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self), host, port, reuse_port=reuse_port or None
        )
        bound: tuple[str, int] = self._server.sockets[0].getsockname()[:2]
        return bound

    def stop_accepting(self) -> None:
        """Close the listening socket. Idle connections close at once; busy ones after their
        response, which says `connection: close`, so their clients reconnect elsewhere."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.wind_down()

    def quiet(self) -> asyncio.Future[None]:
        """Done once no connection and no handler is left (after `stop_accepting`)."""
        if self._quiet is None:
            self._quiet = asyncio.get_running_loop().create_future()
            self._check_quiet()
        return self._quiet

    async def shutdown(self, grace: float, hurry: asyncio.Future[None] | None = None) -> None:
        """Stop accepting; give requests in flight up to `grace` seconds (less if `hurry` is
        done first), then interrupt them."""
        self.stop_accepting()
        quiet = self.quiet()
        waits = (quiet,) if hurry is None else (quiet, hurry)
        await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        if not quiet.done():
            log.warning(
                "shutdown: interrupting the requests still in flight",
                extra={"in_flight": len(self._tasks)},
            )
        await self._interrupt()

    async def _interrupt(self) -> None:
        """Cancel the handlers still running. A handler may answer its cancellation while its
        client is there (end its stream with a last word and the terminator); a response left
        unfinished is dropped. Connections get `_LINGER` seconds to take their last bytes and
        close, and are dropped after."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._connections:
            await asyncio.wait((self.quiet(),), timeout=_LINGER)
        for connection in list(self._connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()

    def _opened(self, connection: ClientConnection) -> None:
        self._connections.add(connection)

    def _closed(self, connection: ClientConnection) -> None:
        self._connections.discard(connection)
        self._check_quiet()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._check_quiet()

    def _check_quiet(self) -> None:
        if (
            self._quiet is not None
            and not self._quiet.done()
            and not self._connections
            and not self._tasks
        ):
            self._quiet.set_result(None)


class ClientConnection(asyncio.Protocol):
    """One client connection."""

    __slots__ = (
        "_active",
        "_body_since",
        "_closing",
        "_continue_owed",
        "_heard",
        "_idle_since",
        "_limits",
        "_linger_left",
        "_linger_until",
        "_loop",
        "_now",
        "_outlet",
        "_queue",
        "_queued_bytes",
        "_reader",
        "_reading_paused",
        "_served",
        "_server",
        "_settled",
        "_stash",
        "_timer",
        "_timer_at",
        "_transport",
    )

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._reader = RequestReader(server.limits, self._head_read, self._request_read)
        self._queue: deque[Request | Refusal] = deque()
        self._queued_bytes = 0
        self._stash: bytes | None = None  # bytes not parsed while the queue is full
        self._active: asyncio.Task[None] | None = None
        self._settled = True  # the active handler's response is over (or there is none)
        self._reading_paused = False
        self._closing = False  # no further request will be served
        self._continue_owed = False
        self._served = False
        self._now = self._loop.time()
        self._idle_since = self._now
        self._body_since = self._now
        self._linger_left = 0
        self._linger_until = 0.0
        self._heard = False  # the client sent bytes since the last linger check
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport, hence no isinstance).
        self._transport = transport = cast(asyncio.Transport, transport)
        self._outlet = Outlet(self._loop, transport, self._limits.send_timeout)
        transport.set_write_buffer_limits(high=self._limits.write_buffer_high)
        self._server._opened(self)
        if self._server.draining:
            self.abort()
            return
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._closing or self._reader.done:
            self._heard = True  # a closing connection discards what the client still sends
            return
        if self._stash is not None:
            self._stash += data
            return
        self._now = time.monotonic()  # loop.time() on uvloop counts whole milliseconds
        self._feed(data)
        self._send_continue()
        self._arm_timer()

    def eof_received(self) -> bool:
        """A FIN from the client is an abort: its handler is cancelled at once."""
        if not self._settled:
            self.abort()
        else:
            self._stop()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        self._outlet.lose()
        if self._active is not None and not self._settled:
            self._active.cancel()
        self._server._closed(self)

    def pause_writing(self) -> None:
        self._outlet.pause()

    def resume_writing(self) -> None:
        self._outlet.resume()

    # what the server asks of a connection

    @property
    def buffered(self) -> int:
        return self._outlet.buffered

    @property
    def queued(self) -> int:
        return len(self._queue)

    def wind_down(self) -> None:
        """The server is shutting down: close if idle; otherwise finish what is in flight and
        answer it with `connection: close`."""
        self._outlet.keep_alive = False
        if self._active is None and not self._queue and self._reader.phase == BETWEEN:
            self._stop()
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection; cancel a handler whose response is still in progress."""
        self._stop()
        self._outlet.abort()
        if self._active is not None and not self._settled:
            self._active.cancel()

    # reading

    def _feed(self, data: bytes) -> None:
        if len(data) <= _FEED_SLICE:
            self._parse(data)
        else:
            view = memoryview(data)
            for start in range(0, len(data), _FEED_SLICE):
                if self._queue_full():
                    self._stash = bytes(view[start:])
                    break
                self._parse(view[start : start + _FEED_SLICE])
                if self._reader.done:
                    break
        if self._queue_full() and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def _parse(self, data: bytes | memoryview) -> None:
        try:
            self._reader.feed(data, self._now)
        except Refusal as refusal:
            self._enqueue(refusal)

    def _queue_full(self) -> bool:
        return (
            len(self._queue) >= self._limits.max_pipelined
            or self._queued_bytes >= self._limits.max_body
        )

    def _head_read(self, request: Request, expects_continue: bool) -> None:
        self._body_since = self._now
        self._continue_owed = expects_continue

    def _send_continue(self) -> None:
        """`100 Continue` goes out when a feed ends with the body still to come (a client that
        sent it anyway needs none), and only between responses: a pipelined request that
        expects it gets it when its turn comes, and its body clock starts then."""
        if self._continue_owed and self._active is None and not self._queue and not self._closing:
            self._continue_owed = False
            self._body_since = self._loop.time()
            self._outlet.write_now(_CONTINUE)

    def _request_read(self, request: Request) -> None:
        self._continue_owed = False
        self._enqueue(request)

    def _enqueue(self, item: Request | Refusal) -> None:
        self._queue.append(item)
        if isinstance(item, Request):
            self._queued_bytes += len(item.body)
        self._start_next()

    # serving

    def _start_next(self) -> None:
        if self._active is not None or not self._queue or self._closing:
            return
        item = self._queue.popleft()
        if isinstance(item, Refusal):
            self._refuse(item)
            return
        self._queued_bytes -= len(item.body)
        self._served = True
        response = Response(
            self._outlet, item.version, item.method == "HEAD", item.keep_alive, self._response_done
        )
        self._settled = False
        # The connection owns its handler's task (not edgeproxy.background): the client leaving
        # must cancel it at once. loop.create_task, as asyncio.create_task asks the OS for the
        # process id on every call on Python 3.11.
        self._active = self._loop.create_task(self._serve(item, response), name="wire-handler")
        self._server._track(self._active)

    async def _serve(self, request: Request, response: Response) -> None:
        try:
            await self._server.handler(request, response)
        except ClientGone:
            pass
        except Exception:
            log.exception("handler failed: %s %s", request.method, request.path)
            self._salvage(request, response)
        else:
            if not response.finished:
                log.error("handler returned unfinished: %s %s", request.method, request.path)
                self._salvage(request, response)
        finally:
            if not response.finished and not response.gone:
                response.abort()  # cancelled mid-response, with the client still there
            self._exchange_over()

    def _salvage(self, request: Request, response: Response) -> None:
        """A handler failed: a 500 if it had not started its response, else a dropped
        connection, so a truncated body never looks complete."""
        if response.gone or response.finished:
            return
        if response.started:
            response.abort()
        else:
            self._send_error(response, 500, "internal server error", request)

    def _response_done(self, keep_alive: bool) -> None:
        self._settled = True
        if not keep_alive:
            self._close_after_response()

    def _exchange_over(self) -> None:
        self._active = None
        self._settled = True
        if self._closing:
            return
        if self._server.draining and not self._queue and self._reader.phase == BETWEEN:
            self._close_after_response()
            return
        self._idle_since = self._loop.time()
        self._start_next()
        self._send_continue()
        self._resume_parsing()
        self._arm_timer()

    def _resume_parsing(self) -> None:
        if self._closing or self._queue_full():
            return
        if self._stash is not None:
            data, self._stash = self._stash, None
            self._now = self._loop.time()
            self._feed(data)
        if self._reading_paused and not self._queue_full():
            self._reading_paused = False
            self._transport.resume_reading()

    def _refuse(self, refusal: Refusal) -> None:
        if self._outlet.gone:
            return
        request = refusal.request
        log.debug("refused with %d: %s", refusal.status, refusal.message)
        version = request.version if request is not None else "1.1"
        head_only = request is not None and request.method == "HEAD"
        response = Response(self._outlet, version, head_only, False, self._response_done)
        self._send_error(response, refusal.status, refusal.message, request)

    def _send_error(
        self, response: Response, status: int, message: str, request: Request | None
    ) -> None:
        """An error rendered by the server's `reject`, or by `default_reject` if that fails."""
        try:
            headers, body = self._server.reject(status, message, request)
            response.send(status, headers, body)
        except Exception:
            log.exception("reject failed to render a %d", status)
            headers, body = default_reject(status, message, request)
            response.send(status, headers, body)

    # closing

    def _stop(self) -> None:
        """Serve nothing more: drop queued requests and unparsed bytes, cancel the timer."""
        self._closing = True
        self._queue.clear()
        self._stash = None
        self._cancel_timer()

    def _close_after_response(self) -> None:
        """Shut our side once the response is sent, and read on (discarding) until the client
        closes, so a client still sending can read our answer before a reset destroys it. A
        client that neither reads our answer nor sends for `_LINGER` seconds, or that is still
        at it after `_LINGER_LIMIT`, is dropped."""
        if self._closing:
            return
        self._stop()
        transport = self._transport
        if transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._linger_left = transport.get_write_buffer_size()
        self._linger_until = self._loop.time() + _LINGER_LIMIT
        self._heard = False
        self._timer = self._loop.call_later(_LINGER, self._linger)

    def _linger(self) -> None:
        left = self._transport.get_write_buffer_size()
        progress = self._heard or left < self._linger_left
        self._heard = False
        self._linger_left = left
        if progress and self._loop.time() < self._linger_until:
            self._timer = self._loop.call_later(_LINGER, self._linger)
        elif left:
            self._transport.abort()  # close() would wait for a client that does not read
        else:
            self._transport.close()

    # the client's clock

    def _client_deadline(self) -> float | None:
        """When the client's current wait ends: the rest of a head, the rest of a body, or the
        next request. None while a response is the server's to give."""
        if self._active is not None or self._queue or self._closing:
            return None
        phase = self._reader.phase
        if phase == IN_HEAD:
            return self._reader.began_at + self._limits.header_timeout
        if phase == IN_BODY:
            return self._body_since + self._limits.body_timeout
        if self._served:
            return self._idle_since + self._limits.keepalive_timeout
        return self._idle_since + self._limits.header_timeout

    def _arm_timer(self) -> None:
        """One timer serves every wait. It is never moved later: when it fires it looks at
        the wait then current, and sleeps again if that ends later. So a busy keep-alive
        connection touches its timer about once per keep-alive timeout, not per request."""
        deadline = self._client_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        deadline = self._client_deadline()
        if deadline is None:
            return
        if deadline > self._loop.time():
            self._arm_timer()
        else:
            self._timed_out()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        phase = self._reader.phase
        if phase == BETWEEN:
            self._close_after_response()
            return
        request = self._reader.abandon()
        part = "head" if phase == IN_HEAD else "body"
        self._enqueue(Refusal(408, f"timed out reading the request {part}", request))
