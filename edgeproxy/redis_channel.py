"""A listener for one Redis pub/sub channel, on a connection of its own.

The cache's L2 hears invalidations through one and the key store hears key changes: each
message's payload goes to a callback as bytes. The listener pings when the channel is quiet,
and when the connection fails or stays silent it reconnects with a capped, jittered backoff,
asking its owner for the connection of each attempt (in a Cluster, the next node: classic
PUBLISH reaches every node). Messages published while it is disconnected are lost:
`on_subscribed` runs on every (re)subscription, so the owner can drop what they would have
changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from edgeproxy.background import Background

log = logging.getLogger(__name__)

_BACKOFF_FIRST, _BACKOFF_CAP = 0.05, 2.0


def _nothing() -> None:
    return None


class ChannelListener:
    """Calls `on_message` with the payload of every message on `channel`, and `on_subscribed`
    each time the subscription starts or starts again, from a service of `background`.

    `connect(n)` makes the connection of the n-th attempt (from 0). One read waits `poll`
    seconds for a message; after `ping_after` quiet seconds the connection is pinged, and after
    `silence_limit` it is given up. `name` says whose listener it is in log lines.
    """

    __slots__ = (
        "_channel",
        "_connect",
        "_name",
        "_on_message",
        "_on_subscribed",
        "_ping_after",
        "_poll",
        "_rng",
        "_silence_limit",
        "_stopped",
        "_task",
        "listening",
        "reconnects",
    )

    def __init__(
        self,
        channel: str,
        connect: Callable[[int], Redis],
        on_message: Callable[[bytes], None],
        on_subscribed: Callable[[], None] = _nothing,
        *,
        name: str,
        poll: float,
        ping_after: float,
        silence_limit: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._channel = channel
        self._connect = connect
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._name = name
        self._poll = poll
        self._ping_after = ping_after
        self._silence_limit = silence_limit
        self._rng = rng
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        self.reconnects = 0

    def start(self, background: Background) -> None:
        if self._task is not None:
            raise RuntimeError("already started")
        self._task = background.service(f"redis-channel:{self._channel}", self._run())

    async def stop(self) -> None:
        self._stopped = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def _run(self) -> None:
        delay, attempt = _BACKOFF_FIRST, 0
        while not self._stopped:
            client = self._connect(attempt)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self._relay(pubsub)
            except Exception as exc:
                if self.listening:  # it had worked: start the backoff over
                    delay = _BACKOFF_FIRST
                    log.warning("%s lost Redis (%r); reconnecting", self._name, exc)
                else:
                    log.debug("%s cannot reach Redis: %r", self._name, exc)
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

    async def _relay(self, pubsub: PubSub) -> None:
        """Hand messages on; returns only by raising, when the connection fails or stays
        silent after a PING."""
        loop = asyncio.get_running_loop()
        heard, pinged = loop.time(), False
        while True:
            message = cast(dict[str, Any] | None, await pubsub.get_message(timeout=self._poll))
            now = loop.time()
            if message is None:
                if now - heard >= self._silence_limit:
                    raise TimeoutError("Redis did not answer the listener's PING")
                if not pinged and now - heard >= self._ping_after:
                    await pubsub.ping()
                    pinged = True
                continue
            heard, pinged = now, False
            if message["type"] == "subscribe":
                if self.reconnects:
                    log.info("%s subscribed again", self._name)
                self.listening = True
                self._on_subscribed()
            elif message["type"] == "message":
                self._on_message(cast(bytes, message["data"]))
