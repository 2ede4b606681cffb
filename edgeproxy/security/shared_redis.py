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

`channel_listener` makes the `ChannelListener` of one channel of this Redis: its connection
goes to the `url`, or in a Cluster to the next node the client knows on each attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edgeproxy.redis_channel import ChannelListener
from edgeproxy.security.settings import SharedState

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 1.0
MAX_CONNECTIONS = 32  # per sidecar, to one Redis server
_COMMAND_BACKSTOP = 5.0
_POLL = 1.0  # how long one read of the subscription waits for a message
_PING_AFTER = 5.0  # quiet time after which the listener checks its connection


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


def channel_listener(
    settings: SharedState,
    client: Redis | RedisCluster,
    channel: str,
    on_message: Callable[[bytes], None],
    on_subscribed: Callable[[], None],
    *,
    rng: Callable[[], float] = random.random,
) -> ChannelListener:
    """A listener of `channel` on this Redis; `client` (a Cluster's) tells which nodes there
    are to try in turn."""

    def connection(attempt: int) -> Redis:
        url = cast(str, settings.url)
        options = {**_options("listener"), "socket_timeout": _CONNECT_TIMEOUT}
        if isinstance(client, RedisCluster):
            nodes = [(node.host, int(node.port)) for node in client.get_nodes()]
            if nodes:
                host, port = nodes[attempt % len(nodes)]
                url = _node_url(url, host, port)
        return Redis.from_url(url, **options)

    return ChannelListener(
        channel,
        connection,
        on_message,
        on_subscribed,
        name=f"the listener of {channel}",
        poll=_POLL,
        ping_after=_PING_AFTER,
        silence_limit=_PING_AFTER + _CONNECT_TIMEOUT,
        rng=rng,
    )
