"""Names resolve to groups; a group chooses among its available, fitting deployments."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from edgeproxy.config import parse
from edgeproxy.operations import Operation
from edgeproxy.providers import build_provider
from edgeproxy.providers.base import Provider
from edgeproxy.routing.needs import Needs
from edgeproxy.routing.router import ModelGroup, ModelTable

NOW = 1000.0
CHAT = Operation.CHAT


def table(models: dict[str, Any], routing: dict[str, Any] | None = None) -> ModelTable:
    """Mock providers a, b, c and an Anthropic one (no embeddings) behind the given models."""
    config = parse(
        {
            "providers": {
                "a": {"kind": "mock"},
                "b": {"kind": "mock"},
                "c": {"kind": "mock"},
                "claude": {"kind": "anthropic", "api_key": "k", "base_url": "http://x.invalid"},
            },
            "routing": routing or {},
            "models": models,
        },
        {},
    )
    providers: dict[str, Provider] = {n: build_provider(p) for n, p in config.providers.items()}
    return ModelTable(config.models, providers, config.routing)


def group(t: ModelTable, name: str) -> ModelGroup:
    found = t.resolve(name)
    assert found is not None
    return found


def names_table() -> ModelTable:
    return table(
        {
            "claude-*": {"deployments": [{"provider": "b"}]},
            "claude-special": {
                "aliases": ["special"],
                "deployments": [{"provider": "a", "model": "x"}],
            },
            "*": {"deployments": [{"provider": "a"}]},
        }
    )


def test_exact_name_wins_over_an_earlier_pattern() -> None:
    assert group(names_table(), "claude-special").pick(0.5).model == "x"


def test_an_alias_resolves_to_its_group() -> None:
    t = names_table()
    assert group(t, "special") is group(t, "claude-special")


def test_patterns_match_in_config_order() -> None:
    t = names_table()
    assert group(t, "claude-3-haiku").pick(0.0).provider.name == "b"
    assert group(t, "gpt-4o").pick(0.0).provider.name == "a"


def test_exact_names_and_aliases_are_listed_but_not_patterns() -> None:
    assert names_table().public_names == ["claude-special", "special"]


def test_fallbacks_resolve_to_groups_by_name_or_alias() -> None:
    t = table(
        {
            "main": {"fallbacks": ["backup-alias"], "deployments": [{"provider": "a"}]},
            "backup": {"aliases": ["backup-alias"], "deployments": [{"provider": "b"}]},
        }
    )
    assert group(t, "main").fallbacks == (group(t, "backup"),)


def test_a_deployment_named_in_two_groups_shares_one_health_record() -> None:
    t = table(
        {
            "m": {"deployments": [{"provider": "a", "model": "x"}]},
            "n": {"deployments": [{"provider": "a", "model": "x", "weight": 3}]},
        }
    )
    assert group(t, "m").deployments[0].health is group(t, "n").deployments[0].health
    assert list(t.health) == ["a/x"]


def three(**extra: Any) -> ModelGroup:
    """Group m over a (weight 1), b (weight 1) and c (weight 2), mock providers."""
    deployments = [
        {"provider": "a", "weight": 1},
        {"provider": "b", "weight": 1},
        {"provider": "c", "weight": 2},
    ]
    return group(table({"m": {"deployments": deployments, **extra}}), "m")


def trip(g: ModelGroup, provider: str) -> None:
    """Open the breaker of `provider`'s deployment (five consecutive failures)."""
    health = next(d.health for d in g.deployments if d.provider.name == provider)
    for _ in range(5):
        health.failed(NOW)


def shares(
    g: ModelGroup,
    strategy: str = "weighted",
    draws: int = 20_000,
    now: float = NOW,
    operation: Operation = CHAT,
    **kwargs: Any,
) -> Counter[str]:
    """How often each provider is chosen over `draws` seeded choices ("none": nothing was)."""
    rng = random.Random(7).random
    chosen = Counter[str]()
    for _ in range(draws):
        d = g.choose(strategy, now, rng, operation, **kwargs)
        chosen[d.provider.name if d else "none"] += 1
    return chosen


