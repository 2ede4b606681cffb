"""The one way an answer reaches a client: relayed bytes, a translation, or a cache replay.

Every reply of the pipeline goes through `Relay.answer`:
- a `ProxyError` is rendered in the client's dialect (`Relay.fail`, the only place errors are
  rendered), with every configured secret masked (as in a provider's error answer, body and
  headers, and in its error events in a stream);
- a whole answer (JSON, or an event stream held whole) is relayed as the provider sent it on a
  same-dialect route (usage read when someone needs it; an error body masked), or decoded from
  the provider's dialect and rendered in the client's (`read_whole`, which `Pipeline.embed`
  uses too);
- a stream goes through one loop, whatever its kind: a `Transform` turns provider chunks into
  client bytes (`PassThrough`: whole SSE events as they are, watched for usage; or a
  translator's `StreamRelay`). The client's headers go out with the first bytes, so a stream
  that fails before producing any still gets a proper error status; once it has started, a
  failure becomes a final SSE error event, never a second status line. So does the end of a
  drain's grace (edgeproxy.drain), which cancels the handler with its client still there.

What the client is sent is teed into the cache capture (before the write, so requests following
this stream get it even if this client has just left). A client that leaves mid-stream stops
the upstream call, unless others follow the stream: then its rest is read for them in the
background (`Capture.follow_through`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Protocol

import orjson

from edgeproxy import errors
from edgeproxy.dialects.codec import Codec
from edgeproxy.dialects.neutral import ChatRequest, EmbeddingRequest, Usage
from edgeproxy.dialects.translation import ChatTranslator, EmbeddingTranslator
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import AnswerFilter, Capture, Exchange, Reply
from edgeproxy.providers.base import Upstream
from edgeproxy.providers.http import decoded_answer
from edgeproxy.redact import Redactor
from edgeproxy.sse import EventAligner, SSEDecoder, encode_event
from edgeproxy.telemetry.histogram import Histogram
from edgeproxy.telemetry.record import Costing

log = logging.getLogger("edgeproxy.proxy")

JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# A translated answer's own framing: the provider's type and coding do not describe it.
_RENDERED_ANEW = frozenset({"content-type", "content-encoding"})
Headers = MutableMapping[str, str]
_NO_CHOICES = re.compile(rb'"choices":\s*\[\s*\]').search
# Statuses whose answers have no body.
_NO_BODY = frozenset({204, 304})
# Statuses the official SDKs retry unless told not to (`x-should-retry: false`).
_SDK_RETRIES = frozenset({408, 409, 429})


class ClientRequest(Protocol):
    """A request as the listener read it (wire.server.Request)."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def query(self) -> str:
        """Still percent-encoded."""

    @property
    def headers(self) -> Mapping[str, str]:
        """Names in lower case."""

    @property
    def body(self) -> bytes: ...

    @property
    def received(self) -> float:
        """When its first byte arrived (time.monotonic()): queueing counts in its latency."""


class ClientResponse(Protocol):
    """Where an answer is written: the HTTP listener's response (or a test's)."""

    @property
    def started(self) -> bool: ...

    @property
    def gone(self) -> bool:
        """The client left: nothing written now can reach it."""

    def send(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        """A complete response at once."""

    def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """The head of a streamed response."""

    def write(self, data: bytes) -> None:
        """Body bytes of a started response."""

    async def drain(self) -> None:
        """Until the client has taken what was written; raises ConnectionError once it left."""

    def end(self) -> None:
        """The streamed response is complete."""

    def abort(self) -> None:
        """Drop the connection: a started response that cannot complete is never taken for a
        complete one."""


class Transform(Protocol):
    """Provider stream chunks in, client bytes out (whole events), and the usage seen."""

    @property
    def usage(self) -> Usage | None: ...

    @property
    def failed(self) -> bool:
        """The provider's own error event was relayed as it was."""

    @property
    def answer_id(self) -> str | None:
        """The answer's id, where a later request may name it (routing/affinity.py)."""

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, err: ProxyError) -> bytes: ...


