"""Opening upstream connections: DNS through the loop with a TTL, each address in turn, TLS
against a test CA, the connect timeout, and egress through a CONNECT proxy."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from edgeproxy.wire.client import ConnectFailed, Resolver
from edgeproxy.wire.dns import Address
from tests.support.connect_proxy import ConnectProxy
from tests.support.poll import eventually
from tests.support.raw_upstream import (
    Harness,
    Held,
    Peer,
    TlsServer,
    keep_answering,
    response,
)

CLOSING = response(b"ok", headers=[("connection", "close")])


@pytest.fixture
async def wire() -> AsyncIterator[Harness]:
    async with Harness() as harness:
        yield harness


class FakeDns:
    """Stands in for the loop's getaddrinfo: `answers` per name, every question recorded."""

    def __init__(self, answers: dict[str, list[tuple[str, int]]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        self.asked.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)
            for address in self.answers[host]
        ]


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[tuple[str, int]]]) -> FakeDns:
    dns = FakeDns(answers)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", dns)
    return dns


def refused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("ttl", "lookups"), [(60.0, 1), (0.0, 2)])
async def test_names_are_resolved_through_the_loop_and_kept_for_the_ttl(
    wire: Harness, monkeypatch: pytest.MonkeyPatch, ttl: float, lookups: int
) -> None:
    upstream = await wire.serve(keep_answering(CLOSING))
    dns = fake_dns(monkeypatch, {"upstream.test": [("127.0.0.1", upstream.port)]})
    pool = wire.pool(f"http://upstream.test:{upstream.port}", dns_ttl=ttl)

    for _ in range(2):
        assert await (await pool.request("POST", "/", [], b"", deadline=None)).read(None) == b"ok"

    assert dns.asked == [("upstream.test", upstream.port)] * lookups
    assert len(upstream.peers) == 2
    assert upstream.requests[0].header("host") == f"upstream.test:{upstream.port}"


async def test_every_address_is_tried_in_turn(
    wire: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = await wire.serve(keep_answering(response(b"ok")))
    dead = ("127.0.0.1", refused_port())
    fake_dns(monkeypatch, {"upstream.test": [dead, dead, ("127.0.0.1", upstream.port)]})
    pool = wire.pool(f"http://upstream.test:{upstream.port}")

    assert await (await pool.request("POST", "/", [], b"", deadline=None)).read(None) == b"ok"


async def test_no_address_answering_fails_and_forgets_the_answer(
    wire: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = refused_port()
    dns = fake_dns(monkeypatch, {"upstream.test": [("127.0.0.1", port)]})
    pool = wire.pool(f"http://upstream.test:{port}")

    for _ in range(2):
        with pytest.raises(ConnectFailed, match="TCP connect failed") as raised:
            await pool.request("POST", "/", [], b"", deadline=None)
        assert not raised.value.timed_out

    assert len(dns.asked) == 2


async def test_unknown_name_fails_to_connect(
    wire: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {})
    pool = wire.pool("http://nowhere.test")

    with pytest.raises(ConnectFailed, match=r"DNS lookup of nowhere\.test failed"):
        await pool.request("POST", "/", [], b"", deadline=None)


async def test_ip_literals_skip_dns(wire: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = await wire.serve(keep_answering(response(b"ok")))
    dns = fake_dns(monkeypatch, {})

    pool = wire.pool(upstream.origin())
    await (await pool.request("POST", "/", [], b"", deadline=None)).read(None)

    assert dns.asked == []


async def test_empty_dns_answer_fails_to_connect(
    wire: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"empty.test": []})
    pool = wire.pool("http://empty.test")

    with pytest.raises(ConnectFailed, match="no address"):
        await pool.request("POST", "/", [], b"", deadline=None)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", (socket.AF_INET, ("127.0.0.1", 80))),
        ("::1", (socket.AF_INET6, ("::1", 80, 0, 0))),
    ],
)
async def test_ip_literal_is_its_own_address(host: str, address: Address) -> None:
    assert await Resolver().resolve(host, 80) == [address]


