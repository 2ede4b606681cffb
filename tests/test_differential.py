"""The new listener answers what the old one answered: a differential fuzz test.

The same configuration runs twice in front of one fake upstream: on edgeproxy.wire's listener
(`ProxyServer`) and on aiohttp's server (`tests.support.aiohttp_edge`, the data listener as it
was before edgeproxy.wire). Hypothesis sends each random request to both, one after the other,
over raw sockets, and their answers must agree: status, the fields a client acts on
(Content-Type, X-Request-Id, Allow, Retry-After) and the body (JSON parsed, an event stream
split into its events), with what is random in either normalised: ids, request ids the proxy
made up, timestamps. The cache is on, and each twin's cache writes finish before the next
request, so both find their caches alike.

The requests are valid and invalid as an API client could send them: known and unknown methods
and paths, chat, messages, completions and embeddings bodies valid or not (broken JSON, wrong
types, missing fields, nesting up to and past the limit, large but allowed, over the limit,
gzipped, in an unknown coding, sent with Content-Length or chunked) and odd headers in any
case (request ids, anthropic-version, Cache-Control, client credentials, the proxy's own).

Known, intended differences, kept out of the generated space and asserted by the last test:
- the new listener does not percent-decode the path (`/v1/chat/%63ompletions` is a 404 there;
  aiohttp decoded it and served the chat endpoint);
- it refuses what it cannot frame or serve, in the client's dialect as JSON, where aiohttp
  answered a plain-text 400 or served it: a method llhttp does not know (501, where aiohttp
  said 400), an HTTP version other than 1.0 and 1.1 (505; aiohttp served HTTP/2.0 as if it
  were 1.1), CONNECT (501; aiohttp's router gave a plain-text 404); duplicate Content-Length
  or Host and Transfer-Encoding on HTTP/1.0 are a 400 in both, JSON in the new one only;
- a repeated header field is read as one, its lines joined with ", " (RFC 9110 5.3), where
  aiohttp's handler saw the first line only: a repeated Cache-Control counts whole, and a
  repeated singleton such as X-Edgeproxy-Strategy is a 400 (no such strategy). aiohttp also
  refused repeats of the fields it takes once only (Content-Type, User-Agent, ...), which the
  new listener joins like any other; so the generated requests never repeat a field;
- header values are latin-1 text, every byte passed on as it came; aiohttp decoded them as
  UTF-8, so a UTF-8 value went upstream re-encoded and a byte that is not UTF-8 failed the
  request (400): the generated values are ASCII;
- its header limits are the configured ones (server.max_header_size, server.max_headers);
  aiohttp had its own (8190 bytes a line), so the generated heads stay small;
- it sends no `Server` header (aiohttp named itself and Python), and its own Date and framing.
"""

from __future__ import annotations

import asyncio
import gzip
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from edgeproxy.inbound import MAX_JSON_DEPTH
from edgeproxy.sse import SSEDecoder
from edgeproxy.state import ProxyState
from tests.conftest import StackFactory
from tests.support.aiohttp_edge import AiohttpProxy
from tests.support.poll import eventually
from tests.support.stack import Stack
from tests.wire.server.raw_client import RawClient, RawResponse

MAX_BODY = 64 * 1024


@dataclass
class Twins:
    """The new listener (`stack.proxy`) and the old one (`old`), on one fake upstream."""

    stack: Stack
    old: AiohttpProxy

    async def ask(self, data: bytes, head_only: bool) -> tuple[RawResponse, RawResponse]:
        """`data` sent to the new listener, then to the old; both answers."""
        answers = []
        for proxy in (self.stack.proxy, self.old):
            client = await RawClient.connect(proxy.data_address[1])
            try:
                await client.send(data)
                answers.append(await client.response(head_only))
            finally:
                await client.close()
            await _background_done(proxy.state)
        return answers[0], answers[1]


async def _background_done(state: ProxyState) -> None:
    """Until `state`'s cache writes have finished, so that the twin asked next, and the next
    example, find the cache as the other twin did."""
    await eventually(lambda: state.background.pending == 0, "background work to finish")


@pytest.fixture
async def twins(make_stack: StackFactory) -> AsyncIterator[Twins]:
    stack = await make_stack(server={"max_body": MAX_BODY}, cache={"enabled": True})
    old = AiohttpProxy(stack.proxy.config)
    await old.start()
    yield Twins(stack, old)
    await old.stop()


# --- what is compared ----------------------------------------------------------------------

COMPARED_FIELDS = ("content-type", "x-request-id", "allow", "retry-after")
_FRESH_ID = re.compile("[0-9a-f]{32}")  # the proxy's own request id (ids.fresh_id)
_RANDOM_KEYS = frozenset({"id", "request_id"})
_TIME_KEYS = frozenset({"created", "created_at"})


