"""HTTP/1.1 through the whole proxy, byte by byte: what a client on a raw socket gets back.

Each request here goes to the running proxy (listener, handler, pipeline, relay, upstream pool)
in front of a fake upstream or a raw scripted one. The listener's own refusals come in the
client's dialect (OpenAI on /v1/chat/completions, Anthropic on /v1/messages) and reach no
upstream; a client that leaves or stops reading costs the upstream call or its memory nothing
more; an upstream that closes its keep-alive connections or serves TLS from its own CA is used
correctly. The listener's unit tests (tests/wire/server) cover each rule in isolation.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
import trustme

from edgeproxy.sse import SSEDecoder
from edgeproxy.wire.limits import Limits
from edgeproxy.wire.upstream_connection import PAUSE_ABOVE
from tests.conftest import StackFactory
from tests.support.fake_upstream import Reply
from tests.support.poll import eventually
from tests.support.raw_upstream import Peer, RawUpstream, Script, TlsServer, answering, response
from tests.support.stack import Stack
from tests.wire.server.raw_client import RawClient, RawResponse

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
MESSAGES = {"model": "claude-sonnet", "max_tokens": 64, "messages": CHAT["messages"]}
ROUTES = {"openai": ("/v1/chat/completions", CHAT), "anthropic": ("/v1/messages", MESSAGES)}
DIALECTS = pytest.mark.parametrize("dialect", ROUTES)
# Small limits, so a test can pass them with a few bytes.
LIMITS = {"max_header_size": "2KiB", "max_headers": 20, "max_body": "64KiB"}

Dial = Callable[..., Awaitable[RawClient]]
StartUpstream = Callable[..., Awaitable[RawUpstream]]


def request(method: str, path: str, *fields: str, body: bytes = b"") -> bytes:
    """An HTTP/1.1 request with a Host, `fields` as given (no Content-Length added), `body`."""
    lines = [f"{method} {path} HTTP/1.1", "Host: proxy.test", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def post(path: str, payload: Any, *fields: str) -> bytes:
    body = orjson.dumps(payload)
    return request("POST", path, f"Content-Length: {len(body)}", *fields, body=body)


def error_of(answer: RawResponse, dialect: str) -> dict[str, Any]:
    """The error object of `answer`, which must be JSON shaped as `dialect`'s errors are."""
    assert answer.headers["content-type"] == "application/json"
    body = orjson.loads(answer.body)
    if dialect == "anthropic":
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
    else:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def streamed_text(body: bytes) -> str:
    """The text of an OpenAI chat stream."""
    chunks = [orjson.loads(e.data) for e in SSEDecoder().feed(body) if e.data != b"[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@pytest.fixture
async def dial(make_stack: StackFactory) -> AsyncIterator[Dial]:
    """Raw client connections to a stack's data listener, closed after the test (before the
    stacks are checked for leaks and stopped)."""
    clients: list[RawClient] = []

    async def connect(stack: Stack, receive_buffer: int | None = None) -> RawClient:
        client = await RawClient.connect(stack.proxy.data_address[1], receive_buffer)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


@pytest.fixture
async def limited(make_stack: StackFactory) -> Stack:
    return await make_stack(server=LIMITS)


# --- requests the listener refuses -------------------------------------------------------------


class Refused(NamedTuple):
    fields: tuple[str, ...]
    body: bytes
    status: int


REFUSED = {
    "content-length-and-chunked": Refused(
        ("Content-Length: 5", "Transfer-Encoding: chunked"), b"0\r\n\r\n", 400
    ),
    "duplicate-content-length": Refused(("Content-Length: 2", "Content-Length: 3"), b"{}x", 400),
    "invalid-content-length": Refused(("Content-Length: 2x",), b"{}", 400),
    "obsolete-line-folding": Refused(("X-Folded: a", " b", "Content-Length: 2"), b"{}", 400),
    "header-bytes-over-max-header-size": Refused(("X-Big: " + "a" * 2100,), b"", 431),
    "header-count-over-max-headers": Refused(tuple(f"X-Field-{i}: a" for i in range(20)), b"", 431),
    "transfer-coding-other-than-chunked": Refused(("Transfer-Encoding: gzip",), b"", 501),
}


@DIALECTS
@pytest.mark.parametrize("refused", REFUSED.values(), ids=REFUSED.keys())
async def test_smuggling_and_oversized_heads_are_refused_in_the_clients_dialect_and_closed(
    limited: Stack, dial: Dial, dialect: str, refused: Refused
) -> None:
    path, _ = ROUTES[dialect]
    client = await dial(limited)
    fields = ("X-Request-Id: refused-1", *refused.fields)
    answer = await client.exchange(request("POST", path, *fields, body=refused.body))
    assert answer.status == refused.status
    error_of(answer, dialect)
    assert answer.headers["x-request-id"] == "refused-1"
    assert answer.headers["connection"] == "close"
    assert await client.closed_silently()
    assert limited.fake.requests == []


@DIALECTS
async def test_a_declared_body_over_max_body_is_refused_before_it_is_sent(
    limited: Stack, dial: Dial, dialect: str
) -> None:
    path, _ = ROUTES[dialect]
    client = await dial(limited)
    answer = await client.exchange(request("POST", path, "Content-Length: 1000000000"))
    assert answer.status == 413
    error = error_of(answer, dialect)
    assert "65536 bytes" in error["message"]
    assert error["type" if dialect == "anthropic" else "code"] == "request_too_large"
    assert limited.fake.requests == []


@DIALECTS
async def test_an_unknown_method_is_a_501_in_the_clients_dialect(
    limited: Stack, dial: Dial, dialect: str
) -> None:
    path, _ = ROUTES[dialect]
    client = await dial(limited)
    answer = await client.exchange(request("BREW", path))
    assert answer.status == 501
    error_of(answer, dialect)
    assert limited.fake.requests == []


@DIALECTS
async def test_a_known_method_the_endpoint_does_not_take_is_a_405_naming_the_allowed_one(
    limited: Stack, dial: Dial, dialect: str
) -> None:
    path, _ = ROUTES[dialect]
    client = await dial(limited)
    answer = await client.exchange(request("DELETE", path))
    assert (answer.status, answer.headers["allow"]) == (405, "POST")
    error_of(answer, dialect)
    assert limited.fake.requests == []


@DIALECTS
@pytest.mark.parametrize(
    ("sent", "part"),
    [(b"", "head"), (b"Content-Length: 100\r\n\r\n{", "body")],
    ids=["head", "body"],
)
async def test_a_client_too_slow_to_send_its_request_gets_a_408_in_its_dialect(
    make_stack: StackFactory, dial: Dial, dialect: str, sent: bytes, part: str
) -> None:
    stack = await make_stack(server={"header_timeout": "0.2s", "body_timeout": "0.2s"})
    path, _ = ROUTES[dialect]
    client = await dial(stack)
    await client.send(f"POST {path} HTTP/1.1\r\nHost: proxy.test\r\n".encode() + sent)
    answer = await client.response()  # the timeout ends the wait: never a claim about time
    assert answer.status == 408
    assert part in error_of(answer, dialect)["message"]
    assert await client.closed_silently()
    assert stack.fake.requests == []


# --- requests the listener serves ---------------------------------------------------------------


async def test_expect_100_continue_gets_100_before_the_body_then_the_answer(
    limited: Stack, dial: Dial
) -> None:
    body = orjson.dumps(CHAT)
    client = await dial(limited)
    await client.send(
        request(
            "POST",
            "/v1/chat/completions",
            f"Content-Length: {len(body)}",
            "Expect: 100-continue",  # curl's way for large bodies: the head alone, then wait
        )
    )
    assert (await client.response()).status == 100
    answer = await client.exchange(body)
    assert answer.status == 200
    assert orjson.loads(answer.body)["object"] == "chat.completion"
    assert limited.fake.calls["chat"] == 1


async def test_pipelined_requests_are_answered_in_order_with_their_request_ids(
    limited: Stack, dial: Dial
) -> None:
    limited.fake.script("chat", Reply(text="first", first_byte_delay=0.05), Reply(text="second"))
    client = await dial(limited)
    await client.send(
        post("/v1/chat/completions", CHAT, "X-Request-Id: req-1")
        + post("/v1/chat/completions", {**CHAT, "stream": True}, "X-Request-Id: req-2")
        + post("/v1/chat/completions", CHAT, "X-Request-Id: req-3")
    )
    answers = [await client.response() for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.headers["x-request-id"] for a in answers] == ["req-1", "req-2", "req-3"]
    assert orjson.loads(answers[0].body)["choices"][0]["message"]["content"] == "first"
    assert answers[1].headers["content-type"].startswith("text/event-stream")
    assert streamed_text(answers[1].body) == "second"
    assert limited.fake.calls["chat"] == 3


async def test_connection_close_is_honoured(limited: Stack, dial: Dial) -> None:
    client = await dial(limited)
    answer = await client.exchange(post("/v1/chat/completions", CHAT, "Connection: close"))
    assert answer.status == 200
    assert answer.headers["connection"] == "close"
    assert await client.closed_silently()


async def test_head_of_the_model_list_has_the_gets_length_and_no_body(
    limited: Stack, dial: Dial
) -> None:
    client = await dial(limited)
    head = await client.exchange(request("HEAD", "/v1/models"), head_only=True)
    listing = await client.exchange(request("GET", "/v1/models"))  # parses only if HEAD sent none
    assert head.status == listing.status == 200
    assert int(head.headers["content-length"]) == len(listing.body)
    assert limited.fake.requests == []


async def test_no_response_names_the_server_software(limited: Stack, dial: Dial) -> None:
    answers = []
    for data in (
        post("/v1/chat/completions", CHAT),
        post("/v1/messages", MESSAGES),
        request("GET", "/v1/models"),
        request("GET", "/v1/nothing-here"),
        request("POST", "/v1/messages", "Content-Length: 2", "Content-Length: 3"),
    ):
        answers.append(await (await dial(limited)).exchange(data))
    assert [a.status for a in answers] == [200, 200, 200, 404, 400]
    for answer in answers:
        assert "server" not in answer.headers
        assert "x-powered-by" not in answer.headers
        assert not any(
            software in value.lower()
            for _, value in answer.fields
            for software in ("python", "aiohttp", "uvloop", "httptools", "edgeproxy/")
        )


# --- clients that leave or stop reading ----------------------------------------------------------


async def test_a_client_half_closing_mid_stream_has_left_and_its_upstream_call_is_cancelled(
    limited: Stack, dial: Dial
) -> None:
    limited.fake.script("chat", Reply(chunks=10, stall_after=2))  # then silent until cancelled
    client = await dial(limited)
    await client.send(post("/v1/chat/completions", {**CHAT, "stream": True}))
    assert (await client.response_head()).startswith(b"HTTP/1.1 200 OK\r\n")
    client.finish_sending()  # shutdown(SHUT_WR): a FIN, as a client that is done would send
    await limited.fake.wait_for_disconnects(1)
    await client.rest()  # and the proxy closes the connection
    assert limited.fake.calls["chat"] == 1


def sse_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body holding one SSE event."""
    event = b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


class EndlessStream:
    """An OpenAI-compatible upstream answering with a chat stream that never ends: it writes
    events as fast as the proxy reads them. `waiting` tells whether it waits for the proxy to
    read (its socket buffer kept small, so that happens after little data)."""

    EVENT = orjson.dumps(
        {
            "id": "chatcmpl-endless",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": {"content": "x" * 16384}, "finish_reason": None}],
        }
    )

    def __init__(self) -> None:
        self.waiting = False
        self.ended = asyncio.Event()

    async def __call__(self, peer: Peer) -> None:
        peer.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        await peer.read_request()
        peer.writer.write(
            response(
                headers=[("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")],
                length=False,
            )
        )
        transport = peer.writer.transport
        _, high = transport.get_write_buffer_limits()
        chunk = sse_chunk(self.EVENT)
        try:
            while True:
                peer.writer.write(chunk)
                self.waiting = transport.get_write_buffer_size() > high
                await peer.writer.drain()  # returns at once unless waiting
        finally:
            self.waiting = False
            self.ended.set()


@pytest.fixture
async def raw_upstreams(make_stack: StackFactory) -> AsyncIterator[StartUpstream]:
    """Start raw scripted upstreams; stopped after the test, before the stacks' leak checks."""
    started: list[RawUpstream] = []

    async def start(script: Script, tls: TlsServer | None = None) -> RawUpstream:
        upstream = await RawUpstream(script, tls.context if tls else None).start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.stop()


def through(upstream: RawUpstream, host: str = "127.0.0.1", **settings: Any) -> dict[str, Any]:
    """Stack settings pointing the OpenAI provider (`gpt-4o`) at `upstream`."""
    base_url = upstream.origin(host) + "/v1"
    return {"provider_settings": {"openai-up": {"base_url": base_url, **settings}}}


async def test_a_client_that_stops_reading_pauses_the_upstream_and_bounds_the_proxys_memory(
    make_stack: StackFactory, dial: Dial, raw_upstreams: StartUpstream
) -> None:
    endless = EndlessStream()
    stack = await make_stack(**through(await raw_upstreams(endless)))
    client = await dial(stack, receive_buffer=4096)
    await client.send(post("/v1/chat/completions", {**CHAT, "stream": True}))

    # The client's socket backs up to the proxy's high mark; the proxy stops reading the
    # upstream, whose writes then wait.
    high = Limits().write_buffer_high
    await eventually(
        lambda: stack.proxy.buffered_bytes > high and endless.waiting,
        "the client's backlog to stop the upstream",
    )
    # At most the high mark, plus one write of what one upstream read brought.
    assert stack.proxy.buffered_bytes <= high + 2 * PAUSE_ABOVE

    await client.close()
    async with asyncio.timeout(10):
        await endless.ended.wait()  # the upstream call was dropped
    await eventually(
        lambda: stack.connections_in_use() == 0 and stack.proxy.client_connections == 0,
        "the proxy to let go of both connections",
    )
    assert stack.proxy.buffered_bytes == 0


# --- upstreams ------------------------------------------------------------------------------------

CHAT_ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-raw",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "from the raw upstream"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
)
ANSWER = response(CHAT_ANSWER, headers=[("Content-Type", "application/json")])


