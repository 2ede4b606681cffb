"""Everything built from one configuration: providers, model table, cache and pipeline.

Clock, randomness and sleep are injected (`Clocks`) so tests drive routing decisions.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from edgeproxy.background import Background
from edgeproxy.cache.answer import StoredAnswer
from edgeproxy.cache.lookup import LookupCache
from edgeproxy.cache.memory import MemoryCache
from edgeproxy.cache.tiered import TieredCache
from edgeproxy.carry import Kept
from edgeproxy.config import CacheConfig, Config
from edgeproxy.pipeline import Pipeline, build_pipeline
from edgeproxy.providers import build_provider
from edgeproxy.providers.base import Provider
from edgeproxy.redact import Redactor
from edgeproxy.routing.breaker import BreakerState
from edgeproxy.routing.router import ModelTable
from edgeproxy.security.audit import AuditLog, DecisionCounter
from edgeproxy.security.budgets import Budgets
from edgeproxy.security.build import Guards, build_guards
from edgeproxy.telemetry.feedback import Feedback
from edgeproxy.telemetry.incident_watch import IncidentWatch, build_incidents
from edgeproxy.telemetry.record import Costing
from edgeproxy.telemetry.request_metrics import RequestMetrics
from edgeproxy.telemetry.served import ServedLedger
from edgeproxy.telemetry.shared_metrics import SharedMetrics
from edgeproxy.telemetry.tracing import TracedLookup, Tracer, build_tracer

if TYPE_CHECKING:  # imported when configured: events (their webhook uses aiohttp), tracing
    from edgeproxy.telemetry.event_queue import EventQueue
    from edgeproxy.telemetry.spans import SpanSink


@dataclass(eq=False)
class ProxyState:
    """Everything built from one configuration."""

    config: Config
    providers: dict[str, Provider]
    table: ModelTable
    pipeline: Pipeline
    costing: Costing  # prices answers for the metrics, the cost header and budgets
    background: Background = field(default_factory=Background)
    cache: LookupCache | None = None
    decisions: DecisionCounter | None = None
    audit: AuditLog | None = None
    budgets: Budgets | None = None
    guards: Guards = field(default_factory=Guards)
    requests: RequestMetrics = field(default_factory=lambda: RequestMetrics((), {}))
    events: EventQueue | None = None
    feedback: Feedback | None = None  # the apps' quality scores, when telemetry.feedback is on
    incidents: IncidentWatch | None = None  # incident detection, unless switched off
    tracer: Tracer | None = None  # None: tracing is off
    shared_metrics: SharedMetrics | None = None  # the pod's workers' request metrics
    pools_open: bool = False
    draining: bool = False

    @cached_property
    def redactor(self) -> Redactor:
        """The one scrubber of this configuration's secrets: the relay's errors, the admin
        listener's answers (metrics included), the spans' names and attributes."""
        return Redactor(self.config.secrets())

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
    memory: MemoryCache[StoredAnswer] | None = None,
) -> LookupCache | None:
    """The cache stage when the cache is on: L1 always (`memory`: the running one, whose
    entries a reload keeps), L2 when Redis is configured, the semantic layer when a model
    group opted in (`semantic`)."""
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
    if memory is None:
        memory = MemoryCache(config.max_entries, config.max_bytes, config.max_entry_bytes)
    tiered = TieredCache(memory, remote, background, clock, time.time)
    return LookupCache(tiered, config, background, similar)


def _events(
    config: Config, table: ModelTable, guards: Guards, kept: EventQueue | None = None
) -> EventQueue | None:
    """The telemetry events queue when configured (`kept`: the running one, reused), told of
    breakers' changes and guardrail decisions (aiohttp, which its webhook uses, is imported
    only then)."""
    settings = config.telemetry.events
    if settings is None:  # nothing told: health records and a screen a reload kept included
        for health in table.health.values():
            health.breaker.on_change = None
        if guards.screen is not None:
            guards.screen.on_decision = None
        return None
    from edgeproxy.telemetry.event_queue import build_events
    from edgeproxy.telemetry.events import breaker_event, guard_event

    queue = kept or build_events(settings)

    def breaker_changed(deployment: str, state: BreakerState) -> None:
        queue.emit(breaker_event(deployment, state.value, time.time()))

    for name, health in table.health.items():
        health.breaker.on_change = functools.partial(breaker_changed, name)
    if guards.screen is not None:

        def decided(request_id: str, key_id: str | None, rule: str, action: str) -> None:
            queue.emit(guard_event(request_id, key_id, rule, action, time.time()))

        guards.screen.on_decision = decided
    return queue


def _feedback(config: Config, table: ModelTable, kept: ServedLedger | None) -> Feedback | None:
    settings = config.telemetry.feedback
    if not settings.enabled:
        return None
    if kept is None:
        kept = ServedLedger(settings.window, settings.max_ids)
    return Feedback(kept, settings, table.health)


def request_metrics(config: Config, kept: RequestMetrics | None = None) -> RequestMetrics:
    """The request metrics, their labels bounded by this configuration (`kept`: the running
    ones, relabelled, so their counts go on)."""
    groups = [model.name for model in config.models]
    providers = {name: provider.kind for name, provider in config.providers.items()}
    key_labels = config.telemetry.metrics.key_labels
    teams = config.security.auth.teams
    if kept is None:
        return RequestMetrics(groups, providers, key_labels, teams)
    kept.relabel(groups, providers, key_labels, teams)
    return kept


def build_state(
    config: Config,
    clocks: Clocks | None = None,
    span_sink: SpanSink | None = None,
    kept: Kept | None = None,
) -> ProxyState:
    """Providers, model table and pipeline for `config` (`clocks`: injected for tests; and
    `span_sink`, where ended spans go instead of the configured endpoint, when tracing is on).
    `kept`: on a reload, the running state's parts to reuse (edgeproxy.carry)."""
    clocks = clocks or Clocks()
    kept = kept or Kept()
    providers = {
        name: kept.providers.get(name) or build_provider(p) for name, p in config.providers.items()
    }
    table = ModelTable(config.models, providers, config.routing, kept.health)
    background = kept.background or Background()
    semantic = any(m.cache_semantic for m in config.models)
    cache = kept.cache or build_cache(config.cache, background, clocks.clock, semantic, kept.memory)
    costing = kept.costing or Costing(config.security.pricing.table)  # metrics, cost, budgets
    guards = kept.guards or build_guards(
        config, background, costing, clock=clocks.clock, previous=kept.previous_guards
    )
    tracing = config.telemetry.tracing
    pipeline = build_pipeline(
        table,
        clocks.clock,
        clocks.rng,
        clocks.sleep,
        TracedLookup(cache) if cache is not None and tracing.enabled else cache,
        before_route=guards.before_route,
        after_route=guards.after_route,
        affinity=kept.affinity,
    )
    if cache is not None and cache.semantic is not None:
        cache.semantic.connect(pipeline.embed)  # an embeddings group embeds through routing
    state = ProxyState(
        config,
        providers,
        table,
        pipeline,
        costing,
        background,
        cache,
        decisions=guards.decisions,
        audit=guards.audit,
        budgets=guards.budgets,
        guards=guards,
        requests=request_metrics(config, kept.requests),
        events=_events(config, table, guards, kept.events),
        feedback=_feedback(config, table, kept.served),
        incidents=build_incidents(
            config.telemetry.incidents, table, cache, background, clocks.clock
        ),
    )
    state.tracer = kept.tracer or build_tracer(tracing, state.redactor, span_sink)
    shared_dir = config.telemetry.metrics.shared_dir
    if shared_dir is not None:
        state.shared_metrics = kept.shared_metrics or SharedMetrics(shared_dir, state.requests)
    return state
