"""What a configuration reload keeps from the running state, part by part.

A reload builds a whole new state (edgeproxy.state.build_state) but hands it the parts of the
old one whose configuration did not change, so nothing the proxy learned is thrown away for
an edit elsewhere in the file:

    providers       each provider whose settings are equal: its connection pool stays warm
    health          each deployment of the same name, provider and model, with equal local
                    ceilings and breaker settings: breaker, latency and success averages,
                    counters (the provider kept too, or its record would describe another
                    upstream)
    background      always: one runner per process
    cache           when the cache section (and whether a group is semantic) is unchanged:
                    L1 contents, the L2 client and its invalidation listener, the semantic layer;
                    otherwise L1 alone (contents and counters) when what makes and holds its
                    entries is unchanged (namespace, key settings, sizes): a change of TTLs,
                    of Redis or of the semantic layer keeps the entries (each with the expiry it
                    was stored with)
    costing         when the pricing table is unchanged
    guards          when the security section, the model groups and the costing are unchanged;
                    otherwise rebuilt, but the in-process rate-limit windows and budget spend
                    carry over (in Redis they live in Redis)
    requests        always: the request metrics, relabelled for the new groups and providers
    events          when the events settings are unchanged (the queue and its webhook)
    served          when the feedback settings are unchanged: answers served before the reload
                    can still be scored
    tracer          when the tracing settings and the secrets it masks are unchanged
    shared_metrics  when the shared directory is unchanged
    affinity        always: which deployment gave each recent Responses answer, by name

Incident detection is always rebuilt (it watches the model table): a reload starts its
windows afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from edgeproxy.config import CacheConfig, Config, DeploymentConfig

if TYPE_CHECKING:
    from edgeproxy.background import Background
    from edgeproxy.cache.answer import StoredAnswer
    from edgeproxy.cache.lookup import LookupCache
    from edgeproxy.cache.memory import MemoryCache
    from edgeproxy.pipeline import Pipeline
    from edgeproxy.providers.base import Provider
    from edgeproxy.routing.affinity import ResponseAffinity
    from edgeproxy.routing.health import DeploymentHealth
    from edgeproxy.routing.router import ModelTable
    from edgeproxy.security.build import Guards
    from edgeproxy.telemetry.event_queue import EventQueue
    from edgeproxy.telemetry.feedback import Feedback
    from edgeproxy.telemetry.record import Costing
    from edgeproxy.telemetry.request_metrics import RequestMetrics
    from edgeproxy.telemetry.served import ServedLedger
    from edgeproxy.telemetry.shared_metrics import SharedMetrics
    from edgeproxy.telemetry.tracing import Tracer


class Running(Protocol):
    """What a reload reads of the running state (edgeproxy.state.ProxyState)."""

    config: Config
    providers: dict[str, Provider]
    table: ModelTable
    pipeline: Pipeline
    background: Background
    cache: LookupCache | None
    costing: Costing
    guards: Guards
    requests: RequestMetrics
    events: EventQueue | None
    feedback: Feedback | None
    tracer: Tracer | None
    shared_metrics: SharedMetrics | None


@dataclass(frozen=True, eq=False)
class Kept:
    """Parts of a running state that the next one reuses (nothing, at start-up)."""

    providers: Mapping[str, Provider] = field(default_factory=dict)
    health: Mapping[str, DeploymentHealth] = field(default_factory=dict)
    background: Background | None = None
    cache: LookupCache | None = None
    memory: MemoryCache[StoredAnswer] | None = None  # L1 alone, when the cache is rebuilt
    costing: Costing | None = None
    guards: Guards | None = None
    previous_guards: Guards | None = None  # when rebuilt: whose in-process windows to keep
    requests: RequestMetrics | None = None
    events: EventQueue | None = None
    served: ServedLedger | None = None
    tracer: Tracer | None = None
    shared_metrics: SharedMetrics | None = None
    affinity: ResponseAffinity | None = None  # always kept: which deployment holds an answer

    def names(self) -> list[str]:
        """The kinds of part kept, for the reload's report."""
        kept = [
            name
            for name in ("background", "cache", "costing", "guards", "events", "tracer")
            if getattr(self, name) is not None
        ]
        if self.memory is not None:
            kept.append("cache entries")
        if self.served is not None:
            kept.append("feedback")
        if self.requests is not None:
            kept.append("request metrics")
        return kept


def _deployments(config: Config) -> dict[str, DeploymentConfig]:
    found: dict[str, DeploymentConfig] = {}
    for model in config.models:
        for deployment in model.deployments:
            found.setdefault(deployment.name, deployment)
    return found


def _same_upstream(old: DeploymentConfig, new: DeploymentConfig) -> bool:
    """Whether a deployment's live record still describes it: same upstream, same ceilings."""
    return (old.provider, old.model, old.max_in_flight, old.rpm, old.tpm) == (
        new.provider,
        new.model,
        new.max_in_flight,
        new.rpm,
        new.tpm,
    )


def _health(
    old: Running, config: Config, providers: Mapping[str, Provider]
) -> dict[str, DeploymentHealth]:
    if old.config.routing.breaker != config.routing.breaker:
        return {}
    before = _deployments(old.config)
    kept = {}
    for name, deployment in _deployments(config).items():
        previous = before.get(name)
        health = old.table.health.get(name)
        if (
            previous is not None
            and health is not None
            and deployment.provider in providers
            and _same_upstream(previous, deployment)
        ):
            kept[name] = health
    return kept


def _l1_holds(config: CacheConfig) -> tuple[object, ...]:
    """What the L1 entries depend on: their keys and the memory's sizes."""
    return (
        config.enabled,
        config.namespace,
        config.key,
        config.max_entries,
        config.max_bytes,
        config.max_entry_bytes,
    )


def _memory(old: Running, config: Config, cache_kept: bool) -> MemoryCache[StoredAnswer] | None:
    if cache_kept or old.cache is None or _l1_holds(old.config.cache) != _l1_holds(config.cache):
        return None
    return old.cache.cache.memory


def _groups(config: Config) -> list[str]:
    return [model.name for model in config.models]


def kept_from(old: Running, config: Config) -> Kept:
    """What the state built for `config` takes over from `old` (see the module docstring)."""
    before = old.config
    providers = {
        name: old.providers[name]
        for name, settings in config.providers.items()
        if name in old.providers and before.providers.get(name) == settings
    }
    semantic = any(m.cache_semantic for m in config.models)
    was_semantic = any(m.cache_semantic for m in before.models)
    cache_kept = before.cache == config.cache and semantic == was_semantic
    costing = old.costing if before.security.pricing == config.security.pricing else None
    guards_kept = (
        costing is not None
        and before.security == config.security
        and _groups(before) == _groups(config)
    )
    telemetry, was = config.telemetry, before.telemetry
    tracer_kept = was.tracing == telemetry.tracing and before.secrets() == config.secrets()
    metrics_kept = was.metrics.shared_dir == telemetry.metrics.shared_dir
    return Kept(
        providers=providers,
        health=_health(old, config, providers),
        background=old.background,
        cache=old.cache if cache_kept else None,
        memory=_memory(old, config, cache_kept),
        costing=costing,
        guards=old.guards if guards_kept else None,
        previous_guards=None if guards_kept else old.guards,
        requests=old.requests,
        events=old.events if was.events == telemetry.events else None,
        served=(
            old.feedback.ledger
            if old.feedback is not None and was.feedback == telemetry.feedback
            else None
        ),
        tracer=old.tracer if tracer_kept else None,
        shared_metrics=old.shared_metrics if metrics_kept else None,
        affinity=old.pipeline.dispatch.affinity,
    )
