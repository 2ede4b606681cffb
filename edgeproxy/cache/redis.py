"""The L2 cache: one Redis or a Redis Cluster shared by every sidecar; values are opaque bytes.

Key layout (P = `RedisSettings.prefix`, N = the namespace, K = the cache key, T = a tag; N, K
and T are percent-encoded so that no `:`, brace or glob character of theirs can move a hash
tag or widen a SCAN pattern):

    P:N:e:{K}      an entry: one marker byte (0 raw, 1 zlib) then the body; expires with PX
    P:N:t:{T}      a tag's index: a set of the keys K stored with tag T in namespace N; its
                   expiry is raised to the longest of its entries', so it outlives them all
    P:invalidate   the pub/sub channel of invalidations (a channel, not a key)

The hash tag of an entry is its own key: an entry has no companion key, so nothing forces two
entries into one slot and the entries of a namespace spread over every primary. Any key that
must ever travel with an entry (metadata, a lock) takes the form `P:N:<kind>:{K}` and lands in
the entry's slot. A tag's index is a single key in the slot of its tag.

Round trips: a lookup is one GET; a store is one SET (or one pipeline of SET, SADD and two
PEXPIRE per tag when tagged: PEXPIRE NX then GT, which needs Redis 7.0). Deletions never send a
multi-key command across slots: they pipeline one UNLINK per key (redis-py's cluster pipeline,
not transactional, sends each node its own batch).

Flush: `flush_namespace` SCANs every primary for `P:N:[et]:{*` (entries and tag indexes, and
nothing of a prefix that merely starts with `P:N`) and unlinks what it finds, so old entries
are really gone and a lookup stays one GET; no per-namespace generation has to be read first.
SCAN walks the whole keyspace of each primary, which is fine for an operator's action and never
happens on a request. Entries written while a flush runs (a background write of an answer
fetched before it) may survive it.

Failures: every command has the socket timeout `timeout` (`connect_timeout` to connect) and no
retries (redis-py retries 10 times with backoff by default: never on a request path), and each
call is bounded as a whole by `connect_timeout + timeout`. A CircuitBreaker opens after
`failure_threshold` consecutive failures (timeouts, connection and cluster errors) and admits
one probe after `reset_timeout`; while it is open `get` and `set` do not touch the network. A
broken or timed-out connection is dropped by redis-py, and the next command opens a new one,
so the store reconnects by itself. `get` and `set` never raise (cancellation aside); the
operator's deletions raise `RedisUnavailable` so the admin API can say the purge did not
happen, and they are always attempted, whatever the breaker says.

Invalidations: each deletion publishes `{"kind", "namespace", "value", "origin"}` (JSON, kind
key|tag|namespace, value "" for a namespace). `subscribe` runs one listener (a
`redis_channel.ChannelListener`) through `Background` that hands every message to a callback,
this store's own included (`origin` says whose it was; applying one's own deletion to L1 twice
is harmless). The listener has its own connection (in a Cluster, to one node: classic PUBLISH
reaches every node), pings when idle, and reconnects with a capped, jittered backoff, trying
the next node each time. Messages sent while it is disconnected are lost; L1 entries then live
at most their TTL.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import random
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast
from urllib.parse import quote

import orjson
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    MaxConnectionsError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from edgeproxy.background import Background
from edgeproxy.cache.tiered import RedisUnavailable
from edgeproxy.config import BreakerSettings, RedisSettings
from edgeproxy.redis_channel import ChannelListener
from edgeproxy.routing.breaker import BreakerState, CircuitBreaker

log = logging.getLogger(__name__)

T = TypeVar("T")
InvalidationKind = Literal["key", "tag", "namespace"]
_KINDS: frozenset[str] = frozenset(("key", "tag", "namespace"))

_RAW, _ZLIB = b"\x00", b"\x01"
_ZLIB_LEVEL = 6
_OFFLOAD_OVER = 64 * 1024  # (de)compress larger bodies in a thread, off the event loop
_SCAN_COUNT = 1000
_UNLINK_BATCH = 500
_SPOP_ALL = 2**62  # SPOP with a count at least the set's size pops all and removes the key

_LISTEN_POLL = 1.0  # how long one read of the subscription waits for a message
_LISTEN_PING_AFTER = 5.0  # silence after which the listener checks its connection

_CLOSED = BreakerState.CLOSED
_BUSY_ANSWERS = (ClusterDownError, TryAgainError)  # Redis answered, but cannot serve now


class _Failed(enum.Enum):
    """What a guarded Redis call gives when it failed (None can be an answer, as a miss)."""

    FAILED = "failed"


_FAILED: Final = _Failed.FAILED


@dataclass(frozen=True, slots=True)
class Invalidation:
    """A deletion announced by a sidecar: drop `value` (a key or a tag) of `namespace`, or the
    whole namespace (`value` ""), from L1. `origin` is the announcing store's `origin`."""

    kind: InvalidationKind
    namespace: str
    value: str
    origin: str

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "kind": self.kind,
                "namespace": self.namespace,
                "value": self.value,
                "origin": self.origin,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Invalidation:
        """Raises ValueError for anything but a well-formed message."""
        raw = orjson.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        kind, namespace = raw.get("kind"), raw.get("namespace")
        value, origin = raw.get("value", ""), raw.get("origin", "")
        if kind not in _KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        if not (isinstance(namespace, str) and isinstance(value, str) and isinstance(origin, str)):
            raise ValueError("namespace, value and origin must be strings")
        return cls(cast(InvalidationKind, kind), namespace, value, origin)


