"""A tiny HTTP proxy for the wire client's egress tests: CONNECT tunnels and absolute-form
requests, to loopback targets only, recording what each client asked it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class ConnectProxy:
    """`answer`: answer every request with these bytes and close, instead of proxying it;
    `silent`: never answer."""

    def __init__(self, *, answer: bytes | None = None, silent: bool = False) -> None:
        self._answer = answer
        self._silent = silent
        self._server: asyncio.Server | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self.asked: list[tuple[str, dict[str, str]]] = []  # request line, headers (lowercased)
        self.port = 0

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials}{'@' if credentials else ''}127.0.0.1:{self.port}"

    async def start(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            await self._relay(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()
            self._running.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, *fields = head[:-4].decode("latin-1").split("\r\n")
        headers = {
            name.lower(): value.strip() for name, _, value in (f.partition(":") for f in fields)
        }
        self.asked.append((line, headers))
        if self._silent:
            await reader.read()
            return
        if self._answer is not None:
            writer.write(self._answer)
            await writer.drain()
            return
        method, target, _ = line.split(" ")
        where = urlsplit(f"//{target}" if method == "CONNECT" else target)
        if where.hostname not in LOOPBACK:
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            return
        up_reader, up_writer = await asyncio.open_connection(where.hostname, where.port)
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.transport.abort()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    with contextlib.suppress(OSError):
        sink.write_eof()
