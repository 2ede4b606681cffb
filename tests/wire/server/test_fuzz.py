"""Hostile input never breaks the server: random bytes, and valid requests mutated at random,
sent in random pieces, always get whole, well-formed responses and then a closed connection,
and leave no connection, task or loop error behind."""

from __future__ import annotations

import contextlib

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from edgeproxy.wire.limits import Limits
from tests.wire.server.conftest import Serve, settle
from tests.wire.server.raw_client import read_all_responses

# Short client timeouts, so a request left incomplete ends the example quickly (with a 408).
LIMITS = Limits(
    max_header_bytes=1024,
    max_header_count=10,
    max_body=4096,
    header_timeout=0.02,
    body_timeout=0.02,
    keepalive_timeout=0.02,
    max_pipelined=2,
)

VALID = [
    b"GET /v1/models HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n",
    b"POST /v1/chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b'Content-Length: 13\r\n\r\n{"model":"m"}',
    b"POST /v1/chat HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"POST /v1/chat HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
]

INTERESTING = [
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b"\x00",
    b"0",
    b"chunked",
    b"Content-Length: 5\r\n",
]


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "truncate"]))
        if kind == "insert":
            data[at:at] = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


async def check_hostile_input(serve: Serve, data: bytes, cuts: list[int], fin: bool) -> None:
    served = await serve(limits=LIMITS)
    client = await served.connect()
    pieces = [
        data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True)
    ]
    with contextlib.suppress(ConnectionError):  # the server may close at any point
        for piece in pieces:
            await client.send(piece)
        if fin:
            client.finish_sending()
    received = await client.rest()  # the server closes: by error, timeout, FIN or close
    await read_all_responses(received)  # raises unless every byte is part of a whole response
    await client.close()
    await settle(served.server)
    await served.server.shutdown(grace=0.1)


FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=3), fin=st.booleans()
)
async def test_random_bytes_get_whole_responses_or_a_close(
    serve: Serve, data: bytes, cuts: list[int], fin: bool
) -> None:
    await check_hostile_input(serve, data, [min(c, len(data)) for c in cuts], fin)


@FUZZ
@given(data=mutated_requests(), cuts=st.lists(st.integers(0, 300), max_size=3), fin=st.booleans())
async def test_mutated_requests_get_whole_responses_or_a_close(
    serve: Serve, data: bytes, cuts: list[int], fin: bool
) -> None:
    await check_hostile_input(serve, data, [min(c, len(data)) for c in cuts], fin)