async def answer_once_then_close(peer: Peer) -> None:
    """Answer one request on a keep-alive connection (no `Connection: close`), then close it."""
    if await peer.read_request() is not None:
        await peer.send(ANSWER)
        peer.shut()


async def test_an_upstream_closing_its_keepalive_connection_costs_the_next_request_nothing(
    make_stack: StackFactory, dial: Dial, raw_upstreams: StartUpstream
) -> None:
    upstream = await raw_upstreams(answer_once_then_close)
    stack = await make_stack(**through(upstream))
    client = await dial(stack)
    for text in ("first", "second"):
        payload = {**CHAT, "messages": [{"role": "user", "content": text}]}
        answer = await client.exchange(post("/v1/chat/completions", payload))
        assert answer.status == 200
        assert orjson.loads(answer.body)["choices"][0]["message"]["content"] == (
            "from the raw upstream"
        )
    sent = [orjson.loads(r.body)["messages"][0]["content"] for r in upstream.requests]
    assert sent == ["first", "second"], "each request reached the upstream once"
    assert len(upstream.peers) == 2


async def keep_answering(peer: Peer) -> None:
    while await peer.read_request() is not None:
        await peer.send(ANSWER)


@dataclass
class PrivateCA:
    """A CA of the test's own, and its certificate in a PEM file."""

    ca: trustme.CA
    file: str


