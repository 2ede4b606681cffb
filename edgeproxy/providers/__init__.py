"""Upstream adapters: one module per provider kind, all behind `providers.base.Provider`."""

from __future__ import annotations

from edgeproxy.config import ProviderConfig
from edgeproxy.providers.anthropic import AnthropicProvider
from edgeproxy.providers.base import Provider
from edgeproxy.providers.mock import MockProvider
from edgeproxy.providers.openai import OpenAIProvider

_KINDS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "mock": MockProvider,
}


def build_provider(config: ProviderConfig) -> Provider:
    return _KINDS[config.kind](config)
