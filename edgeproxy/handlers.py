"""The HTTP edge's LLM side: which API call a request is, then the pipeline, then the relay.

The listener (wire/server.py) knows HTTP and nothing of LLMs; this is where knowledge of the
OpenAI and Anthropic APIs starts: the route table, the client's dialect, the request's JSON.
Errors are rendered by the relay, in the client's dialect; so are the listener's own refusals
(`ProxyHandlers.reject`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from urllib.parse import unquote

from edgeproxy import errors, inbound
from edgeproxy.dialects import Dialect, anthropic, openai
from edgeproxy.dialects.codec import codec_for, operation_codec
from edgeproxy.dialects.openai_responses import stored_call
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange
from edgeproxy.operations import CLIENT_PATHS, Operation
from edgeproxy.passthrough import Passthrough
from edgeproxy.pipeline import Pipeline
from edgeproxy.relay import JSON_TYPE, ClientRequest, ClientResponse, Relay, error_answer
from edgeproxy.routing.router import ModelTable
from edgeproxy.stored_responses import StoredResponses
from edgeproxy.telemetry.feedback import FEEDBACK_PATH, FeedbackEndpoint
from edgeproxy.telemetry.recorder import Recorder
from edgeproxy.telemetry.tracing import Tracer

MODELS_PATH = "/v1/models"
MODEL_PREFIX = MODELS_PATH + "/"
_READS = ("GET", "HEAD")


def _reads(path: str) -> bool:
    """The paths of the models list and its entries, read with GET or HEAD."""
    return path == MODELS_PATH or path.startswith(MODEL_PREFIX)


def client_dialect(path: str, headers: Mapping[str, str]) -> Dialect:
    """The dialect to answer in when the endpoint alone does not say."""
    if path.startswith("/v1/messages") or "anthropic-version" in headers:
        return Dialect.ANTHROPIC
    return Dialect.OPENAI


class ProxyHandlers:
    """The listener's handler, bound once to the pipeline, model table and relay."""

    __slots__ = (
        "_feedback",
        "_max_body",
        "_passthrough",
        "_pipeline",
        "_relay",
        "_stored",
        "_table",
        "_tracer",
        "active",
        "recorder",
    )

    def __init__(
        self,
        pipeline: Pipeline,
        table: ModelTable,
        relay: Relay,
        recorder: Recorder,
        max_body: int,
        *,
        stored: StoredResponses,
        passthrough: Passthrough | None = None,
        feedback: FeedbackEndpoint | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._max_body = max_body  # a compressed body is never inflated beyond it
        self._table = table
        self._relay = relay
        self.recorder = recorder
        self._stored = stored  # the Responses API's calls on a stored answer
        self._passthrough = passthrough  # the paths forwarded as they are, when configured
        self._feedback = feedback  # POST /v1/feedback, when telemetry.feedback is enabled
        self._tracer = tracer  # None: tracing is off, and no request asks anything of it
        # API calls running on this handler: a configuration reload closes what only they use
        # once they are done.
        self.active = 0

    async def __call__(self, request: ClientRequest, response: ClientResponse) -> None:
        operation = CLIENT_PATHS.get(request.path)
        if operation is not None and request.method == "POST":
            await self.handle(request, operation, response)
        elif request.path == MODELS_PATH and request.method in _READS:
            self.models(request, response)
        elif request.path.startswith(MODEL_PREFIX) and request.method in _READS:
            self.model(request, response)
        elif request.path == FEEDBACK_PATH and request.method == "POST" and self._feedback:
            await self.feedback(self._feedback, request, response)
        elif (stored := stored_call(request.path)) is not None:
            await self._counted(self._stored(request, *stored, response))
        elif (passed := self._passed_through(request)) is not None:
            dialect = client_dialect(request.path, request.headers)
            await self._counted(passed(request, dialect, response))
        else:
            self.refuse(request, response)

    async def _counted(self, call: Awaitable[None]) -> None:
        """A call that uses this handler's providers: a reload closes them only after it."""
        self.active += 1
        try:
            await call
        finally:
            self.active -= 1

    def _passed_through(self, request: ClientRequest) -> Passthrough | None:
        """The pass-through that takes `request`: one configured for its dialect, for a path
        the proxy has no endpoint for (a known path asked with another method stays a 405)."""
        passthrough = self._passthrough
        path = request.path
        if passthrough is None or self._known(path):
            return None
        dialect = client_dialect(path, request.headers)
        return passthrough if passthrough.takes(path, dialect) else None

    def _known(self, path: str) -> bool:
        feedback = path == FEEDBACK_PATH and self._feedback is not None
        return path in CLIENT_PATHS or _reads(path) or feedback

    def reject(
        self, status: int, message: str, request: ClientRequest | None
    ) -> tuple[list[tuple[str, str]], bytes]:
        """The listener's own refusals (400, 408, 413, 431, 501, ...) in the client's dialect,
        when its request's head was read far enough to tell."""
        headers: Mapping[str, str] = request.headers if request is not None else {}
        dialect = client_dialect(request.path, headers) if request is not None else Dialect.OPENAI
        if status == 413:
            err = errors.payload_too_large(self._max_body)
        else:
            err = errors.refused(status, message)
        _, fields, body = error_answer(err, codec_for(dialect), inbound.request_id(headers))
        return list(fields.items()), body

    def models(self, request: ClientRequest, response: ClientResponse) -> None:
        names = self._table.public_names
        if client_dialect(request.path, request.headers) is Dialect.ANTHROPIC:
            body = anthropic.model_list(names)
        else:
            body = openai.model_list(names)
        headers = (
            ("content-type", JSON_TYPE),
            ("x-request-id", inbound.request_id(request.headers)),
        )
        response.send(200, headers, body)

    def model(self, request: ClientRequest, response: ClientResponse) -> None:
        """One model (`client.models.retrieve`): a name this proxy routes, one of its public
        names or one its patterns take; else a 404 in the client's dialect."""
        name = unquote(request.path[len(MODEL_PREFIX) :])
        dialect = client_dialect(request.path, request.headers)
        request_id = inbound.request_id(request.headers)
        if not name or self._table.resolve(name) is None:
            err = errors.model_not_found(name[:200])
            self._relay.fail(response, err, codec_for(dialect), request_id)
            return
        dialect_module = anthropic if dialect is Dialect.ANTHROPIC else openai
        body = dialect_module.model_entry(name)
        response.send(200, (("content-type", JSON_TYPE), ("x-request-id", request_id)), body)

    def refuse(self, request: ClientRequest, response: ClientResponse) -> None:
        """An unknown path (404), or a known one asked with the wrong method (405)."""
        path = request.path
        codec = codec_for(client_dialect(path, request.headers))
        request_id = inbound.request_id(request.headers)
        if not self._known(path):
            self._relay.fail(response, errors.route_not_found(path), codec, request_id)
            return
        allow = ", ".join(_READS) if _reads(path) else "POST"
        err = errors.method_not_allowed(request.method, path)
        self._relay.fail(response, err, codec, request_id, allow=allow)

    async def feedback(
        self, endpoint: FeedbackEndpoint, request: ClientRequest, response: ClientResponse
    ) -> None:
        """An app's score for an answer (telemetry/feedback.py), in the client's dialect."""
        request_id = inbound.request_id(request.headers)
        answer = await endpoint(request.headers, request.body)
        if isinstance(answer, ProxyError):
            codec = codec_for(client_dialect(request.path, request.headers))
            self._relay.fail(response, answer, codec, request_id)
            return
        response.send(200, (("content-type", JSON_TYPE), ("x-request-id", request_id)), answer)

    async def handle(
        self, request: ClientRequest, operation: Operation, response: ClientResponse
    ) -> None:
        """One API call: the pipeline's reply relayed, the exchange settled and logged."""
        request_id = inbound.request_id(request.headers)
        codec = operation_codec(operation)
        body = request.body
        try:
            if encoding := request.headers.get("content-encoding"):
                body = inbound.decoded_body(body, encoding, self._max_body)
            payload, model, stream = inbound.parse_body(body, operation)
        except ProxyError as err:
            self._relay.fail(response, err, codec, request_id)
            return
        exchange = Exchange(
            request_id=request_id,
            operation=operation,
            headers=request.headers,
            body=body,
            payload=payload,
            model=model,
            stream=stream,
            started=request.received,
        )
        if self._tracer is not None:
            exchange.trace = self._tracer.begin(exchange)
        metrics = self.recorder.metrics
        metrics.in_flight += 1
        self.active += 1
        exchange.queued = time.monotonic() - request.received
        try:
            reply = await self._pipeline.run(exchange)
            await self._relay.answer(response, exchange, reply, codec)
            if exchange.answer_id is not None and exchange.deployment is not None:
                affinity = self._pipeline.dispatch.affinity
                key = exchange.caller.id if exchange.caller is not None else None
                affinity.remember(exchange.answer_id, exchange.deployment.name, key)
        except asyncio.CancelledError:
            self._relay.interrupted(response, exchange, codec)
            raise
        finally:
            metrics.in_flight -= 1
            self.active -= 1
            if not exchange.detached:
                exchange.settle(self._pipeline.clock())
            self.recorder.finished(exchange, time.monotonic())
            if exchange.trace is not None:
                exchange.trace.end(exchange)