def test_weighted_choice_follows_the_weights_when_all_are_healthy() -> None:
    counts = shares(three())
    for name, share in (("a", 0.25), ("b", 0.25), ("c", 0.5)):
        assert abs(counts[name] / 20_000 - share) < 0.02


def test_an_open_breaker_takes_its_deployment_out_and_the_rest_keep_their_ratio() -> None:
    g = three()
    trip(g, "c")
    counts = shares(g)
    assert counts["c"] == 0
    assert abs(counts["a"] / 20_000 - 0.5) < 0.02


def test_a_deployment_comes_back_once_its_breaker_admits_probes() -> None:
    g = three()
    trip(g, "c")
    assert shares(g, draws=200, now=NOW + 60.0)["c"] > 0


def test_nothing_available_is_none_and_says_when_something_reopens() -> None:
    g = three()
    for name in "abc":
        trip(g, name)
    assert g.choose("weighted", NOW, random.random, CHAT) is None
    assert g.available_at(NOW) == NOW + 60.0


def test_excluded_deployments_are_not_chosen() -> None:
    g = three()
    tried = frozenset(d for d in g.deployments if d.provider.name != "b")
    assert set(shares(g, draws=50, exclude=tried)) == {"b"}


def test_deployments_that_cannot_serve_the_operation_are_skipped() -> None:
    t = table({"m": {"deployments": [{"provider": "claude"}, {"provider": "a"}]}})
    g = group(t, "m")
    assert set(shares(g, draws=50, operation=Operation.EMBEDDINGS)) == {"a"}


def test_a_full_deployment_is_skipped_until_a_place_frees() -> None:
    t = table({"m": {"deployments": [{"provider": "a", "max_in_flight": 1}, {"provider": "b"}]}})
    g = group(t, "m")
    busy = g.deployments[0].health
    assert busy.acquire(NOW, 0)
    assert set(shares(g, draws=50)) == {"b"}
    busy.finished(NOW, 0)
    assert busy.available(NOW)


@pytest.mark.parametrize(
    ("needs", "expected"),
    [
        (Needs(frozenset(), 10, None), {"a", "b"}),
        (Needs(frozenset({"vision"}), 10, None), {"b"}),
        (Needs(frozenset(), 9000, None), {"a"}),
        (Needs(frozenset({"vision"}), 9000, None), set()),
    ],
)
def test_capability_and_context_filters_come_before_the_strategy(
    needs: Needs, expected: set[str]
) -> None:
    t = table(
        {
            "m": {
                "deployments": [
                    {"provider": "a", "capabilities": ["tools"], "context_window": 100_000},
                    {"provider": "b", "context_window": 8192},
                ]
            }
        }
    )
    g = group(t, "m")
    assert g.filters
    assert set(shares(g, draws=100, needs=needs)) == (expected or {"none"})


def test_cost_strategy_takes_the_cheapest_priced_deployment() -> None:
    t = table(
        {
            "m": {
                "deployments": [
                    {"provider": "a", "price": {"input": 3, "output": 15}},
                    {"provider": "b"},
                    {"provider": "c", "price": {"input": 0.15, "output": 0.6}},
                ]
            }
        }
    )
    needs = Needs(frozenset(), 1000, 100)
    chosen = group(t, "m").choose("cost", NOW, random.random, CHAT, needs=needs)
    assert chosen is not None and chosen.provider.name == "c"


def test_latency_strategy_prefers_the_fastest_measured_deployment() -> None:
    g = three(strategy="latency")
    for d, ttfb in zip(g.deployments, (0.30, 0.05, 0.90), strict=True):
        d.health.succeeded(NOW, ttfb)
    counts = shares(g, "latency", draws=2000)
    assert counts["b"] / 2000 > 0.9
    assert counts["a"] > 0 and counts["c"] > 0, "exploration still visits the others"


def test_hybrid_strategy_avoids_an_unreliable_deployment() -> None:
    g = three(strategy="hybrid")
    a, b, c = (d.health for d in g.deployments)
    for health in (a, b, c):
        health.succeeded(NOW, 0.1)
    for _ in range(4):
        a.failed(NOW)
    chosen = g.choose("hybrid", NOW, random.random, CHAT)
    assert chosen is not None and chosen.provider.name != "a"
