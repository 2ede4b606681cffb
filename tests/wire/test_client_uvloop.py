"""The client on uvloop, the loop edgeproxy serves on: its transports pause, resume, abort
and start TLS on their own code paths, so the main behaviours run there too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop

from edgeproxy.wire.client import ConnectionBroken
from edgeproxy.wire.upstream_connection import PAUSE_ABOVE
from tests.support.connect_proxy import ConnectProxy
from tests.support.raw_upstream import (
    Harness,
    Held,
    Peer,
    TlsServer,
    chunked,
    keep_answering,
    response,
)

Scenario = Callable[[Harness], Coroutine[Any, Any, None]]


def on_uvloop(scenario: Scenario) -> None:
    async def checked() -> None:
        async with Harness() as harness:
            await scenario(harness)

    uvloop.run(checked())


async def streaming_on_a_reused_connection(wire: Harness) -> None:
    events = [b"data: %d\n\n" % n for n in range(20)]

    async def script(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                *[chunked(event)[:-5] for event in events],
                b"0\r\n\r\n",
            )

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())
    for _ in range(3):
        answer = await pool.request("POST", "/", [], b"{}", deadline=None)
        assert await answer.read(None) == b"".join(events)
    assert len(upstream.peers) == 1


async def a_slow_consumer_on_a_big_body(wire: Harness) -> None:
    body = b"x" * (8 * PAUSE_ABOVE)
    upstream = await wire.serve(keep_answering(response(body)))
    pool = wire.pool(upstream.origin())
    for _ in range(2):
        answer = await pool.request("POST", "/", [], b"", deadline=None)
        received = 0
        while chunk := await answer.next_chunk(None):
            assert len(chunk) <= 2 * PAUSE_ABOVE
            received += len(chunk)
            await asyncio.sleep(0)
        assert received == len(body)
    assert len(upstream.peers) == 1


async def close_delimited_body_and_a_reset(wire: Harness) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"until close", length=False))
        peer.close()

    upstream = await wire.serve(script)
    pool = wire.pool(upstream.origin())
    assert await (await pool.request("POST", "/", [], b"", deadline=None)).read(None) == (
        b"until close"
    )

    async def resetting(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"12345")[:-2])
        peer.reset()

    cut = await wire.serve(resetting)
    answer = await wire.pool(cut.origin()).request("POST", "/", [], b"", deadline=None)
    with pytest.raises(ConnectionBroken):
        await answer.read(None)


async def cancellation_while_waiting(wire: Harness) -> None:
    held = Held()
    upstream = await wire.serve(held)
    pool = wire.pool(upstream.origin(), max_connections=1)
    first = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    peer, _ = await held.arrived.get()
    second = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    await asyncio.sleep(0)
    first.cancel()
    second.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    await peer.client_gone.wait()
    assert (pool.in_use, pool.waiting, pool.idle) == (0, 0, 0)


@pytest.mark.parametrize(
    "scenario",
    [
        streaming_on_a_reused_connection,
        a_slow_consumer_on_a_big_body,
        close_delimited_body_and_a_reset,
        cancellation_while_waiting,
    ],
)
def test_on_uvloop(scenario: Scenario) -> None:
    on_uvloop(scenario)


def test_tls_through_a_connect_tunnel_on_uvloop(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = TlsServer(ca, "localhost")

    async def scenario(wire: Harness) -> None:
        upstream = await wire.serve(keep_answering(response(b"tunnelled")), tls=tls.context)
        proxy = await ConnectProxy().start()
        try:
            pool = wire.pool(
                upstream.origin("localhost"), ca_file=str(ca_file), proxy=proxy.url("u:p")
            )
            for _ in range(2):
                answer = await pool.request("POST", "/", [], b"", deadline=None)
                assert await answer.read(None) == b"tunnelled"
            assert len(proxy.asked) == 1
            await pool.close()
        finally:
            await proxy.stop()

    on_uvloop(scenario)