class PassThrough:
    """A same-dialect stream: whole events as they arrive, watched for usage, never re-encoded.
    A partial event is held until its end arrives, which costs the client nothing (it could not
    use half an event) and means a failure mid-stream always leaves it a clean error event.
    Only the events that can carry usage or an error are decoded: found by a byte search."""

    __slots__ = ("_aligner", "_codec", "_decoder", "_marked", "_watch")

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._aligner = EventAligner()
        self._decoder = SSEDecoder()
        self._watch = codec.StreamUsage()
        self._marked = _marker_search(codec.USAGE_MARKERS)

    @property
    def usage(self) -> Usage | None:
        return self._watch.usage

    @property
    def failed(self) -> bool:
        return self._watch.failed

    @property
    def answer_id(self) -> str | None:
        return self._watch.answer_id

    def feed(self, chunk: bytes) -> bytes:
        whole = self._aligner.whole_events(chunk)
        if whole and self._marked(whole):  # whole events: the decoder starts fresh each time
            observe = self._watch.observe
            for event in self._decoder.feed(whole):
                observe(event)
        return whole

    def finish(self) -> bytes:
        return self._aligner.rest()

    def error(self, err: ProxyError) -> bytes:
        return self._codec.error_event(err)


class WithheldUsage:
    """What the client of an OpenAI stream is sent when the proxy asked the provider for the
    usage the client did not ask for (`Exchange.injects_usage`): the usage-only last chunk (no
    choices) is kept from it, which code reading `chunk.choices[0]` would fail on; then the
    answer screen, if any. The usage was read before, from what the provider sent."""

    __slots__ = ("_inner",)

    def __init__(self, inner: AnswerFilter | None) -> None:
        self._inner = inner

    def whole(self, body: bytes) -> bytes:
        return body if self._inner is None else self._inner.whole(body)

    def feed(self, data: bytes) -> bytes:
        if _NO_CHOICES(data) is not None:
            data = b"".join(
                encode_event(event.data, None if event.event == "message" else event.event)
                for event in SSEDecoder().feed(data)
                if not _usage_only(event.data)
            )
        return data if self._inner is None else self._inner.feed(data)

    def finish(self) -> bytes:
        return b"" if self._inner is None else self._inner.finish()


def _usage_only(data: bytes) -> bool:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(chunk, dict) and chunk.get("choices") == [] and "usage" in chunk


def error_answer(err: ProxyError, codec: Codec, request_id: str) -> tuple[int, Headers, bytes]:
    """`err` as the client's dialect renders it: status, headers and body."""
    headers = {"content-type": JSON_TYPE, "x-request-id": request_id}
    if err.retry_after is not None:
        headers["retry-after"] = str(math.ceil(err.retry_after))
    if not err.retryable and (err.status in _SDK_RETRIES or err.status >= 500):
        headers["x-should-retry"] = "false"  # both SDKs would retry it: an exhausted budget
    if err.headers_for is not None:
        headers.update(err.headers_for(codec.NAME))
    return codec.status_for(err), headers, codec.render_error(err)


def readable(exchange: Exchange, headers: Headers, body: bytes) -> bytes:
    """A whole answer without the content coding the provider may have sent it in."""
    if "content-encoding" not in headers:
        return body
    deployment = exchange.deployment
    return decoded_answer(body, headers, deployment.provider.name if deployment else "upstream")


@functools.cache
def _marker_search(markers: tuple[bytes, ...]) -> Callable[[bytes], re.Match[bytes] | None]:
    """One compiled search for any of `markers` (a dialect's usage markers)."""
    return re.compile(b"|".join(re.escape(m) for m in markers)).search


