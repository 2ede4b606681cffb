"""Response heads and bodies: framing, streaming as bytes arrive, interim responses, bytes
passed through undecoded, backpressure, deadlines and malformed answers."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest

from edgeproxy.wire.client import ConnectionBroken, UpstreamPool, UpstreamResponse
from edgeproxy.wire.upstream_connection import MAX_HEADER_FIELDS, PAUSE_ABOVE, UpstreamConnection
from tests.support.raw_upstream import (
    Harness,
    Held,
    Peer,
    chunked,
    keep_answering,
    response,
)

STREAM_HEADERS = [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")]
EVENTS = [b'data: {"n": %d}\n\n' % n for n in range(5)]


@pytest.fixture
async def wire() -> AsyncIterator[Harness]:
    async with Harness() as harness:
        yield harness


async def chunks_of(answer: UpstreamResponse) -> list[bytes]:
    chunks = []
    while chunk := await answer.next_chunk(None):
        chunks.append(chunk)
    return chunks


@pytest.mark.parametrize(
    "answer",
    [
        response(b"".join(EVENTS)),
        response(chunked(*EVENTS), headers=STREAM_HEADERS, length=False),
        response(
            chunked(*EVENTS, extension=';name="value"', trailers=["x-usage: 12"]),
            headers=STREAM_HEADERS,
            length=False,
        ),
        response(b"".join(EVENTS), headers=[("connection", "close")], length=False),
    ],
    ids=["content-length", "chunked", "chunk-extensions-and-trailers", "close-delimited"],
)
async def test_body_streams_as_it_arrives(wire: Harness, answer: bytes) -> None:
    head, _, _ = answer.partition(b"\r\n\r\n")
    rest = answer[len(head) + 4 :]

    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(answer[: len(head) + 4])
        await peer.send(*[rest[i : i + 20] for i in range(0, len(rest), 20)])
        peer.close()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())

    streamed = await pool.request("POST", "/", [], b"", deadline=None)
    chunks = await chunks_of(streamed)

    assert b"".join(chunks) == b"".join(EVENTS)
    assert len(chunks) > 1
    assert streamed.complete
    assert await streamed.next_chunk(None) == b""


@pytest.mark.parametrize(
    "answer",
    [
        response(
            chunked(b"hello ", b"world", extension=";x=1", trailers=["x-t: 1"]),
            headers=[("transfer-encoding", "chunked"), ("x-h", "v")],
            length=False,
        ),
        response(b"", status=103, reason="Early Hints", headers=[("link", "</a>")], length=False)
        + response(b"hello world", headers=[("x-h", "v")]),
    ],
    ids=["chunked", "early-hints-then-content-length"],
)
async def test_split_at_every_byte_the_response_is_the_same(wire: Harness, answer: bytes) -> None:
    async def script(peer: Peer) -> None:
        for split in range(1, len(answer)):
            if await peer.read_request() is None:
                return
            await peer.send(answer[:split], answer[split:])

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())

    for _ in range(1, len(answer)):
        received = await pool.request("POST", "/", [], b"", deadline=None)
        assert (received.status, received.headers["x-h"]) == (200, "v")
        assert await received.read(None) == b"hello world"

    assert len(upstream.peers) == 1


@pytest.mark.parametrize(
    "interim",
    [
        response(b"", status=100, reason="Continue", length=False),
        response(b"", status=103, reason="Early Hints", headers=[("link", "</s>")], length=False),
        response(b"", status=100, reason="Continue", length=False)
        + response(b"", status=103, reason="Early Hints", length=False),
    ],
    ids=["100", "103", "100-and-103"],
)
async def test_interim_responses_are_skipped(wire: Harness, interim: bytes) -> None:
    upstream = await wire.serve(keep_answering(interim + response(b"real", reason="Fine")))
    pool = wire.pool(upstream.origin())

    answer = await pool.request("POST", "/", [], b"", deadline=None)

    assert (answer.status, answer.reason) == (200, "Fine")
    assert "link" not in answer.headers
    assert await answer.read(None) == b"real"
    assert pool.idle == 1


async def test_the_answer_to_a_head_ends_with_its_head(wire: Harness) -> None:
    """Its Content-Length announces the body a GET would get; none follows, and the answer
    does not wait for one. The connection, its parser expecting that body, is not reused."""
    upstream = await wire.serve(
        keep_answering(response(b"", headers=[("content-length", "42")], length=False))
    )
    pool = wire.pool(upstream.origin())

    answer = await pool.request(
        "HEAD", "/", [], b"", deadline=asyncio.get_running_loop().time() + 5
    )

    assert (answer.status, answer.headers["content-length"]) == (200, "42")
    assert await answer.read(asyncio.get_running_loop().time() + 5) == b""
    answer.release()
    assert pool.idle == 0


async def test_a_body_past_the_limit_is_refused_and_its_connection_dropped(
    wire: Harness,
) -> None:
    upstream = await wire.serve(keep_answering(response(b"x" * 100)))
    pool = wire.pool(upstream.origin())

    answer = await pool.request("GET", "/", [], b"", deadline=None)
    with pytest.raises(ConnectionBroken, match="over 50 bytes"):
        await answer.read(None, limit=50)

    assert (pool.idle, pool.in_use) == (0, 0)
    assert await (await pool.request("GET", "/", [], b"", deadline=None)).read(None) == b"x" * 100


async def test_gzip_body_comes_back_as_sent(wire: Harness) -> None:
    packed = gzip.compress(b'{"answer": 42}')
    upstream = await wire.serve(
        keep_answering(response(packed, headers=[("content-encoding", "gzip")]))
    )
    pool = wire.pool(upstream.origin())

    answer = await pool.request("POST", "/", [("accept-encoding", "identity")], b"", deadline=None)

    assert answer.headers["content-encoding"] == "gzip"
    assert await answer.read(None) == packed
    assert upstream.requests[0].header("accept-encoding") == "identity"


async def test_repeated_headers_and_raw_bytes_are_kept(wire: Harness) -> None:
    headers = [("set-cookie", "a=1"), ("Set-Cookie", "b=2"), ("x-raw", "caf\xe9")]
    upstream = await wire.serve(keep_answering(response(headers=headers)))
    pool = wire.pool(upstream.origin())

    answer = await pool.request("POST", "/", [], b"", deadline=None)

    assert answer.headers.getall("set-cookie") == ["a=1", "b=2"]
    assert answer.headers["x-raw"].encode("latin-1") == b"caf\xe9"
    await answer.read(None)


async def test_buffered_body_is_handed_over_without_waiting(wire: Harness) -> None:
    upstream = await wire.serve(keep_answering(response(b"all here")))
    pool = wire.pool(upstream.origin())
    answer = await pool.request("POST", "/", [], b"", deadline=None)
    already_passed = asyncio.get_running_loop().time() - 1

    assert await answer.next_chunk(already_passed) == b"all here"
    assert await answer.next_chunk(already_passed) == b""
    assert answer.complete


class RecordingTransport(asyncio.Transport):
    """Stands in for a socket: records what the connection asks of it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def writelines(self, data: object) -> None:
        self.calls.append("write")

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def abort(self) -> None:
        self.calls.append("abort")