async def test_default_port_is_left_out_of_the_host_header(wire: Harness) -> None:
    upstream = await wire.serve(keep_answering(response()))

    class Pinned(Resolver):
        async def resolve(self, host: str, port: int) -> list[Address]:
            return [(socket.AF_INET, ("127.0.0.1", upstream.port))]

    pool = wire.pool("http://upstream.test", resolver=Pinned())
    await (await pool.request("POST", "/", [], b"", deadline=None)).read(None)

    assert upstream.requests[0].header("host") == "upstream.test"


# TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls(ca: trustme.CA) -> TlsServer:
    return TlsServer(ca, "localhost")


async def alpn_answering(peer: Peer) -> None:
    """Answers with the protocol ALPN agreed on."""
    agreed = peer.writer.get_extra_info("ssl_object").selected_alpn_protocol()
    while await peer.read_request() is not None:
        peer.writer.write(response(str(agreed).encode()))


async def test_tls_with_the_test_ca_checks_the_name_and_offers_http_1_1(
    wire: Harness, tls: TlsServer, ca_file: str
) -> None:
    upstream = await wire.serve(alpn_answering, tls=tls.context)
    pool = wire.pool(upstream.origin("localhost"), ca_file=ca_file)

    answer = await pool.request("POST", "/", [], b"", deadline=None)

    assert await answer.read(None) == b"http/1.1"
    assert tls.server_names == ["localhost"]


async def test_tls_with_a_given_context(wire: Harness, tls: TlsServer, ca: trustme.CA) -> None:
    upstream = await wire.serve(keep_answering(response(b"ok")), tls=tls.context)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    pool = wire.pool(upstream.origin("localhost"), ssl_context=context)

    assert await (await pool.request("POST", "/", [], b"", deadline=None)).read(None) == b"ok"


@pytest.mark.parametrize(
    ("cert_names", "trusted", "problem"),
    [
        (("other.test",), True, "Hostname mismatch"),
        (("localhost",), False, "certificate verify failed"),
    ],
    ids=["wrong-hostname", "unknown-ca"],
)
async def test_untrusted_certificate_fails_to_connect(
    wire: Harness,
    *,
    ca: trustme.CA,
    ca_file: str,
    cert_names: tuple[str, ...],
    trusted: bool,
    problem: str,
) -> None:
    server = TlsServer(ca, *cert_names)
    upstream = await wire.serve(keep_answering(response()), tls=server.context)
    pool = wire.pool(upstream.origin("localhost"), ca_file=ca_file if trusted else None)

    with pytest.raises(ConnectFailed, match=problem) as raised:
        await pool.request("POST", "/", [], b"", deadline=None)

    assert not raised.value.timed_out
    assert upstream.requests == []


# The connect timeout


async def test_tls_handshake_that_never_ends_times_out(wire: Harness) -> None:
    upstream = await wire.serve(Held())  # speaks no TLS: the handshake waits forever
    pool = wire.pool(f"https://127.0.0.1:{upstream.port}", connect_timeout=0.05)

    with pytest.raises(ConnectFailed, match="timed out") as raised:
        await pool.request("POST", "/", [], b"", deadline=None)

    assert raised.value.timed_out
    await upstream.peers[0].client_gone.wait()


async def test_tcp_connect_that_never_completes_times_out(wire: Harness) -> None:
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]  # fill the accept queue: SYNs are dropped
        for sock in queued:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        pool = wire.pool(f"http://127.0.0.1:{port}", connect_timeout=0.05)
        try:
            with pytest.raises(ConnectFailed) as raised:
                await pool.request("POST", "/", [], b"", deadline=None)
        finally:
            for sock in queued:
                sock.close()

    assert raised.value.timed_out


async def test_deadline_before_the_connect_timeout_is_a_plain_timeout(wire: Harness) -> None:
    upstream = await wire.serve(Held())
    pool = wire.pool(f"https://127.0.0.1:{upstream.port}", connect_timeout=30)
    deadline = asyncio.get_running_loop().time() + 0.05

    with pytest.raises(TimeoutError) as raised:
        await pool.request("POST", "/", [], b"", deadline=deadline)

    assert not isinstance(raised.value, ConnectFailed)


