"""The exact cache's two layers: L1 in this process, L2 in Redis shared by every sidecar.

A lookup asks L1, then L2; an L2 hit fills L1. A store fills L1 at once and L2 in the
background, so the client never waits on Redis. L2 failures are the store's to absorb (short
timeouts, a breaker of its own): for this class, Redis down is an L2 that always misses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from edgeproxy.background import Background
from edgeproxy.cache import answer
from edgeproxy.cache.answer import Shape, StoredAnswer
from edgeproxy.cache.memory import MemoryCache
from edgeproxy.telemetry.latency import L2_LOOKUP_SECONDS

log = logging.getLogger(__name__)


class Invalidated(Protocol):
    """A deletion another sidecar announced (`cache.redis.Invalidation`)."""

    @property
    def kind(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def value(self) -> str: ...


class RedisUnavailable(Exception):
    """An operator's deletion could not be carried out (or not announced) in L2 (Redis)."""


class RemoteStore(Protocol):
    """What the tiered cache needs of L2 (implemented by `cache.redis.RedisCache`).
    Deletions remove entries everywhere and announce it to every sidecar's L1."""

    async def get(self, key: str, namespace: str) -> bytes | None: ...

    async def set(
        self, key: str, namespace: str, value: bytes, ttl: float, tags: Sequence[str] = ()
    ) -> bool: ...

    async def delete(self, key: str, namespace: str) -> bool: ...

    async def delete_tag(self, namespace: str, tag: str) -> int: ...

    async def flush_namespace(self, namespace: str) -> int: ...

    def snapshot(self) -> dict[str, object]: ...


class Found:
    """A hit: the answer, its key, the layer that had it, and its age in seconds."""

    __slots__ = ("age", "answer", "key", "layer")

    def __init__(self, answer: StoredAnswer, key: str, layer: str, age: float) -> None:
        self.answer = answer
        self.key = key
        self.layer = layer
        self.age = age


class TieredCache:
    """L1 (always) over L2 (when configured)."""

    __slots__ = ("_background", "_clock", "_wall", "memory", "remote", "stores")

    def __init__(
        self,
        memory: MemoryCache[StoredAnswer],
        remote: RemoteStore | None,
        background: Background,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.memory = memory
        self.remote = remote
        self._background = background
        self._clock = clock
        self._wall = wall
        self.stores = 0

    async def lookup(self, key: str, namespace: str, max_age: float | None) -> Found | None:
        now = self._clock()
        hit = self.memory.get(key, now)
        if hit is not None:
            age = now - hit.stored_at
            if max_age is None or age <= max_age:
                return Found(hit.value, key, "l1", age)
            return None
        if self.remote is None:
            return None
        began = time.perf_counter()
        data = await self.remote.get(key, namespace)
        L2_LOOKUP_SECONDS.observe(time.perf_counter() - began)
        stored = answer.decode(data) if data is not None else None
        if stored is None:
            return None
        age = max(0.0, self._wall() - stored.created)
        if max_age is not None and age > max_age:
            return None
        return Found(stored, key, "l2", age)

    def render(self, key: str, stored: StoredAnswer, shape: Shape) -> bytes:
        """`stored` (the answer under `key`) as a client of `shape` gets it. A form rendered anew
        is kept with the answer only while L1 holds it and has room (its byte bound counts the
        form), so L1 never holds more than its bound says."""
        form = stored.rendered.get(shape)
        if form is not None:
            return form
        form = stored.render(*shape)
        if shape in stored.rendered and not self.memory.resize(
            key, stored, stored.size, now=self._clock()
        ):
            stored.forget(shape)  # not in L1 (any more), or too big with it: not kept
        return form

    def fill(self, key: str, namespace: str, found: Found, ttl: float) -> None:
        """An L2 hit goes into L1 too, dated from when it was stored, so it leaves L1 when a
        `ttl` from then has passed (and its age stays true)."""
        if found.age < ttl:
            self._put(key, namespace, found.answer, ttl, self._clock() - found.age)

    def store(self, key: str, namespace: str, stored: StoredAnswer, ttl: float) -> None:
        """Keep a fresh answer: in L1 now, in L2 from the background."""
        self.stores += 1
        self._put(key, namespace, stored, ttl, self._clock())
        if self.remote is not None:
            self._background.spawn(
                "cache-l2-write", self._write(key, namespace, answer.encode(stored), ttl, stored)
            )

    # --- invalidation ------------------------------------------------------------------------

    def invalidate(self, message: Invalidated) -> None:
        """Apply a deletion announced through Redis to this sidecar's L1."""
        if message.kind == "key":
            self.memory.delete(message.value)
        elif message.kind == "tag":
            self.memory.delete_tag(message.namespace, message.value)
        elif message.kind == "namespace":
            self.memory.clear_namespace(message.namespace)

    async def delete(self, key: str, namespace: str) -> dict[str, int]:
        """An operator's deletion of one entry, here and (through L2) in every sidecar."""
        local = int(self.memory.delete(key))
        shared = int(await self.remote.delete(key, namespace)) if self.remote else 0
        return {"l1": local, "l2": shared}

    async def delete_tag(self, namespace: str, tag: str) -> dict[str, int]:
        local = self.memory.delete_tag(namespace, tag)
        shared = await self.remote.delete_tag(namespace, tag) if self.remote else 0
        return {"l1": local, "l2": shared}

    async def flush(self, namespace: str) -> dict[str, int]:
        local = self.memory.clear_namespace(namespace)
        shared = await self.remote.flush_namespace(namespace) if self.remote else 0
        return {"l1": local, "l2": shared}

    def snapshot(self) -> dict[str, object]:
        return {
            "l1": self.memory.snapshot(),
            "l2": self.remote.snapshot() if self.remote is not None else None,
            "stores": self.stores,
        }

    def _put(
        self, key: str, namespace: str, stored: StoredAnswer, ttl: float, stored_at: float
    ) -> None:
        self.memory.put(
            key, stored, stored.size, ttl=ttl, now=stored_at, namespace=namespace, tags=stored.tags
        )

    async def _write(
        self, key: str, namespace: str, data: bytes, ttl: float, stored: StoredAnswer
    ) -> None:
        assert self.remote is not None
        await self.remote.set(key, namespace, data, ttl, stored.tags)
