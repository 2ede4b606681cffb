"""A cheap closed-loop load generator: `concurrency` keep-alive connections on raw asyncio
protocols, each sending one canned request at a time, responses framed by llhttp (httptools).

bench/load.py (aiohttp) spends about as much CPU per request as the proxy does; where the
proxy has to be saturated on a machine it shares with its load (bench/workers.py), that would
measure the load generator. This one spends a fraction of it: the request is bytes made once,
a response is counted when its parser says it is complete, nothing else is decoded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

import httptools

from bench.load import Limits

STALL_GRACE = 5.0  # seconds past a run's time limit before it is declared stalled


@dataclass(frozen=True)
class RawResult:
    completed: int
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


def post(host: str, port: int, path: str, body: bytes) -> bytes:
    """The canned request: a keep-alive POST of `body` as JSON."""
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-bench-client\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection of the loop: sends, waits for the whole answer, sends again."""

    def __init__(self, load: RawLoad) -> None:
        self._load = load
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self) -> None:
        assert self.transport is not None
        self.busy = True
        self.transport.write(self._load.request)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._answered(ok=False)

    def on_message_complete(self) -> None:
        self._answered(ok=self._parser.get_status_code() == 200)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self._answered(ok=False)
        self._load.lost(self)

    def _answered(self, ok: bool) -> None:
        self.busy = False
        self._load.answered(self, ok)


class RawLoad:
    """`concurrency` connections to host:port sending `request` (see the module docstring)."""

    def __init__(self, host: str, port: int, request: bytes, concurrency: int) -> None:
        self._host = host
        self._port = port
        self.request = request
        self._concurrency = concurrency
        self._connections: list[_Connection] = []
        self._budget = 0
        self._deadline = 0.0
        self._completed = 0
        self._errors = 0
        self._busy = 0
        self._idle: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        for _ in range(self._concurrency):
            _, connection = await loop.create_connection(
                lambda: _Connection(self), self._host, self._port
            )
            self._connections.append(connection)

    def close(self) -> None:
        for connection in self._connections:
            if connection.transport is not None:
                connection.transport.close()

    async def run(self, limits: Limits) -> RawResult:
        """Send until `limits` (requests or seconds, whichever first) is reached."""
        loop = asyncio.get_running_loop()
        self._budget, self._completed, self._errors = limits.requests, 0, 0
        started = loop.time()
        self._deadline = started + limits.seconds
        self._idle = loop.create_future()
        for connection in self._connections:
            self._send(connection)
        try:
            async with asyncio.timeout(limits.seconds + STALL_GRACE):
                await self._idle
        except TimeoutError:
            raise RuntimeError(f"raw load: {self._busy} requests stalled") from None
        return RawResult(self._completed, self._errors, loop.time() - started)

    def _send(self, connection: _Connection) -> None:
        assert self._loop is not None
        if self._budget <= 0 or self._loop.time() >= self._deadline:
            return
        self._budget -= 1
        self._busy += 1
        connection.send()

    def answered(self, connection: _Connection, ok: bool) -> None:
        self._busy -= 1
        if ok:
            self._completed += 1
        else:
            self._errors += 1
        self._send(connection)
        if self._busy == 0 and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def lost(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)