async def read_whole(
    exchange: Exchange, upstream: Upstream, codec: Codec, *, watch_usage: bool
) -> tuple[int, Headers, bytes]:
    """A non-streamed answer as its client is sent it: the provider's bytes on a same-dialect
    route (as they came, compressed if the client accepted that; its usage read when
    `watch_usage`), else decoded and rendered in the client's dialect. Raises ProxyError when
    a translated provider failed."""
    asked = time.monotonic()
    body = await upstream.read()
    exchange.upstream_wait += time.monotonic() - asked
    translator = exchange.translator
    if translator is None:
        headers = upstream.headers
        headers["x-request-id"] = exchange.request_id
        mark(headers, exchange)
        if watch_usage and upstream.status == 200:
            readable_body = readable(exchange, headers, body)
            exchange.usage = codec.usage_of_body(readable_body)
            exchange.answer_id = codec.answer_id_of_body(readable_body)
        return upstream.status, headers, body
    body = readable(exchange, upstream.headers, body)
    if not 200 <= upstream.status < 300:
        raise translator.error(upstream.status, upstream.headers, body)
    model, neutral = exchange.upstream_model, exchange.neutral
    if isinstance(translator, EmbeddingTranslator):
        assert isinstance(neutral, EmbeddingRequest), "an embeddings translator parsed it"
        out, exchange.usage = translator.response(body, neutral, model)
        content_type = JSON_TYPE
    else:
        assert isinstance(neutral, ChatRequest), "a chat translator parsed it"
        if exchange.stream:
            out, exchange.usage = translator.response_as_stream(body, neutral, model)
            content_type = SSE_TYPE
        else:
            out, exchange.usage = translator.response(body, neutral, model)
            content_type = JSON_TYPE
    return 200, translated_headers(exchange, upstream, content_type), out


