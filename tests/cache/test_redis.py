"""RedisCache against real servers: the machine's Redis, private servers a test may kill or
pause, and a private 3-master Cluster. Each test closes what it opened and checks that no task
and no server-side connection of its stores is left."""

from __future__ import annotations

import asyncio
import functools
import os
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from edgeproxy.background import Background
from edgeproxy.cache import redis as redis_cache
from edgeproxy.cache.redis import Invalidation, RedisCache, RedisUnavailable
from edgeproxy.config import RedisSettings
from tests.support.clock import ManualClock
from tests.support.poll import eventually
from tests.support.redis_servers import HOST, Cluster, RedisServer, free_port, require_redis

MakeCache = Callable[..., Awaitable[RedisCache]]
# Generous per-command timeouts for the functional tests (a loaded CI machine must not turn a
# round trip into a miss); the failure tests set their own short ones.
RELAXED = RedisSettings(timeout=1.0, connect_timeout=1.0)


def _addresses(settings: RedisSettings) -> list[tuple[str, int]]:
    if settings.url is not None:
        parts = urlsplit(settings.url)
        return [(parts.hostname or HOST, parts.port or 6379)]
    return [
        (node.rsplit(":", 1)[0], int(node.rsplit(":", 1)[1])) for node in settings.cluster_nodes
    ]


def _closed_on(origin: str, address: tuple[str, int]) -> bool:
    return not _connections_of(origin, address)


def _connections_of(origin: str, address: tuple[str, int]) -> list[str]:
    """Names of the server-side connections of the store `origin` (none if it is down)."""
    try:
        with redis.Redis(
            host=address[0], port=address[1], socket_timeout=2.0, retry=Retry(NoBackoff(), 0)
        ) as client:
            names = [str(c.get("name", "")) for c in client.client_list()]
    except redis.exceptions.ConnectionError:
        return []
    return [name for name in names if name.endswith(origin)]


@pytest.fixture
async def background() -> AsyncIterator[Background]:
    runner = Background()
    yield runner
    await runner.drain(2.0)
    assert runner.pending == 0
    assert runner.failed == 0, "a listener task crashed"


@pytest.fixture
async def make_cache(background: Background) -> AsyncIterator[MakeCache]:
    """Open stores; after the test close them and check nothing of theirs is left running."""
    before = asyncio.all_tasks()
    opened: list[tuple[RedisCache, RedisSettings]] = []

    async def factory(
        settings: RedisSettings, clock: Callable[[], float] = time.monotonic
    ) -> RedisCache:
        cache = RedisCache(settings, clock)
        await cache.open()
        opened.append((cache, settings))
        return cache

    yield factory
    for cache, _ in opened:
        await cache.close()
    await background.drain(2.0)

    def leftover() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}

    await eventually(lambda: not leftover(), "tasks finish after close", within=2.0)
    for cache, settings in opened:
        for address in _addresses(settings):
            await eventually(
                functools.partial(_closed_on, cache.origin, address),
                f"connections of {cache.origin} closed on {address}",
                within=2.0,
            )


@dataclass
class Deployment:
    """Where a test's store lives, and a blocking client to look at Redis behind its back."""

    kind: str
    settings: RedisSettings
    cluster: Cluster | None = None

    def with_(self, **changes: Any) -> RedisSettings:
        return replace(self.settings, **changes)

    @contextmanager
    def inspect(self) -> Iterator[Any]:
        if self.cluster is None:
            client: Any = redis.Redis.from_url(str(self.settings.url), socket_timeout=5.0)
        else:
            host, port = self.cluster.nodes[0].rsplit(":", 1)
            client = redis.RedisCluster(host=host, port=int(port), socket_timeout=5.0)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(params=["standalone", "cluster"])
def deployment(request: pytest.FixtureRequest, redis_prefix: str) -> Deployment:
    if request.param == "standalone":
        url = request.getfixturevalue("redis_url")
        return Deployment("standalone", replace(RELAXED, url=url, prefix=redis_prefix))
    cluster: Cluster = request.getfixturevalue("redis_cluster")
    settings = replace(RELAXED, cluster_nodes=cluster.nodes, prefix=redis_prefix)
    return Deployment("cluster", settings, cluster)