def normalised(value: Any) -> Any:
    """`value` (parsed JSON) with random ids and timestamps replaced by placeholders."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _TIME_KEYS and isinstance(item, int):
                out[key] = "<time>"
            elif key in _RANDOM_KEYS and isinstance(item, str):
                out[key] = "<id>"
            else:
                out[key] = normalised(item)
        return out
    if isinstance(value, list):
        return [normalised(item) for item in value]
    return value


def comparable(answer: RawResponse) -> tuple[int, dict[str, str], Any]:
    """Status, the fields a client acts on, and the body, as the comparison sees them."""
    fields = {name: answer.headers[name] for name in COMPARED_FIELDS if name in answer.headers}
    if _FRESH_ID.fullmatch(fields.get("x-request-id", "")):
        fields["x-request-id"] = "<fresh>"
    media_type = fields.get("content-type", "").partition(";")[0]
    body: Any = answer.body
    if not body:  # a HEAD's: what the GET's would be
        fields["content-length"] = answer.headers.get("content-length", "")
    elif media_type == "application/json":
        body = normalised(orjson.loads(body))
    elif media_type == "text/event-stream":
        body = [
            (
                event.event,
                normalised(orjson.loads(event.data)) if event.data[:1] == b"{" else event.data,
            )
            for event in SSEDecoder().feed(answer.body)
        ]
    return answer.status, fields, body


# --- what is sent --------------------------------------------------------------------------

ENDPOINTS = {  # the API's paths, and the body each takes
    "/v1/chat/completions": "chat",
    "/v1/messages": "messages",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/messages/count_tokens": "messages",
    "/v1/messages?beta=true": "messages",
}
OTHER_PATHS = [
    "/v1/models",
    "/v1/models/gpt-4o",
    "/v1/chat/completions/",
    "/V1/messages",
    "/v1/nothing-here",
    "/",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
MODELS = [
    "gpt-4o",
    "claude-sonnet",
    "claude-3-haiku",  # the claude-* pattern: passed through to Anthropic
    "gemini-flash",  # translated
    "bedrock-claude",  # translated, and signed
    "edgeproxy-mock",
    "any-other-model",  # the * pattern: passed through to OpenAI
    "",
]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),  # orjson's range, both ways
    st.floats(allow_nan=False),
    TEXT,
    st.just([]),
    st.just({}),
)
NESTED = "<nested>"  # where a nesting goes into an encoded body (orjson would not encode it)


@st.composite
def messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    roles = st.sampled_from(["user"] * 4 + ["assistant", "system", "robot"])
    return draw(
        st.lists(st.fixed_dictionaries({"role": roles, "content": TEXT}), min_size=1, max_size=3)
    )


@st.composite
def payloads(draw: st.DrawFn, kind: str) -> bytes:
    """A body of `kind` (chat, messages, completions, embeddings), half of them spoilt: a field
    dropped or of the wrong type, nesting around MAX_JSON_DEPTH, a size around MAX_BODY."""
    payload: dict[str, Any] = {"model": draw(st.sampled_from(MODELS))}
    if kind in ("chat", "messages"):
        payload["messages"] = draw(messages())
    if kind == "messages":
        payload["max_tokens"] = draw(st.integers(1, 4096))
        if draw(st.booleans()):
            payload["system"] = draw(TEXT)
    if kind == "completions":
        payload["prompt"] = draw(TEXT)
    if kind == "embeddings":
        payload["input"] = draw(st.one_of(TEXT, st.lists(TEXT, max_size=3)))
    if draw(st.booleans()):
        payload["stream"] = draw(st.sampled_from([True, True, False, None]))
    if draw(st.booleans()):
        payload["temperature"] = draw(st.floats(0, 2))
    spoil = draw(st.sampled_from(["none"] * 4 + ["drop", "retype", "nest", "grow"]))
    if spoil == "drop":
        del payload[draw(st.sampled_from(sorted(payload)))]
    elif spoil == "retype":
        payload[draw(st.sampled_from(sorted(payload)))] = draw(WRONG_TYPES)
    elif spoil == "grow":
        payload["padding"] = "x" * draw(st.integers(MAX_BODY - 2000, MAX_BODY + 2000))
    elif spoil == "nest":
        payload["metadata"] = NESTED
        levels = draw(st.sampled_from([10, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 300, 1100])) - 1
        nesting = b"[" * levels + b"1" + b"]" * levels  # the payload itself is the first level
        return orjson.dumps(payload).replace(orjson.dumps(NESTED), nesting)
    return orjson.dumps(payload)


JUNK = st.one_of(
    st.sampled_from(
        [b"", b"{", b"[]", b'"text"', b"null", b"{'model': 1}", b"\xff\xfe", b'{"n": 1e999}']
    ),
    st.binary(max_size=40),
)


@st.composite
def bodies(draw: st.DrawFn, kind: str) -> tuple[bytes, list[str]]:
    """A body for an endpoint taking `kind` (or junk), and the fields describing its coding."""
    raw = draw(payloads(kind)) if draw(st.integers(0, 4)) else draw(JUNK)
    coding = draw(st.sampled_from(["identity"] * 5 + ["gzip", "gzip", "gzip-label-only", "br"]))
    if coding == "gzip":
        return gzip.compress(raw), ["Content-Encoding: gzip"]
    if coding == "gzip-label-only":
        return raw, ["Content-Encoding: gzip"]
    if coding == "br":
        return raw, ["Content-Encoding: br"]
    return raw, []


FIELDS = {
    "x-request-id": ["req-123", "a b", "x" * 200, "", "ABC.def:1-2_3", "  req-456\t"],
    "anthropic-version": ["2023-06-01", "nonsense", "2023-06-01 "],
    "cache-control": ["no-cache", "no-store", "max-age=0", "max-age=60", "private"],
    "content-type": ["application/json", "text/plain"],
    "accept": ["text/event-stream", "application/json"],
    "x-edgeproxy-strategy": ["weighted", "latency", "cost", "lowest-latency"],
    "x-edgeproxy-cache-ttl": ["10", "-1", "abc"],
    "authorization": ["Bearer sk-client-key-must-not-travel"],
    "x-api-key": ["sk-client-key-must-not-travel"],
}


def chunked(body: bytes, size: int) -> bytes:
    """`body` in chunks of `size` bytes."""
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A well-formed HTTP/1.1 request, and whether it is a HEAD: mostly an API call (a POST to
    an endpoint), else any method on any path."""
    if draw(st.integers(0, 3)):
        method, path = "POST", draw(st.sampled_from(sorted(ENDPOINTS)))
    else:
        method = draw(st.sampled_from(METHODS))
        path = draw(st.sampled_from([*OTHER_PATHS, *ENDPOINTS]))
    fields = ["Host: proxy.test"]
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=4)):
        spelt = draw(st.sampled_from([name, name.upper(), name.title()]))
        fields.append(f"{spelt}: {draw(st.sampled_from(FIELDS[name]))}")
    body = b""
    if method == "POST" or draw(st.booleans()):
        body, described = draw(bodies(ENDPOINTS.get(path, "chat")))
        fields += described
        if draw(st.integers(0, 3)):
            fields.append(f"Content-Length: {len(body)}")
        else:
            fields.append("Transfer-Encoding: chunked")
            body = chunked(body, draw(st.integers(1, 4096)))
    head = "\r\n".join([f"{method} {path} HTTP/1.1", *fields]) + "\r\n\r\n"
    return head.encode("latin-1") + body, method == "HEAD"


