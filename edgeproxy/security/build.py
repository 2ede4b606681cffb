"""Tenancy and guardrails built from the configuration: the stages, and what they hold open.

Only what the configuration enables is built: with `auth.mode: none`, no budgets, limits or
policies, the pipeline has none of these stages and the request path costs nothing more.
The shared Redis (the top-level `redis:` section) is connected only when it is configured, and
redis-py is imported only then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeproxy.background import Background
from edgeproxy.config import Config
from edgeproxy.exchange import Stage
from edgeproxy.security.auth import Authenticate, Keyring
from edgeproxy.security.budgets import Budgets, LocalBudgets
from edgeproxy.security.spend import CheckBudget

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster


@dataclass(eq=False)
class Guards:
    """The stages before and after routing, and the resources they use."""

    before_route: tuple[Stage, ...] = ()
    after_route: tuple[Stage, ...] = ()
    budgets: Budgets | None = None
    redis: Redis | RedisCluster | None = None

    async def close(self) -> None:
        """After in-flight requests and background work: the shared Redis client."""
        if self.redis is not None:
            await self.redis.aclose()


def _shared_redis(config: Config) -> Redis | RedisCluster | None:
    settings = config.security.redis
    if settings.url is None:
        return None
    from redis.asyncio import Redis

    return Redis.from_url(
        settings.url,
        socket_timeout=max(settings.timeout, 0.05) * 4,
        socket_connect_timeout=max(settings.timeout, 0.05) * 4,
    )


def build_guards(
    config: Config, background: Background, wall_clock: Callable[[], float] = time.time
) -> Guards:
    """What `config` enables of tenancy and guardrails."""
    security = config.security
    auth = security.auth
    guards = Guards(redis=_shared_redis(config))
    if auth.mode == "none":
        return guards
    guards.before_route = (Authenticate(Keyring(auth.keys)),)
    budgeted = any(key.budget for key in auth.keys) or any(
        team.budget for team in auth.teams.values()
    )
    if budgeted or auth.redis_keys:
        guards.budgets = _budgets(config, guards.redis, wall_clock)
        stage = CheckBudget(guards.budgets, security.pricing.table, auth.teams, background)
        guards.after_route += (stage,)
    return guards


def _budgets(
    config: Config, redis: Redis | RedisCluster | None, wall_clock: Callable[[], float]
) -> Budgets:
    if redis is None:
        return LocalBudgets(wall_clock)
    from edgeproxy.security.budgets import RedisBudgets

    shared = config.security.redis
    return RedisBudgets(
        redis,
        shared.prefix,
        wall_clock,
        shared.timeout,
        config.security.budgets.on_redis_error,
    )
