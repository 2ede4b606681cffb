"""Public model names to model groups, and choosing a deployment within a group.

Names resolve exactly first (names and aliases), then by `*` patterns in config order. Each
group holds its deployments, its strategy, the groups it falls back to, its retry settings and
budget, and a cumulative weight table built once (and again only when an incident response
reweighs a deployment): with every deployment available, a weighted choice is one draw and one
bisection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from fnmatch import translate
from typing import Any

from edgeproxy.config import (
    BreakerSettings,
    DeploymentConfig,
    HybridWeights,
    ModelConfig,
    RetrySettings,
    RoutingConfig,
)
from edgeproxy.dialects.translation import Translator
from edgeproxy.operations import Operation
from edgeproxy.providers.base import Provider
from edgeproxy.routing import strategies
from edgeproxy.routing.balancer import WeightedChoice
from edgeproxy.routing.health import DeploymentHealth
from edgeproxy.routing.needs import Needs, fits
from edgeproxy.routing.retry import RetryBudget


@dataclass(frozen=True, slots=True, eq=False)
class Deployment:
    """A provider and the upstream model name (None: forward the name the client asked for).

    `routes` maps each operation this deployment can serve to None (same dialect: bytes are
    forwarded) or the translator between the client's dialect and the provider's.
    """

    provider: Provider
    model: str | None
    weight: float
    routes: Mapping[Operation, Translator | None]
    config: DeploymentConfig
    health: DeploymentHealth

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True, slots=True)
class Choice:
    """How a group chooses: its strategy's knobs, fixed at load."""

    exploration: float
    hybrid: HybridWeights


class ModelGroup:
    """The deployments serving one public name, with what is needed to choose among them."""

    __slots__ = (
        "_choice",
        "_table",
        "budget",
        "cache",
        "cache_semantic",
        "cache_ttl",
        "context_fallbacks",
        "deployments",
        "fallbacks",
        "filters",
        "hedge_after",
        "name",
        "operations",
        "reads_needs",
        "retry",
        "strategy",
    )

    def __init__(
        self, config: ModelConfig, deployments: tuple[Deployment, ...], choice: Choice
    ) -> None:
        self.name = config.name
        self.deployments = deployments
        self.operations = frozenset(op for d in deployments for op in d.routes)
        self.strategy = config.strategy
        self.retry: RetrySettings = config.retry
        self.budget = RetryBudget(config.retry)
        self.hedge_after = config.hedge_after
        self.cache = config.cache
        self.cache_ttl = config.cache_ttl
        self.cache_semantic = config.cache_semantic
        self.fallbacks: tuple[ModelGroup, ...] = ()
        self.context_fallbacks: tuple[ModelGroup, ...] = ()
        self.filters = any(
            d.config.capabilities is not None or d.config.context_window is not None
            for d in deployments
        )
        # Whether requests must be read for what they need before a deployment is chosen
        # (filters, cost-aware strategies, token ceilings; here or, see ModelTable, in a
        # fallback).
        self.reads_needs = (
            self.filters
            or config.strategy in ("cost", "hybrid")
            or any(d.health.counts_tokens for d in deployments)
        )
        self._table = WeightedChoice([d.weight for d in deployments])
        self._choice = choice

    def reweigh(self) -> None:
        """Rebuild the weight table after a deployment's `health.weight_factor` changed."""
        self._table = WeightedChoice([d.weight * d.health.weight_factor for d in self.deployments])

    def pick(self, draw: float) -> Deployment:
        """The weighted choice over every deployment, regardless of health."""
        if len(self.deployments) == 1:
            return self.deployments[0]
        return self.deployments[self._table.pick(draw)]

    def fitting(self, operation: Operation, needs: Needs | None) -> list[Deployment]:
        """The deployments that serve `operation` and can take a request with these needs."""
        return [
            d
            for d in self.deployments
            if operation in d.routes
            and (needs is None or fits(needs, d.config.capabilities, d.config.context_window))
        ]

    def choose(
        self,
        strategy: str,
        now: float,
        rng: Callable[[], float],
        operation: Operation,
        *,
        needs: Needs | None = None,
        exclude: Set[Deployment] = frozenset(),
    ) -> Deployment | None:
        """The deployment to try next, or None when none that fits is available now."""
        if strategy == "weighted" and needs is None and not exclude:
            first = self.pick(rng())
            if operation in first.routes and first.health.available(now):
                return first
        candidates = [
            d
            for d in self.fitting(operation, needs)
            if d not in exclude and d.health.available(now)
        ]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        return candidates[self._rank(strategy, candidates, rng, needs)]

    def _rank(
        self,
        strategy: str,
        candidates: list[Deployment],
        rng: Callable[[], float],
        needs: Needs | None,
    ) -> int:
        if strategy == "weighted":
            scaled = [d.weight * d.health.weight_factor for d in candidates]
            return strategies.pick_weighted(scaled, rng())
        latencies = [d.health.ttfb.value for d in candidates]
        if strategy == "latency":
            return strategies.pick_latency(latencies, self._choice.exploration, rng(), rng())
        prompt, output = (needs.prompt_tokens, needs.output_tokens) if needs else (0, None)
        costs = [strategies.estimated_cost(d.config.price, prompt, output) for d in candidates]
        if strategy == "cost":
            return strategies.pick_cost(costs)
        rates = [d.health.success_rate.value or 0.0 for d in candidates]
        weights = self._choice.hybrid
        qualities = [d.health.quality for d in candidates] if weights.quality else None
        return strategies.pick_hybrid(costs, latencies, rates, weights, qualities)

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "strategy": self.strategy,
            "deployments": [
                {
                    "name": d.name,
                    "provider": d.provider.name,
                    "model": d.model,
                    "weight": d.weight,
                }
                for d in self.deployments
            ],
            "fallbacks": [g.name for g in self.fallbacks],
            "context_fallbacks": [g.name for g in self.context_fallbacks],
            "hedge_after_s": self.hedge_after,
            "retry_budget": self.budget.snapshot(),
        }

    def available_at(self, now: float) -> float:
        """The earliest time a deployment of this group admits a request again."""
        return min(d.health.breaker.available_at(now) for d in self.deployments)