async def test_unconsumed_body_past_the_cap_pauses_reading_until_taken() -> None:
    transport = RecordingTransport()
    connection = UpstreamConnection("upstream.test:80", lambda _: None)
    connection.connection_made(transport)
    connection.send(b"", b"")
    connection.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (4 * PAUSE_ABOVE))
    piece = b"x" * (PAUSE_ABOVE // 4)

    for _ in range(4):
        connection.data_received(piece)
    assert transport.calls == ["write"]
    connection.data_received(piece)
    connection.data_received(piece)
    assert transport.calls == ["write", "pause"]

    assert len(connection.take()) == 6 * len(piece)
    assert transport.calls == ["write", "pause", "resume"]


async def test_slow_consumer_gets_the_whole_body_and_the_connection_is_reused(
    wire: Harness,
) -> None:
    body = bytes(range(256)) * (16 * PAUSE_ABOVE // 256)
    upstream = await wire.serve(keep_answering(response(body)))
    pool = wire.pool(upstream.origin())

    for _ in range(2):
        answer = await pool.request("POST", "/", [], b"", deadline=None)
        received = []
        while chunk := await answer.next_chunk(None):
            assert len(chunk) <= 2 * PAUSE_ABOVE
            received.append(chunk)
            await asyncio.sleep(0)
        assert b"".join(received) == body

    assert len(upstream.peers) == 1


async def test_nothing_arriving_by_the_deadline_is_a_timeout(wire: Harness) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"12345")[:-3])
        await peer.client_closed()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())
    answer = await pool.request("POST", "/", [], b"", deadline=None)
    assert await answer.next_chunk(None) == b"12"

    with pytest.raises(TimeoutError):
        await answer.next_chunk(asyncio.get_running_loop().time() + 0.05)

    assert pool.in_use == 0
    await upstream.peers[0].client_gone.wait()


