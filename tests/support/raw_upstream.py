"""A scriptable raw HTTP/1.1 upstream for the wire client's tests, and a harness around it.

Each accepted connection runs the test's script: it reads requests and writes whatever bytes it
likes (well-formed answers, malformed ones, answers split at any byte), and closes or resets
the connection whenever the test wants. Nothing is framed for the script unless it asks.

`Harness` starts upstreams and pools for one test and checks, when the test ends, what every
test of the client must leave behind: no connection still lent out, nothing reported to the
loop's exception handler, no task still running.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import trustme

from edgeproxy.wire.client import UpstreamPool


@dataclass(frozen=True)
class RawRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None


class Peer:
    """One accepted connection, as its script sees it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.requests: list[RawRequest] = []
        self.client_gone = asyncio.Event()

    async def read_request(self) -> RawRequest | None:
        """The next request (with its Content-Length body), or None once the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.client_gone.set()
            return None
        request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ")
        headers = [
            (name, value.strip()) for name, _, value in (line.partition(":") for line in lines)
        ]
        request = RawRequest(method, target, headers, b"")
        length = request.header("content-length")
        if length is not None:
            request = RawRequest(
                method, target, headers, await self.reader.readexactly(int(length))
            )
        self.requests.append(request)
        return request

    async def send(self, *parts: bytes) -> None:
        """Write each part on its own and let the client's loop read it before the next."""
        for part in parts:
            self.writer.write(part)
            await self.writer.drain()
            for _ in range(3):  # loop turns, not time: the client reads what is already there
                await asyncio.sleep(0)

    async def client_closed(self) -> bool:
        """Wait until the client closes its side; False if it sent more bytes instead."""
        try:
            gone = await self.reader.read(1) == b""
        except ConnectionError:
            gone = True
        if gone:
            self.client_gone.set()
        return gone

    def close(self) -> None:
        self.writer.close()

    def shut(self) -> None:
        """Send the FIN now, before the loop turns (close() sends it on the next turn)."""
        self.writer.get_extra_info("socket").shutdown(socket.SHUT_RDWR)

    def reset(self) -> None:
        """Close with a TCP reset instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Script = Callable[[Peer], Awaitable[None]]


class RawUpstream:
    """A loopback server running `script` on every accepted connection (TLS with `tls`)."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self._script = script
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self.peers: list[Peer] = []
        self.failures: list[BaseException] = []
        self.port = 0

    @property
    def requests(self) -> list[RawRequest]:
        return [request for peer in self.peers for request in peer.requests]

    def origin(self, host: str = "127.0.0.1") -> str:
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}"

    async def start(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self._server.wait_closed()
        if self.failures:
            raise AssertionError("an upstream script failed") from self.failures[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        peer = Peer(reader, writer)
        self.peers.append(peer)
        try:
            await self._script(peer)
        except (asyncio.CancelledError, ConnectionError):
            pass
        except Exception as exc:
            self.failures.append(exc)
        finally:
            writer.transport.abort()
            self._running.discard(task)


class TlsServer:
    """A TLS context for the raw upstream: a certificate from the test CA for `names`, ALPN
    http/1.1, and a record of the server name (SNI) each client asked for."""

    def __init__(self, ca: trustme.CA, *names: str) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(self.context)
        self.context.set_alpn_protocols(["http/1.1"])
        self.server_names: list[str | None] = []
        self.context.sni_callback = self._sni

    def _sni(self, _: Any, name: str | None, __: Any) -> None:
        self.server_names.append(name)


def response(
    body: bytes = b"",
    *,
    status: int = 200,
    reason: str = "OK",
    headers: Sequence[tuple[str, str]] = (),
    version: str = "1.1",
    length: bool = True,
) -> bytes:
    """A response's bytes; with `length`, a Content-Length header for `body`."""
    lines = [f"HTTP/{version} {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts: bytes, extension: str = "", trailers: Sequence[str] = ()) -> bytes:
    """`parts` as a chunked body (each chunk with `extension`), then the trailer fields."""
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension.encode(), p) for p in parts)
    return body + b"0\r\n" + b"".join(f"{t}\r\n".encode() for t in trailers) + b"\r\n"


def answering(*answers: bytes) -> Script:
    """A script answering each request on a connection with the next of `answers`, then
    waiting for the client to close."""

    async def script(peer: Peer) -> None:
        for answer in answers:
            if await peer.read_request() is None:
                return
            await peer.send(answer)
        await peer.client_closed()

    return script


def keep_answering(answer: bytes) -> Script:
    """A script answering every request on a connection with `answer`."""

    async def script(peer: Peer) -> None:
        while await peer.read_request() is not None:
            peer.writer.write(answer)

    return script


class Held:
    """A script handing every request to the test, which answers it (or not) on its peer."""

    def __init__(self) -> None:
        self.arrived: asyncio.Queue[tuple[Peer, RawRequest]] = asyncio.Queue()

    async def __call__(self, peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            await self.arrived.put((peer, request))


class Harness:
    """Upstreams and pools for one test, checked and stopped when it ends."""

    def __init__(self) -> None:
        self.loop_errors: list[dict[str, Any]] = []
        self._pools: list[UpstreamPool] = []
        self._upstreams: list[RawUpstream] = []
        self._tasks_before: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Harness:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: self.loop_errors.append(context))
        self._tasks_before = asyncio.all_tasks()
        return self

    async def serve(self, script: Script, *, tls: ssl.SSLContext | None = None) -> RawUpstream:
        upstream = await RawUpstream(script, tls).start()
        self._upstreams.append(upstream)
        return upstream

    def pool(self, origin: str, **options: Any) -> UpstreamPool:
        pool = UpstreamPool(origin, **options)
        self._pools.append(pool)
        return pool

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        lent = [pool.in_use for pool in self._pools]
        for pool in self._pools:
            await pool.close()
        for upstream in self._upstreams:
            await upstream.stop()
        gc.collect()  # a future whose exception nobody retrieved reports it when collected
        await asyncio.sleep(0)
        asyncio.get_running_loop().set_exception_handler(None)
        if kind is not None:
            return
        assert not any(lent), f"connections still lent out: {lent}"
        assert not self.loop_errors, f"reached the loop's exception handler: {self.loop_errors}"
        current = asyncio.current_task()
        leftover = {t for t in asyncio.all_tasks() - self._tasks_before if t is not current}
        assert not leftover, f"tasks left running: {leftover}"