class Relay:
    """Writes pipeline replies to clients; built once, with what it needs decided at load."""

    __slots__ = ("_clock", "_costing", "_gaps", "_redact")

    def __init__(
        self, clock: Callable[[], float], redact: Redactor, costing: Costing, gaps: Histogram
    ) -> None:
        self._clock = clock
        self._redact = redact
        self._costing = costing  # usage is always read: metrics count tokens and money
        self._gaps = gaps  # how long each next chunk of a stream was waited for

    def fail(
        self,
        response: ClientResponse,
        err: ProxyError,
        codec: Codec,
        request_id: str,
        exchange: Exchange | None = None,
        *,
        allow: str | None = None,
    ) -> int:
        """`err` in the client's dialect: the one place an error is rendered (`allow`: the
        methods a 405's path takes). Returns the status sent."""
        if err.status >= 500:
            log.warning(
                "request failed: %s %s",
                err.code,
                err.detail or err.message,
                extra={"request_id": request_id},
            )
        status, headers, body = error_answer(err, codec, request_id)
        if allow is not None:
            headers["allow"] = allow
        if exchange is not None:
            exchange.status = status
            mark(headers, exchange)
        response.send(status, headers.items(), self._redact.bytes(body))
        return status

    async def answer(
        self, response: ClientResponse, exchange: Exchange, reply: Reply, codec: Codec
    ) -> None:
        """Relay `reply` to the client; the upstream is released after (unless the exchange
        was detached for requests following its stream)."""
        if isinstance(reply, ProxyError):
            self.fail(response, reply, codec, exchange.request_id, exchange)
            return
        exchange.status = reply.status
        try:
            transform = self._transform(exchange, reply, codec)
            if transform is None:
                await self._whole(response, exchange, reply, codec)
            else:
                await self._stream(response, exchange, reply, codec, transform)
        finally:
            if not exchange.detached:
                reply.close()

    def _transform(self, exchange: Exchange, upstream: Upstream, codec: Codec) -> Transform | None:
        """How a streamed answer is relayed; None when it is relayed whole."""
        if not (exchange.stream and upstream.is_event_stream):
            return None
        translator = exchange.translator
        if translator is None:
            return PassThrough(codec) if upstream.status == 200 else None
        if not isinstance(translator, ChatTranslator) or not 200 <= upstream.status < 300:
            return None
        assert isinstance(exchange.neutral, ChatRequest), "a chat translator parsed it"
        return translator.stream(exchange.neutral, exchange.upstream_model)

    async def _whole(
        self, response: ClientResponse, exchange: Exchange, upstream: Upstream, codec: Codec
    ) -> None:
        capture = exchange.capture
        try:
            status, headers, body = await read_whole(exchange, upstream, codec, watch_usage=True)
            if status >= 400:  # as plain text, masked: a provider may quote its key
                body = self._redact.bytes(readable(exchange, headers, body))
                headers.pop("content-encoding", None)
            elif status == 200:
                rendered_stream = exchange.stream and exchange.translator is not None
                if capture is not None:
                    if rendered_stream:
                        capture.add(body)
                        capture.complete_stream()
                    else:
                        capture.complete_body(readable(exchange, headers, body))
                screen = exchange.answer_screen
                if screen is not None:  # after the cache's copy: it keeps placeholders
                    body = readable(exchange, headers, body)
                    headers.pop("content-encoding", None)
                    body = (
                        screen.feed(body) + screen.finish()
                        if rendered_stream
                        else screen.whole(body)
                    )
                if not rendered_stream:
                    spent, _ = self._costing.of(exchange)
                    headers["x-edgeproxy-cost-usd"] = f"{spent:.8f}"
        except ProxyError as err:
            self.fail(response, err, codec, exchange.request_id, exchange)
            return
        exchange.status = status
        fields = self._redact.fields(headers.items()) if status >= 400 else headers.items()
        response.send(status, fields, body)

    async def _stream(
        self,
        response: ClientResponse,
        exchange: Exchange,
        upstream: Upstream,
        codec: Codec,
        transform: Transform,
    ) -> None:
        headers = stream_headers(exchange, upstream)
        capture = exchange.capture
        screen: AnswerFilter | None = exchange.answer_screen
        if exchange.injects_usage:
            screen = WithheldUsage(screen)
        try:
            out = await _pump(
                response,
                exchange,
                upstream,
                transform,
                capture=capture,
                headers=headers,
                redact=self._redact,
                screen=screen,
                gaps=self._gaps,
            )
        except ProxyError as err:
            if not response.started:
                self.fail(response, err, codec, exchange.request_id, exchange)
                return
            log.warning(
                "stream failed after it started: %s %s",
                err.code,
                err.detail or err.message,
                extra={"request_id": exchange.request_id},
            )
            exchange.status = err.status
            out, capture = self._redact.bytes(transform.error(err)), None
        except ConnectionError:
            self._client_left(exchange, upstream, transform)
            return
        except asyncio.CancelledError:
            self._cancelled(response, exchange, upstream, transform, screen)
            raise
        exchange.usage = transform.usage
        exchange.answer_id = transform.answer_id
        if transform.failed:  # the provider's own error event, relayed masked
            exchange.status = 502
            out = self._redact.bytes(out)
        elif capture is not None:  # complete before the last write, which may find no client
            if out:
                capture.add(out)
            capture.complete_stream()
        if screen is not None:
            out = screen.feed(out) + screen.finish()
        if not response.started:
            response.start(200, headers.items())
        if out:
            response.write(out)
        response.end()

    async def forward(
        self,
        response: ClientResponse,
        upstream: Upstream,
        provider: str,
        codec: Codec,
        request_id: str,
    ) -> int:
        """An answer the proxy does not read (passthrough.py): its bytes as they come, in
        the provider's coding, at the client's pace; an error answer whole, as plain text and
        masked (a provider may quote its key). Once started, a failure drops the connection:
        a cut body must never look whole. The upstream is released after. Returns the status
        the answer ended with (499: the client left)."""
        headers = upstream.headers
        headers["x-request-id"] = request_id
        status = upstream.status
        try:
            if status >= 400 or status in _NO_BODY:
                body = decoded_answer(await upstream.read(), headers, provider)
                headers.pop("content-encoding", None)
                fields = self._redact.fields(headers.items())
                response.send(status, fields, self._redact.bytes(body) if status >= 400 else b"")
                return status
            response.start(status, headers.items())
            while chunk := await upstream.next_chunk():
                response.write(chunk)
                await response.drain()
            response.end()
        except ProxyError as err:
            if not response.started:
                return self.fail(response, err, codec, request_id)
            log.warning(
                "passed-through answer cut short: %s %s",
                err.code,
                err.detail or err.message,
                extra={"request_id": request_id},
            )
            response.abort()
            return err.status
        except ConnectionError:
            return 499  # the client left: closing the upstream below stops the provider
        finally:
            upstream.close()
        return status

    def interrupted(self, response: ClientResponse, exchange: Exchange, codec: Codec) -> None:
        """The server cancelled the request (shutting down, its grace over) before any byte of
        the answer went out: a 503 in the client's dialect, if the client is still there."""
        if not response.started and not response.gone:
            self.fail(response, errors.shutting_down(), codec, exchange.request_id, exchange)

    def _cancelled(
        self,
        response: ClientResponse,
        exchange: Exchange,
        upstream: Upstream,
        transform: Transform,
        screen: AnswerFilter | None,
    ) -> None:
        """A stream's handler was cancelled: its client left, or the server, shutting down
        with its grace over, cut it short. Then, with the client still there, a started stream
        ends with an error event in the client's dialect and its terminator, a clean end the
        SDKs raise an API error on, not a dropped connection (one not started yet is answered
        as any request is: `interrupted`)."""
        if response.gone:
            self._client_left(exchange, upstream, transform)
            return
        if not response.started:
            return
        err = errors.shutting_down()
        log.warning("stream cut short: %s", err.message, extra={"request_id": exchange.request_id})
        exchange.status = err.status
        exchange.usage = transform.usage
        out = self._redact.bytes(transform.error(err))
        if screen is not None:
            out = screen.feed(out) + screen.finish()
        response.write(out)
        response.end()

    def _client_left(self, exchange: Exchange, upstream: Upstream, transform: Transform) -> None:
        """The client went away mid-stream (499). When other requests follow this stream, its
        rest is read for them in the background, which then releases the upstream and settles
        the exchange (`detached`); otherwise they are released as usual."""
        exchange.status = 499
        capture = exchange.capture
        if capture is None:
            return
        clock = self._clock

        def done(completed: bool) -> None:
            if completed:
                exchange.status = 200  # the provider answered in full, for the followers
            exchange.settle(clock())

        exchange.detached = capture.follow_through(upstream, transform.feed, transform.finish, done)