def _part(text: str) -> str:
    """A name component with nothing Redis would read as structure (`:`, braces, globs)."""
    return quote(text, safe="")


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _address(node: str) -> tuple[str, int]:
    host, sep, port = node.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"cluster node {node!r} is not host:port")
    return host.strip("[]"), int(port)


class RedisCache:
    """The L2 store. `open()` once in the app lifecycle, `close()` at shutdown.

    `clock` (monotonic seconds) drives the breaker only; `rng` jitters the listener's backoff.
    """

    __slots__ = (
        "_breaker",
        "_channel",
        "_client",
        "_clock",
        "_closed",
        "_compress_over",
        "_deadline",
        "_listener",
        "_listener_kwargs",
        "_nodes",
        "_prefix",
        "_rng",
        "_scan_prefix",
        "_settings",
        "bad_messages",
        "callback_errors",
        "errors",
        "hits",
        "misses",
        "origin",
        "published",
        "received",
        "skipped",
        "subscribed",
        "timeouts",
        "writes",
    )

    def __init__(
        self,
        settings: RedisSettings,
        clock: Callable[[], float] = time.monotonic,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not settings.enabled:
            raise ValueError("RedisSettings has neither url nor cluster_nodes")
        if "{" in settings.prefix or "}" in settings.prefix:
            raise ValueError("the Redis prefix must not contain braces (they make hash tags)")
        self._settings = settings
        self._clock = clock
        self._rng = rng
        self._prefix = settings.prefix
        self._scan_prefix = _glob_escape(settings.prefix)
        self._channel = f"{settings.prefix}:invalidate"
        self._compress_over = settings.compress_over
        self._deadline = settings.connect_timeout + settings.timeout
        self._breaker = CircuitBreaker(
            BreakerSettings(
                failure_threshold=settings.failure_threshold,
                reset_timeout=settings.reset_timeout,
                error_rate=1.0,
                min_requests=10**9,
                half_open_requests=1,
            )
        )
        self.origin = uuid.uuid4().hex[:12]
        password = settings.password.reveal() if settings.password is not None else None
        common: dict[str, Any] = {
            "password": password,
            "socket_connect_timeout": settings.connect_timeout,
            "retry": Retry(NoBackoff(), 0),
            # RESP2: redis-py 8 speaks RESP3 by default and then turns on "maintenance
            # notifications", which disable the pool's check for connections the server has
            # closed, so every idle connection fails once after a Redis restart.
            "protocol": 2,
        }
        self._nodes = [_address(node) for node in settings.cluster_nodes]
        self._client: Redis | RedisCluster
        if self._nodes:
            self._client = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in self._nodes],
                socket_timeout=settings.timeout,
                client_name=f"edgeproxy-cache-{self.origin}",
                **common,
            )
        else:
            self._client = Redis.from_url(
                cast(str, settings.url),
                socket_timeout=settings.timeout,
                client_name=f"edgeproxy-cache-{self.origin}",
                **common,
            )
        # The listener waits for messages with its own read timeouts; commands on its
        # connection (the handshake, SUBSCRIBE) may take as long as a connect.
        self._listener_kwargs = {
            **common,
            "socket_timeout": max(settings.timeout, settings.connect_timeout),
            "client_name": f"edgeproxy-listener-{self.origin}",
        }
        self._listener: ChannelListener | None = None
        self._closed = False
        self.subscribed = False
        self.hits = self.misses = self.errors = self.timeouts = self.skipped = 0
        self.writes = self.published = self.received = 0
        self.bad_messages = self.callback_errors = 0

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Learn the cluster's slots (or check the server) once, so the first request does not
        pay for it. Redis being down is logged, never raised: L2 misses until it is back."""
        client = self._client
        try:
            async with asyncio.timeout(self._deadline):
                if isinstance(client, RedisCluster):
                    await client.initialize()
                else:
                    await client.ping()
        except Exception as exc:
            log.warning("Redis is not reachable (%r): the cache uses L1 only until it is", exc)

    async def stop_listening(self) -> None:
        """Cancel the invalidation listener (`close` does it too). For L2 writes still queued
        in the Background runner to land at shutdown: `stop_listening`, drain the runner, then
        `close`. After `close`, calls return None/False at once (deletions raise)."""
        if self._listener is not None:
            await self._listener.stop()

    async def close(self) -> None:
        """Stop the listener, then close every connection this store opened."""
        await self.stop_listening()
        self._closed = True
        await self._client.aclose()

    # --- the request path -------------------------------------------------------------------

    def entry_name(self, key: str, namespace: str) -> str:
        """The Redis key holding an entry."""
        return f"{self._prefix}:{_part(namespace)}:e:{{{_part(key)}}}"

    def tag_name(self, namespace: str, tag: str) -> str:
        """The Redis key of a tag's index."""
        return f"{self._prefix}:{_part(namespace)}:t:{{{_part(tag)}}}"

    async def get(self, key: str, namespace: str) -> bytes | None:
        """The body stored under `key`, or None on a miss, a failure or an open breaker."""
        name = self.entry_name(key, namespace)
        data = await self._guarded("get", lambda: self._client.get(name))
        if data is _FAILED:
            return None
        if data is None:
            self.misses += 1
            return None
        value = await self._unpack(cast(bytes, data))
        if value is None:
            self.errors += 1
            log.warning("unreadable L2 entry %s: treated as a miss", name)
            return None
        self.hits += 1
        return value

    async def set(
        self, key: str, namespace: str, value: bytes, ttl: float, tags: Sequence[str] = ()
    ) -> bool:
        """Store `value` for `ttl` seconds (millisecond precision), indexed under `tags`;
        False when it was not stored (failure, open breaker, ttl under a millisecond)."""
        ms = int(ttl * 1000)
        if ms <= 0:
            return False
        name = self.entry_name(key, namespace)
        data = await self._pack(value)  # before the deadline: Redis is not slow for our CPU

        async def write() -> object:
            if not tags:
                return await self._client.set(name, data, px=ms)
            pipe = self._client.pipeline(transaction=False)
            pipe.set(name, data, px=ms)
            for tag in tags:
                index = self.tag_name(namespace, tag)
                pipe.sadd(index, key)
                pipe.pexpire(index, ms, nx=True)
                pipe.pexpire(index, ms, gt=True)
            return await pipe.execute()

        if await self._guarded("set", write) is _FAILED:
            return False
        self.writes += 1
        return True

    # --- the semantic layer's vectors --------------------------------------------------------

    def vectors_name(self, namespace: str, partition: str) -> str:
        """The Redis hash holding a semantic partition's vectors (field: entry key)."""
        return f"{self._prefix}:{_part(namespace)}:v:{{{_part(partition)}}}"

    async def add_vector(
        self, namespace: str, partition: str, entry_key: str, record: bytes, ttl: float
    ) -> bool:
        """Share one question's vector record for at least `ttl` seconds; never raises."""
        name = self.vectors_name(namespace, partition)
        ms = int(ttl * 1000)

        async def write() -> object:
            pipe = self._client.pipeline(transaction=False)
            pipe.hset(name, entry_key, record)
            pipe.pexpire(name, ms, nx=True)
            pipe.pexpire(name, ms, gt=True)
            return await pipe.execute()

        return ms > 0 and await self._guarded("add_vector", write) is not _FAILED

    async def vectors(self, namespace: str, partition: str) -> dict[str, bytes] | None:
        """Every shared vector record of a partition by entry key; None when Redis failed."""
        name = self.vectors_name(namespace, partition)
        found = await self._guarded("vectors", lambda: self._client.hgetall(name))
        if found is _FAILED:
            return None
        return {k.decode(): v for k, v in cast(dict[bytes, bytes], found).items()}

    async def _guarded(
        self, what: str, command: Callable[[], Awaitable[T]]
    ) -> T | Literal[_Failed.FAILED]:
        """`command` under the deadline and the breaker; `_FAILED` (counted) when it failed or
        was not tried (closed store, open breaker)."""
        if self._closed or not self._breaker.acquire(self._clock()):
            self.skipped += 1
            return _FAILED
        try:
            async with asyncio.timeout(self._deadline):
                result = await command()
        except asyncio.CancelledError:
            self._breaker.release()
            raise
        except Exception as exc:
            self._failed(exc, what, admitted=True)
            return _FAILED
        self._succeeded()
        return result

    # --- the operator's deletions -----------------------------------------------------------

    async def delete(self, key: str, namespace: str) -> bool:
        """Remove one entry everywhere; whether Redis had it. Raises RedisUnavailable."""
        name = self.entry_name(key, namespace)
        removed = await self._call("delete", lambda: self._client.unlink(name))
        await self._announce(Invalidation("key", namespace, key, self.origin))
        return bool(removed)

    async def delete_tag(self, namespace: str, tag: str) -> int:
        """Remove every entry stored with `tag`; how many Redis had. Raises RedisUnavailable."""
        index = self.tag_name(namespace, tag)
        popped = await self._call("delete_tag", lambda: self._client.spop(index, _SPOP_ALL))
        keys = [m.decode() for m in cast(list[bytes] | None, popped) or ()]
        removed = await self._unlink([self.entry_name(k, namespace) for k in keys])
        await self._announce(Invalidation("tag", namespace, tag, self.origin))
        return sum(removed)

    async def flush_namespace(self, namespace: str) -> int:
        """Remove every entry (and tag index) of `namespace`; how many entries there were.
        Raises RedisUnavailable."""
        pattern = f"{self._scan_prefix}:{_part(namespace)}:[etv]:{{*"  # exactly this layout
        entry_mark = f"{self._prefix}:{_part(namespace)}:e:"
        entries = 0
        async for names in self._scan(pattern):
            for name, removed in zip(names, await self._unlink(names), strict=True):
                entries += removed if name.startswith(entry_mark) else 0
        await self._announce(Invalidation("namespace", namespace, "", self.origin))
        return entries

    async def _scan(self, pattern: str) -> AsyncIterator[list[str]]:
        """Batches of key names matching `pattern`, from every primary."""
        client = self._client
        nodes: list[ClusterNode | None] = [None]
        if isinstance(client, RedisCluster):
            await self._call("scan", client.initialize)
            nodes = list(client.get_primaries())
        for node in nodes:
            cursor = 0
            while True:
                cursor, names = await self._call(
                    "scan", functools.partial(self._scan_step, pattern, cursor, node)
                )
                yield names
                if cursor == 0:
                    break

    async def _scan_step(
        self, pattern: str, cursor: int, node: ClusterNode | None
    ) -> tuple[int, list[str]]:
        client = self._client
        if isinstance(client, RedisCluster):
            cursors, names = await client.scan(
                cursor, match=pattern, count=_SCAN_COUNT, target_nodes=node
            )
            cursor = cast(dict[str, int], cursors)[cast(ClusterNode, node).name]
        else:
            cursor, names = await client.scan(cursor, match=pattern, count=_SCAN_COUNT)
        return int(cursor), [cast(bytes, name).decode() for name in names]

    async def _unlink(self, names: list[str]) -> list[int]:
        """UNLINK each name (one command per key: cluster-safe); 1 for each that existed."""
        removed: list[int] = []
        for start in range(0, len(names), _UNLINK_BATCH):
            pipe = self._client.pipeline(transaction=False)
            for name in names[start : start + _UNLINK_BATCH]:
                pipe.execute_command("UNLINK", name)  # the cluster pipeline's unlink() is async
            removed += [int(n) for n in await self._call("unlink", pipe.execute)]
        return removed

    async def _announce(self, invalidation: Invalidation) -> None:
        message = invalidation.encode()
        await self._call("publish", lambda: self._client.publish(self._channel, message))
        self.published += 1

    async def _call(self, what: str, command: Callable[[], Awaitable[T]]) -> T:
        if self._closed:
            raise RedisUnavailable(f"Redis {what}: the store is closed")
        try:
            async with asyncio.timeout(self._deadline):
                result = await command()
        except Exception as exc:
            self._failed(exc, what, admitted=False)
            raise RedisUnavailable(f"Redis {what} failed: {exc!r}") from exc
        self._succeeded()
        return result

    # --- invalidations from every sidecar ---------------------------------------------------

    def subscribe(self, callback: Callable[[Invalidation], None], background: Background) -> bool:
        """Call `callback` for every invalidation published by any sidecar (this one too),
        from a listener service of `background` that `stop_listening()` (or `close()`)
        cancels; True once it is started."""
        if self.subscribed:
            raise RuntimeError("already subscribed")
        self._listener = ChannelListener(
            self._channel,
            self._listener_client,
            functools.partial(self._deliver, callback),
            name="invalidation listener",
            poll=_LISTEN_POLL,
            ping_after=_LISTEN_PING_AFTER,
            silence_limit=_LISTEN_PING_AFTER + self._settings.connect_timeout,
            rng=self._rng,
        )
        self._listener.start(background)
        self.subscribed = True
        return True

    @property
    def listening(self) -> bool:
        """Whether the invalidation listener is subscribed right now."""
        return self._listener is not None and self._listener.listening

    @property
    def reconnects(self) -> int:
        """How many times the invalidation listener has connected again."""
        return self._listener.reconnects if self._listener is not None else 0

    def _listener_client(self, attempt: int) -> Redis:
        kwargs = self._listener_kwargs
        if not self._nodes:
            return Redis.from_url(cast(str, self._settings.url), **kwargs)
        nodes = list(self._nodes)
        client = self._client
        if isinstance(client, RedisCluster):
            known = [(node.host, int(node.port)) for node in client.get_nodes()]
            nodes += [node for node in known if node not in nodes]
        host, port = nodes[attempt % len(nodes)]
        return Redis(host=host, port=port, **kwargs)

    def _deliver(self, callback: Callable[[Invalidation], None], data: bytes) -> None:
        try:
            invalidation = Invalidation.decode(data)
        except ValueError as exc:
            self.bad_messages += 1
            log.warning("ignored a malformed invalidation %r: %s", data, exc)
            return
        self.received += 1
        try:
            callback(invalidation)
        except Exception:
            self.callback_errors += 1
            log.exception("invalidation callback failed on %r", invalidation)

    # --- outcomes and values ----------------------------------------------------------------

    def _succeeded(self) -> None:
        breaker = self._breaker
        was_closed = breaker.state is _CLOSED
        breaker.record_success(self._clock())
        if not was_closed and breaker.state is _CLOSED:
            log.info("Redis answers again: L2 back in use")

    def _failed(self, exc: Exception, what: str, *, admitted: bool) -> None:
        self.errors += 1
        breaker = self._breaker
        if isinstance(exc, MaxConnectionsError):
            if admitted:  # our pool is full: Redis did nothing wrong
                breaker.release()
            log.debug("Redis %s: no free connection", what)
            return
        if isinstance(exc, ResponseError) and not isinstance(exc, _BUSY_ANSWERS):
            self._succeeded()  # it answered; the command was wrong
            log.warning("Redis %s refused: %s", what, exc)
            return
        if isinstance(exc, TimeoutError | RedisTimeoutError):  # asyncio's is the builtin
            self.timeouts += 1
        was_closed = breaker.state is _CLOSED
        breaker.record_failure(self._clock())
        if was_closed and breaker.state is not _CLOSED:
            log.warning("Redis %s failed (%r): L2 off until a probe succeeds", what, exc)
        else:  # an outage already reported (a probe failing reopens the breaker quietly)
            log.debug("Redis %s failed: %r", what, exc)

    async def _pack(self, value: bytes) -> bytes:
        if len(value) > self._compress_over:
            if len(value) > _OFFLOAD_OVER:
                packed = await asyncio.to_thread(zlib.compress, value, _ZLIB_LEVEL)
            else:
                packed = zlib.compress(value, _ZLIB_LEVEL)
            if len(packed) < len(value):
                return _ZLIB + packed
        return _RAW + value

    async def _unpack(self, data: bytes) -> bytes | None:
        marker = data[:1]
        if marker == _RAW:
            return data[1:]
        if marker != _ZLIB:
            return None
        body = memoryview(data)[1:]
        try:
            if len(body) > _OFFLOAD_OVER // 4:
                return await asyncio.to_thread(zlib.decompress, body)
            return zlib.decompress(body)
        except zlib.error:
            return None

    def snapshot(self) -> dict[str, object]:
        """Counters and breaker state, JSON-ready, for the admin view."""
        return {
            "mode": "cluster" if self._nodes else "standalone",
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "skipped": self.skipped,
            "writes": self.writes,
            "invalidations_published": self.published,
            "invalidations_received": self.received,
            "breaker": self._breaker.snapshot(self._clock()),
            "listener": {
                "subscribed": self.subscribed,
                "listening": self.listening,
                "reconnects": self.reconnects,
                "bad_messages": self.bad_messages,
                "callback_errors": self.callback_errors,
            },
        }
