"""The per-request `Exchange`, the replies stages give, and the stage contract.

Every stage, the relay and the access log import this module; it imports no stage, so the
program's modules form no import circle (tests/test_imports.py checks it). What the cache
feeds on a miss is the `Capture` contract here, implemented by `cache.lookup`.

The `Exchange` carries what the stages learn:

    field           set by              read by
    request_id      handlers            providers (sent upstream), relay (response header)
    caller          authenticate        route (allowed model groups), limits, budgets,
                                        screen (its policy), lookup_cache (its namespace),
                                        access log
    operation       handlers            route, dispatch, providers, relay
    headers         handlers            route (strategy header), lookup_cache (Cache-Control,
                                        ttl and tags), dispatch (forwarded to the provider)
    body, payload   handlers            route (needs), lookup_cache (key, policy), dispatch
                                        (model mapping), mock provider
    model, stream   handlers            route, dispatch, providers, relay (relay mode)
    started         handlers            dispatch (deadlines), access log
    group           route               lookup_cache (name, cache switch, TTL), dispatch
    strategy        route (the header)  dispatch (else each group's own)
    needs           route               dispatch (filters, cost, token ceilings)
    deployment      dispatch            relay (x-edgeproxy-provider), access log
    translator      dispatch            relay (decode, render)
    neutral         dispatch            relay (stream encoder options)
    dropped         dispatch            relay (x-edgeproxy-dropped-params)
    upstream_body   dispatch            dispatch (the body of the provider's OutboundRequest)
    attempts        dispatch            relay (x-edgeproxy-attempts), access log
    lease           dispatch            settle (when the answer has been relayed)
    charges         limits, budgets     settle (the real usage reconciles what was held)
    answer_screen   screen              relay (placeholders restored and output screened in
                                        what the client is sent, after the cache's copy)
    queued          handlers            the request's record (first byte read to pipeline start)
    cache_time      lookup_cache        the request's record (the lookup's duration)
    upstream_wait   dispatch, relay     the request's record (time spent waiting on providers:
                                        dispatch whole, then each read of the answer's body)
    upstream_ttfb   settle (the lease)  the request's record (the answer's head, how long)
    cache_status    lookup_cache        relay (x-edgeproxy-cache: hit-l1, hit-l2,
                                        hit-semantic, coalesced, miss, bypass), metrics
    cache_key       lookup_cache        relay (x-edgeproxy-cache-key: what an admin deletes)
    cache_age       lookup_cache        relay (the Age of a hit)
    capture         lookup_cache        relay (fed what the client is sent; a complete
                                        answer is stored in the background and handed to
                                        waiters), settle (an answer that never completed
                                        lets a waiter take over)
    usage           relay               access log, lease (token ceilings)
    status          relay               access log, lease (a stream that broke is a failure)
    detached        relay               relay: its client left mid-stream and the rest is read
                                        for requests following it, in the background, which
                                        releases the upstream and settles the exchange
    pinned          dispatch            dispatch: the only deployment to try (the one that gave
                                        the answer a Responses request continues)
    answer_id       relay               handlers: the provider's id of a Responses answer,
                                        remembered with its deployment (routing/affinity.py)
    trace           handlers (when      lookup_cache (its span, through telemetry.tracing's
                    tracing is on)      wrapper), dispatch (a span per attempt, whose context
                                        goes upstream), handlers (ends it after the answer)

Providers never see the exchange: dispatch hands each attempt's provider a narrow
`providers.base.OutboundRequest`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from edgeproxy.dialects.neutral import ChatRequest, EmbeddingRequest, Usage
from edgeproxy.dialects.translation import Translator
from edgeproxy.errors import ProxyError
from edgeproxy.operations import Operation
from edgeproxy.providers.base import Upstream
from edgeproxy.routing.health import Lease
from edgeproxy.routing.needs import Needs
from edgeproxy.routing.router import Deployment, ModelGroup
from edgeproxy.security.settings import KeySettings

# Provider kinds whose OpenAI chat streams carry usage when asked (stream_options).
_STREAMS_USAGE = frozenset({"openai", "azure"})
Reply: TypeAlias = ProxyError | Upstream  # explicit: read right inside import cycles
Stage = Callable[["Exchange"], Awaitable[Reply | None]]


class Charge(Protocol):
    """What a stage holds against a caller's limits or budget until the answer is over."""

    @property
    def metered(self) -> bool:
        """Whether it is settled by the answer's usage (tokens or money), not only released."""

    def settle(self, exchange: Exchange) -> None:
        """The exchange is over: reconcile with its usage (the tokens really used, the
        deployment that answered), free what was held. Called exactly once; never raises,
        never waits (I/O goes to the background)."""


class AnswerFilter(Protocol):
    """Rewrites what a client is sent, in its dialect: whole answers, or stream events."""

    def whole(self, body: bytes) -> bytes: ...

    def feed(self, data: bytes) -> bytes:
        """Whole SSE events in, the same events rewritten out."""

    def finish(self) -> bytes:
        """The stream ended: what the filter still held."""