@pytest.fixture
def private_ca(tmp_path: Path) -> PrivateCA:
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return PrivateCA(ca, str(path))


TRANSLATED = {
    "openai": ("/v1/chat/completions", CHAT),
    # The Anthropic dialect asking for an OpenAI model: translated both ways.
    "anthropic": ("/v1/messages", {**MESSAGES, "model": "gpt-4o"}),
}


@DIALECTS
async def test_tls_to_an_upstream_whose_certificate_comes_from_the_configured_ca(
    make_stack: StackFactory,
    dial: Dial,
    raw_upstreams: StartUpstream,
    private_ca: PrivateCA,
    dialect: str,
) -> None:
    tls = TlsServer(private_ca.ca, "localhost")
    upstream = await raw_upstreams(keep_answering, tls)
    stack = await make_stack(**through(upstream, "localhost", ca_file=private_ca.file))
    path, payload = TRANSLATED[dialect]
    answer = await (await dial(stack)).exchange(post(path, payload))
    assert answer.status == 200
    assert b"from the raw upstream" in answer.body
    assert tls.server_names == ["localhost"]


@DIALECTS
async def test_tls_to_an_upstream_the_proxy_does_not_trust_is_a_502_in_the_dialect(
    make_stack: StackFactory,
    dial: Dial,
    raw_upstreams: StartUpstream,
    private_ca: PrivateCA,
    dialect: str,
) -> None:
    upstream = await raw_upstreams(keep_answering, TlsServer(private_ca.ca, "localhost"))
    stack = await make_stack(**through(upstream, "localhost"))  # the system's CAs only
    path, payload = TRANSLATED[dialect]
    answer = await (await dial(stack)).exchange(post(path, payload))
    assert answer.status == 502
    error_of(answer, dialect)
    assert upstream.requests == []
    assert (await (await dial(stack)).exchange(request("GET", "/v1/models"))).status == 200


async def test_an_error_answer_whose_gzip_does_not_decode_is_a_502_in_the_clients_dialect(
    make_stack: StackFactory, dial: Dial, raw_upstreams: StartUpstream
) -> None:
    broken = response(
        b"\x1f\x8b not really gzip",
        status=401,
        reason="Unauthorized",
        headers=[("content-type", "application/json"), ("content-encoding", "gzip")],
    )
    stack = await make_stack(**through(await raw_upstreams(answering(broken))))
    client = await dial(stack)
    answer = await client.exchange(post("/v1/chat/completions", CHAT, "accept-encoding: gzip"))
    assert answer.status == 502
    assert orjson.loads(answer.body)["error"]["type"] == "api_error"
