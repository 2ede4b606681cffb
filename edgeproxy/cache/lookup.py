"""The `lookup_cache` stage: answer from the exact cache, or arrange for the answer to be kept.

On a hit the stage answers with the stored answer rendered for this client (dialect, stream or
not), and the provider is never asked. On a miss it hands the edge a `Capture`: the edge feeds
it what the client is sent, and once the answer is complete and successful it is decoded and
stored in the background; an error, a stream cut short or a client gone stores nothing (unless
other requests follow that stream: then it is read to its end for them, and stored).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from edgeproxy.background import Background
from edgeproxy.cache import answer
from edgeproxy.cache.answer import CACHEABLE, Shape, StoredAnswer, replayable
from edgeproxy.cache.coalesce import Flight, Following
from edgeproxy.cache.keys import cache_key, key_scope
from edgeproxy.cache.policy import Decision, decide
from edgeproxy.cache.tiered import Found, TieredCache
from edgeproxy.config import CacheConfig
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange, Reply
from edgeproxy.operations import Operation
from edgeproxy.providers.base import Upstream
from edgeproxy.providers.http import BufferedUpstream
from edgeproxy.routing.router import ModelGroup

if TYPE_CHECKING:  # numpy and the model come with the `semantic` extra: imported if used
    from edgeproxy.cache.semantic import SemanticCache
    from edgeproxy.cache.vectors import Question

OUTCOMES = ("hit-l1", "hit-l2", "hit-semantic", "coalesced", "miss", "bypass")
_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"


def cached_reply(body: bytes, stream: bool) -> BufferedUpstream:
    """A stored answer, rendered, as the upstream answer the edge relays."""
    return BufferedUpstream(
        200, CIMultiDict({"content-type": _SSE if stream else _JSON}), body, stream
    )


class Capture:
    """What the client is sent on a miss: kept up to `limit` bytes for storing, and published
    to the requests waiting on this one (its flight)."""

    __slots__ = (
        "_cache",
        "_done",
        "_kept",
        "_limit",
        "_size",
        "flight",
        "key",
        "namespace",
        "operation",
        "question",
        "shadow",
        "tags",
        "ttl",
    )

    def __init__(
        self,
        cache: LookupCache,
        key: str,
        namespace: str,
        operation: Operation,
        decision: Decision,
        *,
        limit: int,
        flight: Flight,
    ) -> None:
        self._cache = cache
        self.key = key
        self.namespace = namespace
        self.operation = operation
        self.ttl = decision.ttl
        self.tags = decision.tags
        self.flight = flight
        self.question: Question | None = None  # to index once stored (semantic groups)
        self.shadow: StoredAnswer | None = None  # what the semantic layer would have served
        self._limit = limit
        self._size = 0
        self._kept = True  # False once the stream outgrew `limit`: shared, never stored
        self._done = False

    def add(self, chunk: bytes) -> None:
        """A piece of the stream as it was written to the client (the flight keeps it)."""
        self.flight.publish(chunk)
        self._size += len(chunk)
        if self._size > self._limit:
            self._kept = False

    def complete_body(self, body: bytes) -> None:
        """The whole (non-streamed) successful answer was sent."""
        self._done = True
        self._cache.completed(self, body if len(body) <= self._limit else None, stream=False)

    def complete_stream(self) -> None:
        """The stream ended as it should (its last event written, no error)."""
        self._done = True
        sent = b"".join(self.flight.chunks) if self._kept else None
        self._cache.completed(self, sent, stream=True)

    def close(self) -> None:
        """The exchange is over: if it never completed, the requests waiting on it take over."""
        if not self._done:
            self._done = True
            self._cache.abandoned(self)

    def follow_through(
        self,
        upstream: Upstream,
        feed: Callable[[bytes], bytes],
        end: Callable[[], bytes],
        done: Callable[[bool], None],
    ) -> bool:
        """The client of this (leading) stream went away: while other requests follow the
        stream, read the rest of it for them, and for the cache, in the background. `feed`
        turns upstream bytes into what clients are sent and `end` gives the last of it; `done`
        (with whether the stream completed) settles the exchange once the upstream is released.
        False, with nothing started, when nobody follows (or the background is full)."""
        if not self.flight.followers:
            return False
        return self._cache.spawn("cache-follow-through", self._finish(upstream, feed, end, done))

    async def _finish(
        self,
        upstream: Upstream,
        feed: Callable[[bytes], bytes],
        end: Callable[[], bytes],
        done: Callable[[bool], None],
    ) -> None:
        completed = False
        try:
            while chunk := await upstream.next_chunk():
                if not self.flight.followers:
                    return  # nobody listens any more: stop paying for the rest
                if out := feed(chunk):
                    self.add(out)
            if out := end():
                self.add(out)
            self.complete_stream()
            completed = True
        except ProxyError:
            return  # the followers end with an error event, as the leader's client would have
        finally:
            upstream.close()
            done(completed)


class LookupCache:
    """Stage: a hit answers; an identical request in flight is waited on; otherwise this one
    leads, with a `Capture` on the exchange."""

    __slots__ = (
        "_background",
        "_config",
        "_flights",
        "_ttl_factors",
        "cache",
        "outcomes",
        "semantic",
    )

    def __init__(
        self,
        cache: TieredCache,
        config: CacheConfig,
        background: Background,
        semantic: SemanticCache | None = None,
    ) -> None:
        self.cache = cache
        self._config = config
        self._background = background
        self.semantic = semantic
        self._flights: dict[str, Flight] = {}
        self._ttl_factors: dict[str, float] = {}  # group name: its TTL multiplied (incidents)
        self.outcomes = dict.fromkeys(OUTCOMES, 0)  # for metrics: what the cache did

    def spawn(self, name: str, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` in the proxy's background (bounded, drained at shutdown)."""
        return self._background.spawn(name, work)

    def extend_ttl(self, group: str, factor: float) -> None:
        """Keep the answers `group` stores `factor` times longer than its TTL (at most
        `cache.max_ttl`), until `restore_ttl`: an incident response."""
        self._ttl_factors[group] = factor

    def restore_ttl(self, group: str) -> None:
        self._ttl_factors.pop(group, None)

    def _ttl(self, group: ModelGroup) -> float:
        """How long an answer of `group` is kept when the request asks nothing else."""
        ttl = group.cache_ttl or self._config.ttl
        factor = self._ttl_factors.get(group.name)
        return ttl if factor is None else min(ttl * factor, self._config.max_ttl)

    async def __call__(self, exchange: Exchange) -> Reply | None:
        began = time.monotonic()
        reply = await self._answer(exchange)
        exchange.cache_time = time.monotonic() - began  # a coalesced wait included
        self.outcomes[exchange.cache_status or "bypass"] += 1
        return reply

    async def _answer(self, exchange: Exchange) -> Reply | None:
        decision = self._decision(exchange)
        if decision is None:
            exchange.cache_status = "bypass"
            return None
        group = exchange.group
        assert group is not None, "route runs before the cache"
        namespace = self._config.namespace
        if exchange.caller is not None:  # tenants never share answers
            namespace = f"{namespace}/{exchange.caller.tenant}"
        scope = key_scope(group.name, exchange.headers, self._config.key)
        key = cache_key(exchange.operation, exchange.payload, scope, namespace, self._config.key)
        exchange.cache_key = key
        shape = (exchange.operation, exchange.stream, _include_usage(exchange))
        asked, would = None, None
        if not decision.lookup:
            exchange.cache_status = "bypass"
        else:
            reply = await self._hit(exchange, key, namespace, decision, shape)
            if reply is not None:
                return reply
            exchange.cache_status = "miss"
            if self.semantic is not None and group.cache_semantic:
                asked = self.semantic.question(
                    exchange.operation, exchange.payload, scope, namespace, self._config.key
                )
                if asked is not None:
                    would = await self._similar(asked, namespace, decision)
                    if would is not None and not self.semantic.shadow:
                        exchange.cache_status = "hit-semantic"
                        exchange.cache_age = math.floor(would.age)
                        form = self.cache.render(would.key, would.answer, shape)
                        return cached_reply(form, exchange.stream)
            if decision.store:
                reply = await self._join(exchange, key, shape)
                if reply is not None:
                    return reply
        if decision.store:
            capture = self._lead(exchange, key, namespace, decision, shape)
            capture.question = asked
            capture.shadow = would.answer if would is not None else None
        return None

    async def _similar(self, asked: Question, namespace: str, decision: Decision) -> Found | None:
        """The stored answer to a near-identical question, if there is one still cached."""
        assert self.semantic is not None
        entry = await self.semantic.find(asked, namespace)
        if entry is None:
            return None
        found = await self.cache.lookup(entry, namespace, decision.max_age)
        if found is None:
            self.semantic.forget(entry)  # its answer expired or was purged
            return None
        self.semantic.counts["shadow_hits" if self.semantic.shadow else "hits"] += 1
        return found

    def _decision(self, exchange: Exchange) -> Decision | None:
        """What this request may do with the cache; None when it may do nothing."""
        group = exchange.group
        assert group is not None, "route runs before the cache"
        operation, payload = exchange.operation, exchange.payload
        if operation not in CACHEABLE or not group.cache or not replayable(operation, payload):
            return None
        config = self._config
        decision = decide(
            exchange.headers,
            payload,
            self._ttl(group),
            config.skip_temperature_above,
            config.max_ttl,
        )
        return decision if decision.lookup or decision.store else None

    async def _hit(
        self, exchange: Exchange, key: str, namespace: str, decision: Decision, shape: Shape
    ) -> Reply | None:
        found = await self.cache.lookup(key, namespace, decision.max_age)
        if found is None:
            return None
        if found.layer == "l2":
            group = exchange.group
            assert group is not None
            self.cache.fill(key, namespace, found, self._ttl(group))
        exchange.cache_status = "hit-" + found.layer
        exchange.cache_age = math.floor(found.age)
        return cached_reply(self.cache.render(key, found.answer, shape), exchange.stream)

    async def _join(self, exchange: Exchange, key: str, shape: Shape) -> Reply | None:
        """Wait on an identical request in flight; None when there is none (any more)."""
        while (flight := self._flights.get(key)) is not None:
            reply = await self._wait(key, flight, shape)
            if reply is not None:
                exchange.cache_status = "coalesced"
                return reply
        return None

    async def _wait(self, key: str, flight: Flight, shape: Shape) -> Reply | None:
        """A waiter's reply from `flight`, or None when it failed (the waiter takes over)."""
        flight.waiting += 1
        try:
            while flight.state == "running":
                if shape[1] and shape == flight.shape and flight.started:
                    return Following(flight)
                await flight.changed()
            if flight.state == "done":
                if flight.answer is not None:
                    return cached_reply(self.cache.render(key, flight.answer, shape), shape[1])
                if shape[1] and shape == flight.shape and flight.started:
                    return Following(flight)
            return None
        finally:
            flight.waiting -= 1

    def _lead(
        self, exchange: Exchange, key: str, namespace: str, decision: Decision, shape: Shape
    ) -> Capture:
        """This request goes upstream; what its client is sent is kept and shared."""
        flight = Flight(shape)
        if decision.lookup:  # a refresh (no-cache) leads nobody: others may not wait on it
            self._flights[key] = flight
        capture = exchange.capture = Capture(
            self,
            key,
            namespace,
            exchange.operation,
            decision,
            limit=self._config.max_entry_bytes,
            flight=flight,
        )
        return capture

    def completed(self, capture: Capture, sent: bytes | None, *, stream: bool) -> None:
        """A complete answer: stored (decoded off the request's path) and given to waiters
        (decoded now, if some wait for the whole answer)."""
        flight = capture.flight
        self._land(capture.key, flight)
        if flight.waiting:
            stored = _read(capture, sent, stream) if sent is not None else None
            flight.finish(stored)
            if stored is not None:
                self._keep(capture, stored)
            return
        flight.finish(None)
        if sent is not None:
            self._background.spawn("cache-store", self._store(capture, sent, stream))

    def abandoned(self, capture: Capture) -> None:
        self._land(capture.key, capture.flight)
        capture.flight.fail()

    def _land(self, key: str, flight: Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    async def _store(self, capture: Capture, sent: bytes, stream: bool) -> None:
        stored = _read(capture, sent, stream)
        if stored is not None:
            self._keep(capture, stored)

    def _keep(self, capture: Capture, stored: StoredAnswer) -> None:
        self.cache.store(capture.key, capture.namespace, stored, capture.ttl)
        semantic = self.semantic
        if semantic is None:
            return
        if capture.shadow is not None:
            semantic.judge(capture.shadow, stored)
        if capture.question is not None:
            remember = semantic.remember(
                capture.question, capture.key, capture.namespace, capture.ttl
            )
            self._background.spawn("cache-semantic-index", remember)


def _read(capture: Capture, sent: bytes, stream: bool) -> StoredAnswer | None:
    read = answer.from_stream if stream else answer.from_body
    return read(capture.operation, sent, capture.tags)


def _include_usage(exchange: Exchange) -> bool:
    """Whether an OpenAI streaming client asked for the usage chunk."""
    options = exchange.payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
