"""Upstream adapters: one module per provider kind, all behind `providers.base.Provider`."""

from __future__ import annotations

from edgeproxy.config import ProviderConfig
from edgeproxy.providers.anthropic import AnthropicProvider
from edgeproxy.providers.azure import AzureProvider
from edgeproxy.providers.base import Provider
from edgeproxy.providers.bedrock import BedrockProvider
from edgeproxy.providers.gemini import GeminiProvider
from edgeproxy.providers.mock import MockProvider
from edgeproxy.providers.openai import OpenAIProvider

_KINDS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "azure": AzureProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "bedrock": BedrockProvider,
    "mock": MockProvider,
}


def build_provider(config: ProviderConfig) -> Provider:
    return _KINDS[config.kind](config)