# --- the comparison ------------------------------------------------------------------------


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
async def test_the_new_listener_answers_as_the_old_one_did(
    twins: Twins, request: tuple[bytes, bool]
) -> None:
    data, head_only = request
    new, old = await twins.ask(data, head_only)
    assert comparable(new) == comparable(old)


# --- the known differences -------------------------------------------------------------------


def with_fields(head: str, *fields: bytes, body: bytes = b"") -> bytes:
    """A request: `head` (its request line), a Host, `fields`, then `body` with its length."""
    lines = [head.encode(), b"Host: proxy.test", *fields]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


CHAT = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]})
KNOWN_DIFFERENCES = {  # request, the new listener's status, the old one's
    "a-percent-encoded-path-is-not-decoded": (
        with_fields("POST /v1/chat/%63ompletions HTTP/1.1", body=CHAT),
        404,
        200,
    ),
    "a-method-llhttp-does-not-know": (with_fields("BREW /v1/messages HTTP/1.1"), 501, 400),
    "an-http-version-other-than-1.0-and-1.1": (with_fields("GET /v1/models HTTP/2.0"), 505, 200),
    "connect": (with_fields("CONNECT proxy.test:443 HTTP/1.1"), 501, 404),
    "a-field-aiohttp-took-once-only-repeated": (
        with_fields("GET /v1/models HTTP/1.1", b"Content-Type: a/b", b"Content-Type: a/b"),
        200,
        400,
    ),
    "a-repeated-field-read-joined-not-as-its-first-line": (
        with_fields(
            "POST /v1/chat/completions HTTP/1.1",
            b"X-Edgeproxy-Strategy: weighted",
            b"X-Edgeproxy-Strategy: weighted",  # "weighted, weighted": no such strategy
            body=CHAT,
        ),
        400,
        200,
    ),
    "a-header-byte-that-is-not-utf8-passed-on-as-it-came": (
        with_fields("POST /v1/chat/completions HTTP/1.1", b"Anthropic-Version: \xe9", body=CHAT),
        200,
        400,
    ),
}
_STATUS_LINE = re.compile(rb"HTTP/\d\.\d (\d{3}) ")


async def status_of(port: int, data: bytes) -> int:
    """The status `data` is answered with (aiohttp answered in HTTP/1.0 or 2.0 at times)."""
    client = await RawClient.connect(port)
    try:
        await client.send(data)
        async with asyncio.timeout(10):
            line = await client.reader.readline()
    finally:
        await client.close()
    status = _STATUS_LINE.match(line)
    assert status is not None, line
    return int(status[1])


@pytest.mark.parametrize(
    ("data", "new_status", "old_status"), KNOWN_DIFFERENCES.values(), ids=KNOWN_DIFFERENCES.keys()
)
async def test_the_known_differences_are_as_documented(
    twins: Twins, data: bytes, new_status: int, old_status: int
) -> None:
    assert await status_of(twins.stack.proxy.data_address[1], data) == new_status
    assert await status_of(twins.old.data_address[1], data) == old_status
