"""Bytes in, requests out: llhttp (through httptools) plus the rules it leaves to its caller.

llhttp already refuses the classic smuggling vectors (Content-Length with Transfer-Encoding,
duplicate or malformed Content-Length, obsolete line folding, whitespace before a colon, bare
CR or LF, NUL and other controls in values, malformed chunk sizes). What it leaves to us, and
this module adds: header byte and count limits (httptools has none, and accumulates a header
value in memory until it ends), the body limit while it arrives, transfer codings other than
exactly `chunked`, Transfer-Encoding on HTTP/1.0, versions other than 1.0 and 1.1, a missing
Host, CONNECT and upgrades (`HttpParserUpgrade` is not an `HttpParserError`).

Every refusal is a `Refusal` carrying the status the server answers with, then closes, and
whatever was read of the request's head: its path and fields tell the client's dialect.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NoReturn

import httptools

from edgeproxy.wire.limits import Limits

# A method token, then the target when the request line is at hand that far.
_METHOD_TOKEN = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32})(?: (/[!-~]*) | |$)")
_VERSIONS = frozenset({"1.1", "1.0"})
_REQUEST_LINE_FRAME = len(b"  HTTP/1.1\r\n")
_HEADER_LINE_FRAME = len(b": \r\n")
_FIELD_NAMES: dict[bytes, str] = {}  # raw field name -> lower-cased str, for the common ones
_FIELD_NAMES_KEPT = 512


class Request:
    """One parsed request. Header names are lower-cased; values are latin-1 decoded (so the
    bytes survive a round trip) and a repeated field is joined with ", ". `path` and `query`
    are split from the raw target and not percent-decoded; `body` is de-chunked, not
    decompressed. `received` is when its first byte was read (time.monotonic(), the loop
    clock's base at full resolution)."""

    __slots__ = (
        "body",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "received",
        "target",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        version: str,
        received: float,
    ) -> None:
        self.method = method
        self.target = target
        self.path, self.query = _split_target(target)
        self.headers = headers
        self.version = version
        self.received = received
        self.body = b""
        self.keep_alive = True


class Refusal(Exception):
    """A request the server answers itself, with `status` and a client-safe `message`, and then
    closes the connection. `request` is set once its target was read: the whole request when
    its head was parsed, else what was read of it (see `RequestReader._head_so_far`)."""

    def __init__(self, status: int, message: str, request: Request | None = None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.request = request


# Where the reader stands in the current message; the connection picks its timer by it. (Plain
# ints: on Python 3.11 an enum member costs ten times more to reach, on every callback.)
BETWEEN = 0  # between messages
IN_HEAD = 1  # first byte seen, headers not complete
IN_BODY = 2  # headers complete, message not complete


class RequestReader:
    """Feeds bytes to llhttp and hands over each complete request. `on_head(request,
    expects_continue)` fires when a head passes every check; `on_request(request)` when its
    body is complete. `feed` raises `Refusal`; after a refusal or a request that does not keep
    the connection alive, the reader takes no more bytes.

    Header fields are collected raw and checked against the limits once the head is complete
    (one pass, cheaper than a check per field); `_watch_head` bounds what an unfinished head
    can hold meanwhile."""

    __slots__ = (
        "_body",
        "_body_size",
        "_continues_head",
        "_fields",
        "_head_fed",
        "_limits",
        "_now",
        "_on_head",
        "_on_request",
        "_parser",
        "_progressed",
        "_refusal",
        "_request",
        "_stalled",
        "_starts_message",
        "_url",
        "_url_size",
        "began_at",
        "done",
        "phase",
    )

    def __init__(
        self,
        limits: Limits,
        on_head: Callable[[Request, bool], None],
        on_request: Callable[[Request], None],
    ) -> None:
        self._limits = limits
        self._on_head = on_head
        self._on_request = on_request
        self._parser = httptools.HttpRequestParser(self)
        self._url: list[bytes] = []
        self._url_size = 0
        self._fields: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._request: Request | None = None
        self._refusal: Refusal | None = None
        self._progressed = False
        self._stalled = 0
        self._starts_message = False
        self._continues_head = False
        self._head_fed = 0
        self._now = 0.0
        self.began_at = 0.0
        self.phase = BETWEEN
        self.done = False

    def feed(self, data: bytes | memoryview, now: float) -> None:
        """Parse `data`, which arrived at loop time `now`."""
        if self.done:
            return
        self._now = now
        self._progressed = False
        self._starts_message = self.phase == BETWEEN
        self._continues_head = self.phase == IN_HEAD
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # Only a bodiless Upgrade gets here (on_headers_complete refuses the rest): it was
            # served as a plain request, and the bytes after it are the next request.
            offset = upgrade.args[0]
            self.feed(data[offset:], now)
            return
        except httptools.HttpParserError as error:
            self._failed(error, data)
            return
        if self.phase == IN_HEAD:
            self._watch_head(data)
        elif self.phase == IN_BODY:
            self._watch_body(len(data))

    def abandon(self) -> Request | None:
        """Stop reading (the client ran out of time); returns the request being read, as far
        as it was read, if its target was."""
        self.done = True
        return self._request or self._head_so_far()

    # httptools callbacks, in the order llhttp calls them

    def on_message_begin(self) -> None:
        self.phase = IN_HEAD
        self.began_at = self._now
        self._url = []
        self._url_size = 0
        self._fields = []
        self._body = []
        self._body_size = 0

    def on_url(self, fragment: bytes) -> None:
        self._url.append(fragment)
        self._url_size += len(fragment)
        if self._url_size > self._limits.max_header_bytes:
            self._refuse(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name, value))  # trailers too, after the head: counted, not kept

    def on_headers_complete(self) -> None:
        parser = self._parser
        method = parser.get_method().decode("ascii")
        headers = self._read_fields(len(method) + self._url_size + _REQUEST_LINE_FRAME)
        version = parser.get_http_version()
        if version not in _VERSIONS:
            self._refuse(505, "HTTP version not supported")
        if method == "CONNECT":
            self._refuse(501, "CONNECT is not supported")
        target = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        request = Request(method, target.decode("latin-1"), headers, version, self.began_at)
        self._request = request
        if version == "1.1" and "host" not in headers:
            self._refuse(400, "missing Host header", request)
        if "," in headers.get("host", ""):
            self._refuse(400, "repeated Host header", request)
        chunked = "transfer-encoding" in headers
        if chunked:
            self._check_transfer_encoding(headers["transfer-encoding"], version, request)
        length = int(headers.get("content-length", "0"))
        if length > self._limits.max_body:
            self._refuse(413, "request body too large", request)
        if parser.should_upgrade() and (chunked or length):
            self._refuse(400, "an Upgrade request with a body is not supported", request)
        expects_continue = version == "1.1" and headers.get("expect", "").lower() == "100-continue"
        self.phase = IN_BODY
        self._on_head(request, expects_continue)

    def on_body(self, chunk: bytes) -> None:
        self._progressed = True
        self._body.append(chunk)
        self._body_size += len(chunk)
        if self._body_size > self._limits.max_body:
            self._refuse(413, "request body too large", self._request)

    def on_message_complete(self) -> None:
        request = self._request
        assert request is not None  # llhttp completes only messages whose head it completed
        if len(self._fields) > self._limits.max_header_count:
            self._refuse(431, "too many trailer fields", request)
        self._request = None
        body = self._body
        request.body = body[0] if len(body) == 1 else b"".join(body)
        request.keep_alive = self._parser.should_keep_alive()
        self.phase = BETWEEN
        self._starts_message = self._continues_head = False
        if not request.keep_alive:
            self.done = True  # llhttp refuses bytes after it; they are the client's to lose
        self._on_request(request)

    def _read_fields(self, size: int) -> dict[str, str]:
        """The head's fields as a dict, once they are known to be within the limits; `size`
        is the request line's."""
        fields = self._fields  # kept until checked: a refusal reports them
        if len(fields) > self._limits.max_header_count:
            self._refuse(431, "too many header fields")
        headers: dict[str, str] = {}
        size += len(fields) * _HEADER_LINE_FRAME
        known_name = _FIELD_NAMES.get
        for name, value in fields:
            size += len(name) + len(value)
            key = known_name(name) or _field_name(name)
            text = value.decode("latin-1").rstrip(" \t")  # llhttp strips only leading space
            if key in headers:
                headers[key] = f"{headers[key]}, {text}"
            else:
                headers[key] = text
        if size > self._limits.max_header_bytes:
            self._refuse(431, "header fields too large")
        self._fields = []  # from here on, trailer fields
        return headers

    # rules

    def _check_transfer_encoding(self, value: str, version: str, request: Request) -> None:
        codings = [c.strip().lower() for c in value.split(",") if c.strip()]
        if version == "1.0":
            self._refuse(400, "Transfer-Encoding is not allowed on HTTP/1.0", request)
        if codings == ["chunked"]:
            return
        if "chunked" in codings[:-1]:
            self._refuse(400, "chunked must be the last transfer coding", request)
        self._refuse(501, "transfer coding not supported", request)

    def _refuse(self, status: int, message: str, request: Request | None = None) -> NoReturn:
        self._refusal = Refusal(status, message, request or self._head_so_far())
        raise self._refusal

    def _head_so_far(self) -> Request | None:
        """What was read of a head that will not complete: the method, the target as far as it
        went and the fields before the fault. Enough to answer in the client's dialect and with
        its request id; None before the target."""
        if self.phase != IN_HEAD or not self._url:
            return None
        parser = self._parser
        version = parser.get_http_version()
        headers = {_field_name(name): value.decode("latin-1") for name, value in self._fields}
        try:
            return Request(
                parser.get_method().decode("ascii"),
                b"".join(self._url).decode("latin-1"),
                headers,
                version if version in _VERSIONS else "1.1",
                self.began_at,
            )
        except httptools.HttpParserInvalidURLError:  # a target not in a form a request takes
            return None

    def _unknown_method(self, data: bytes | memoryview) -> Refusal | None:
        """llhttp stops at the first byte of a method it does not know: a well-formed token is
        a 501, with the target when the request line came in the same bytes."""
        token = _METHOD_TOKEN.match(bytes(data).lstrip(b"\r\n"))
        if token is None:
            return None
        method, target = token[1].decode("ascii"), token[2]
        request = None
        if target is not None:
            request = Request(method, target.decode("latin-1"), {}, "1.1", self._now)
        return Refusal(501, "method not implemented", request)

    def _failed(self, error: httptools.HttpParserError, data: bytes | memoryview) -> None:
        if self._refusal is not None:
            self.done = True
            raise self._refusal
        if self.done:
            return  # bytes after a request that closes the connection: ignored
        self.done = True
        parser = self._parser
        if isinstance(error, httptools.HttpParserInvalidMethodError):
            # The method's bytes are at hand only when its message began this feed's data.
            if self._starts_message and (refusal := self._unknown_method(data)):
                raise refusal from None
        elif parser.get_method() == b"PRI" or parser.get_http_version() not in ("0.0", *_VERSIONS):
            raise Refusal(505, "HTTP version not supported") from None
        request = self._request or self._head_so_far()
        raise Refusal(400, f"malformed request: {error}", request) from None

    def _watch_head(self, data: bytes | memoryview) -> None:
        """httptools keeps an unfinished header line in memory until it ends, and counting in
        the callbacks sees it only then: the bytes of an unfinished head are counted as they
        arrive, so a line that never ends cannot grow past the limit. (When another message
        ended in the same feed, where this one began is unknown: its bytes are counted from
        the next feed on, which keeps the bound to one feed more.)"""
        if self._continues_head:
            self._head_fed += len(data)
        elif self._starts_message:
            self._head_fed = len(bytes(data).lstrip(b"\r\n"))
        else:
            self._head_fed = 0
        if self._head_fed > self._limits.max_header_bytes:
            self.done = True
            raise Refusal(431, "header fields too large", self._head_so_far())

    def _watch_body(self, size: int) -> None:
        """In a chunked body, a trailer line (which httptools also keeps until it ends) or a
        chunk extension (which llhttp skips) makes no callback: bytes that make no progress
        are counted, so neither can go on past the header limit."""
        if self._progressed:
            self._stalled = 0
            return
        self._stalled += size
        if self._stalled > self._limits.max_header_bytes:
            self.done = True
            raise Refusal(400, "chunk framing too large", self._request)


def _field_name(raw: bytes) -> str:
    name = raw.decode("latin-1").lower()
    if len(_FIELD_NAMES) < _FIELD_NAMES_KEPT:
        _FIELD_NAMES[raw] = name
    return name


def _split_target(target: str) -> tuple[str, str]:
    if target.startswith("/"):
        path, _, query = target.partition("?")
    elif target == "*":
        return target, ""
    else:  # absolute-form: http://host/path?query
        url = httptools.parse_url(target.encode("latin-1"))
        path = (url.path or b"/").decode("latin-1")
        query = (url.query or b"").decode("latin-1")
    if "#" in target:
        path = path.partition("#")[0]
        query = query.partition("#")[0]
    return path, query
