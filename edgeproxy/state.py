"""Everything built from one configuration: providers, model table, cache and pipeline.

Clock, randomness and sleep are injected (`Clocks`) so tests drive routing decisions.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgeproxy.background import Background
from edgeproxy.cache.answer import StoredAnswer
from edgeproxy.cache.lookup import LookupCache
from edgeproxy.cache.memory import MemoryCache
from edgeproxy.cache.tiered import TieredCache
from edgeproxy.config import CacheConfig, Config
from edgeproxy.exchange import Stage
from edgeproxy.pipeline import Pipeline, build_pipeline
from edgeproxy.providers import build_provider
from edgeproxy.providers.base import Provider
from edgeproxy.routing.router import ModelTable
from edgeproxy.security.auth import Authenticate, Keyring, KeyStore

if TYPE_CHECKING:  # redis-py is imported only when a Redis is configured
    from redis.asyncio import Redis, RedisCluster

    from edgeproxy.security.keystore import RedisKeyStore


@dataclass(eq=False)
class ProxyState:
    """Everything built from one configuration."""

    config: Config
    providers: dict[str, Provider]
    table: ModelTable
    pipeline: Pipeline
    background: Background = field(default_factory=Background)
    cache: LookupCache | None = None
    shared_redis: Redis | RedisCluster | None = None  # the top-level `redis:` section's
    keys: RedisKeyStore | None = None
    pools_open: bool = False
    draining: bool = False

    @property
    def ready(self) -> bool:
        return self.pools_open and not self.draining

    def routing_status(self) -> dict[str, Any]:
        """Every group and deployment as routing sees them now (GET /admin/routing)."""
        status = self.table.snapshot(self.pipeline.clock())
        status["hedges"] = self.pipeline.dispatch.hedges
        return status


@dataclass(frozen=True)
class Clocks:
    """Time, randomness and waiting for routing decisions: real ones, or a test's."""

    clock: Callable[[], float] = time.monotonic
    rng: Callable[[], float] = random.random
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def build_cache(
    config: CacheConfig,
    background: Background,
    clock: Callable[[], float],
    semantic: bool = False,
) -> LookupCache | None:
    """The cache stage when the cache is on: L1 always, L2 when Redis is configured, the
    semantic layer when a model group opted in (`semantic`)."""
    if not config.enabled:
        return None
    remote = None
    if config.redis.enabled:  # redis-py imported only when L2 is configured
        from edgeproxy.cache.redis import RedisCache

        remote = RedisCache(config.redis, clock=clock)
    similar = None
    if semantic:
        from edgeproxy.cache.semantic import SemanticCache

        similar = SemanticCache(config.semantic, remote)
    memory: MemoryCache[StoredAnswer] = MemoryCache(
        config.max_entries, config.max_bytes, config.max_entry_bytes
    )
    tiered = TieredCache(memory, remote, background, clock, time.time)
    return LookupCache(tiered, config, background, similar)


def guard_stages(config: Config, store: KeyStore | None = None) -> tuple[Stage, ...]:
    """The stages that run before routing: authentication when keys are required, against
    the configured keys, then `store`'s."""
    auth = config.security.auth
    if auth.mode == "none":
        return ()
    return (Authenticate(Keyring(auth.keys), store),)


def build_key_store(
    config: Config, client: Redis | RedisCluster, clock: Callable[[], float]
) -> RedisKeyStore:
    """The keys kept in Redis (`auth.redis_keys`), checked against this configuration."""
    from edgeproxy.security.key_records import KeyRules
    from edgeproxy.security.keystore import RedisKeyStore

    security = config.security
    rules = KeyRules(
        groups=frozenset(model.name for model in config.models),
        policies=security.guardrails.policies,
        configured_ids=frozenset(key.id for key in security.auth.keys),
    )
    return RedisKeyStore(client, security.redis, rules, clock=clock)


def build_state(config: Config, clocks: Clocks | None = None) -> ProxyState:
    """Providers, model table and pipeline for `config` (`clocks`: injected for tests)."""
    clocks = clocks or Clocks()
    providers = {name: build_provider(p) for name, p in config.providers.items()}
    table = ModelTable(config.models, providers, config.routing)
    background = Background()
    semantic = any(m.cache_semantic for m in config.models)
    cache = build_cache(config.cache, background, clocks.clock, semantic)
    shared_redis = keys = None
    if config.security.redis.url is not None:
        from edgeproxy.security.shared_redis import connect

        shared_redis = connect(config.security.redis)
        if config.security.auth.redis_keys:
            keys = build_key_store(config, shared_redis, clocks.clock)
    guards = guard_stages(config, keys)
    pipeline = build_pipeline(
        table, clocks.clock, clocks.rng, clocks.sleep, cache, before_route=guards
    )
    if cache is not None and cache.semantic is not None:
        cache.semantic.connect(pipeline.embed)  # an embeddings group embeds through routing
    return ProxyState(
        config, providers, table, pipeline, background, cache, shared_redis=shared_redis, keys=keys
    )