async def open_stream(wire: Harness, first: bytes) -> tuple[UpstreamResponse, Peer, UpstreamPool]:
    """A chunked stream's head and `first` (chunked, its last-chunk marker held back) sent:
    the stream stays open for the test to write more."""
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin())
    request = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    peer, _ = await held.arrived.get()
    peer.writer.write(response(first, headers=STREAM_HEADERS, length=False)[:-5])
    return await request, peer, pool


async def test_each_wait_times_out_at_its_own_deadline_earlier_or_later(wire: Harness) -> None:
    answer, peer, _ = await open_stream(wire, chunked(b"one"))
    loop = asyncio.get_running_loop()
    assert await answer.next_chunk(loop.time() + 30) == b"one"  # arms a distant deadline

    reading = asyncio.create_task(answer.next_chunk(loop.time() + 30))
    await asyncio.sleep(0)
    peer.writer.write(chunked(b"two")[:-5])  # arrives well before the distant deadline
    assert await reading == b"two"

    with pytest.raises(TimeoutError):  # a nearer deadline than the one armed still counts
        await answer.next_chunk(loop.time() + 0.05)


async def test_a_wait_outlasting_an_earlier_waits_deadline_is_not_cut_short(
    wire: Harness,
) -> None:
    answer, peer, _ = await open_stream(wire, chunked())
    loop = asyncio.get_running_loop()
    first = asyncio.create_task(answer.next_chunk(loop.time() + 0.05))  # arms 50 ms
    await asyncio.sleep(0)
    peer.writer.write(chunked(b"one")[:-5])
    assert await first == b"one"

    second = asyncio.create_task(answer.next_chunk(loop.time() + 30))
    await asyncio.sleep(0.1)  # past the first wait's deadline: the timer fires and follows
    assert not second.done()
    peer.writer.write(chunked(b"two")[:-5])
    assert await second == b"two"
    answer.release()


async def test_cancelled_while_streaming_reads_on_or_aborts_when_released(
    wire: Harness,
) -> None:
    answer, peer, pool = await open_stream(wire, chunked(b"one"))
    assert await answer.next_chunk(None) == b"one"

    reading = asyncio.create_task(answer.next_chunk(None))
    await asyncio.sleep(0)
    assert not reading.done()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading

    peer.writer.write(chunked(b"two")[:-5])
    assert await answer.next_chunk(None) == b"two", "a cancelled wait loses nothing"
    answer.release()
    await peer.client_gone.wait()
    assert pool.in_use == 0
    with pytest.raises(ConnectionBroken, match="released"):
        await answer.next_chunk(None)