@pytest.fixture
def shared(redis_url: str, redis_prefix: str) -> Deployment:
    return Deployment("standalone", replace(RELAXED, url=redis_url, prefix=redis_prefix))


# --- storing and finding ----------------------------------------------------------------------


async def test_round_trip_keeps_bytes_and_expires_in_milliseconds(
    deployment: Deployment, make_cache: MakeCache
) -> None:
    cache = await make_cache(deployment.settings)
    body = bytes(range(256)) * 3

    assert await cache.set("k1", "ns", body, ttl=30.25)
    assert await cache.get("k1", "ns") == body
    assert await cache.get("absent", "ns") is None
    with deployment.inspect() as client:
        pttl = client.pttl(cache.entry_name("k1", "ns"))
    assert 29_000 < pttl <= 30_250
    snapshot = cache.snapshot()
    assert (snapshot["hits"], snapshot["misses"], snapshot["writes"]) == (1, 1, 1)
    assert snapshot["mode"] == deployment.kind


async def test_ttl_under_a_millisecond_is_not_stored(
    shared: Deployment, make_cache: MakeCache
) -> None:
    cache = await make_cache(shared.settings)

    assert not await cache.set("k", "ns", b"body", ttl=0.0004)
    assert await cache.get("k", "ns") is None


async def test_lookup_is_one_get(redis_server: RedisServer, make_cache: MakeCache) -> None:
    cache = await make_cache(replace(RELAXED, url=redis_server.url, prefix="p"))
    assert await cache.set("k", "ns", b"body", ttl=60)
    with redis_server.client() as client:
        client.config_resetstat()

        assert await cache.get("k", "ns") == b"body"
        assert await cache.get("absent", "ns") is None

        stats = client.info("commandstats")
    ours = {
        name: s["calls"]
        for name, s in stats.items()
        if not name.startswith(("cmdstat_config", "cmdstat_info"))  # the test's own
    }
    assert ours == {"cmdstat_get": 2}


