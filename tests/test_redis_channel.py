"""ChannelListener against a private Redis: messages, (re)subscriptions and the connection
asked for each attempt. The cache's and the key store's suites test it through its owners."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edgeproxy.background import Background
from edgeproxy.redis_channel import ChannelListener
from tests.support.poll import eventually
from tests.support.redis_servers import HOST, RedisServer, free_port

CHANNEL = "test-redis-channel"
NO_RETRIES = Retry(NoBackoff(), 0)  # as its owners' connections: a failure reaches the listener


@pytest.fixture
async def background() -> AsyncIterator[Background]:
    runner = Background()
    yield runner
    await runner.drain(2.0)
    assert runner.failed == 0, "the listener crashed"


class Owner:
    """What a listener's owner sees, and the connections it was asked for."""

    def __init__(self, connect: Callable[[], Redis]) -> None:
        self.messages: list[bytes] = []
        self.subscriptions = 0
        self.attempts: list[int] = []
        self._connect = connect

    def connection(self, attempt: int) -> Redis:
        self.attempts.append(attempt)
        return self._connect()

    def subscribed(self) -> None:
        self.subscriptions += 1

    def listener(self) -> ChannelListener:
        return ChannelListener(
            CHANNEL,
            self.connection,
            self.messages.append,
            self.subscribed,
            name="test listener",
            poll=0.05,
            ping_after=1.0,
            silence_limit=2.0,
            rng=lambda: 0.0,
        )


async def test_messages_reach_the_owner_across_a_resubscription(
    redis_server: RedisServer, background: Background
) -> None:
    owner = Owner(lambda: Redis.from_url(redis_server.url, retry=NO_RETRIES, protocol=2))
    listener = owner.listener()
    listener.start(background)
    try:
        await eventually(lambda: listener.listening, "subscribed")
        with redis_server.client() as client:
            client.publish(CHANNEL, b"first")
            await eventually(lambda: owner.messages == [b"first"], "the first message")
            client.client_kill_filter(_type="pubsub")
            await eventually(lambda: owner.subscriptions == 2, "a resubscription")
            client.publish(CHANNEL, b"second")
        await eventually(lambda: owner.messages == [b"first", b"second"], "the second message")
        assert (listener.reconnects, owner.attempts) == (1, [0, 1])
    finally:
        await listener.stop()
    assert not listener.listening


async def test_each_attempt_asks_for_its_own_connection(background: Background) -> None:
    owner = Owner(lambda: Redis(host=HOST, port=free_port(), retry=NO_RETRIES))
    listener = owner.listener()
    listener.start(background)
    try:
        await eventually(lambda: len(owner.attempts) >= 3, "three attempts")
    finally:
        await listener.stop()
    assert owner.attempts[:3] == [0, 1, 2]
    assert owner.subscriptions == 0 and not listener.listening
