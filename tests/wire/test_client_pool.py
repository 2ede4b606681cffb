"""The upstream pool: keep-alive, its bound and queue, idle expiry, stale connections, the
request it writes, cancellation and close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from edgeproxy.wire.client import (
    ConnectionBroken,
    PoolTimeout,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
)
from tests.support.poll import eventually
from tests.support.raw_upstream import (
    Harness,
    Held,
    Peer,
    RawUpstream,
    keep_answering,
    response,
)


@pytest.fixture
async def wire() -> AsyncIterator[Harness]:
    async with Harness() as harness:
        yield harness


async def test_keep_alive_reuses_one_connection(wire: Harness) -> None:
    upstream = await wire.serve(keep_answering(response(b"hi")))
    pool = wire.pool(upstream.origin())

    for _ in range(3):
        answer = await pool.request("POST", "/", [], b"{}", deadline=None)
        assert await answer.read(None) == b"hi"

    assert len(upstream.peers) == 1
    assert (pool.in_use, pool.idle) == (0, 1)


async def test_request_carries_host_and_content_length_then_the_callers_headers(
    wire: Harness,
) -> None:
    upstream = await wire.serve(keep_answering(response()))
    pool = wire.pool(upstream.origin())

    answer = await pool.request(
        "POST", "/v1/chat?q=a%20b", [("x-one", "1"), ("x-two", "2")], b"hello", deadline=None
    )
    await answer.read(None)

    (request,) = upstream.requests
    assert (request.method, request.target, request.body) == ("POST", "/v1/chat?q=a%20b", b"hello")
    assert request.headers == [
        ("Host", f"127.0.0.1:{upstream.port}"),
        ("Content-Length", "5"),
        ("x-one", "1"),
        ("x-two", "2"),
    ]


async def test_get_without_body_has_no_content_length(wire: Harness) -> None:
    upstream = await wire.serve(keep_answering(response()))
    pool = wire.pool(upstream.origin())

    await (await pool.request("GET", "/v1/models", [], b"", deadline=None)).read(None)

    assert upstream.requests[0].header("content-length") is None


@pytest.mark.parametrize(
    ("target", "headers", "problem"),
    [
        ("/", [("x-a", "1\r\nx-injected: 1")], "line break"),
        ("/", [("x-a\n", "1")], "line break"),
        ("/ HTTP/1.1\r\nx-injected: 1\r\n\r\nPOST /", [], "line break"),
        ("/", [("x-a", "bare\rcr")], "line break"),
        ("/", [("authorization", "Bearer sk-secret"), ("x-a", "snow\u2603man")], "latin-1"),
    ],
)
async def test_request_that_cannot_be_written_is_refused_before_sending(
    wire: Harness, target: str, headers: list[tuple[str, str]], problem: str
) -> None:
    upstream = await wire.serve(keep_answering(response()))
    pool = wire.pool(upstream.origin())

    with pytest.raises(ValueError, match=problem) as raised:
        await pool.request("POST", target, headers, b"", deadline=None)

    assert "sk-secret" not in repr(raised.value)
    assert upstream.peers == []
    assert pool.in_use == 0


async def test_connections_are_bounded_and_waiters_served_in_order(wire: Harness) -> None:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin(), max_connections=2)
    requests = [
        asyncio.create_task(pool.request("POST", "/", [], b"%d" % i, deadline=None))
        for i in range(4)
    ]
    first = [await held.arrived.get(), await held.arrived.get()]
    await eventually(lambda: pool.waiting == 2, "two requests wait")
    assert (pool.in_use, len(upstream.peers)) == (2, 2)

    served = []
    for _ in range(4):
        peer, request = first.pop(0) if first else await held.arrived.get()
        served.append(request.body)
        peer.writer.write(response(request.body))
        answer = await requests[int(request.body)]
        assert await answer.read(None) == request.body

    assert sorted(served[:2]) == [b"0", b"1"]
    assert served[2:] == [b"2", b"3"]
    assert len(upstream.peers) == 2


async def test_waiting_past_the_deadline_is_a_pool_timeout(wire: Harness) -> None:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin(), max_connections=1)
    first = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    peer, _ = await held.arrived.get()
    loop = asyncio.get_running_loop()

    with pytest.raises(PoolTimeout) as raised:
        await pool.request("POST", "/", [], b"", deadline=loop.time() + 0.05)

    assert isinstance(raised.value, TimeoutError)
    assert pool.waiting == 0
    peer.writer.write(response())
    await (await first).read(None)


async def test_idle_connection_expires(wire: Harness) -> None:
    closed_by_client = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())
        if await peer.client_closed():
            closed_by_client.set()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin(), idle_timeout=0.05)

    await (await pool.request("POST", "/", [], b"", deadline=None)).read(None)
    assert pool.idle == 1

    await closed_by_client.wait()
    assert pool.idle == 0


@pytest.mark.parametrize(
    ("answer", "pooled"),
    [
        (response(b"x"), True),
        (response(b"x", headers=[("connection", "close")]), False),
        (response(b"x", version="1.0"), False),
        (response(b"x", version="1.0", headers=[("connection", "keep-alive")]), True),
        (response(b"x", length=False), False),
        (response(b"", status=204, length=False), True),
        (response(b"x") + b"surplus", False),
    ],
    ids=[
        "keep-alive",
        "connection-close",
        "http-1.0",
        "http-1.0-keep-alive",
        "close-delimited",
        "no-content",
        "longer-than-content-length",
    ],
)
async def test_only_a_cleanly_ended_keep_alive_response_is_pooled(
    wire: Harness, answer: bytes, pooled: bool
) -> None:
    close_delimited = b"content-length" not in answer and b" 204 " not in answer

    async def script(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(answer)
            if close_delimited:
                peer.close()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())

    first = await pool.request("POST", "/", [], b"", deadline=None)

    assert await first.read(None) == (b"" if first.status == 204 else b"x")
    assert pool.idle == (1 if pooled else 0)
    await (await pool.request("POST", "/", [], b"", deadline=None)).read(None)
    assert len(upstream.peers) == (1 if pooled else 2)


@pytest.mark.parametrize("how", ["fin", "reset"])
async def test_server_closing_between_requests_costs_no_error(wire: Harness, how: str) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"first"))
        if how == "fin":
            peer.close()
        else:
            peer.reset()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())
    assert await (await pool.request("POST", "/", [], b"", deadline=None)).read(None) == b"first"

    await eventually(lambda: pool.idle == 0, "the pool sees the close")
    again = await pool.request("POST", "/", [], b"", deadline=None)

    assert await again.read(None) == b"first"
    assert len(upstream.peers) == 2


@dataclass
class Queued:
    """A pool of one connection: the first request's answer read (not yet released) and a
    second request waiting for that connection."""

    held: Held
    upstream: RawUpstream
    pool: UpstreamPool
    peer: Peer
    answer: UpstreamResponse
    second: asyncio.Task[UpstreamResponse]


async def one_answered_one_waiting(wire: Harness, first: bytes, then: bytes) -> Queued:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin(), max_connections=1)
    request = asyncio.create_task(pool.request("POST", "/", [], first, deadline=None))
    peer, _ = await held.arrived.get()
    peer.writer.write(response(first.lower()))
    answer = await request
    assert await answer.next_chunk(None) == first.lower()
    second = asyncio.create_task(pool.request("POST", "/", [], then, deadline=None))
    await eventually(lambda: pool.waiting == 1, "the second request waits")
    return Queued(held, upstream, pool, peer, answer, second)


async def test_connection_closed_when_handed_over_carries_nothing_and_is_replaced(
    wire: Harness,
) -> None:
    queued = await one_answered_one_waiting(wire, b"A", b"B")

    # The FIN is on the wire before the connection is handed over, and seen just after.
    queued.peer.shut()
    asyncio.get_running_loop().call_soon(queued.answer.release)
    replacement, _ = await queued.held.arrived.get()
    replacement.writer.write(response(b"b"))

    assert await (await queued.second).read(None) == b"b"
    assert replacement is not queued.peer
    assert [r.body for r in queued.upstream.requests] == [b"A", b"B"]


async def test_request_is_never_sent_again_once_written(wire: Harness) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"first"))
        await peer.read_request()
        peer.close()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())
    await (await pool.request("POST", "/", [], b"1", deadline=None)).read(None)

    with pytest.raises(ConnectionBroken, match="before the response head"):
        await pool.request("POST", "/", [], b"2", deadline=None)

    assert [r.body for r in upstream.requests] == [b"1", b"2"]
    assert len(upstream.peers) == 1


async def test_server_reset_after_a_partial_request_is_broken_not_retried(wire: Harness) -> None:
    async def script(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")
        peer.reset()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())

    with pytest.raises(ConnectionBroken):
        await pool.request("POST", "/", [], b"x" * 1_000_000, deadline=None)

    assert len(upstream.peers) == 1


async def test_no_answer_by_the_deadline_is_a_timeout(wire: Harness) -> None:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin())
    loop = asyncio.get_running_loop()

    with pytest.raises(TimeoutError):
        await pool.request("POST", "/", [], b"", deadline=loop.time() + 0.05)

    peer, _ = await held.arrived.get()
    await peer.client_gone.wait()


async def test_cancelled_while_waiting_for_a_connection_leaves_the_queue(wire: Harness) -> None:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin(), max_connections=1)
    first = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    peer, _ = await held.arrived.get()
    second = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    await eventually(lambda: pool.waiting == 1, "the second request waits")

    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second

    assert pool.waiting == 0
    peer.writer.write(response())
    await (await first).read(None)
    assert (pool.in_use, pool.idle) == (0, 1)


async def test_connection_handed_to_a_cancelled_waiter_goes_on(wire: Harness) -> None:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin(), max_connections=1)
    first = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    peer, _ = await held.arrived.get()
    peer.writer.write(response(b"x"))
    answer = await first
    assert await answer.next_chunk(None) == b"x"
    second = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    third = asyncio.create_task(pool.request("POST", "/", [], b"3", deadline=None))
    await eventually(lambda: pool.waiting == 2, "two requests wait")

    answer.release()  # handed to the second request, which is cancelled before it runs
    second.cancel()

    with pytest.raises(asyncio.CancelledError):
        await second
    _, request = await held.arrived.get()
    assert request.body == b"3"
    peer.writer.write(response())
    await (await third).read(None)
    assert len(upstream.peers) == 1


async def test_cancelled_while_waiting_for_the_head_aborts_the_connection(wire: Harness) -> None:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin())
    request = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    peer, _ = await held.arrived.get()

    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request

    await peer.client_gone.wait()
    assert (pool.in_use, pool.idle) == (0, 0)


async def test_close_aborts_lent_connections_and_turns_waiters_away(wire: Harness) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"partial", headers=[("x", "y")])[:-3])
        await peer.client_closed()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin(), max_connections=1)
    answer = await pool.request("POST", "/", [], b"", deadline=None)
    waiting = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    await eventually(lambda: pool.waiting == 1, "a request waits")

    await pool.close()

    with pytest.raises(UpstreamError, match="closed"):
        await waiting
    assert await answer.next_chunk(None) == b"part"
    with pytest.raises(ConnectionBroken):
        await answer.next_chunk(None)
    assert pool.in_use == 0
    with pytest.raises(UpstreamError, match="closed"):
        await pool.request("POST", "/", [], b"", deadline=None)
    assert len(upstream.peers) == 1


@pytest.mark.parametrize(
    "origin",
    [
        "ftp://files.test",
        "https://",
        "https://api.test/v1",
        "https://api.test?x=1",
        "https://api.test#x",
        "https://user:secret@api.test",
    ],
)
def test_origin_is_scheme_host_and_port_only(origin: str) -> None:
    with pytest.raises(ValueError, match="origin must be") as raised:
        UpstreamPool(origin)

    assert "secret" not in str(raised.value)


def test_a_pool_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        UpstreamPool("http://127.0.0.1:8001", max_connections=0)


async def test_discarded_connection_leaves_its_place_to_the_next_waiter(wire: Harness) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"bye", headers=[("connection", "close")]))
        await peer.client_closed()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin(), max_connections=1)
    first = await pool.request("POST", "/", [], b"", deadline=None)
    second = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    await eventually(lambda: pool.waiting == 1, "the second request waits")

    assert await first.read(None) == b"bye"

    assert await (await second).read(None) == b"bye"
    assert len(upstream.peers) == 2


async def test_place_left_to_a_cancelled_waiter_goes_on(wire: Harness) -> None:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin(), max_connections=1)
    first = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    peer, _ = await held.arrived.get()
    second = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    third = asyncio.create_task(pool.request("POST", "/", [], b"3", deadline=None))
    await eventually(lambda: pool.waiting == 2, "two requests wait")

    # The first request's place goes to the second, which is cancelled before it runs.
    first.cancel()
    asyncio.get_running_loop().call_soon(second.cancel)

    await asyncio.gather(first, second, return_exceptions=True)
    replacement, request = await held.arrived.get()
    replacement.writer.write(response())
    await (await third).read(None)
    assert request.body == b"3"
    assert replacement is not peer


async def test_connection_closed_after_handover_to_a_cancelled_waiter_is_dropped(
    wire: Harness,
) -> None:
    queued = await one_answered_one_waiting(wire, b"X", b"")

    # Handed over, then closed, then the waiter is cancelled: all before the waiter runs.
    queued.peer.shut()
    loop = asyncio.get_running_loop()
    loop.call_soon(queued.answer.release)
    loop.call_soon(queued.second.cancel)

    with pytest.raises(asyncio.CancelledError):
        await queued.second
    pool = queued.pool
    assert (pool.in_use, pool.idle, pool.waiting) == (0, 0, 0)


async def test_connection_opened_after_close_is_dropped(wire: Harness) -> None:
    upstream = await wire.serve(keep_answering(response()))
    pool = wire.pool(upstream.origin())
    request = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    await asyncio.sleep(0)  # the request is connecting now

    await pool.close()

    with pytest.raises(UpstreamError, match="closed"):
        await request
    await upstream.peers[0].client_gone.wait()