@pytest.mark.parametrize(
    ("size", "compressed"),
    [
        (100, False),  # below compress_over
        (128, False),  # at it: only larger bodies are compressed
        (129, True),
        (300_000, True),  # large enough to be compressed in a thread
    ],
)
async def test_bodies_larger_than_compress_over_are_stored_zlib_compressed(
    deployment: Deployment, make_cache: MakeCache, size: int, compressed: bool
) -> None:
    cache = await make_cache(deployment.with_(compress_over=128))
    body = (b'{"choices":[{"text":"the same words again"}]}' * (size // 40 + 1))[:size]

    assert await cache.set("k", "ns", body, ttl=60)
    with deployment.inspect() as client:
        raw = client.get(cache.entry_name("k", "ns"))

    if compressed:
        assert raw[:1] == b"\x01"
        assert len(raw) < size
        assert zlib.decompress(raw[1:]) == body
    else:
        assert raw == b"\x00" + body
    assert await cache.get("k", "ns") == body


async def test_incompressible_bodies_are_stored_as_they_are(
    shared: Deployment, make_cache: MakeCache
) -> None:
    cache = await make_cache(shared.with_(compress_over=128))
    body = os.urandom(1000)

    assert await cache.set("k", "ns", body, ttl=60)
    with shared.inspect() as client:
        assert client.get(cache.entry_name("k", "ns")) == b"\x00" + body
    assert await cache.get("k", "ns") == body


async def test_unreadable_entry_is_a_counted_miss(
    shared: Deployment, make_cache: MakeCache
) -> None:
    cache = await make_cache(shared.settings)
    with shared.inspect() as client:
        client.set(cache.entry_name("bad", "ns"), b"\x07not ours", px=60_000)
        client.set(cache.entry_name("broken", "ns"), b"\x01not zlib", px=60_000)

    assert await cache.get("bad", "ns") is None
    assert await cache.get("broken", "ns") is None
    assert cache.snapshot()["errors"] == 2


async def test_namespaces_are_isolated(shared: Deployment, make_cache: MakeCache) -> None:
    cache = await make_cache(shared.settings)
    odd = "team:*[x]{y}"  # colons, globs and braces cannot reach another namespace's keys
    assert await cache.set("k", "a", b"from a", ttl=60)
    assert await cache.set("k", odd, b"from odd", ttl=60)
    assert await cache.set("k", "team", b"from team", ttl=60)

    assert await cache.get("k", "a") == b"from a"
    assert await cache.get("k", odd) == b"from odd"
    assert await cache.flush_namespace(odd) == 1
    assert await cache.get("k", odd) is None
    assert await cache.get("k", "team") == b"from team"
    assert await cache.get("k", "a") == b"from a"


async def test_flush_leaves_a_longer_prefix_alone(
    shared: Deployment, make_cache: MakeCache
) -> None:
    outer = await make_cache(shared.settings)
    inner = await make_cache(shared.with_(prefix=f"{shared.settings.prefix}:b"))
    assert await outer.set("k", "b", b"outer", ttl=60)  # P:b:e:{k}
    assert await inner.set("k", "e", b"inner", ttl=60)  # P:b:e:e:{k}

    assert await outer.flush_namespace("b") == 1
    assert await inner.get("k", "e") == b"inner"


# --- deleting -----------------------------------------------------------------------------------


async def test_delete_by_key_tag_and_namespace_across_slots(
    deployment: Deployment, make_cache: MakeCache
) -> None:
    cache = await make_cache(deployment.settings)
    keys = [f"key-{i}" for i in range(24)]
    for i, key in enumerate(keys):
        assert await cache.set(key, "n1", key.encode(), ttl=60, tags=("odd" if i % 2 else "even",))
    assert await cache.set("key-1", "n2", b"other namespace", ttl=60, tags=("odd",))
    if deployment.cluster is not None:
        with deployment.inspect() as client:
            nodes = {client.get_node_from_key(cache.entry_name(k, "n1")).name for k in keys}
        assert len(nodes) == 3, "entries should spread over every master"

    assert await cache.delete("key-0", "n1") is True
    assert await cache.delete("key-0", "n1") is False
    assert await cache.get("key-0", "n1") is None

    assert await cache.delete_tag("n1", "odd") == 12
    assert [await cache.get(k, "n1") for k in keys[1::2]] == [None] * 12
    assert await cache.get("key-2", "n1") == b"key-2"
    assert await cache.get("key-1", "n2") == b"other namespace"
    assert await cache.delete_tag("n1", "odd") == 0

    assert await cache.flush_namespace("n1") == 11
    assert [await cache.get(k, "n1") for k in keys] == [None] * 24
    with deployment.inspect() as client:
        assert list(client.scan_iter(match=f"{deployment.settings.prefix}:n1:*")) == []
    assert await cache.get("key-1", "n2") == b"other namespace"
    assert cache.snapshot()["invalidations_published"] == 5


async def test_tag_index_lives_as_long_as_its_longest_entry(
    deployment: Deployment, make_cache: MakeCache
) -> None:
    cache = await make_cache(deployment.settings)
    index = cache.tag_name("ns", "team-a")

    def pttl() -> int:
        with deployment.inspect() as client:
            return int(client.pttl(index))

    assert await cache.set("k1", "ns", b"1", ttl=10, tags=("team-a",))
    assert 9_000 < pttl() <= 10_000
    assert await cache.set("k2", "ns", b"2", ttl=100, tags=("team-a",))
    assert 99_000 < pttl() <= 100_000
    assert await cache.set("k3", "ns", b"3", ttl=5, tags=("team-a",))
    assert 99_000 < pttl() <= 100_000


# --- invalidations between sidecars -------------------------------------------------------------


async def test_invalidations_reach_every_subscriber(
    deployment: Deployment, make_cache: MakeCache, background: Background
) -> None:
    sender = await make_cache(deployment.settings)
    receiver = await make_cache(deployment.settings)
    sent: list[Invalidation] = []
    received: list[Invalidation] = []
    assert sender.subscribe(sent.append, background)
    assert receiver.subscribe(received.append, background)
    await eventually(lambda: sender.listening and receiver.listening, "both subscribed")

    await sender.delete("k", "ns")
    await sender.delete_tag("ns", "team-a")
    await sender.flush_namespace("ns")
    await eventually(lambda: len(received) == 3 and len(sent) == 3, "three invalidations")

    expected = [
        Invalidation("key", "ns", "k", sender.origin),
        Invalidation("tag", "ns", "team-a", sender.origin),
        Invalidation("namespace", "ns", "", sender.origin),
    ]
    assert received == expected
    assert sent == expected  # a store hears its own deletions too: applying them twice is harmless
    assert receiver.snapshot()["invalidations_received"] == 3


async def test_listener_survives_malformed_messages_and_failing_callbacks(
    shared: Deployment, make_cache: MakeCache, background: Background
) -> None:
    cache = await make_cache(shared.settings)
    received: list[Invalidation] = []

    def callback(invalidation: Invalidation) -> None:
        received.append(invalidation)
        if len(received) == 1:
            raise RuntimeError("a buggy L1")

    cache.subscribe(callback, background)
    await eventually(lambda: cache.listening, "subscribed")
    with shared.inspect() as client:
        client.publish(f"{shared.settings.prefix}:invalidate", b"not json")
        client.publish(f"{shared.settings.prefix}:invalidate", b'{"kind":"everything"}')
    await cache.delete("k1", "ns")
    await cache.delete("k2", "ns")
    await eventually(lambda: len(received) == 2, "both deletions delivered")

    listener = cache.snapshot()["listener"]
    assert isinstance(listener, dict)
    assert (listener["bad_messages"], listener["callback_errors"]) == (2, 1)
    assert cache.listening


@pytest.mark.parametrize(
    "data",
    [b"[]", b'{"kind":"key","namespace":1,"value":"k"}', b'{"kind":"all","namespace":"n"}', b"{"],
)
def test_malformed_invalidations_are_rejected(data: bytes) -> None:
    with pytest.raises(ValueError):
        Invalidation.decode(data)


def test_invalidation_round_trips_through_json() -> None:
    invalidation = Invalidation("tag", "team:a", "tag \u00e9", "abc")
    assert Invalidation.decode(invalidation.encode()) == invalidation


# --- failures -----------------------------------------------------------------------------------


async def test_killed_server_opens_the_breaker_and_the_store_recovers_by_itself(
    redis_server: RedisServer, make_cache: MakeCache
) -> None:
    clock = ManualClock()
    settings = replace(
        RELAXED, url=redis_server.url, prefix="p", failure_threshold=2, reset_timeout=5.0
    )
    cache = await make_cache(settings, clock)
    assert await cache.set("k", "ns", b"before", ttl=60)

    redis_server.kill()
    assert await cache.get("k", "ns") is None
    assert await cache.set("k", "ns", b"lost", ttl=60) is False
    snapshot = cache.snapshot()
    assert snapshot["errors"] == 2
    assert isinstance(snapshot["breaker"], dict) and snapshot["breaker"]["state"] == "open"

    redis_server.restart()
    for _ in range(5):  # the breaker is open: nothing reaches the (restarted) server
        assert await cache.get("k", "ns") is None
        assert await cache.set("k", "ns", b"skipped", ttl=60) is False
    with redis_server.client() as client:
        stats = client.info("commandstats")
    assert "cmdstat_get" not in stats and "cmdstat_set" not in stats
    snapshot = cache.snapshot()
    assert (snapshot["errors"], snapshot["skipped"]) == (2, 10)

    clock.advance(5.0)
    assert await cache.set("k", "ns", b"after", ttl=60)  # the probe: closes the breaker
    assert await cache.get("k", "ns") == b"after"
    breaker = cache.snapshot()["breaker"]
    assert isinstance(breaker, dict) and breaker["state"] == "closed"


async def test_a_hung_server_times_out_and_opens_the_breaker(
    redis_server: RedisServer, make_cache: MakeCache
) -> None:
    settings = RedisSettings(
        url=redis_server.url, prefix="p", timeout=0.1, connect_timeout=0.2, failure_threshold=2
    )
    cache = await make_cache(settings)
    assert await cache.set("k", "ns", b"body", ttl=60)

    redis_server.pause()
    try:
        assert await cache.get("k", "ns") is None
        assert await cache.set("k", "ns", b"body", ttl=60) is False
        assert await cache.get("k", "ns") is None  # breaker open: not even tried
    finally:
        redis_server.resume()
    snapshot = cache.snapshot()
    assert (snapshot["timeouts"], snapshot["skipped"]) == (2, 1), "timed out, never hung"


async def test_redis_down_at_start_costs_no_error(make_cache: MakeCache) -> None:
    settings = RedisSettings(url=f"redis://{HOST}:{free_port()}/0", prefix="p", failure_threshold=2)
    cache = await make_cache(settings)  # open() logs, never raises

    assert await cache.get("k", "ns") is None
    assert await cache.set("k", "ns", b"body", ttl=60) is False
    assert await cache.get("k", "ns") is None
    assert cache.snapshot()["skipped"] == 1
    with pytest.raises(RedisUnavailable):  # an operator's purge must not pass for done
        await cache.delete("k", "ns")


async def test_subscriber_reconnects_after_a_restart(
    redis_server: RedisServer, make_cache: MakeCache, background: Background
) -> None:
    settings = replace(RELAXED, url=redis_server.url, prefix="p")
    sender = await make_cache(settings)
    receiver = await make_cache(settings)
    received: list[Invalidation] = []
    receiver.subscribe(received.append, background)
    await eventually(lambda: receiver.listening, "subscribed")

    redis_server.kill()
    await eventually(lambda: not receiver.listening, "the listener notices")
    redis_server.restart()
    await eventually(lambda: receiver.listening, "subscribed again")

    await sender.delete("k", "ns")
    await eventually(lambda: len(received) == 1, "an invalidation after the restart")
    listener = receiver.snapshot()["listener"]
    assert isinstance(listener, dict) and listener["reconnects"] >= 1


async def test_subscriber_reconnects_when_redis_hangs(
    redis_server: RedisServer,
    make_cache: MakeCache,
    background: Background,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The listener pings after 5 s of silence; shortened so the test waits a fraction of that.
    monkeypatch.setattr(redis_cache, "_LISTEN_POLL", 0.05)
    monkeypatch.setattr(redis_cache, "_LISTEN_PING_AFTER", 0.2)
    settings = RedisSettings(url=redis_server.url, prefix="p", timeout=0.2, connect_timeout=0.2)
    sender = await make_cache(
        replace(settings, timeout=RELAXED.timeout, connect_timeout=RELAXED.connect_timeout)
    )
    receiver = await make_cache(settings)
    received: list[Invalidation] = []
    receiver.subscribe(received.append, background)
    await eventually(lambda: receiver.listening, "subscribed")

    redis_server.pause()
    try:
        await eventually(lambda: not receiver.listening, "the silence noticed")
    finally:
        redis_server.resume()
    await eventually(lambda: receiver.listening, "subscribed again")

    await sender.delete("k", "ns")
    await eventually(lambda: len(received) == 1, "an invalidation after the hang")


async def test_closed_store_answers_at_once_without_redis(
    shared: Deployment, make_cache: MakeCache, background: Background
) -> None:
    cache = await make_cache(shared.settings)
    cache.subscribe(lambda _: None, background)
    await eventually(lambda: cache.listening, "subscribed")

    await cache.stop_listening()  # writes queued at shutdown still land before close()
    assert not cache.listening
    assert background.pending == 0
    assert await cache.set("k", "ns", b"late write", ttl=60)
    await cache.close()

    assert await cache.get("k", "ns") is None
    assert await cache.set("k", "ns", b"too late", ttl=60) is False
    with pytest.raises(RedisUnavailable, match="closed"):
        await cache.delete("k", "ns")
    with shared.inspect() as client:
        assert client.get(cache.entry_name("k", "ns")) == b"\x00late write"


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_redis_skips_on_a_laptop_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=f"Redis not reachable on {HOST}:"):
        require_redis(HOST, free_port())


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (RedisSettings(), "neither url nor cluster_nodes"),
        (RedisSettings(url="redis://h", prefix="a{b}"), "braces"),
        (RedisSettings(cluster_nodes=("no-port",)), "host:port"),
    ],
)
def test_unusable_settings_are_refused(settings: RedisSettings, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RedisCache(settings)
