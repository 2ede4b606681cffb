"""RedisLimiter against real servers: the machine's Redis, several OS processes sharing it, a
private 3-master Cluster, and Redis gone (nothing listening, a socket that never answers, a
paused server) under each failure policy. Every test uses its own key prefix."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edgeproxy.security.ratelimit import Admission, Check, Limits
from edgeproxy.security.ratelimit_redis import FailurePolicy, RedisLimiter
from edgeproxy.telemetry.counters import RATELIMIT_BACKEND_ERRORS
from tests.support.clock import ManualClock
from tests.support.redis_servers import (
    HOST,
    SHARED_PORT,
    Cluster,
    RedisServer,
    free_port,
    require_redis,
)

KEY = "key:k1"
ROOT = Path(__file__).resolve().parents[2]
MakeLimiter = Callable[..., RedisLimiter]


def _client(port: int, timeout: float = 5.0, connections: int = 500) -> Redis:
    return Redis(
        host=HOST,
        port=port,
        protocol=2,
        max_connections=connections,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


@pytest.fixture
def prefix() -> str:
    return f"edgeproxy-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def shared(prefix: str) -> AsyncIterator[Redis]:
    """A client of the machine's Redis; every key of `prefix` is removed after the test."""
    require_redis(HOST, SHARED_PORT)
    client = _client(SHARED_PORT)
    yield client
    names = [name async for name in client.scan_iter(match=f"{{{prefix}}}:*", count=1000)]
    if names:
        await client.unlink(*names)
    await client.aclose()


@pytest.fixture
def limiter(shared: Redis, prefix: str) -> RedisLimiter:
    return RedisLimiter(shared, prefix, timeout=5.0)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port whose kernel accepts connections that nothing ever reads or answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(128)
        yield int(sock.getsockname()[1])


async def passes(limiter: RedisLimiter, checks: list[Check], tokens: int, count: int) -> int:
    results = await asyncio.gather(*(limiter.admit(checks, tokens) for _ in range(count)))
    return sum(result.allowed for result in results)


def backend_errors(kind: str) -> float:
    for metric in RATELIMIT_BACKEND_ERRORS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels == {"error": kind}:
                return sample.value
    return 0.0


# --- exact through Redis -----------------------------------------------------------------------

EXACT = [
    pytest.param(Limits(rpm=10), 0, 10, id="rpm"),
    pytest.param(Limits(tpm=1000), 100, 10, id="tpm"),
    pytest.param(Limits(tpm=1000), 7, 142, id="tpm-uneven"),
    pytest.param(Limits(parallel=7), 0, 7, id="parallel"),
    pytest.param(Limits(rpm=10, tpm=550, parallel=50), 100, 5, id="tightest-wins"),
]


@pytest.mark.parametrize(("limits", "tokens", "expected"), EXACT)
async def test_exactly_the_limit_passes_out_of_simultaneous_requests(
    limiter: RedisLimiter, limits: Limits, tokens: int, expected: int
) -> None:
    count = max(100, expected + 10)
    assert await passes(limiter, [(KEY, limits)], tokens, count) == expected