class Capture(Protocol):
    """What the relay feeds on a cache miss: what the client is sent, and how it ended."""

    def add(self, chunk: bytes) -> None:
        """A piece of the stream as it is written to the client (followers get it at once)."""

    def complete_body(self, body: bytes) -> None:
        """The whole (non-streamed) successful answer was sent."""

    def complete_stream(self) -> None:
        """The stream ended as it should (its last event written, no error)."""

    def close(self) -> None:
        """The exchange is over; an answer that never completed lets waiters take over."""

    def follow_through(
        self,
        upstream: Upstream,
        feed: Callable[[bytes], bytes],
        end: Callable[[], bytes],
        done: Callable[[bool], None],
    ) -> bool:
        """The client left mid-stream: read the rest for the requests following it (True), or
        do nothing when none follows (False)."""


class AttemptTrace(Protocol):
    """The span of one upstream attempt (telemetry/request_spans.py)."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The W3C trace context (traceparent, tracestate) to send with the attempt."""

    def answered(self, reply: Reply | None, success: bool) -> None:
        """What the attempt came to: a failure ends its span now; the answer that will be
        relayed keeps it open until the request ends (its usage is known then)."""

    def broke(self, error: BaseException) -> None:
        """The attempt ended by an exception (a hedge cancelled): its span ends now."""


class Trace(Protocol):
    """One request's spans (telemetry/request_spans.py); on the exchange only when tracing is
    on."""

    def cache_lookup(self) -> Callable[[Exchange], None]:
        """Begin the cache stage's span; the function returned ends it, with its outcome."""

    def attempt(self, deployment: Deployment, model: str) -> AttemptTrace:
        """Begin the span of an upstream call to `deployment` for upstream `model`."""

    def end(self, exchange: Exchange) -> None:
        """The answer is over (or abandoned): the request's span and its answering
        attempt's end, with what the exchange learnt."""


@dataclass(slots=True, eq=False)
class Exchange:
    """What the stages learn about one request (see the module docstring for who sets what)."""

    request_id: str
    operation: Operation
    headers: Mapping[str, str]
    body: bytes
    payload: dict[str, Any]
    model: str
    stream: bool
    started: float
    group: ModelGroup | None = None
    strategy: str | None = None
    needs: Needs | None = None
    deployment: Deployment | None = None
    translator: Translator | None = None
    neutral: ChatRequest | EmbeddingRequest | None = None
    dropped: list[str] = field(default_factory=list)
    upstream_body: bytes = b""
    attempts: int = 0
    lease: Lease | None = None
    caller: KeySettings | None = None
    charges: list[Charge] | None = None
    answer_screen: AnswerFilter | None = None
    queued: float = 0.0
    cache_time: float | None = None
    upstream_wait: float = 0.0
    upstream_ttfb: float | None = None
    cache_status: str | None = None
    cache_key: str | None = None
    cache_age: int | None = None
    capture: Capture | None = None
    usage: Usage | None = None
    status: int = 0
    detached: bool = False
    trace: Trace | None = None
    pinned: Deployment | None = None
    answer_id: str | None = None

    @property
    def upstream_model(self) -> str:
        """The model name the provider sees."""
        if self.deployment is not None and self.deployment.model is not None:
            return self.deployment.model
        return self.model

    @property
    def injects_usage(self) -> bool:
        """An OpenAI chat stream whose client did not ask for usage, while its caller's limits
        or budget need it: the provider is asked for it (`stream_options.include_usage`) and
        the usage-only last chunk is kept from the client, which would not expect a chunk
        without choices. Decided from the attempt that answers, by dispatch and relay alike."""
        if self.charges is None or not self.stream or self.translator is not None:
            return False
        deployment = self.deployment
        if self.operation is not Operation.CHAT or deployment is None:
            return False
        if deployment.provider.config.kind not in _STREAMS_USAGE:
            return False
        options = self.payload.get("stream_options")
        return not (isinstance(options, dict) and options.get("include_usage") is True)

    @property
    def counts_tokens(self) -> bool:
        """Whether the real usage is needed: a caller's limits or budget are charged, or the
        serving deployment keeps a tokens-per-minute ceiling."""
        return self.charges is not None or (
            self.lease is not None and self.lease.health.counts_tokens
        )

    def settle(self, now: float) -> None:
        """The answer has been relayed (or abandoned): give the deployment its place back, and
        let requests waiting on an answer that never completed take over."""
        if self.capture is not None:
            self.capture.close()
        if self.charges is not None:
            charges, self.charges = self.charges, None
            for charge in charges:
                charge.settle(self)
        lease = self.lease
        if lease is not None:
            self.lease = None
            self.upstream_ttfb = lease.ttfb
            usage = self.usage
            lease.settle(now, self.status, usage.output_tokens if usage else 0)
