"""Reading requests off the wire: framing, smuggling, limits, Expect and odd request lines,
each sent over a raw socket as a hostile or careless client would."""

from __future__ import annotations

import asyncio

import pytest

from edgeproxy.wire.limits import Limits
from edgeproxy.wire.server import Request, Response
from tests.wire.server.conftest import Serve, answer_ok
from tests.wire.server.raw_client import RawClient, RawResponse


class Recorder:
    """A handler that keeps every request it gets and answers 200."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def __call__(self, request: Request, response: Response) -> None:
        self.requests.append(request)
        await answer_ok(request, response)


async def refused(client: RawClient, data: bytes) -> RawResponse:
    """Send `data`; the answer must be an error that closes the connection."""
    await client.send(data)
    response = await client.response()
    assert response.headers["connection"] == "close"
    assert await client.closed_silently()
    return response


# framing the server refuses

CHUNKED_ABC = b"3\r\nabc\r\n0\r\n\r\n"


def post(*fields: bytes, body: bytes = b"") -> bytes:
    """A POST with a Host and `fields`, then `body`."""
    return (
        b"POST / HTTP/1.1\r\nHost: t\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body
    )


def chunked(body: bytes) -> bytes:
    return post(b"Transfer-Encoding: chunked", body=body)


def get(*fields: bytes) -> bytes:
    return b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


SMUGGLING = {
    "content-length-and-chunked": (
        post(b"Content-Length: 3", b"Transfer-Encoding: chunked", body=CHUNKED_ABC),
        400,
    ),
    "chunked-and-content-length": (
        post(b"Transfer-Encoding: chunked", b"Content-Length: 3", body=CHUNKED_ABC),
        400,
    ),
    "duplicate-equal-content-length": (
        post(b"Content-Length: 3", b"Content-Length: 3", body=b"abc"),
        400,
    ),
    "duplicate-content-length": (
        post(b"Content-Length: 3", b"Content-Length: 4", body=b"abcd"),
        400,
    ),
    "content-length-plus-sign": (post(b"Content-Length: +3", body=b"abc"), 400),
    "content-length-minus-sign": (post(b"Content-Length: -3", body=b"abc"), 400),
    "content-length-inner-space": (post(b"Content-Length: 1 3", body=b"abc"), 400),
    "content-length-non-digit": (post(b"Content-Length: 3a", body=b"abc"), 400),
    "content-length-list": (post(b"Content-Length: 3, 3", body=b"abc"), 400),
    "content-length-empty": (post(b"Content-Length: ", body=b"abc"), 400),
    "content-length-overflow": (post(b"Content-Length: 18446744073709551616", body=b"abc"), 400),
    "unknown-transfer-coding": (post(b"Transfer-Encoding: gzip", body=b"abc"), 501),
    "coding-before-chunked": (post(b"Transfer-Encoding: gzip, chunked", body=CHUNKED_ABC), 501),
    "coding-line-before-chunked": (
        post(b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked", body=CHUNKED_ABC),
        501,
    ),
    "identity-coding": (post(b"Transfer-Encoding: identity"), 501),
    "chunked-not-last": (post(b"Transfer-Encoding: chunked, gzip", body=b"abc"), 400),
    "chunked-twice": (
        post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=CHUNKED_ABC),
        400,
    ),
    "chunked-on-http10": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED_ABC,
        400,
    ),
    "obsolete-line-folding": (get(b"X-A: b", b" c"), 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    "tab-before-colon": (b"GET / HTTP/1.1\r\nHost\t: t\r\n\r\n", 400),
    "whitespace-before-first-header": (b"GET / HTTP/1.1\r\n Host: t\r\n\r\n", 400),
    "bare-lf-in-value": (get(b"X-A: b\nc"), 400),
    "bare-lf-line-ends": (b"GET / HTTP/1.1\nHost: t\n\n", 400),
    "bare-cr-in-value": (get(b"X-A: b\rc"), 400),
    "nul-in-value": (get(b"X-A: b\x00c"), 400),
    "control-in-value": (get(b"X-A: b\x01c"), 400),
    "header-without-colon": (get(b"X-A b"), 400),
    "empty-header-name": (get(b": v"), 400),
    "chunk-size-not-hex": (chunked(b"zz\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-overflow": (chunked(b"fffffffffffffffff\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-negative": (chunked(b"-3\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-0x": (chunked(b"0x3\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-trailing-space": (chunked(b"3 \r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-data-longer-than-size": (chunked(b"3\r\nabcd\r\n0\r\n\r\n"), 400),
    "chunk-bare-lf": (chunked(b"3\nabc\n0\n\n"), 400),
    "missing-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two-hosts": (get(b"Host: u"), 400),
    "upgrade-with-body": (
        post(b"Connection: upgrade", b"Upgrade: h2c", b"Content-Length: 3", body=b"abc"),
        400,
    ),
    "connect": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    "unknown-method": (b"FOO / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
    "lower-case-method": (b"get / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
    "tls-client-hello": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    "http2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "http09": (b"GET /\r\n\r\n", 505),
    "http12": (b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", 505),
    "http20": (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    "http31": (b"GET / HTTP/3.1\r\nHost: t\r\n\r\n", 505),
    "bad-version-token": (b"GET / HTXP/1.1\r\nHost: t\r\n\r\n", 400),
    "space-in-target": (b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "control-in-target": (b"GET /a\x01 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "non-ascii-target": (b"GET /\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
}


@pytest.mark.parametrize(("data", "status"), SMUGGLING.values(), ids=SMUGGLING.keys())
async def test_ambiguous_or_malformed_requests_are_refused_and_closed(
    serve: Serve, data: bytes, status: int
) -> None:
    recorder = Recorder()
    client = await (await serve(recorder)).connect()
    response = await refused(client, data)
    assert response.status == status
    assert recorder.requests == [], "a refused request reached the handler"


async def test_a_refused_pipelined_request_is_answered_after_the_ones_before_it(
    serve: Serve,
) -> None:
    client = await (await serve()).connect()
    await client.send(get() + post(b"Content-Length: 1", b"Content-Length: 1", body=b"x"))
    assert (await client.response()).body == b"GET / 0"
    assert (await refused(client, b"")).status == 400


async def test_refusals_render_through_reject_with_what_was_read_of_the_request(
    serve: Serve,
) -> None:
    seen: list[tuple[int, str | None, dict[str, str] | None]] = []

    def reject(
        status: int, message: str, request: Request | None
    ) -> tuple[list[tuple[str, str]], bytes]:
        seen.append((status, request.path, request.headers) if request else (status, None, None))
        return [("content-type", "application/x-dialect")], f"{status}: {message}".encode()

    served = await serve(reject=reject, limits=Limits(max_body=10))
    head_read = await refused(
        await served.connect(),
        b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n",
    )
    head_broken = await refused(
        await served.connect(),
        b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    )
    await refused(await served.connect(), b"BREW /v1/messages HTTP/1.1\r\nHost: t\r\n\r\n")
    await refused(await served.connect(), b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert seen == [
        (413, "/v1/messages", {"host": "t", "content-length": "11"}),
        (400, "/v1/messages", {"host": "t", "content-length": "1"}),  # the fields before the fault
        (501, "/v1/messages", {}),  # llhttp stops at the method: the target read past it
        (400, None, None),  # nothing of a request
    ]
    assert head_read.headers["content-type"] == "application/x-dialect"
    assert head_read.body == b"413: request body too large"
    assert head_broken.body.startswith(b"400: malformed request")


# framing the server accepts


async def test_content_length_body_arriving_in_pieces_is_read_whole(serve: Serve) -> None:
    recorder = Recorder()
    client = await (await serve(recorder)).connect()
    await client.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234")
    await client.send(b"56789")
    assert (await client.response()).body == b"POST /p 10"
    assert recorder.requests[0].body == b"0123456789"


async def test_chunked_body_with_extensions_and_trailers_is_dechunked(serve: Serve) -> None:
    recorder = Recorder()
    client = await (await serve(recorder)).connect()
    await client.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b'3;name=value;quoted="a b"\r\nabc\r\n'
        b"A\r\n0123456789\r\n"
        b"0\r\nX-Trailer: kept-out\r\n\r\n"
    )
    assert (await client.response()).status == 200
    (request,) = recorder.requests
    assert request.body == b"abc0123456789"
    assert "x-trailer" not in request.headers
    assert request.headers["transfer-encoding"] == "Chunked"


async def test_header_fields_are_lower_cased_joined_and_latin1_decoded(serve: Serve) -> None:
    recorder = Recorder()
    client = await (await serve(recorder)).connect()
    await client.exchange(
        b"GET /p?q=1&r=2 HTTP/1.1\r\nHost: t\r\nX-Tag: a\r\nx-tag: b \r\nX-Bytes: caf\xe9\r\n\r\n"
    )
    (request,) = recorder.requests
    assert (request.method, request.target, request.path, request.query) == (
        "GET",
        "/p?q=1&r=2",
        "/p",
        "q=1&r=2",
    )
    assert request.headers["x-tag"] == "a, b"
    assert request.headers["x-bytes"].encode("latin-1") == b"caf\xe9"
    assert (request.version, request.keep_alive) == ("1.1", True)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"http://example.com:8080/v1/x?a=b", "/v1/x", "a=b"),
        (b"http://example.com", "/", ""),
        (b"*", "*", ""),
        (b"/v1/x#fragment", "/v1/x", ""),
        (b"/v1/%2Fx?a=%20", "/v1/%2Fx", "a=%20"),
    ],
    ids=["absolute-form", "absolute-form-no-path", "asterisk", "fragment", "percent-encoded-kept"],
)
async def test_request_target_is_split_into_path_and_query(
    serve: Serve, target: bytes, path: str, query: str
) -> None:
    recorder = Recorder()
    client = await (await serve(recorder)).connect()
    await client.exchange(b"OPTIONS " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (recorder.requests[0].path, recorder.requests[0].query) == (path, query)


async def test_an_upgrade_request_without_a_body_is_answered_as_a_plain_request(
    serve: Serve,
) -> None:
    client = await (await serve()).connect()
    await client.send(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    assert (await client.response()).body == b"GET /ws 0"
    assert (await client.response()).body == b"GET /next 0"


async def test_leading_empty_lines_before_a_request_are_ignored(serve: Serve) -> None:
    client = await (await serve()).connect()
    assert (await client.exchange(b"\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")).status == 200


# Expect: 100-continue


async def test_expect_continue_is_answered_before_the_body_is_sent(serve: Serve) -> None:
    client = await (await serve()).connect()
    await client.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    interim = await client.response()
    assert interim.status == 100
    final = await client.exchange(b"abc")
    assert (final.status, final.body) == (200, b"POST / 3")


async def test_expect_continue_is_not_sent_when_the_body_came_with_the_head(serve: Serve) -> None:
    client = await (await serve()).connect()
    response = await client.exchange(
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert response.status == 200


async def test_expect_continue_beyond_max_body_gets_413_without_100(serve: Serve) -> None:
    client = await (await serve(limits=Limits(max_body=2))).connect()
    response = await refused(
        client, b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    assert response.status == 413


async def test_expect_continue_of_a_pipelined_request_waits_for_the_response_before_it(
    serve: Serve,
) -> None:
    release = asyncio.Event()

    async def handler(request: Request, response: Response) -> None:
        if request.path == "/slow":
            await release.wait()
        await answer_ok(request, response)

    client = await (await serve(handler)).connect()
    await client.send(
        b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
        b"POST /next HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    release.set()
    assert (await client.response()).body == b"GET /slow 0"
    assert (await client.response()).status == 100
    assert (await client.exchange(b"abc")).body == b"POST /next 3"


# body limit


async def test_declared_length_beyond_max_body_gets_413_before_the_body(serve: Serve) -> None:
    recorder = Recorder()
    client = await (await serve(recorder, Limits(max_body=1000))).connect()
    response = await refused(client, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n")
    assert response.status == 413
    assert recorder.requests == []


async def test_chunked_body_beyond_max_body_gets_413_as_soon_as_it_passes(serve: Serve) -> None:
    recorder = Recorder()
    client = await (await serve(recorder, Limits(max_body=1000))).connect()
    await client.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1000000\r\n" + b"x" * 1001
    )
    response = await refused(client, b"")
    assert response.status == 413
    assert recorder.requests == []


async def test_a_body_of_exactly_max_body_is_accepted(serve: Serve) -> None:
    client = await (await serve(limits=Limits(max_body=5))).connect()
    assert (
        await client.exchange(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n12345")
    ).status == 200


# header limits


def head_with(fields: int, value_size: int = 1) -> bytes:
    lines = b"".join(b"X-F%d: %s\r\n" % (n, b"v" * value_size) for n in range(fields))
    return b"GET / HTTP/1.1\r\nHost: t\r\n" + lines + b"\r\n"


@pytest.mark.parametrize(
    ("data", "limits", "status"),
    [
        (head_with(9), Limits(max_header_count=10), 200),
        (head_with(10), Limits(max_header_count=10), 431),
        (head_with(1, 900), Limits(max_header_bytes=1024), 200),
        (head_with(1, 1024), Limits(max_header_bytes=1024), 431),
        (head_with(100, 20), Limits(max_header_bytes=1024), 431),
        (
            b"GET /" + b"a" * 1024 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
            Limits(max_header_bytes=1024),
            414,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            + b"".join(b"T%d: v\r\n" % n for n in range(20))
            + b"\r\n",
            Limits(max_header_count=10),
            431,
        ),
    ],
    ids=[
        "count-at-limit",
        "count-over",
        "bytes-under",
        "bytes-over",
        "many-lines-over",
        "long-target",
        "trailers-counted",
    ],
)
async def test_header_limits(serve: Serve, data: bytes, limits: Limits, status: int) -> None:
    client = await (await serve(limits=limits)).connect()
    await client.send(data)
    assert (await client.response()).status == status


async def test_an_endless_header_value_is_refused_before_it_ends(serve: Serve) -> None:
    client = await (await serve(limits=Limits(max_header_bytes=4096))).connect()
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Long: ")
    for _ in range(16):  # the line never ends: the refusal cannot wait for it
        await client.send(b"v" * 1024)
    assert (await refused(client, b"")).status == 431


async def test_an_endless_chunk_extension_is_refused(serve: Serve) -> None:
    client = await (await serve(limits=Limits(max_header_bytes=4096))).connect()
    await client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=")
    for _ in range(64):  # past the limit even if the server reads it all at once
        await client.send(b"e" * 1024)
    assert (await refused(client, b"")).status == 400


# HEAD


async def test_head_gets_the_content_length_of_the_get_and_no_body(serve: Serve) -> None:
    async def handler(request: Request, response: Response) -> None:
        response.send(200, [("content-type", "text/plain")], b"twelve bytes")

    client = await (await serve(handler)).connect()
    head = await client.exchange(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", head_only=True)
    assert head.headers["content-length"] == "12"
    get = await client.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert get.body == b"twelve bytes", "HEAD left body bytes on the connection"


async def test_head_of_a_streamed_response_sends_no_chunks(serve: Serve) -> None:
    async def handler(request: Request, response: Response) -> None:
        response.start(200, [("content-type", "text/event-stream")])
        response.write(b"data: 1\n\n")
        response.end()

    client = await (await serve(handler)).connect()
    head = await client.exchange(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", head_only=True)
    assert head.headers["transfer-encoding"] == "chunked"
    assert (await client.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")).body == b"data: 1\n\n"
