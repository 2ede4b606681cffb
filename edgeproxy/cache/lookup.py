"""The `lookup_cache` stage: answer from the exact cache, or arrange for the answer to be kept.

On a hit the stage answers with the stored answer rendered for this client (dialect, stream or
not), and the provider is never asked. On a miss it hands the edge a `Capture`: the edge feeds
it what the client is sent, and once the answer is complete and successful it is decoded and
stored in the background; an error, a stream cut short or a client gone stores nothing.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import TYPE_CHECKING

from multidict import CIMultiDict

from edgeproxy.background import Background
from edgeproxy.cache import answer
from edgeproxy.cache.answer import CACHEABLE, replayable
from edgeproxy.cache.keys import cache_key
from edgeproxy.cache.policy import Decision, decide
from edgeproxy.cache.tiered import TieredCache
from edgeproxy.config import CacheConfig
from edgeproxy.operations import Operation

if TYPE_CHECKING:
    from edgeproxy.pipeline import Exchange, Reply

_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"


class CachedReply:
    """A stored answer as the upstream answer the edge relays (headers, then the body)."""

    __slots__ = ("_body", "headers", "is_event_stream")

    status = 200

    def __init__(self, body: bytes, stream: bool) -> None:
        self._body = body
        self.is_event_stream = stream
        self.headers: MutableMapping[str, str] = CIMultiDict(
            {"content-type": _SSE if stream else _JSON}
        )

    async def read(self) -> bytes:
        return self._body

    async def next_chunk(self) -> bytes:
        body, self._body = self._body, b""
        return body

    def close(self) -> None:
        """Nothing to release."""


class Capture:
    """What the client is sent on a miss, kept up to `limit` bytes for storing."""

    __slots__ = (
        "_cache",
        "_chunks",
        "_limit",
        "_size",
        "key",
        "namespace",
        "operation",
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
    ) -> None:
        self._cache = cache
        self.key = key
        self.namespace = namespace
        self.operation = operation
        self.ttl = decision.ttl
        self.tags = decision.tags
        self._limit = limit
        self._chunks: list[bytes] | None = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        """A piece of the stream as it was written to the client."""
        chunks = self._chunks
        if chunks is None:
            return
        self._size += len(chunk)
        if self._size > self._limit:
            self._chunks = None  # too large to keep: not stored
            return
        chunks.append(chunk)

    def complete_body(self, body: bytes) -> None:
        """The whole (non-streamed) successful answer was sent."""
        if len(body) <= self._limit:
            self._cache.keep(self, body, stream=False)

    def complete_stream(self) -> None:
        """The stream ended as it should (its last event written, no error)."""
        if self._chunks is not None:
            self._cache.keep(self, b"".join(self._chunks), stream=True)


class LookupCache:
    """Stage: a hit answers; a miss (or refresh) leaves a `Capture` on the exchange."""

    __slots__ = ("_background", "_config", "cache")

    def __init__(self, cache: TieredCache, config: CacheConfig, background: Background) -> None:
        self.cache = cache
        self._config = config
        self._background = background

    async def __call__(self, exchange: Exchange) -> Reply | None:
        group = exchange.group
        assert group is not None, "route runs before the cache"
        operation, payload = exchange.operation, exchange.payload
        if operation not in CACHEABLE or not group.cache or not replayable(operation, payload):
            exchange.cache_status = "bypass"
            return None
        config = self._config
        decision = decide(
            exchange.headers,
            payload,
            group.cache_ttl or config.ttl,
            config.skip_temperature_above,
        )
        if not (decision.lookup or decision.store):
            exchange.cache_status = "bypass"
            return None
        namespace = config.namespace
        key = exchange.cache_key = cache_key(operation, payload, group.name, namespace, config.key)
        if decision.lookup:
            found = await self.cache.lookup(key, namespace, decision.max_age)
            if found is not None:
                if found.layer == "l2":
                    self.cache.fill(key, namespace, found, group.cache_ttl or config.ttl)
                exchange.cache_status = "hit-" + found.layer
                exchange.cache_age = math.floor(found.age)
                stream = exchange.stream
                body = found.answer.render(operation, stream, _include_usage(exchange))
                return CachedReply(body, stream)
            exchange.cache_status = "miss"
        else:
            exchange.cache_status = "bypass"
        if decision.store:
            exchange.capture = Capture(
                self, key, namespace, operation, decision, limit=config.max_entry_bytes
            )
        return None

    def keep(self, capture: Capture, sent: bytes, *, stream: bool) -> None:
        """Decode and store a complete answer, off the request's path."""
        self._background.spawn("cache-store", self._store(capture, sent, stream))

    async def _store(self, capture: Capture, sent: bytes, stream: bool) -> None:
        read = answer.from_stream if stream else answer.from_body
        stored = read(capture.operation, sent, capture.tags)
        if stored is not None:
            self.cache.store(capture.key, capture.namespace, stored, capture.ttl)


def _include_usage(exchange: Exchange) -> bool:
    """Whether an OpenAI streaming client asked for the usage chunk."""
    options = exchange.payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
