"""A raw-socket HTTP/1.1 client for the wire tests, with a strict reader of responses.

It sends exactly the bytes a test gives it and reads responses byte for byte, so a test sees
what a client on the wire sees: a status line, headers, a body framed by Content-Length,
chunks or the close, and whether the server closed the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from dataclasses import dataclass

_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5]\d\d) [^\r\n]*\r\n")
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ([^\r\n]*)\r\n")
_READ_TIMEOUT = 10.0


class Malformed(AssertionError):
    """The server sent bytes that are not a well-formed HTTP/1.1 response."""


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated field joined with ", "
    fields: list[tuple[str, str]]  # every header line, in order, as sent
    body: bytes


async def read_response(reader: asyncio.StreamReader, head_only: bool = False) -> RawResponse:
    """One response, strictly: a malformed or truncated one raises `Malformed`."""
    line = await reader.readline()
    if not (match := _STATUS_LINE.fullmatch(line)):
        raise Malformed(f"bad status line {line!r}")
    status = int(match[1])
    fields: list[tuple[str, str]] = []
    while (line := await reader.readline()) != b"\r\n":
        if not (header := _HEADER_LINE.fullmatch(line)):
            raise Malformed(f"bad header line {line!r}")
        fields.append((header[1].decode().lower(), header[2].decode("latin-1")))
    headers: dict[str, str] = {}
    for name, value in fields:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if head_only or status < 200 or status in (204, 304):
        body = b""
    elif headers.get("transfer-encoding") == "chunked":
        body = await _read_chunks(reader)
    elif "content-length" in headers:
        body = await _read_exactly(reader, int(headers["content-length"]))
    elif headers.get("connection") == "close":
        body = await reader.read()
    else:
        raise Malformed(f"a {status} response with no framing on a kept-alive connection")
    return RawResponse(status, headers, fields, body)


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        line = await reader.readline()
        if not re.fullmatch(rb"[0-9a-f]+\r\n", line):
            raise Malformed(f"bad chunk size line {line!r}")
        size = int(line, 16)
        if size == 0:
            if await reader.readline() != b"\r\n":
                raise Malformed("no CRLF after the last chunk")
            return b"".join(parts)
        parts.append(await _read_exactly(reader, size))
        if await reader.readline() != b"\r\n":
            raise Malformed("no CRLF after a chunk")


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as error:
        raise Malformed(f"body cut short: {len(error.partial)} of {size} bytes") from None


async def read_all_responses(data: bytes) -> list[RawResponse]:
    """Every response in `data`, which must be whole responses and nothing else."""
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    responses = []
    while not reader.at_eof():
        responses.append(await read_response(reader))
    return responses


async def complete_responses(data: bytes) -> list[RawResponse]:
    """The whole responses at the start of `data`, up to the first cut or malformed one."""
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    responses = []
    while not reader.at_eof():
        try:
            responses.append(await read_response(reader))
        except (Malformed, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            break
    return responses


class RawClient:
    """One TCP connection to the server under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, receive_buffer: int | None = None) -> RawClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, head_only: bool = False) -> RawResponse:
        async with asyncio.timeout(_READ_TIMEOUT):
            return await read_response(self.reader, head_only)

    async def response_head(self) -> bytes:
        """The next response's status line and headers, leaving its body unread."""
        async with asyncio.timeout(_READ_TIMEOUT):
            return await self.reader.readuntil(b"\r\n\r\n")

    async def exchange(self, request: bytes, head_only: bool = False) -> RawResponse:
        await self.send(request)
        return await self.response(head_only)

    async def rest(self) -> bytes:
        """Everything until the server closes (a reset counts as a close)."""
        async with asyncio.timeout(_READ_TIMEOUT):
            try:
                return await self.reader.read()
            except ConnectionResetError:
                return b""

    async def closed_silently(self) -> bool:
        """The server closed the connection without sending anything more."""
        return await self.rest() == b""

    def finish_sending(self) -> None:
        """Half-close: send a FIN."""
        self.writer.write_eof()

    def reset(self) -> None:
        """Close with a reset (RST) instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
