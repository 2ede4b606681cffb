"""Upstream adapters: one module per provider kind, all behind `providers.base.Provider`, each
stating what its kind asks of its configuration (`Provider.rules`, applied at load)."""

from __future__ import annotations

from edgeproxy.providers.anthropic import AnthropicProvider
from edgeproxy.providers.azure import AzureProvider
from edgeproxy.providers.base import Provider
from edgeproxy.providers.bedrock import BedrockProvider
from edgeproxy.providers.gemini import GeminiProvider
from edgeproxy.providers.mock import MockProvider
from edgeproxy.providers.openai import OpenAIProvider
from edgeproxy.providers.settings import KIND_NAMES, KindRules, ProviderConfig

_KINDS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "azure": AzureProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "bedrock": BedrockProvider,
    "mock": MockProvider,
}


RULES: dict[str, KindRules] = {kind: _KINDS[kind].rules for kind in KIND_NAMES}
# The fields only some kinds accept, and which.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    field: tuple(kind for kind, rules in RULES.items() if field in rules.fields)
    for field in sorted({field for rules in RULES.values() for field in rules.fields})
}


def build_provider(config: ProviderConfig) -> Provider:
    return _KINDS[config.kind](config)
