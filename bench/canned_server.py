"""The bench's raw upstreams: a keep-alive connection's requests, framed by Content-Length,
each handed to `answer`, which writes canned bytes. Nothing is parsed beyond the framing, so
an upstream costs a fraction of the CPU the proxy under test spends on the same request."""

from __future__ import annotations

import asyncio
from typing import cast


class CannedServer(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.received += data
        while (end := self.received.find(b"\r\n\r\n")) >= 0:
            head = self.received[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
            if len(self.received) < end + 4 + length:
                return
            body = self.received[end + 4 : end + 4 + length]
            self.received = self.received[end + 4 + length :]
            self.answer(self.transport, head, body)

    def answer(self, transport: asyncio.Transport, head: bytes, body: bytes) -> None:
        """Write the answer to one request (`head` in lower case, without its blank line)."""
        raise NotImplementedError
