"""The Redis that replicas share keys, limits and spend through (the top-level `redis:` section):
one client for the process, and a listener for one pub/sub channel.

`connect` makes the one client every shared-state module uses. Its commands are never retried
by redis-py (its default retries with backoff have no place on a request path) and speak RESP2
(with RESP3, redis-py 8 turns on "maintenance notifications", which disable the pool's check
for connections the server closed, so every idle connection fails once after a Redis restart).
The socket timeouts are a backstop only: each caller bounds its own calls, the request path
by `SharedState.timeout`; an `asyncio.timeout` that interrupts a command drops its connection,
and the next command opens a new one, so the client reconnects by itself.

With `cluster: true`, `url` names one node of a Redis Cluster; the client learns the others.

`Subscription` hears one channel over a connection of its own (in a Cluster, to one node:
classic PUBLISH reaches every node). It pings when the channel is quiet, and when the
connection fails or stays silent it reconnects with a capped, jittered backoff, trying the next
known node each time. Messages published while it is disconnected are lost: `on_subscribed`
runs on every (re)subscription, so its owner can drop what those messages would have changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edgeproxy.background import Background
from edgeproxy.security.settings import SharedState

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 1.0
MAX_CONNECTIONS = 32  # per sidecar, to one Redis server
_COMMAND_BACKSTOP = 5.0
_POLL = 1.0  # how long one read of the subscription waits for a message
_PING_AFTER = 5.0  # quiet time after which the listener checks its connection
_BACKOFF_FIRST, _BACKOFF_CAP = 0.05, 2.0


def _options(role: str) -> dict[str, Any]:
    return {
        "socket_connect_timeout": _CONNECT_TIMEOUT,
        "socket_timeout": _COMMAND_BACKSTOP,
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
        "client_name": f"edgeproxy-{role}",
    }


def connect(settings: SharedState, role: str = "shared") -> Redis | RedisCluster:
    """The client for `settings.url` (a Cluster's when `settings.cluster`); nothing is sent
    until the first command. `role` names its connections in Redis' CLIENT LIST."""
    if settings.url is None:
        raise ValueError("redis.url is not set")
    if settings.cluster:
        return RedisCluster.from_url(settings.url, **_options(role))
    # A bounded pool that queues a burst of requests on its connections (for at most the
    # request path's timeout) instead of opening one connection per request in flight.
    pool = BlockingConnectionPool.from_url(
        settings.url, max_connections=MAX_CONNECTIONS, timeout=settings.timeout, **_options(role)
    )
    return Redis.from_pool(pool)  # closing the client closes the pool


async def warm(client: Redis | RedisCluster) -> bool:
    """Learn a Cluster's slots (or check a server) before the first request needs them;
    False, with a warning logged, when Redis does not answer (callers degrade until it does)."""
    try:
        async with asyncio.timeout(_CONNECT_TIMEOUT + _COMMAND_BACKSTOP):
            if isinstance(client, RedisCluster):
                await client.initialize()
            else:
                await client.ping()
    except Exception as exc:
        log.warning("the shared Redis is not reachable (%r)", exc)
        return False
    return True


def _node_url(url: str, host: str, port: int) -> str:
    """`url` (its credentials, TLS and database) pointed at another node."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    node = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return parts._replace(netloc=f"{credentials}@{node}" if credentials else node).geturl()


class Subscription:
    """Calls `on_message` with the payload of every message on `channel`, and `on_subscribed`
    each time the subscription starts or starts again, from a service of `background`."""

    __slots__ = (
        "_channel",
        "_client",
        "_on_message",
        "_on_subscribed",
        "_rng",
        "_settings",
        "_stopped",
        "_task",
        "listening",
        "reconnects",
    )

    def __init__(
        self,
        settings: SharedState,
        client: Redis | RedisCluster,
        channel: str,
        on_message: Callable[[bytes], None],
        on_subscribed: Callable[[], None],
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._client = client  # a Cluster's client tells which nodes there are
        self._channel = channel
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._rng = rng
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        self.reconnects = 0

    def start(self, background: Background) -> None:
        if self._task is not None:
            raise RuntimeError("already started")
        self._task = background.service(f"redis-subscription:{self._channel}", self._run())

    async def stop(self) -> None:
        self._stopped = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def _run(self) -> None:
        delay, attempt = _BACKOFF_FIRST, 0
        while not self._stopped:
            client = self._connection(attempt)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self._relay(pubsub)
            except Exception as exc:
                if self.listening:  # it had worked: start the backoff over
                    delay = _BACKOFF_FIRST
                    log.warning("lost the Redis channel %s (%r); reconnecting", self._channel, exc)
                else:
                    log.debug("cannot subscribe to %s: %r", self._channel, exc)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await cast(Callable[[], Awaitable[None]], pubsub.aclose)()  # untyped
                with contextlib.suppress(Exception):
                    await client.aclose()
            attempt += 1
            self.reconnects += 1
            await asyncio.sleep(delay * (0.5 + self._rng() / 2))
            delay = min(delay * 2, _BACKOFF_CAP)

    def _connection(self, attempt: int) -> Redis:
        url = cast(str, self._settings.url)
        options = {**_options("listener"), "socket_timeout": _CONNECT_TIMEOUT}
        client = self._client
        if isinstance(client, RedisCluster):
            nodes = [(node.host, int(node.port)) for node in client.get_nodes()]
            if nodes:
                host, port = nodes[attempt % len(nodes)]
                url = _node_url(url, host, port)
        return Redis.from_url(url, **options)

    async def _relay(self, pubsub: PubSub) -> None:
        """Hand messages on; returns only by raising, when the connection fails or stays
        silent after a PING."""
        loop = asyncio.get_running_loop()
        heard, pinged = loop.time(), False
        while True:
            message = cast(dict[str, Any] | None, await pubsub.get_message(timeout=_POLL))
            now = loop.time()
            if message is None:
                if now - heard >= _PING_AFTER + _CONNECT_TIMEOUT:
                    raise TimeoutError("Redis did not answer the listener's PING")
                if not pinged and now - heard >= _PING_AFTER:
                    await pubsub.ping()
                    pinged = True
                continue
            heard, pinged = now, False
            if message["type"] == "subscribe":
                self.listening = True
                self._on_subscribed()
            elif message["type"] == "message":
                self._on_message(cast(bytes, message["data"]))
