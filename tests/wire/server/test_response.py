"""Writing responses: framing, the server's own headers, batching writes into one syscall,
and backpressure from a client that does not read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from edgeproxy.wire import response as response_module
from edgeproxy.wire.limits import Limits
from edgeproxy.wire.response import HttpDate, Outlet
from edgeproxy.wire.server import Request, Response
from tests.support.poll import eventually
from tests.wire.server.conftest import Serve

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def sending(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> Any:
    async def handler(request: Request, response: Response) -> None:
        response.send(status, headers, body)

    return handler


async def test_send_frames_the_body_with_content_length(serve: Serve) -> None:
    client = await (await serve(sending(201, [("x-a", "1")], b"hello"))).connect()
    response = await client.exchange(GET)
    assert (response.status, response.body) == (201, b"hello")
    assert response.fields[:2] == [("x-a", "1"), ("content-length", "5")]


async def test_framing_and_connection_headers_from_a_handler_are_dropped(serve: Serve) -> None:
    headers = [
        ("Content-Length", "999"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "close"),
        ("Keep-Alive", "timeout=1"),
        ("Date", "yesterday"),
        ("x-kept", "yes"),
    ]
    client = await (await serve(sending(200, headers, b"body"))).connect()
    response = await client.exchange(GET)
    names = [name for name, _ in response.fields]
    assert names == ["x-kept", "content-length", "date"]
    assert response.headers["content-length"] == "4"
    assert (await client.exchange(GET)).status == 200, "the connection stayed in sync"


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_statuses_carry_no_length_and_no_body(serve: Serve, status: int) -> None:
    client = await (await serve(sending(status, [], b"ignored"))).connect()
    response = await client.exchange(GET)
    assert response.status == status
    assert "content-length" not in response.headers
    assert (await client.exchange(GET)).status == status, "no body bytes were left behind"


async def test_an_unknown_status_gets_a_status_line_without_reason(serve: Serve) -> None:
    client = await (await serve(sending(599, [], b""))).connect()
    await client.send(GET)
    assert await client.reader.readline() == b"HTTP/1.1 599 \r\n"


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, [("x-injected", "a\r\nset-cookie: evil=1")]),
        (200, [("x-bare-lf", "a\nb")]),
        (200, [("x-bare\rcr", "a")]),
        (200, [("x-not-latin1", "snowman \u2603")]),
        (99, []),
        (600, []),
    ],
    ids=["crlf-in-value", "lf-in-value", "cr-in-name", "not-latin1", "status-99", "status-600"],
)
async def test_a_response_the_server_cannot_frame_becomes_a_500(
    serve: Serve, status: int, headers: list[tuple[str, str]]
) -> None:
    client = await (await serve(sending(status, headers, b"x"))).connect()
    response = await client.exchange(GET)
    assert response.status == 500
    assert "set-cookie" not in response.headers


async def test_a_stream_is_chunked_on_http11(serve: Serve) -> None:
    async def handler(request: Request, response: Response) -> None:
        response.start(200, [("content-type", "text/event-stream")])
        for n in range(3):
            response.write(b"data: %d\n\n" % n)
            await response.drain()
        response.write(b"")
        response.end()

    client = await (await serve(handler)).connect()
    response = await client.exchange(GET)
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert (await client.exchange(GET)).status == 200, "the connection is kept alive"


async def test_a_stream_is_close_delimited_on_http10(serve: Serve) -> None:
    async def handler(request: Request, response: Response) -> None:
        response.start(200, [])
        response.write(b"one ")
        response.write(b"two")
        response.end()

    client = await (await serve(handler)).connect()
    response = await client.exchange(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert "transfer-encoding" not in response.headers
    assert response.headers["connection"] == "close"
    assert response.body == b"one two"


@pytest.mark.parametrize(
    "misuse",
    ["send-twice", "start-after-send", "write-before-start", "end-before-start", "start-204"],
)
async def test_misusing_a_response_raises_in_the_handler(serve: Serve, misuse: str) -> None:
    raised: list[type[Exception]] = []

    async def handler(request: Request, response: Response) -> None:
        try:
            if misuse == "send-twice":
                response.send(200, [], b"first")
                response.send(200, [], b"second")
            elif misuse == "start-after-send":
                response.send(200, [], b"first")
                response.start(200, [])
            elif misuse == "write-before-start":
                response.write(b"x")
            elif misuse == "end-before-start":
                response.end()
            else:
                response.start(204, [])
        except (RuntimeError, ValueError) as error:
            raised.append(type(error))
            if not response.started:
                response.send(200, [], b"recovered")

    client = await (await serve(handler)).connect()
    assert (await client.exchange(GET)).status == 200
    assert len(raised) == 1


class WriteLog:
    """Wraps a transport and records each write and writelines call."""

    def __init__(self, transport: Any, calls: list[list[bytes]]) -> None:
        self._transport = transport
        self._calls = calls

    def write(self, data: bytes) -> None:
        self._calls.append([data])
        self._transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        self._calls.append(list(parts))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def test_writes_of_one_loop_turn_go_out_in_one_call(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[bytes]] = []
    original = Outlet.__init__

    def logging_init(
        self: Outlet, loop: asyncio.AbstractEventLoop, transport: Any, send_timeout: float
    ) -> None:
        original(self, loop, WriteLog(transport, calls), send_timeout)

    monkeypatch.setattr(Outlet, "__init__", logging_init)

    async def handler(request: Request, response: Response) -> None:
        response.start(200, [])
        response.write(b"a")
        response.write(b"b")
        await asyncio.sleep(0)
        response.write(b"c")
        response.end()

    client = await (await serve(handler)).connect()
    assert (await client.exchange(GET)).body == b"abc"
    heads, rest = calls[0], calls[1:]
    assert heads[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"".join(heads[1:]) == b"1\r\na\r\n1\r\nb\r\n", "head and the first writes in one call"
    assert rest == [[b"1\r\n", b"c", b"\r\n", b"0\r\n\r\n"]], (
        "the last write and the end in one call"
    )


# backpressure


class Streamer:
    """A handler that streams `chunk` forever, draining after each write, and counts the
    drains it entered and left. It yields to the loop only inside a drain that waits, so a
    test that sees `entered > left` sees it blocked there."""

    def __init__(self, chunk: bytes) -> None:
        self.chunk = chunk
        self.entered = 0
        self.left = 0

    async def __call__(self, request: Request, response: Response) -> None:
        response.start(200, [])
        while True:
            response.write(self.chunk)
            self.entered += 1
            await response.drain()
            self.left += 1


async def test_a_client_that_never_reads_blocks_drain_and_bounds_memory(serve: Serve) -> None:
    limits = Limits(write_buffer_high=64 * 1024)
    streamer = Streamer(b"x" * 16 * 1024)
    served = await serve(streamer, limits)
    client = await served.connect(receive_buffer=4096)
    await client.send(GET)
    await eventually(lambda: streamer.entered > streamer.left, "the handler to block in drain")
    assert served.server.buffered_bytes <= limits.write_buffer_high + len(streamer.chunk)
    client.reset()


async def test_a_client_that_takes_nothing_for_the_send_timeout_is_dropped(serve: Serve) -> None:
    limits = Limits(write_buffer_high=64 * 1024, send_timeout=0.05)
    streamer = Streamer(b"x" * 16 * 1024)
    served = await serve(streamer, limits)
    client = await served.connect(receive_buffer=4096)
    await client.send(GET)
    await eventually(lambda: streamer.entered > streamer.left, "the handler to block in drain")
    # The client neither reads nor closes: the server drops it, which ends the handler.
    await eventually(lambda: served.server.connections == 0, "the stalled client to be dropped")
    await eventually(lambda: served.server.handlers_running == 0, "its handler to end")
    client.reset()


async def test_a_pipelined_response_starts_paused_while_the_client_still_is(serve: Serve) -> None:
    drains: list[str] = []
    big = b"x" * (16 * 1024 * 1024)  # more than the kernel buffers between us hold

    async def handler(request: Request, response: Response) -> None:
        if request.path == "/big":
            response.send(200, [], big)
            return
        response.start(200, [])
        response.write(b"small")
        drains.append("entered")
        await response.drain()
        drains.append("left")
        response.end()

    served = await serve(handler, Limits(write_buffer_high=64 * 1024))
    client = await served.connect(receive_buffer=4096)
    await client.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /small HTTP/1.1\r\nHost: t\r\n\r\n")
    await eventually(lambda: drains != [], "the second handler to drain")
    assert drains == ["entered"], "the second response did not wait for the slow client"
    assert len((await client.response()).body) == len(big)
    assert (await client.response()).body == b"small"
    assert drains == ["entered", "left"]


async def test_the_date_header_is_formatted_at_most_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    formatted: list[float] = []
    real_format = response_module.formatdate

    def counting_format(second: float, usegmt: bool) -> str:
        formatted.append(second)
        return real_format(second, usegmt=usegmt)

    monkeypatch.setattr(response_module, "formatdate", counting_format)
    times = iter(
        [1_700_000_000.0, 1_700_000_000.3, 1_700_000_000.95, 1_700_000_001.0, 1_700_000_001.2]
    )
    date = HttpDate(clock=lambda: next(times))
    lines = [date.line() for _ in range(5)]
    assert formatted == [1_700_000_000, 1_700_000_001]
    assert lines[0] == b"date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
    assert len(set(lines)) == 2


async def test_a_drain_cancelled_while_waiting_leaves_other_drains_waiting(serve: Serve) -> None:
    outcome: list[str] = []

    async def handler(request: Request, response: Response) -> None:
        response.start(200, [])
        response.write(b"x" * (16 * 1024 * 1024))  # more than the kernel buffers between us hold
        first = asyncio.create_task(response.drain())
        second = asyncio.create_task(response.drain())
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        outcome.append("first cancelled" if first.cancelled() else "first returned")
        await second
        outcome.append("second returned")
        response.end()

    client = await (await serve(handler, Limits(write_buffer_high=64 * 1024))).connect(4096)
    await client.send(GET)
    await eventually(lambda: outcome != [], "the first drain to be cancelled")
    assert outcome == ["first cancelled"]
    assert len((await client.response()).body) == 16 * 1024 * 1024
    assert outcome == ["first cancelled", "second returned"]
