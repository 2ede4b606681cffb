"""Spend budgets: refused once spent, reset on the UTC day and month boundaries, per key and
per team; in process with a manual wall clock, and in Redis (shared, surviving restarts,
Cluster-safe, bounded and by policy when Redis fails)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Literal

import orjson
import pytest
import redis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edgeproxy.dialects import anthropic, openai
from edgeproxy.pricing import nanos
from edgeproxy.security.budgets import (
    GRACE,
    BudgetLimits,
    Budgets,
    BudgetVerdict,
    LocalBudgets,
    Period,
    RedisBudgets,
    Scope,
    Window,
    refusal,
    window_at,
)
from tests.support.clock import ManualClock
from tests.support.redis_servers import (
    SHARED_HOST,
    SHARED_PORT,
    Cluster,
    RedisServer,
    require_redis,
)

DAILY_10 = BudgetLimits(daily_usd=10.0)


def at(text: str) -> float:
    """Unix seconds of a UTC time written as ISO 8601."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def key(name: str, limits: BudgetLimits = DAILY_10) -> Scope:
    return (f"key:{name}", limits)


def team(name: str, limits: BudgetLimits) -> Scope:
    return (f"team:{name}", limits)


# --- periods ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "period", "label", "starts", "ends"),
    [
        ("2026-12-07T20:48:00", "day", "2026-12-07", "2026-12-07T00:00:00", "2026-12-08T00:00:00"),
        ("2026-12-07T00:00:00", "day", "2026-12-07", "2026-12-07T00:00:00", "2026-12-08T00:00:00"),
        ("2026-12-31T23:59:59", "day", "2026-12-31", "2026-12-31T00:00:00", "2027-01-01T00:00:00"),
        ("2026-12-07T20:48:00", "month", "2026-12", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("2028-02-29T12:00:00", "month", "2028-02", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
        ("2027-01-01T00:00:00", "month", "2027-01", "2027-01-01T00:00:00", "2027-02-01T00:00:00"),
    ],
)
def test_periods_are_utc_calendar_days_and_months(
    moment: str, period: Period, label: str, starts: str, ends: str
) -> None:
    assert window_at(period, at(moment)) == Window(period, label, at(starts), at(ends))


# --- enforcement, in process ------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(at("2026-12-07T20:48:00"))


@pytest.fixture
def local(clock: ManualClock) -> LocalBudgets:
    return LocalBudgets(clock)


async def test_spend_below_the_limit_is_allowed(local: LocalBudgets) -> None:
    await local.record([key("k1")], 9.99)
    assert await local.check([key("k1")]) == BudgetVerdict(True)


async def test_spend_that_reached_the_limit_refuses_until_the_day_ends(
    local: LocalBudgets,
) -> None:
    await local.record([key("k1")], 6.0)
    await local.record([key("k1")], 4.0)
    assert await local.check([key("k1")]) == BudgetVerdict(
        allowed=False,
        scope="key:k1",
        period="day",
        spent_usd=10.0,
        limit_usd=10.0,
        reset_in=3 * 3600 + 12 * 60,
    )


async def test_the_request_that_crosses_the_limit_is_allowed(local: LocalBudgets) -> None:
    await local.record([key("k1")], 9.0)
    assert (await local.check([key("k1")])).allowed  # its cost is not known yet
    await local.record([key("k1")], 5.0)  # what it turned out to cost
    verdict = await local.check([key("k1")])
    assert not verdict.allowed
    assert verdict.spent_usd == 14.0


async def test_a_zero_limit_refuses_everything(local: LocalBudgets) -> None:
    assert not (await local.check([key("k1", BudgetLimits(daily_usd=0))])).allowed


async def test_a_scope_without_limits_is_never_refused(local: LocalBudgets) -> None:
    await local.record([key("k1", BudgetLimits())], 1e6)
    assert (await local.check([key("k1", BudgetLimits())])).allowed


async def test_the_day_budget_resets_at_midnight_utc(
    local: LocalBudgets, clock: ManualClock
) -> None:
    limits = BudgetLimits(daily_usd=10.0, monthly_usd=100.0)
    await local.record([key("k1", limits)], 10.0)
    clock.now = at("2026-12-07T23:59:59")
    assert not (await local.check([key("k1", limits)])).allowed
    clock.advance(1.0)
    assert (await local.check([key("k1", limits)])).allowed
    assert await local.spent("key:k1") == {"day": 0.0, "month": 10.0}


async def test_the_month_budget_resets_on_the_first_at_midnight_utc(
    local: LocalBudgets, clock: ManualClock
) -> None:
    limits = BudgetLimits(monthly_usd=50.0)
    clock.now = at("2026-12-31T22:00:00")
    await local.record([key("k1", limits)], 50.0)
    verdict = await local.check([key("k1", limits)])
    assert (verdict.period, verdict.reset_in) == ("month", 2 * 3600)
    clock.now = at("2027-01-01T00:00:00")
    assert (await local.check([key("k1", limits)])).allowed


async def test_a_team_budget_refuses_every_key_of_the_team(local: LocalBudgets) -> None:
    ml = BudgetLimits(daily_usd=15.0)
    await local.record([key("k1"), team("ml", ml)], 8.0)
    await local.record([key("k2"), team("ml", ml)], 7.0)
    verdict = await local.check([key("k3"), team("ml", ml)])
    assert (verdict.allowed, verdict.scope, verdict.spent_usd) == (False, "team:ml", 15.0)
    assert (await local.check([key("k4"), team("search", ml)])).allowed


async def test_a_key_budget_refuses_its_key_only(local: LocalBudgets) -> None:
    ml = BudgetLimits(daily_usd=100.0)
    await local.record([key("k1"), team("ml", ml)], 10.0)
    assert (await local.check([key("k1"), team("ml", ml)])).scope == "key:k1"
    assert (await local.check([key("k2"), team("ml", ml)])).allowed


async def test_the_refusal_names_the_limit_that_resets_last(local: LocalBudgets) -> None:
    both = BudgetLimits(daily_usd=5.0, monthly_usd=5.0)
    await local.record([key("k1", both), team("ml", BudgetLimits(daily_usd=1.0))], 5.0)
    verdict = await local.check([key("k1", both), team("ml", BudgetLimits(daily_usd=1.0))])
    assert (verdict.scope, verdict.period) == ("key:k1", "month")


async def test_small_costs_are_summed_without_drift(local: LocalBudgets) -> None:
    for _ in range(10_000):
        await local.record([key("k1")], 0.00000105)
    assert nanos((await local.spent("key:k1"))["day"]) == 10_500_000


# --- the answer a refused client gets ---------------------------------------------------------


def test_a_refusal_says_whose_budget_which_limit_and_when_it_resets() -> None:
    verdict = BudgetVerdict(False, "key:k1", "day", 10.02, 10.0, 3 * 3600 + 12 * 60)
    err = refusal(verdict)
    assert (err.status, err.code, err.retryable, err.retry_after) == (
        429,
        "budget_exceeded",
        False,
        11520,
    )
    assert err.message == "Budget exceeded for key k1: $10.00 per day; resets in 3h12m."


@pytest.mark.parametrize(
    ("reset_in", "wait"),
    [(0.2, "1s"), (45, "45s"), (750, "12m30s"), (11520, "3h12m"), (2 * 86400 + 5 * 3600, "2d5h")],
)
def test_the_wait_until_the_reset_is_written_for_people(reset_in: float, wait: str) -> None:
    verdict = BudgetVerdict(False, "team:ml", "month", 1500.0, 1500.0, reset_in)
    assert refusal(verdict).message == (
        f"Budget exceeded for team ml: $1,500.00 per month; resets in {wait}."
    )


def test_openai_clients_see_their_own_exhausted_quota_error() -> None:
    err = refusal(BudgetVerdict(False, "key:k1", "day", 10.0, 10.0, 60.0))
    body = orjson.loads(openai.render_error(err))["error"]
    assert (openai.status_for(err), body["type"], body["code"]) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert orjson.loads(anthropic.render_error(err))["error"]["type"] == "rate_limit_error"


def test_a_store_that_does_not_answer_under_the_closed_policy_is_a_503() -> None:
    err = refusal(BudgetVerdict(False, unavailable=True))
    assert (err.status, err.code, err.retryable) == (503, "budget_unavailable", True)


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test (or run) uses."""
    return f"edgeproxy-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def shared_url(prefix: str) -> Iterator[str]:
    """The machine's Redis; every key under `prefix` is removed after the test."""
    require_redis()
    yield f"redis://{SHARED_HOST}:{SHARED_PORT}/0"
    with redis.Redis(host=SHARED_HOST, port=SHARED_PORT, socket_timeout=5.0) as client:
        names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if names:
            client.unlink(*names)


def split_address(node: str) -> tuple[str, str]:
    host, _, port = node.rpartition(":")
    return host, port


def standalone(url: str) -> Redis:
    return Redis.from_url(url, protocol=2, retry=Retry(NoBackoff(), 0), socket_timeout=5.0)


@pytest.fixture
async def clients() -> AsyncIterator[list[Redis | RedisCluster]]:
    """Clients a test opens; closed after it."""
    opened: list[Redis | RedisCluster] = []
    yield opened
    for client in opened:
        await client.aclose()


@pytest.fixture
def make(
    clients: list[Redis | RedisCluster], clock: ManualClock, prefix: str
) -> Callable[..., RedisBudgets]:
    """A RedisBudgets on a new client of `url` (or on `client`), as a new replica has."""

    def factory(
        url: str | None = None,
        *,
        client: Redis | RedisCluster | None = None,
        timeout: float = 2.0,
        on_error: Literal["open", "closed"] = "open",
    ) -> RedisBudgets:
        if client is None:
            assert url is not None
            client = standalone(url)
        clients.append(client)
        return RedisBudgets(client, prefix, clock, timeout, on_error)

    return factory


async def test_counters_are_named_by_scope_and_period_with_the_scope_as_hash_tag(
    make: Callable[..., RedisBudgets], shared_url: str, prefix: str, clock: ManualClock
) -> None:
    budgets = make(shared_url)
    day, month = window_at("day", clock()), window_at("month", clock())
    assert budgets.counter_name("key:k1", day) == f"{prefix}:budget:{{key:k1}}:d:2026-12-07"
    assert (
        budgets.counter_name("team:a{b}", month) == f"{prefix}:budget:{{team:a%7Bb%7D}}:m:2026-12"
    )


async def test_spend_is_kept_in_redis_until_a_little_after_its_period(
    make: Callable[..., RedisBudgets], shared_url: str, clock: ManualClock
) -> None:
    budgets = make(shared_url)
    await budgets.record([key("k1")], 2.5)
    with redis.Redis(host=SHARED_HOST, port=SHARED_PORT, socket_timeout=5.0) as client:
        day_name = budgets.counter_name("key:k1", window_at("day", clock()))
        month_name = budgets.counter_name("key:k1", window_at("month", clock()))
        assert int(client.get(day_name) or 0) == nanos(2.5)
        day_left, month_left = client.ttl(day_name), client.ttl(month_name)
    # from the (manual) clock's 20:48 UTC: 3h12m to midnight, 24 more days to January
    assert 0 <= 3 * 3600 + 12 * 60 + GRACE - day_left <= 5  # a second may tick meanwhile
    assert 0 <= 3 * 3600 + 12 * 60 + 24 * 86400 + GRACE - month_left <= 5


async def test_spend_survives_a_restart(make: Callable[..., RedisBudgets], shared_url: str) -> None:
    await make(shared_url).record([key("k1")], 10.0)
    restarted = make(shared_url)
    verdict = await restarted.check([key("k1")])
    assert (verdict.allowed, verdict.spent_usd) == (False, 10.0)


async def test_replicas_share_one_budget(
    make: Callable[..., RedisBudgets], shared_url: str
) -> None:
    first, second = make(shared_url), make(shared_url)
    await first.record([key("k1")], 6.0)
    await second.record([key("k1")], 4.0)
    assert not (await first.check([key("k1")])).allowed
    assert not (await second.check([key("k1")])).allowed
    assert await first.spent("key:k1") == {"day": 10.0, "month": 10.0}


async def test_a_new_day_starts_from_zero_in_redis(
    make: Callable[..., RedisBudgets], shared_url: str, clock: ManualClock
) -> None:
    budgets = make(shared_url)
    await budgets.record([key("k1")], 10.0)
    clock.now = at("2026-12-08T00:00:00")
    assert (await budgets.check([key("k1")])).allowed
    assert await budgets.spent("key:k1") == {"day": 0.0, "month": 10.0}


async def test_budgets_work_on_a_redis_cluster(
    make: Callable[..., RedisBudgets], redis_cluster: Cluster
) -> None:
    nodes = [ClusterNode(host, int(port)) for host, port in map(split_address, redis_cluster.nodes)]
    cluster = RedisCluster(startup_nodes=nodes, protocol=2, retry=Retry(NoBackoff(), 0))
    budgets = make(client=cluster)
    ml = BudgetLimits(daily_usd=15.0)
    scopes = [[key(f"k{i}"), team("ml", ml)] for i in range(8)]
    for scope in scopes:
        await budgets.record(scope, 2.0)
    verdicts = [await budgets.check(scope) for scope in scopes]
    assert {(v.allowed, v.scope, v.spent_usd) for v in verdicts} == {(False, "team:ml", 16.0)}
    assert await budgets.spent("key:k3") == {"day": 2.0, "month": 2.0}


@pytest.mark.parametrize(("policy", "allowed"), [("open", True), ("closed", False)])
async def test_a_redis_that_is_down_answers_by_the_policy_and_is_logged_once(
    make: Callable[..., RedisBudgets],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    policy: Literal["open", "closed"],
    allowed: bool,
) -> None:
    budgets: Budgets = make(redis_server.url, on_error=policy)
    await budgets.record([key("k1")], 10.0)
    redis_server.kill()
    with caplog.at_level(logging.DEBUG, "edgeproxy.security.budgets"):
        verdicts = [await budgets.check([key("k1")]) for _ in range(3)]
        await budgets.record([key("k1")], 1.0)
    assert verdicts == [BudgetVerdict(allowed, unavailable=True)] * 3
    assert budgets.errors == {"check": 3, "record": 1}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Redis check failed" in warnings[0].getMessage()

    redis_server.restart()  # no persistence: the spend before is gone
    caplog.clear()
    with caplog.at_level(logging.INFO, "edgeproxy.security.budgets"):
        assert await budgets.check([key("k1")]) == BudgetVerdict(True)
    assert [r.getMessage() for r in caplog.records] == ["budget store: Redis answers again"]


async def test_a_redis_that_hangs_costs_a_check_its_timeout_at_most(
    make: Callable[..., RedisBudgets], redis_server: RedisServer
) -> None:
    """The server is paused (SIGSTOP): without the bound the check would wait forever."""
    budgets = make(redis_server.url, timeout=0.2, on_error="closed")
    await budgets.check([key("k1")])  # connected before the server hangs
    redis_server.pause()
    try:
        assert await budgets.check([key("k1")]) == BudgetVerdict(False, unavailable=True)
        await budgets.record([key("k1")], 1.0)
    finally:
        redis_server.resume()
    assert budgets.errors == {"check": 1, "record": 1}
