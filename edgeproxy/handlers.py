"""The HTTP edge: request in, Exchange through the pipeline, JSON or an SSE stream out.

Errors are rendered here and only here, in the client's dialect. Once a stream has started,
a failure becomes a final SSE error event, never a second status line. Upstream SSE is relayed
whole event by whole event as it arrives (a partial event is held until its end arrives, which
costs the client nothing since it could not use half an event), so a failure mid-stream always
leaves the client with a clean, parseable error event.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web

from edgeproxy import errors, inbound
from edgeproxy.dialects import Dialect, anthropic, openai
from edgeproxy.dialects.codec import Codec, codec_for
from edgeproxy.dialects.neutral import ChatRequest, EmbeddingRequest
from edgeproxy.dialects.translation import EmbeddingTranslator, StreamRelay, Translator
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange
from edgeproxy.operations import CLIENT_PATHS, Operation
from edgeproxy.pipeline import Pipeline
from edgeproxy.providers.base import Upstream
from edgeproxy.routing.router import ModelTable
from edgeproxy.sse import EventAligner, SSEDecoder
from edgeproxy.telemetry.access import AccessLog

log = logging.getLogger("edgeproxy.proxy")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_SSE_TYPE = "text/event-stream; charset=utf-8"
_JSON_TYPE = "application/json"


def client_dialect(request: web.Request) -> Dialect:
    """The dialect to answer in when the endpoint alone does not say."""
    if request.path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return Dialect.ANTHROPIC
    return Dialect.OPENAI


def error_response(err: ProxyError, codec: Codec, request_id: str) -> web.Response:
    headers = {"x-request-id": request_id}
    if err.retry_after is not None:
        headers["retry-after"] = str(math.ceil(err.retry_after))
    return web.Response(
        status=codec.status_for(err),
        body=codec.render_error(err),
        content_type="application/json",
        headers=headers,
    )


class ProxyHandlers:
    """Request handlers bound once to the pipeline, model table and limits."""

    def __init__(
        self,
        pipeline: Pipeline,
        table: ModelTable,
        max_body: int,
        access_log: AccessLog | None,
    ) -> None:
        self._pipeline = pipeline
        self._table = table
        self._max_body = max_body
        self._access_log = access_log

    def register(self, app: web.Application) -> None:
        for path, operation in CLIENT_PATHS.items():
            app.router.add_post(path, self._handler_for(operation))
        app.router.add_get("/v1/models", self.models)
        app.router.add_route("*", "/{tail:.*}", self.not_found)

    def _handler_for(self, operation: Operation) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, operation)

        return handle

    async def models(self, request: web.Request) -> web.Response:
        names = self._table.public_names
        if client_dialect(request) is Dialect.ANTHROPIC:
            body = anthropic.model_list(names)
        else:
            body = openai.model_list(names)
        return web.Response(
            body=body,
            content_type="application/json",
            headers={"x-request-id": inbound.request_id(request.headers)},
        )

    async def not_found(self, request: web.Request) -> web.Response:
        codec = codec_for(client_dialect(request))
        known = request.path in CLIENT_PATHS or request.path == "/v1/models"
        err = (
            errors.method_not_allowed(request.method, request.path)
            if known
            else errors.route_not_found(request.path)
        )
        response = error_response(err, codec, inbound.request_id(request.headers))
        if known:
            response.headers["allow"] = "GET" if request.path == "/v1/models" else "POST"
        return response

    async def handle(self, request: web.Request, operation: Operation) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        started = loop.time()
        request_id = inbound.request_id(request.headers)
        codec = codec_for(operation.dialect)
        try:
            body = await self._read_body(request)
            payload, model, stream = inbound.parse_body(body, operation)
        except ProxyError as err:
            return self._fail(err, codec, request_id, None)
        exchange = Exchange(
            request_id=request_id,
            operation=operation,
            headers=request.headers,
            body=body,
            payload=payload,
            model=model,
            stream=stream,
            started=started,
        )
        try:
            reply = await self._pipeline.run(exchange)
            if isinstance(reply, ProxyError):
                return self._fail(reply, codec, request_id, exchange)
            try:
                return await self._relay(request, exchange, reply, codec)
            finally:
                if not exchange.detached:
                    reply.close()
        finally:
            if not exchange.detached:
                exchange.settle(self._pipeline.clock())
            if self._access_log is not None:
                self._access_log.record(exchange, loop.time())

    async def _read_body(self, request: web.Request) -> bytes:
        length = request.content_length
        if length is not None and length > self._max_body:
            raise errors.payload_too_large(self._max_body)
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise errors.payload_too_large(self._max_body) from None

    def _fail(
        self, err: ProxyError, codec: Codec, request_id: str, exchange: Exchange | None
    ) -> web.Response:
        if err.status >= 500:
            log.warning(
                "request failed: %s %s",
                err.code,
                err.detail or err.message,
                extra={"request_id": request_id},
            )
        response = error_response(err, codec, request_id)
        if exchange is not None:
            exchange.status = response.status
            _mark(response.headers, exchange)
        return response

    async def _relay(
        self, request: web.Request, exchange: Exchange, upstream: Upstream, codec: Codec
    ) -> web.StreamResponse:
        headers = upstream.headers
        headers["x-request-id"] = exchange.request_id
        _mark(headers, exchange)
        exchange.status = upstream.status
        if exchange.translator is not None:
            return await self._translate(request, exchange, exchange.translator, upstream, codec)
        if exchange.stream and upstream.status == 200 and upstream.is_event_stream:
            return await self._stream(request, exchange, upstream, codec, headers)
        try:
            body = await upstream.read()
        except ProxyError as err:
            return self._fail(err, codec, exchange.request_id, exchange)
        if upstream.status == 200:
            if self._access_log is not None or exchange.counts_tokens:
                exchange.usage = codec.usage_of_body(body)
            if exchange.capture is not None:
                exchange.capture.complete_body(body)
        return web.Response(status=upstream.status, body=body, headers=headers)

    def _log_stream_failure(self, exchange: Exchange, err: ProxyError) -> None:
        log.warning(
            "stream failed after it started: %s %s",
            err.code,
            err.detail or err.message,
            extra={"request_id": exchange.request_id},
        )
        exchange.status = err.status

    async def _stream(
        self,
        request: web.Request,
        exchange: Exchange,
        upstream: Upstream,
        codec: Codec,
        headers: MutableMapping[str, str],
    ) -> web.StreamResponse:
        headers.update(_SSE_HEADERS)
        response = web.StreamResponse(status=upstream.status, headers=headers)
        await response.prepare(request)
        aligner = EventAligner()
        decoder = SSEDecoder()
        usage = codec.StreamUsage()
        capture = exchange.capture
        try:
            while chunk := await upstream.next_chunk():
                whole = aligner.whole_events(chunk)
                if whole:
                    if capture is not None:  # first: followers get it even if this client left
                        capture.add(whole)
                    await response.write(whole)
                    for event in decoder.feed(whole):
                        usage.observe(event)
            if rest := aligner.rest():
                await response.write(rest)
        except ProxyError as err:
            self._log_stream_failure(exchange, err)
            await response.write(codec.error_event(err))
            capture = None
        except ConnectionResetError:
            self._client_left(exchange, upstream, aligner.whole_events, aligner.rest)
            return response
        except asyncio.CancelledError:
            self._client_left(exchange, upstream, aligner.whole_events, aligner.rest)
            raise
        exchange.usage = usage.usage
        if usage.failed:  # the provider's own error event, relayed as it was
            exchange.status = 502
        elif capture is not None:
            capture.complete_stream()
        await response.write_eof()
        return response

    async def _translate(
        self,
        request: web.Request,
        exchange: Exchange,
        translator: Translator,
        upstream: Upstream,
        codec: Codec,
    ) -> web.StreamResponse:
        """A cross-dialect answer: decoded from the provider's dialect, rendered in the client's."""
        try:
            if not 200 <= upstream.status < 300:
                body = await upstream.read()
                raise translator.error(upstream.status, upstream.headers, body)
            model = exchange.upstream_model
            if isinstance(translator, EmbeddingTranslator):
                assert isinstance(exchange.neutral, EmbeddingRequest)
                body = await upstream.read()
                out, exchange.usage = translator.response(body, exchange.neutral, model)
                content_type = _JSON_TYPE
            else:
                assert isinstance(exchange.neutral, ChatRequest), "a chat translator parsed it"
                if exchange.stream and upstream.is_event_stream:
                    relay = translator.stream(exchange.neutral, model)
                    return await self._stream_translated(request, exchange, upstream, codec, relay)
                body = await upstream.read()
                if exchange.stream:
                    out, exchange.usage = translator.response_as_stream(
                        body, exchange.neutral, model
                    )
                    content_type = _SSE_TYPE
                else:
                    out, exchange.usage = translator.response(body, exchange.neutral, model)
                    content_type = _JSON_TYPE
        except ProxyError as err:
            return self._fail(err, codec, exchange.request_id, exchange)
        if exchange.capture is not None:
            if content_type == _SSE_TYPE:
                exchange.capture.add(out)
                exchange.capture.complete_stream()
            else:
                exchange.capture.complete_body(out)
        headers = _translated_headers(exchange, upstream, content_type)
        return web.Response(status=200, body=out, headers=headers)

    async def _stream_translated(
        self,
        request: web.Request,
        exchange: Exchange,
        upstream: Upstream,
        codec: Codec,
        relay: StreamRelay,
    ) -> web.StreamResponse:
        """Relay a translated stream. The client's headers go out with the first translated
        bytes, so a provider that fails before producing any gets a proper error status."""
        response = web.StreamResponse(
            status=200, headers=_translated_headers(exchange, upstream, _SSE_TYPE)
        )
        capture = exchange.capture
        try:
            while chunk := await upstream.next_chunk():
                if out := relay.feed(chunk):
                    if capture is not None:  # first: followers get it even if this client left
                        capture.add(out)
                    if not response.prepared:
                        await response.prepare(request)
                    await response.write(out)
            out = relay.finish()
        except ProxyError as err:
            if not response.prepared:
                return self._fail(err, codec, exchange.request_id, exchange)
            self._log_stream_failure(exchange, err)
            out, capture = relay.error(err), None
        except ConnectionResetError:
            self._client_left(exchange, upstream, relay.feed, relay.finish)
            return response
        except asyncio.CancelledError:
            self._client_left(exchange, upstream, relay.feed, relay.finish)
            raise
        exchange.usage = relay.usage
        if capture is not None:  # complete before the last write, which may find no client
            capture.add(out)
            capture.complete_stream()
        if not response.prepared:
            await response.prepare(request)
        await response.write(out)
        await response.write_eof()
        return response

    def _client_left(
        self,
        exchange: Exchange,
        upstream: Upstream,
        feed: Callable[[bytes], bytes],
        end: Callable[[], bytes],
    ) -> None:
        """The client went away mid-stream (499). When other requests follow this stream, its
        rest is read for them in the background, which then releases the upstream and settles
        the exchange (`detached`); otherwise they are released as usual."""
        exchange.status = 499
        capture = exchange.capture
        if capture is None:
            return
        clock = self._pipeline.clock

        def done(completed: bool) -> None:
            if completed:
                exchange.status = 200  # the provider answered in full, for the followers
            exchange.settle(clock())

        exchange.detached = capture.follow_through(upstream, feed, end, done)


def _mark(headers: MutableMapping[str, str], exchange: Exchange) -> None:
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


def _translated_headers(
    exchange: Exchange, upstream: Upstream, content_type: str
) -> dict[str, str]:
    """The provider's informative headers (rate limits, ids) with our framing and markers."""
    headers = {k: v for k, v in upstream.headers.items() if k.lower() != "content-type"}
    headers["content-type"] = content_type
    headers["x-request-id"] = exchange.request_id
    _mark(headers, exchange)
    if exchange.dropped:
        headers["x-edgeproxy-dropped-params"] = ", ".join(exchange.dropped)
    if content_type == _SSE_TYPE:
        headers.update(_SSE_HEADERS)
    return headers
