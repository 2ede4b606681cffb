"""Forwarding over HTTP: one keep-alive pool per provider (edgeproxy.wire.client) and the
upstream deadlines.

Deadlines (from the provider's `timeouts`): `connect` for the TCP/TLS handshake (and a proxy's
CONNECT), `first_byte` until the response headers arrive, `idle` for the longest gap between
body chunks and `total` for the whole exchange. A timer is set only when a read must wait.

Bodies come back as the provider sent them. A compressed event stream is decoded here, since
the relay reads every event; a whole body keeps its coding (the client accepted it: only its
own Accept-Encoding lets a provider compress) and is decoded only where the proxy must read
it (`decoded_answer`).
"""

from __future__ import annotations

import asyncio
import zlib
from abc import abstractmethod
from collections.abc import Mapping, MutableMapping
from urllib.parse import urlsplit

from edgeproxy import errors
from edgeproxy.operations import Operation
from edgeproxy.providers.base import (
    CLIENT_CHAT,
    ForwardRequest,
    OutboundRequest,
    Provider,
    forwarded_headers,
    relayed_headers,
    with_trace_context,
)
from edgeproxy.providers.settings import ProviderConfig, Timeouts
from edgeproxy.wire import codings
from edgeproxy.wire.client import (
    ConnectFailed,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
)

# Bodies relayed as they arrive rather than read whole: SSE, and AWS's binary event stream.
STREAM_TYPES = frozenset({"text/event-stream", "application/vnd.amazon.eventstream"})
# A provider's compressed answer is never inflated past this when the proxy reads it.
MAX_DECODED = 256 * 1024 * 1024
# Nor is an answer read whole past this (a body that never ends would take all memory).
MAX_ANSWER = MAX_DECODED


def decoded_answer(body: bytes, headers: Mapping[str, str], provider: str) -> bytes:
    """A whole answer without its content coding, for the proxy to read (usage, the cache,
    translation, masking an error); ProxyError (502) when it does not decode."""
    coding = headers.get("content-encoding")
    if not coding:
        return body
    try:
        return codings.decode(body, coding, MAX_DECODED)
    except ValueError as exc:
        raise errors.upstream_broken(provider, f"an answer in {coding!r}: {exc!r}") from None


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").partition(";")[0].strip().lower()


class HttpUpstream:
    """A provider's response being relayed, with the idle and total deadlines applied to reads.

    A body that is not an event stream arrives already read (`body`), under the same deadline
    that covered the headers: one wait per non-streaming request instead of two. A `raw` one
    (passed through) is streamed whatever it is, in its content coding.
    """

    __slots__ = (
        "_body",
        "_deadline",
        "_idle",
        "_inflater",
        "_loop",
        "_provider",
        "_response",
        "_timeouts",
        "headers",
        "status",
    )

    def __init__(
        self,
        response: UpstreamResponse,
        provider: str,
        timeouts: Timeouts,
        deadline: float | None,
        body: bytes | None = None,
        *,
        raw: bool = False,
    ) -> None:
        self._response = response
        self._provider = provider
        self._timeouts = timeouts
        self._idle = timeouts.idle
        self._deadline = deadline
        self._loop = asyncio.get_running_loop()
        self._body = body
        self._inflater: zlib._Decompress | None = None
        self.status = response.status
        self.headers = relayed_headers(response.headers)
        if body is None and not raw and (coding := self.headers.pop("content-encoding", "")):
            try:
                self._inflater = codings.decoder(coding)
            except codings.UnknownCoding:
                raise errors.upstream_broken(provider, f"a stream in {coding!r}") from None

    @property
    def is_event_stream(self) -> bool:
        return self._body is None

    async def read(self) -> bytes:
        if self._body is not None:
            return self._body
        try:
            body = await self._response.read(self._deadline, MAX_ANSWER)
        except TimeoutError:
            raise self._timed_out("total") from None
        except UpstreamError as exc:
            raise errors.upstream_broken(self._provider, str(exc)) from None
        return self._decode(body) + self._flush()

    async def next_chunk(self) -> bytes:
        if self._body is not None:
            return b""
        until = self._loop.time() + self._idle
        deadline = self._deadline
        if deadline is not None and deadline < until:
            until = deadline
        try:
            chunk = await self._response.next_chunk(until)
        except TimeoutError:
            raise self._timed_out("total" if until == deadline else "idle") from None
        except UpstreamError as exc:
            raise errors.upstream_broken(self._provider, str(exc)) from None
        if self._inflater is None:
            return chunk
        if not chunk:
            return self._flush()
        return self._decode(chunk) or await self.next_chunk()

    def _decode(self, data: bytes) -> bytes:
        if self._inflater is None:
            return data
        try:
            return self._inflater.decompress(data)
        except zlib.error:
            raise errors.upstream_broken(
                self._provider, "a compressed stream did not decode"
            ) from None

    def _flush(self) -> bytes:
        inflater = self._inflater
        if inflater is None:
            return b""
        if not inflater.eof:
            raise errors.upstream_broken(self._provider, "a compressed stream ended early")
        return inflater.flush()

    def _timed_out(self, phase: str) -> errors.ProxyError:
        seconds = self._idle if phase == "idle" else self._timeouts.total or 0.0
        return errors.upstream_timeout(self._provider, phase, seconds)

    def close(self) -> None:
        """Back to the pool if the body has arrived whole; otherwise the connection is closed,
        which stops the provider generating (and billing) the rest."""
        self._response.release()