async def test_release_before_the_end_aborts_the_connection(wire: Harness) -> None:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin())
    request = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    peer, _ = await held.arrived.get()
    peer.writer.write(response(b"0123456789")[:-5])
    answer = await request

    answer.release()

    await peer.client_gone.wait()
    assert (pool.in_use, pool.idle, answer.complete) == (0, 0, False)


async def test_release_after_the_whole_body_arrived_pools_the_connection(wire: Harness) -> None:
    upstream = await wire.serve(keep_answering(response(b"unread")))
    pool = wire.pool(upstream.origin())
    answer = await pool.request("POST", "/", [], b"", deadline=None)

    answer.release()
    answer.release()

    assert (pool.in_use, pool.idle) == (0, 1)
    assert await (await pool.request("POST", "/", [], b"", deadline=None)).read(None) == b"unread"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n", "malformed"),
        (b"ICY 200 OK\r\n\r\n", "malformed"),
        (response(headers=[("x-big", "v" * 70_000)]), "head over"),
        (b"HTTP/1.1 200 OK\r\nx-endless: " + b"v" * 70_000, "head over"),
        (response(headers=[(f"x-{n}", "v") for n in range(MAX_HEADER_FIELDS + 1)]), "fields"),
        (response(b"zz\r\nab\r\n0\r\n\r\n", headers=STREAM_HEADERS[1:], length=False), "malformed"),
        (response(b"", status=101, reason="Switching Protocols", length=False), "101"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            "malformed",
        ),
        (response(b"abc", headers=[("transfer-encoding", "chunked")]), "malformed"),
    ],
    ids=[
        "bad-status-code",
        "not-http",
        "header-too-long",
        "head-never-ends",
        "too-many-fields",
        "invalid-chunk-size",
        "switching-protocols",
        "two-content-lengths",
        "content-length-and-chunked",
    ],
)
async def test_malformed_response_breaks_the_connection(
    wire: Harness, answer: bytes, problem: str
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(answer)
        await peer.client_closed()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())

    with pytest.raises(ConnectionBroken, match=problem) as raised:
        received = await pool.request("POST", "/", [], b"", deadline=None)
        await received.read(None)

    assert "v" * 10 not in str(raised.value)
    await upstream.peers[0].client_gone.wait()


@pytest.mark.parametrize(
    "answer",
    [
        response(b"12345")[:-2],
        response(chunked(b"one", b"two"), headers=STREAM_HEADERS, length=False)[:-5],
    ],
    ids=["content-length", "chunked"],
)
async def test_body_cut_short_is_broken(wire: Harness, answer: bytes) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(answer)
        peer.close()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())
    received = await pool.request("POST", "/", [], b"", deadline=None)

    with pytest.raises(ConnectionBroken, match="before the response ended"):
        await received.read(None)

    assert pool.in_use == 0


async def test_close_delimited_body_cut_by_a_reset_is_broken(wire: Harness) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"partial", length=False))
        peer.reset()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())
    received = await pool.request("POST", "/", [], b"", deadline=None)

    with pytest.raises(ConnectionBroken, match="lost"):
        await received.read(None)


async def test_unsolicited_bytes_on_an_idle_connection_close_it(wire: Harness) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"ok"))
        await peer.send(response(b"timeout", status=408, reason="Request Timeout"))
        await peer.client_closed()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())
    assert await (await pool.request("POST", "/", [], b"", deadline=None)).read(None) == b"ok"

    await upstream.peers[0].client_gone.wait()
    assert pool.idle == 0


async def test_bytes_before_the_connection_is_handed_over_close_it() -> None:
    closed: list[UpstreamConnection] = []
    connection = UpstreamConnection("upstream.test:443", closed.append)

    connection.data_received(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    transport = RecordingTransport()
    connection.connection_made(transport)

    assert closed == [connection]
    assert transport.calls == ["abort"]
