"""Public model names to deployments: exact names first, then `*` patterns in config order."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import translate

from edgeproxy.config import ModelConfig
from edgeproxy.dialects.translation import Translator
from edgeproxy.operations import Operation
from edgeproxy.providers.base import Provider
from edgeproxy.routing.balancer import WeightedChoice


@dataclass(frozen=True, slots=True)
class Deployment:
    """A provider and the upstream model name (None: forward the name the client asked for).

    `routes` maps each operation this deployment can serve to None (same dialect: bytes are
    forwarded) or the translator between the client's dialect and the provider's.
    """

    provider: Provider
    model: str | None
    weight: float
    routes: Mapping[Operation, Translator | None]


class ModelGroup:
    """The deployments serving one public name, with their weight table built once."""

    __slots__ = ("_choice", "deployments", "name")

    def __init__(self, name: str, deployments: tuple[Deployment, ...]) -> None:
        self.name = name
        self.deployments = deployments
        self._choice = WeightedChoice([d.weight for d in deployments])

    def pick(self, draw: float) -> Deployment:
        if len(self.deployments) == 1:
            return self.deployments[0]
        return self.deployments[self._choice.pick(draw)]


class ModelTable:
    """Resolves a requested model name to its group, or None when nothing serves it."""

    __slots__ = ("_exact", "_patterns")

    def __init__(self, models: tuple[ModelConfig, ...], providers: Mapping[str, Provider]) -> None:
        self._exact: dict[str, ModelGroup] = {}
        self._patterns: list[tuple[Callable[[str], re.Match[str] | None], ModelGroup]] = []
        for model in models:
            deployments = []
            for d in model.deployments:
                provider = providers[d.provider]
                routes = provider.routes(model.unsupported_params)
                deployments.append(Deployment(provider, d.model, d.weight, routes))
            group = ModelGroup(model.name, tuple(deployments))
            if model.is_pattern:
                self._patterns.append((re.compile(translate(model.name)).match, group))
            else:
                self._exact[model.name] = group

    @property
    def public_names(self) -> list[str]:
        """The exact names a client can list; patterns are not enumerable."""
        return list(self._exact)

    def resolve(self, name: str) -> ModelGroup | None:
        group = self._exact.get(name)
        if group is not None:
            return group
        for match, candidate in self._patterns:
            if match(name):
                return candidate
        return None