async def test_cancelled_while_connecting_leaves_nothing_open(wire: Harness) -> None:
    upstream = await wire.serve(Held())
    pool = wire.pool(f"https://127.0.0.1:{upstream.port}")
    request = asyncio.create_task(pool.request("POST", "/", [], b"", deadline=None))
    await eventually(lambda: bool(upstream.peers), "the client connects")

    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request

    await upstream.peers[0].client_gone.wait()
    assert pool.in_use == 0


# Egress through a proxy


@pytest.fixture
async def proxies() -> AsyncIterator[list[ConnectProxy]]:
    started: list[ConnectProxy] = []
    yield started
    for proxy in started:
        await proxy.stop()


async def test_https_goes_through_a_connect_tunnel_with_basic_credentials(
    wire: Harness, tls: TlsServer, ca_file: str, proxies: list[ConnectProxy]
) -> None:
    upstream = await wire.serve(keep_answering(response(b"tunnelled")), tls=tls.context)
    proxy = await ConnectProxy().start()
    proxies.append(proxy)
    pool = wire.pool(upstream.origin("localhost"), ca_file=ca_file, proxy=proxy.url("user:p%40ss"))

    for _ in range(2):
        answer = await pool.request("POST", "/v1/chat", [], b"{}", deadline=None)
        assert await answer.read(None) == b"tunnelled"

    ((line, headers),) = proxy.asked
    assert line == f"CONNECT localhost:{upstream.port} HTTP/1.1"
    assert headers["host"] == f"localhost:{upstream.port}"
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert [r.target for r in upstream.requests] == ["/v1/chat", "/v1/chat"]
    assert all(r.header("proxy-authorization") is None for r in upstream.requests)
    assert tls.server_names == ["localhost"]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n", "407"),
        (b"HTTP/1.0 403 user:hunter2 is not allowed\r\n\r\n", "with status 403$"),
        (b"", "closed the connection before answering"),
        (b"HTTP/1.1 200 OK\r\nx-partial", "closed the connection before answering"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\n\r\nearly bytes", "bytes after its answer"),
        (b"HTTP/1.1 200 OK\r\nx-big: " + b"v" * 20_000, "oversized head"),
    ],
    ids=["407", "403", "closed", "cut-short", "not-http", "bytes-after", "oversized"],
)
async def test_tunnel_not_granted_fails_to_connect_without_the_credentials(
    wire: Harness, proxies: list[ConnectProxy], answer: bytes, problem: str
) -> None:
    proxy = await ConnectProxy(answer=answer).start()
    proxies.append(proxy)
    pool = wire.pool("https://localhost:443", proxy=proxy.url("user:hunter2"))

    with pytest.raises(ConnectFailed, match=problem) as raised:
        await pool.request("POST", "/", [], b"", deadline=None)

    assert not raised.value.timed_out
    assert "hunter2" not in str(raised.value)
    assert base64.b64encode(b"user:hunter2").decode() not in str(raised.value)


async def test_silent_proxy_times_out(wire: Harness, proxies: list[ConnectProxy]) -> None:
    proxy = await ConnectProxy(silent=True).start()
    proxies.append(proxy)
    pool = wire.pool("https://localhost:443", proxy=proxy.url(), connect_timeout=0.05)

    with pytest.raises(ConnectFailed) as raised:
        await pool.request("POST", "/", [], b"", deadline=None)

    assert raised.value.timed_out


async def test_plain_http_goes_to_the_proxy_in_absolute_form(
    wire: Harness, proxies: list[ConnectProxy]
) -> None:
    upstream = await wire.serve(keep_answering(response(b"proxied")))
    proxy = await ConnectProxy().start()
    proxies.append(proxy)
    pool = wire.pool(upstream.origin(), proxy=proxy.url("user:secret"))

    answer = await pool.request("GET", "/v1/models?x=1", [], b"", deadline=None)

    assert await answer.read(None) == b"proxied"
    ((line, headers),) = proxy.asked
    assert line == f"GET http://127.0.0.1:{upstream.port}/v1/models?x=1 HTTP/1.1"
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user:secret").decode()
    assert headers["host"] == f"127.0.0.1:{upstream.port}"