async def _pump(
    response: ClientResponse,
    exchange: Exchange,
    upstream: Upstream,
    transform: Transform,
    *,
    capture: Capture | None,
    headers: Headers,
    redact: Redactor,
    screen: AnswerFilter | None,
    gaps: Histogram,
) -> bytes:
    """Provider chunks to the client as they arrive (the cache's copy before `screen` rewrote
    them for this client); the stream's last bytes once it ended. From the provider's own
    error event on (a provider may quote its key), masked."""
    clock = time.monotonic
    while True:
        asked = clock()
        chunk = await upstream.next_chunk()
        waited = clock() - asked
        exchange.upstream_wait += waited
        if not chunk:
            break
        gaps.observe(waited)
        out = transform.feed(chunk)
        if transform.failed:
            out = redact.bytes(out)
        if out:
            if capture is not None:  # first: followers get it even if this client left
                capture.add(out)
            if screen is not None:
                out = screen.feed(out)
                if not out:
                    continue
            if not response.started:
                response.start(200, headers.items())
            response.write(out)
            await response.drain()
    return transform.finish()


def stream_headers(exchange: Exchange, upstream: Upstream) -> Headers:
    """A stream's head: the provider's own on a same-dialect route, else translated ones."""
    if exchange.translator is not None:
        return translated_headers(exchange, upstream, SSE_TYPE)
    headers = upstream.headers
    headers["x-request-id"] = exchange.request_id
    mark(headers, exchange)
    headers.update(_SSE_HEADERS)
    return headers


def mark(headers: Headers, exchange: Exchange) -> None:
    """Which deployment answered, after how many upstream attempts, and what the cache did."""
    deployment = exchange.deployment
    if deployment is not None:
        headers["x-edgeproxy-provider"] = deployment.provider.name
        headers["x-edgeproxy-deployment"] = deployment.name
    if exchange.group is not None:  # routed: 0 when nothing was available to try
        headers["x-edgeproxy-attempts"] = str(exchange.attempts)
    if exchange.cache_status is not None:
        headers["x-edgeproxy-cache"] = exchange.cache_status
        if exchange.cache_key is not None:
            headers["x-edgeproxy-cache-key"] = exchange.cache_key
        if exchange.cache_age is not None:
            headers["age"] = str(exchange.cache_age)


def translated_headers(exchange: Exchange, upstream: Upstream, content_type: str) -> Headers:
    """The provider's informative headers (rate limits, ids) with our framing and markers."""
    headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _RENDERED_ANEW}
    headers["content-type"] = content_type
    headers["x-request-id"] = exchange.request_id
    mark(headers, exchange)
    if exchange.dropped:
        headers["x-edgeproxy-dropped-params"] = ", ".join(exchange.dropped)
    if content_type == SSE_TYPE:
        headers.update(_SSE_HEADERS)
    return headers