class BufferedUpstream:
    """A complete answer the proxy holds (assembled from several upstream calls, or stored in
    the cache); `stream`: it is an event stream, given whole as its one chunk."""

    __slots__ = ("_body", "headers", "is_event_stream", "status")

    def __init__(
        self, status: int, headers: MutableMapping[str, str], body: bytes, stream: bool = False
    ) -> None:
        self.status = status
        self.headers = headers
        self._body = body
        self.is_event_stream = stream

    async def read(self) -> bytes:
        return self._body

    async def next_chunk(self) -> bytes:
        if not self.is_event_stream:
            return b""
        body, self._body = self._body, b""
        return body

    def close(self) -> None:
        """Nothing to release: the connections went back to the pool when the bodies were read."""


class HttpProvider(Provider):
    """Shared by every HTTP provider kind; subclasses name their paths and auth headers."""

    native_chat: Operation | None = None  # the chat endpoint translated requests go to

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._urls = {op: config.base_url + self.path_for(op) for op in self.operations}
        if self.native_chat is not None:  # other dialects' chat is translated into ours
            for operation in CLIENT_CHAT:
                self._urls.setdefault(operation, self._urls[self.native_chat])
        self._fixed_headers = {
            "content-type": "application/json",
            **config.headers,
            **self.auth_headers(),
        }
        parts = urlsplit(config.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._pool: UpstreamPool | None = None
        self._timeouts = config.timeouts

    def path_for(self, operation: Operation) -> str:
        return operation.path

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Credential headers for this provider, computed once at load."""

    def request_headers(self, request: OutboundRequest) -> dict[str, str]:
        """The client's forwardable headers on a same-dialect route; on a translated route
        they mean nothing to the provider, so only the provider's own are sent. With tracing
        on, the attempt's trace context replaces the client's."""
        if request.client_headers is not None:
            headers = forwarded_headers(request.client_headers, self._fixed_headers)
        else:
            headers = dict(self._fixed_headers)
        headers["x-request-id"] = request.request_id
        with_trace_context(headers, request.trace_context)
        return headers

    def url_for(self, request: OutboundRequest) -> str:
        return self._urls[request.operation]

    async def open(self) -> None:
        config = self.config
        self._pool = UpstreamPool(
            self._origin,
            max_connections=config.max_connections,
            connect_timeout=self._timeouts.connect,
            idle_timeout=config.keepalive_timeout,
            ca_file=config.ca_file,
            proxy=config.proxy,
            dns_ttl=config.dns_ttl,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def in_use(self) -> int:
        """Connections currently lent out of the pool (for leak checks and readiness)."""
        return 0 if self._pool is None else self._pool.in_use

    async def send(self, request: OutboundRequest) -> HttpUpstream | BufferedUpstream:
        return await self.post(request, self.url_for(request), self.request_headers(request))

    async def post(
        self,
        request: OutboundRequest,
        url: str,
        headers: dict[str, str],
        body: bytes | None = None,
    ) -> HttpUpstream:
        """POST the request's body (or `body`) to `url` under its deadlines (see `call`)."""
        data = request.body if body is None else body
        return await self.call("POST", url, headers, data, request.deadline)

    async def forward(self, request: ForwardRequest, *, raw: bool) -> HttpUpstream:
        """The client's path under this provider's API root (`api_url`), with the client's
        forwardable headers, body and its framing headers, and this provider's credential."""
        url = self.api_url(request.path, request.query)
        headers = self.forward_headers(request)
        return await self.call(
            request.method, url, headers, request.body, request.deadline, raw=raw
        )

    def forward_headers(self, request: ForwardRequest) -> dict[str, str]:
        headers = forwarded_headers(request.client_headers, self._fixed_headers)
        headers["x-request-id"] = request.request_id
        client = request.client_headers
        for name in ("content-type", "content-encoding"):  # the body is the client's
            if name in client:
                headers[name] = client[name]
            elif not request.body:
                headers.pop(name, None)
        return headers

    def api_url(self, path: str, query: str) -> str:
        """Where a client's `/v1/...` path is under this provider (its base URL ends where the
        client's `/v1` does, as OpenAI's)."""
        url = self.config.base_url + path.removeprefix("/v1")
        return url + "?" + query if query else url

    async def call(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: bytes,
        deadline: float | None,
        *,
        raw: bool = False,
    ) -> HttpUpstream:
        """Send `data` to `url` (already percent-encoded, sent as it is) before `deadline`;
        returns once headers arrive (with the body too, unless it is a stream or `raw`). A
        redirect is neither followed nor relayed (a 502)."""
        pool = self._pool
        if pool is None:
            raise errors.upstream_unreachable(self.name, "provider pool is not open")
        timeouts = self._timeouts
        first_byte = asyncio.get_running_loop().time() + timeouts.first_byte
        phase = "first byte"
        if deadline is not None and deadline <= first_byte:
            first_byte, phase = deadline, "total"
        target = url.removeprefix(self._origin)
        response: UpstreamResponse | None = None
        try:
            response = await pool.request(
                method, target, list(headers.items()), data, deadline=first_byte
            )
            if 300 <= response.status < 400 and response.status != 304:  # 304: not a redirect
                location = response.headers.get("location", "")
                raise errors.upstream_redirected(self.name, response.status, location)
            if raw or _media_type(response.headers) in STREAM_TYPES:
                return HttpUpstream(response, self.name, timeouts, deadline, raw=raw)
            phase = "total"
            answer = await response.read(deadline, MAX_ANSWER)
        except BaseException as exc:
            if response is not None:
                response.release()
            raise self._failure(exc, phase) from None
        return HttpUpstream(response, self.name, timeouts, deadline, answer)

    def _failure(self, exc: BaseException, phase: str) -> BaseException:
        """The ProxyError for what went wrong before the body was in hand (else `exc` itself)."""
        timeouts = self._timeouts
        if isinstance(exc, ConnectFailed):
            if exc.timed_out:
                return errors.upstream_timeout(self.name, "connect", timeouts.connect)
            return errors.upstream_unreachable(self.name, str(exc))
        if isinstance(exc, TimeoutError):  # waiting for a pooled connection included
            seconds = timeouts.first_byte if phase == "first byte" else timeouts.total or 0.0
            return errors.upstream_timeout(self.name, phase, seconds)
        if isinstance(exc, UpstreamError):
            return errors.upstream_broken(self.name, str(exc))
        if isinstance(exc, ValueError):  # a header value no HTTP/1.1 request can carry
            return errors.bad_request(
                "A header cannot be sent upstream (a line break or a character outside latin-1)."
            )
        return exc
