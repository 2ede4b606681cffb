"""The connection's life: keep-alive, pipelining, timeouts, the client leaving, handler
failures and shutdown, each driven over a raw socket."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edgeproxy.wire import server as server_module
from edgeproxy.wire.limits import Limits
from edgeproxy.wire.server import ClientGone, HttpServer, Reject, Request, Response
from tests.support.poll import eventually
from tests.wire.server.conftest import Serve, answer_ok, settle
from tests.wire.server.raw_client import RawClient, complete_responses

GET = b"GET /%d HTTP/1.1\r\nHost: test\r\n\r\n"


def get(number: int) -> bytes:
    return GET % number


class Gate:
    """A handler that holds each request until the test lets it go, recording what happens."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.cancelled: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, request: Request, response: Response) -> None:
        self.entered.append(request.target)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(request.target)
            raise
        response.send(200, [], request.target.encode())


# keep-alive


async def test_http11_keeps_the_connection_alive_by_default(serve: Serve) -> None:
    client = await (await serve()).connect()
    for number in range(3):
        response = await client.exchange(get(number))
        assert response.status == 200
        assert response.body == f"GET /{number} 0".encode()
        assert "connection" not in response.headers


async def test_connection_close_is_answered_with_close_and_a_closed_connection(
    serve: Serve,
) -> None:
    client = await (await serve()).connect()
    response = await client.exchange(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert response.headers["connection"] == "close"
    assert await client.closed_silently()


@pytest.mark.parametrize(
    ("head", "keeps_alive"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
    ids=["http10-closes", "http10-keep-alive"],
)
async def test_http10_keeps_alive_only_when_asked(
    serve: Serve, head: bytes, keeps_alive: bool
) -> None:
    client = await (await serve()).connect()
    response = await client.exchange(head)
    assert response.status == 200
    if keeps_alive:
        assert response.headers["connection"] == "keep-alive"
        assert (await client.exchange(head)).status == 200
    else:
        assert response.headers["connection"] == "close"
        assert await client.closed_silently()


async def test_responses_carry_a_date_and_no_server_header(serve: Serve) -> None:
    client = await (await serve()).connect()
    response = await client.exchange(get(1))
    assert response.headers["date"].endswith(" GMT")
    assert "server" not in response.headers


# pipelining


async def test_pipelined_requests_are_answered_in_order_one_handler_at_a_time(serve: Serve) -> None:
    running = 0
    most = 0

    async def handler(request: Request, response: Response) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(int(request.path[1:]) % 3):
            await asyncio.sleep(0)  # later requests finish sooner if they ran alongside
        running -= 1
        response.send(200, [], request.path.encode())

    client = await (await serve(handler)).connect()
    await client.send(b"".join(get(n) for n in range(10)))
    bodies = [(await client.response()).body for _ in range(10)]
    assert bodies == [f"/{n}".encode() for n in range(10)]
    assert most == 1


async def test_pipelined_requests_after_connection_close_are_ignored(serve: Serve) -> None:
    client = await (await serve()).connect()
    await client.send(b"GET /1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + get(2))
    response = await client.response()
    assert response.body == b"GET /1 0"
    assert await client.closed_silently()


@pytest.mark.parametrize(
    "limits",
    [Limits(max_pipelined=2, max_body=1 << 20), Limits(max_pipelined=100, max_body=128 * 1024)],
    ids=["by-count", "by-bytes"],
)
async def test_pipelining_queue_is_bounded_by_pausing_reads(serve: Serve, limits: Limits) -> None:
    gate = Gate()
    served = await serve(gate, limits)
    client = await served.connect()
    body = b"x" * (64 * 1024)
    request = b"POST /%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s"
    sent = 0
    while client.writer.transport.get_write_buffer_size() == 0 and sent < 2000:
        client.writer.write(request % (sent, len(body), body))
        sent += 1
        await asyncio.sleep(0)  # let the server read what it will
    assert client.writer.transport.get_write_buffer_size() > 0, "the server read everything"
    assert gate.entered == ["/0"]
    assert served.server.queued_requests <= 2
    gate.release.set()
    for number in range(sent):
        assert (await client.response()).body == f"/{number}".encode()


# timeouts


@pytest.mark.parametrize(
    ("partial", "limits"),
    [
        (b"GET / HTTP/1.1\r\nHost: t\r\n", Limits(header_timeout=0.3)),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", Limits(body_timeout=0.05)),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
            Limits(body_timeout=0.05),
        ),
    ],
    ids=["head", "content-length-body", "chunked-body"],
)
async def test_a_slow_client_gets_408_and_a_close(
    serve: Serve, partial: bytes, limits: Limits
) -> None:
    client = await (await serve(limits=limits)).connect()
    await client.send(partial)
    response = await client.response()
    assert response.status == 408
    assert response.headers["connection"] == "close"
    assert await client.closed_silently()


async def test_an_idle_keepalive_connection_is_closed_silently(serve: Serve) -> None:
    client = await (await serve(limits=Limits(keepalive_timeout=0.05))).connect()
    assert (await client.exchange(get(1))).status == 200
    assert await client.closed_silently()


async def test_a_connection_that_never_sends_is_closed_after_the_header_timeout(
    serve: Serve,
) -> None:
    client = await (await serve(limits=Limits(header_timeout=0.05))).connect()
    assert await client.closed_silently()


async def test_no_client_timer_runs_while_the_server_answers(serve: Serve) -> None:
    async def slow_upstream(request: Request, response: Response) -> None:
        await asyncio.sleep(0.1)  # five times the client timeouts below
        response.send(200, [], b"late but whole")

    limits = Limits(body_timeout=0.02, keepalive_timeout=0.02)
    client = await (await serve(slow_upstream, limits)).connect()
    response = await client.exchange(get(1))
    assert response.status == 200


# closing


async def test_a_client_still_uploading_reads_the_refusal_before_the_close(serve: Serve) -> None:
    client = await (await serve(limits=Limits(max_body=1000))).connect()
    await client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n")
    for _ in range(2048):  # more than kernel buffers hold: the server must read and drop them
        await client.send(b"x" * 16 * 1024)
    response = await client.response()
    assert (response.status, response.headers["connection"]) == (413, "close")
    assert await client.closed_silently()


async def test_a_closing_connection_whose_client_stays_is_dropped_after_lingering(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "_LINGER", 0.05)
    served = await serve()
    client = await served.connect()
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert (await client.response()).status == 200
    await eventually(lambda: served.server.connections == 0, "the server to drop the connection")


# the client leaving


async def test_client_fin_cancels_the_running_handler_and_closes(serve: Serve) -> None:
    gate = Gate()
    served = await serve(gate)
    client = await served.connect()
    await client.send(get(1))
    await eventually(lambda: gate.entered == ["/1"], "the handler to start")
    client.finish_sending()
    await eventually(lambda: gate.cancelled == ["/1"], "the handler to be cancelled")
    assert await client.closed_silently()


async def test_client_reset_cancels_the_running_handler(serve: Serve) -> None:
    gate = Gate()
    served = await serve(gate)
    client = await served.connect()
    await client.send(get(1))
    await eventually(lambda: gate.entered == ["/1"], "the handler to start")
    client.reset()
    await eventually(lambda: gate.cancelled == ["/1"], "the handler to be cancelled")
    await settle(served.server)


async def test_client_fin_drops_queued_requests_unserved(serve: Serve) -> None:
    gate = Gate()
    served = await serve(gate)
    client = await served.connect()
    await client.send(get(1) + get(2))
    await eventually(lambda: gate.entered == ["/1"], "the handler to start")
    client.finish_sending()
    await eventually(lambda: gate.cancelled == ["/1"], "the handler to be cancelled")
    await settle(served.server)
    assert gate.entered == ["/1"]


async def test_a_handler_that_finished_its_response_is_not_cancelled_when_the_client_leaves(
    serve: Serve,
) -> None:
    finished_work = asyncio.Event()
    after_response = asyncio.Event()

    async def handler(request: Request, response: Response) -> None:
        response.send(200, [], b"done")
        await after_response.wait()
        finished_work.set()

    served = await serve(handler)
    client = await served.connect()
    assert (await client.exchange(get(1))).body == b"done"
    client.finish_sending()
    await eventually(lambda: served.server.connections == 0, "the connection to close")
    after_response.set()
    await asyncio.wait_for(finished_work.wait(), 10)


async def test_writes_after_the_client_left_raise_client_gone(serve: Serve) -> None:
    outcome: list[str] = []
    never = asyncio.Event()

    async def handler(request: Request, response: Response) -> None:
        response.start(200, [])
        try:
            await never.wait()
        except asyncio.CancelledError:
            try:
                response.write(b"data: a last word\n\n")
            except ClientGone:
                outcome.append("gone")
            raise

    served = await serve(handler)
    client = await served.connect()
    await client.send(get(1))
    await client.response_head()
    client.reset()
    await settle(served.server)
    assert outcome == ["gone"]


# handler failures


class Boom(Exception):
    pass


async def test_a_handler_that_raises_before_answering_gets_a_500_through_reject(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    rejected: list[tuple[int, str | None]] = []

    def reject(
        status: int, message: str, request: Request | None
    ) -> tuple[list[tuple[str, str]], bytes]:
        rejected.append((status, request.path if request else None))
        return [("content-type", "text/plain")], b"sorry"

    async def handler(request: Request, response: Response) -> None:
        if request.method == "POST":
            raise Boom
        await answer_ok(request, response)

    client = await (await serve(handler, reject=reject)).connect()
    with caplog.at_level(logging.ERROR, logger="edgeproxy.wire"):
        response = await client.exchange(
            b"POST /v1/x?key=query-secret HTTP/1.1\r\nHost: t\r\n"
            b"Authorization: Bearer header-secret\r\nContent-Length: 11\r\n\r\nbody-secret"
        )
    assert (response.status, response.body) == (500, b"sorry")
    assert rejected == [(500, "/v1/x")]
    assert (await client.exchange(get(2))).status == 200, "the connection stays usable"
    logged = caplog.text
    assert "handler failed: POST /v1/x" in logged
    for secret in ("query-secret", "header-secret", "body-secret"):
        assert secret not in logged


async def test_a_handler_that_raises_mid_stream_drops_the_connection(serve: Serve) -> None:
    async def handler(request: Request, response: Response) -> None:
        response.start(200, [])
        response.write(b"partial")
        await response.drain()
        raise Boom

    client = await (await serve(handler)).connect()
    await client.send(get(1))
    assert await complete_responses(await client.rest()) == [], "a cut stream looked complete"


async def test_a_handler_that_returns_without_answering_gets_a_500(serve: Serve) -> None:
    async def handler(request: Request, response: Response) -> None:
        return

    client = await (await serve(handler)).connect()
    assert (await client.exchange(get(1))).status == 500


async def test_a_handler_that_returns_mid_stream_drops_the_connection(serve: Serve) -> None:
    async def handler(request: Request, response: Response) -> None:
        response.start(200, [])
        response.write(b"partial")

    client = await (await serve(handler)).connect()
    await client.send(get(1))
    assert await complete_responses(await client.rest()) == [], "a cut stream looked complete"


async def test_a_handler_cancelled_mid_response_drops_the_connection(serve: Serve) -> None:
    async def handler(request: Request, response: Response) -> None:
        response.start(200, [])
        response.write(b"partial")
        raise asyncio.CancelledError  # what an escaping cancellation looks like

    client = await (await serve(handler)).connect()
    await client.send(get(1))
    assert await complete_responses(await client.rest()) == [], "a cut stream looked complete"


Rendered = tuple[list[tuple[str, str]], bytes]


def raising_reject(status: int, message: str, request: Request | None) -> Rendered:
    raise Boom


def header_splitting_reject(status: int, message: str, request: Request | None) -> Rendered:
    return [("x-bad", "a\r\nset-cookie: b")], b"body"


@pytest.mark.parametrize("reject", [raising_reject, header_splitting_reject])
async def test_a_failing_reject_falls_back_to_the_default_answer(
    serve: Serve, reject: Reject
) -> None:
    client = await (await serve(reject=reject)).connect()
    response = await client.exchange(b"GET / HTTP/1.1\r\n\r\n")
    assert response.status == 400
    assert response.headers["content-type"] == "application/json"


# shutdown


async def test_shutdown_closes_idle_connections_and_stops_accepting(serve: Serve) -> None:
    served = await serve()
    client = await served.connect()
    assert (await client.exchange(get(1))).status == 200
    await served.server.shutdown(grace=10)
    assert await client.closed_silently()
    assert served.server.connections == 0
    with pytest.raises(OSError):
        await served.connect()


async def test_shutdown_lets_a_request_in_flight_finish_with_connection_close(serve: Serve) -> None:
    gate = Gate()
    served = await serve(gate)
    client = await served.connect()
    await client.send(get(1))
    await eventually(lambda: gate.entered == ["/1"], "the handler to start")
    stopping = asyncio.create_task(served.server.shutdown(grace=10))
    await eventually(lambda: served.server.draining, "the shutdown to begin")
    gate.release.set()
    response = await client.response()
    assert response.status == 200
    assert response.headers["connection"] == "close"
    assert await client.closed_silently()
    await stopping


async def test_shutdown_lets_a_request_being_read_finish_with_connection_close(
    serve: Serve,
) -> None:
    served = await serve()
    client = await served.connect()
    await client.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    assert (await client.response()).status == 100, "the server has read the head"
    stopping = asyncio.create_task(served.server.shutdown(grace=10))
    await eventually(lambda: served.server.draining, "the shutdown to begin")
    response = await client.exchange(b"abcd")
    assert (response.status, response.body) == (200, b"POST / 4")
    assert response.headers["connection"] == "close"
    assert await client.closed_silently()
    await stopping


async def test_shutdown_cancels_handlers_still_running_after_the_grace(serve: Serve) -> None:
    gate = Gate()
    served = await serve(gate)
    client = await served.connect()
    await client.send(get(1))
    await eventually(lambda: gate.entered == ["/1"], "the handler to start")
    await served.server.shutdown(grace=0.01)
    assert gate.cancelled == ["/1"]
    assert served.server.connections == 0
    assert served.server.handlers_running == 0
    assert await client.closed_silently()


class Stream:
    """A handler that starts a chunked stream and holds it open; cancelled with its client
    still there, it says `last_word` and ends the stream, if it has one to say."""

    def __init__(self, last_word: bytes | None) -> None:
        self.last_word = last_word
        self.started = 0

    async def __call__(self, request: Request, response: Response) -> None:
        response.start(200, [("content-type", "text/plain")])
        response.write(b"first ")
        await response.drain()
        self.started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if self.last_word is not None:
                response.write(self.last_word)
                response.end()
            raise


async def test_a_stream_whose_handler_answers_the_interruption_ends_complete(
    serve: Serve,
) -> None:
    stream = Stream(b"and goodbye")
    served = await serve(stream)
    client = await served.connect()
    await client.send(get(1))
    await eventually(lambda: stream.started == 1, "the stream to start")
    stopping = asyncio.create_task(served.server.shutdown(grace=0.01))
    response = await client.response()
    assert (response.status, response.body) == (200, b"first and goodbye")
    assert await client.closed_silently()
    await client.close()
    await stopping
    assert served.server.connections == 0


async def test_a_stream_whose_handler_ignores_the_interruption_is_dropped(serve: Serve) -> None:
    stream = Stream(None)
    served = await serve(stream)
    client = await served.connect()
    await client.send(get(1))
    await eventually(lambda: stream.started == 1, "the stream to start")
    await served.server.shutdown(grace=0.01)
    assert await complete_responses(await client.rest()) == [], "a cut stream looked complete"


async def test_stop_accepting_closes_idle_connections_refuses_new_ones_then_is_quiet(
    serve: Serve,
) -> None:
    served = await serve()
    kept = await served.connect()
    assert (await kept.exchange(get(1))).status == 200
    quiet = served.server.quiet()
    assert not quiet.done(), "a connection is open"
    served.server.stop_accepting()
    assert await kept.closed_silently(), "an idle connection closes at once"
    await asyncio.wait_for(quiet, 10)
    with pytest.raises(OSError):
        await served.connect()


async def test_a_connection_that_does_not_close_after_its_interrupted_stream_is_dropped(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "_LINGER", 0.05)
    stream = Stream(b"bye")
    served = await serve(stream)
    client = await served.connect()
    await client.send(get(1))
    await eventually(lambda: stream.started == 1, "the stream to start")
    await served.server.shutdown(grace=0.01)
    assert served.server.connections == 0


async def test_servers_with_reuse_port_share_one_port_and_both_answer() -> None:
    first, second = HttpServer(answer_ok, Limits()), HttpServer(answer_ok, Limits())
    _, port = await first.start("127.0.0.1", 0, reuse_port=True)
    await second.start("127.0.0.1", port, reuse_port=True)
    try:
        await first.shutdown(grace=1.0)  # the port stays served by the other
        client = await RawClient.connect(port)
        assert (await client.exchange(get(1))).body == b"GET /1 0"
        await client.close()
    finally:
        await second.shutdown(grace=1.0)


async def test_a_port_in_use_is_refused_without_reuse_port(serve: Serve) -> None:
    served = await serve()
    with pytest.raises(OSError):
        await HttpServer(answer_ok, Limits()).start("127.0.0.1", served.port)
