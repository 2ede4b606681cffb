"""Public names resolve exactly first, then by pattern in config order."""

from __future__ import annotations

from edgeproxy.config import parse
from edgeproxy.providers import build_provider
from edgeproxy.routing.router import ModelTable


def table() -> ModelTable:
    config = parse(
        {
            "providers": {"a": {"kind": "mock"}, "b": {"kind": "mock"}},
            "models": {
                "claude-*": {"deployments": [{"provider": "b"}]},
                "claude-special": {"deployments": [{"provider": "a", "model": "x"}]},
                "*": {"deployments": [{"provider": "a"}]},
            },
        },
        {},
    )
    return ModelTable(config.models, {n: build_provider(p) for n, p in config.providers.items()})


def test_exact_name_wins_over_an_earlier_pattern() -> None:
    group = table().resolve("claude-special")
    assert group is not None
    assert group.pick(0.5).model == "x"


def test_patterns_match_in_config_order() -> None:
    routes = table()
    claude, other = routes.resolve("claude-3-haiku"), routes.resolve("gpt-4o")
    assert claude is not None and claude.pick(0.0).provider.name == "b"
    assert other is not None and other.pick(0.0).provider.name == "a"


def test_only_exact_names_are_listed() -> None:
    assert table().public_names == ["claude-special"]