class ModelTable:
    """Resolves a requested model name to its group, or None when nothing serves it.

    Deployments of the same name share one health record across groups; `kept` gives the
    records a configuration reload carries over (edgeproxy.carry), by deployment name.
    """

    __slots__ = ("_exact", "_patterns", "groups", "health")

    def __init__(
        self,
        models: tuple[ModelConfig, ...],
        providers: Mapping[str, Provider],
        routing: RoutingConfig | None = None,
        kept: Mapping[str, DeploymentHealth] | None = None,
    ) -> None:
        routing = routing or RoutingConfig()
        breaker = routing.breaker
        choice = Choice(routing.exploration, routing.hybrid)
        self._exact: dict[str, ModelGroup] = {}
        self._patterns: list[tuple[Callable[[str], re.Match[str] | None], ModelGroup]] = []
        self.health: dict[str, DeploymentHealth] = {}
        self.groups: list[ModelGroup] = []
        by_name: dict[str, ModelGroup] = {}
        for model in models:
            deployments = self._deployments(model, providers, breaker, kept or {})
            group = ModelGroup(model, deployments, choice)
            self.groups.append(group)
            by_name[model.name] = group
            if model.is_pattern:
                self._patterns.append((re.compile(translate(model.name)).match, group))
            else:
                self._exact[model.name] = group
            for alias in model.aliases:
                self._exact[alias] = group
        for model, group in zip(models, self.groups, strict=True):
            group.fallbacks = tuple(self._named(n, by_name) for n in model.fallbacks)
            group.context_fallbacks = tuple(
                self._named(n, by_name) for n in model.context_fallbacks
            )
        for group in self.groups:  # a fallback that filters needs the request read up front
            group.reads_needs = group.reads_needs or any(
                g.reads_needs for g in (*group.fallbacks, *group.context_fallbacks)
            )

    def _deployments(
        self,
        model: ModelConfig,
        providers: Mapping[str, Provider],
        breaker: BreakerSettings,
        kept: Mapping[str, DeploymentHealth],
    ) -> tuple[Deployment, ...]:
        deployments = []
        for d in model.deployments:
            provider = providers[d.provider]
            health = self.health.get(d.name)
            if health is None:
                health = kept.get(d.name) or DeploymentHealth(d, breaker)
                self.health[d.name] = health
            routes = provider.routes(model.unsupported_params)
            deployments.append(Deployment(provider, d.model, d.weight, routes, d, health))
        return tuple(deployments)

    def scale_weight(self, deployment: str, factor: float) -> None:
        """Weigh `deployment` at `factor` (> 0) times its configured weight in every group that
        names it: an incident response shifting traffic away; 1 restores it. Only the weighted
        strategy reads weights."""
        health = self.health[deployment]
        health.weight_factor = factor
        for group in self.groups:
            if any(d.health is health for d in group.deployments):
                group.reweigh()

    def _named(self, name: str, by_name: Mapping[str, ModelGroup]) -> ModelGroup:
        """A fallback target: a group's name or alias (checked at load)."""
        return by_name.get(name) or self._exact[name]

    @property
    def public_names(self) -> list[str]:
        """The exact names (and aliases) a client can list; patterns are not enumerable."""
        return list(self._exact)

    def snapshot(self, now: float) -> dict[str, Any]:
        """Groups and deployment health, as plain JSON values."""
        return {
            "groups": [g.snapshot(now) for g in self.groups],
            "deployments": [h.snapshot(now) for h in self.health.values()],
        }

    def resolve(self, name: str) -> ModelGroup | None:
        group = self._exact.get(name)
        if group is not None:
            return group
        for match, candidate in self._patterns:
            if match(name):
                return candidate
        return None
