"""The model table the incident tests watch: group `chat` served by deployments `primary` and
`backup` (mock providers)."""

from __future__ import annotations

from edgeproxy.config import parse
from edgeproxy.providers import build_provider
from edgeproxy.routing.router import ModelTable


def routing_table() -> ModelTable:
    config = parse(
        {
            "providers": {"a": {"kind": "mock"}, "b": {"kind": "mock"}},
            "models": {
                "chat": {
                    "deployments": [
                        {"provider": "a", "name": "primary"},
                        {"provider": "b", "name": "backup"},
                    ]
                }
            },
        },
        {},
    )
    providers = {n: build_provider(p) for n, p in config.providers.items()}
    return ModelTable(config.models, providers, config.routing)