async def test_three_processes_sharing_redis_pass_exactly_the_rpm(
    shared: Redis, prefix: str
) -> None:
    """100 checks against RPM 10, sent at once by three replicas in their own processes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.security.ratelimit_worker",
            str(SHARED_PORT),
            prefix,
            "10",
            str(requests),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for requests in (34, 33, 33)
    ]
    try:
        async with asyncio.timeout(40):
            for worker in workers:
                assert worker.stdout is not None
                assert await worker.stdout.readline() == b"ready\n"
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            outputs = [await worker.communicate() for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0, 0]
    assert sum(int(stdout) for stdout, _ in outputs) == 10


async def test_a_bucket_refills_with_the_servers_time(limiter: RedisLimiter, shared: Redis) -> None:
    """Six seconds of server time, written into the bucket, give back one request of RPM 10."""
    checks = [(KEY, Limits(rpm=10))]
    assert await passes(limiter, checks, 0, 20) == 10
    refused = await limiter.admit(checks)
    assert (refused.scope, refused.limit) == (KEY, "rpm")
    assert 5.9 < refused.retry_after <= 6.0
    bucket = limiter.keys(KEY)[0]
    stamp = float(await shared.hget(bucket, "t") or 0)
    await shared.hset(bucket, "t", repr(stamp - 6.0))
    assert await passes(limiter, checks, 0, 5) == 1


async def test_a_refused_check_consumes_nothing_in_any_scope(limiter: RedisLimiter) -> None:
    roomy, full = ("key:k1", Limits(rpm=10, tpm=1000)), ("team:t", Limits(rpm=3))
    assert await passes(limiter, [full], 0, 3) == 3
    refused = await limiter.admit([roomy, full], 100)
    assert (refused.allowed, refused.scope, refused.limit) == (False, "team:t", "rpm")
    assert await passes(limiter, [roomy], 100, 20) == 10


async def test_reconcile_refunds_and_charges_debt(limiter: RedisLimiter) -> None:
    checks = [(KEY, Limits(tpm=1000))]
    admitted = await limiter.admit(checks, 800)
    await admitted.grant.reconcile(100)
    assert (await limiter.admit(checks, 900)).allowed
    late = await limiter.admit(checks, 0)
    await late.grant.reconcile(600)
    refused = await limiter.admit(checks, 0)
    assert (refused.allowed, refused.limit) == (False, "tpm")
    assert refused.tokens is not None and refused.tokens.remaining == 0
    assert 35.9 < refused.retry_after <= 36.0  # 600 tokens of debt at 1000 a minute


async def test_release_frees_a_slot_once(limiter: RedisLimiter, shared: Redis) -> None:
    checks = [(KEY, Limits(parallel=2))]
    first, second = [await limiter.admit(checks) for _ in range(2)]
    assert limiter.leases_held == 2
    refused = await limiter.admit(checks)
    assert (refused.allowed, refused.limit) == (False, "parallel")
    await first.grant.release()
    await first.grant.release()
    assert await shared.zcard(limiter.keys(KEY)[1]) == 1
    assert await passes(limiter, checks, 0, 5) == 1
    await second.grant.release()
    assert limiter.leases_held == 1


async def test_the_slot_of_a_replica_that_died_expires_with_its_lease(
    shared: Redis, prefix: str
) -> None:
    checks = [(KEY, Limits(parallel=1))]
    dead = RedisLimiter(shared, prefix, timeout=5.0, lease_ttl=30.0)
    assert (await dead.admit(checks)).allowed
    survivor = RedisLimiter(shared, prefix, timeout=5.0)
    assert not (await survivor.admit(checks)).allowed
    leases = survivor.keys(KEY)[1]
    [(lease, expiry)] = await shared.zrange(leases, 0, -1, withscores=True)
    await shared.zadd(leases, {lease: expiry - 30.0})  # its 30 s have passed unrenewed
    assert (await survivor.admit(checks)).allowed


async def test_leases_in_flight_are_renewed(shared: Redis, prefix: str) -> None:
    limiter = RedisLimiter(shared, prefix, timeout=5.0, lease_ttl=30.0)
    admitted = await limiter.admit([(KEY, Limits(parallel=3))])
    leases = limiter.keys(KEY)[1]
    [(lease, expiry)] = await shared.zrange(leases, 0, -1, withscores=True)
    await shared.zadd(leases, {lease: expiry - 20.0})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await limiter.keep_leases(sleep)
    assert waits == [10.0, 10.0]
    [(_, renewed)] = await shared.zrange(leases, 0, -1, withscores=True)
    assert renewed > expiry - 1.0
    assert 0 < await shared.pttl(leases) <= 30_000
    await admitted.grant.release()
    assert await limiter.renew_leases()  # nothing held: nothing to do
    assert await shared.exists(leases) == 0


async def test_keys_expire_once_their_buckets_are_full(
    limiter: RedisLimiter, shared: Redis
) -> None:
    admitted = await limiter.admit([(KEY, Limits(rpm=60, tpm=6000, parallel=5))], 100)
    bucket, leases = limiter.keys(KEY)
    assert 1000 < await shared.pttl(bucket) <= 2000  # 1 s to refill both, then a margin
    assert 0 < await shared.pttl(leases) <= 60_000
    await admitted.grant.reconcile(0)
    await admitted.grant.release()


# --- Redis Cluster -----------------------------------------------------------------------------


async def test_a_cluster_runs_the_script_on_one_slot(redis_cluster: Cluster, prefix: str) -> None:
    nodes = [ClusterNode(HOST, server.port) for server in redis_cluster.servers]
    client = RedisCluster(startup_nodes=nodes, protocol=2, retry=Retry(NoBackoff(), 0))
    try:
        limiter = RedisLimiter(client, prefix, timeout=5.0)
        checks = [
            ("key:k1", Limits(rpm=10, tpm=10_000, parallel=50)),
            ("team:t", Limits(rpm=20)),
            ("group:gpt-4o", Limits(tpm=100_000)),
        ]
        results = await asyncio.gather(*(limiter.admit(checks, 10) for _ in range(100)))
        admitted = [result for result in results if result.allowed]
        assert len(admitted) == 10
        for result in admitted:
            await result.grant.reconcile(5)
            await result.grant.release()
        names = [key for name, _ in checks for key in limiter.keys(name)]
        slots = {client.keyslot(name) for name in names}
        assert len(slots) == 1
        assert await client.exists(*limiter.keys("key:k1")[:1]) == 1
        assert await client.zcard(limiter.keys("key:k1")[1]) == 0
        await client.delete(*names)
    finally:
        await client.aclose()


# --- Redis gone --------------------------------------------------------------------------------

OUTAGE_TIMEOUT = 0.2
# policy, how many of 20 requests pass against RPM 10 (local: half of it), their reasons
POLICIES = [
    pytest.param("local", 5, {"ok", "rate_limited"}, id="local-share"),
    pytest.param("open", 20, {"unchecked"}, id="open"),
    pytest.param("closed", 0, {"backend_down"}, id="closed"),
]


async def _outage_admissions(limiter: RedisLimiter, count: int) -> list[Admission]:
    """`count` checks at once, which must all be answered well within the limiter's timeout
    plus a margin (they never hang on a Redis that does not answer)."""
    async with asyncio.timeout(OUTAGE_TIMEOUT * 10):
        return await asyncio.gather(*(limiter.admit([(KEY, Limits(rpm=10))]) for _ in range(count)))


@pytest.mark.parametrize(("policy", "expected", "reasons"), POLICIES)
@pytest.mark.parametrize("outage", ["nothing-listening", "black-hole"])
async def test_an_unreachable_redis_applies_the_policy_logs_once_and_counts(
    policy: FailurePolicy,
    expected: int,
    reasons: set[str],
    outage: str,
    *,
    black_hole: int,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port() if outage == "nothing-listening" else black_hole
    kind = "error" if outage == "nothing-listening" else "timeout"
    client = _client(port, timeout=5.0)
    clock = ManualClock()
    limiter = RedisLimiter(
        client,
        prefix,
        clock=clock,
        timeout=OUTAGE_TIMEOUT,
        on_error=policy,
        local_share=0.5,
        probe_interval=1.0,
    )
    caplog.set_level(logging.DEBUG, logger="edgeproxy.ratelimit")
    before = backend_errors(kind)
    try:
        results = await _outage_admissions(limiter, 20)
        assert sum(result.allowed for result in results) == expected
        assert {result.reason for result in results} == reasons
        assert all(result.degraded for result in results)
        assert backend_errors(kind) == before + 20  # each call that tried Redis
        paused = await _outage_admissions(limiter, 5)  # no call during the pause
        assert backend_errors(kind) == before + 20
        assert all(result.degraded for result in paused)
        clock.advance(1.0)
        await _outage_admissions(limiter, 5)  # one probe, which fails too
        assert backend_errors(kind) == before + 21
    finally:
        await client.aclose()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert policy in warnings[0].getMessage()


async def test_a_full_connection_pool_is_answered_by_the_policy_but_is_no_outage(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    require_redis(HOST, SHARED_PORT)
    client = _client(SHARED_PORT, connections=1)
    limiter = RedisLimiter(client, prefix, clock=ManualClock(), timeout=5.0, on_error="open")
    before = backend_errors("error")
    try:
        results = await asyncio.gather(*(limiter.admit([(KEY, Limits(rpm=10))]) for _ in range(5)))
        assert sorted(result.reason for result in results) == ["ok"] + ["unchecked"] * 4
        assert backend_errors("error") == before + 4
        assert (await limiter.admit([(KEY, Limits(rpm=10))])).degraded is False
        await client.delete(*limiter.keys(KEY))
    finally:
        await client.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_closed_policy_says_when_to_retry(prefix: str) -> None:
    client = _client(free_port())
    clock = ManualClock()
    limiter = RedisLimiter(
        client, prefix, clock=clock, timeout=OUTAGE_TIMEOUT, on_error="closed", probe_interval=5.0
    )
    try:
        refused = (await _outage_admissions(limiter, 1))[0]
    finally:
        await client.aclose()
    assert (refused.allowed, refused.reason, refused.retry_after) == (False, "backend_down", 5.0)


async def test_limits_are_shared_again_when_redis_answers(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(redis_server.port, timeout=5.0)
    clock = ManualClock()
    limiter = RedisLimiter(
        client, prefix, clock=clock, timeout=OUTAGE_TIMEOUT, on_error="open", probe_interval=1.0
    )
    checks = [(KEY, Limits(rpm=10))]
    caplog.set_level(logging.INFO, logger="edgeproxy.ratelimit")
    try:
        assert (await limiter.admit(checks)).degraded is False
        redis_server.pause()
        try:
            unchecked = await _outage_admissions(limiter, 3)
        finally:
            redis_server.resume()
        assert {result.reason for result in unchecked} == {"unchecked"}
        clock.advance(1.0)
        probe = await limiter.admit(checks)
        assert (probe.allowed, probe.degraded) == (True, False)
        fresh = [("key:after", Limits(rpm=10))]
        results = await asyncio.gather(*(limiter.admit(fresh) for _ in range(20)))
        assert sum(result.allowed for result in results) == 10
        assert not any(result.degraded for result in results)
    finally:
        await client.aclose()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(messages) == 2
    assert "failed" in messages[0]
    assert "answers again" in messages[1]
