"""Routing recommendations from scripted traffic and scores: the cheapest deployment within
the bounds of the best, the savings against the traffic now, and why there is none."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.config import parse
from edgeproxy.pricing import PricingTable, load_pricing
from edgeproxy.providers import build_provider
from edgeproxy.routing.router import ModelTable
from edgeproxy.telemetry.feedback import Accepted, Feedback
from edgeproxy.telemetry.feedback_settings import FeedbackSettings
from edgeproxy.telemetry.recommend import Bounds, Recommender, recommendations
from edgeproxy.telemetry.served import ServedLedger
from tests.support.clock import ManualClock
from tests.support.records import answered

SETTINGS = FeedbackSettings(
    enabled=True, min_count=3, quality_samples=4, quality_tolerance=0.03, latency_tolerance=0.25
)
BOUNDS = Bounds.of(SETTINGS)
PRICED = ("big", "mid", "slow", "cheap")


def pricing() -> PricingTable:
    """The mock provider's models priced (what they cost comes from each request's record)."""
    price = {"input": 1, "output": 1, "source": "https://example.test", "as_of": "2025-01-01"}
    return load_pricing({"mock": {name: price for name in PRICED}})


def table(groups: dict[str, list[str]]) -> ModelTable:
    """Each group over mock deployments named after (and serving) the listed models."""
    models = {
        group: {"deployments": [{"provider": "mock", "model": n, "name": n} for n in names]}
        for group, names in groups.items()
    }
    config = parse({"providers": {"mock": {"kind": "mock"}}, "models": models}, {})
    providers = {name: build_provider(p) for name, p in config.providers.items()}
    return ModelTable(config.models, providers, config.routing)


def script(
    taken: Feedback,
    deployment: str,
    *,
    requests: int,
    cost: float,
    ttfb: float,
    scores: list[float],
    group: str = "chat",
) -> None:
    """`requests` answers of `deployment` at `cost` dollars each, the first ones rated."""
    for n in range(requests):
        request_id = f"{group}-{deployment}-{n}"
        taken.ledger.served(answered(request_id, deployment, group=group, cost_usd=cost, ttfb=ttfb))
        if n < len(scores):
            label = "wrong" if scores[n] < 0.8 else None
            assert isinstance(taken.submit(request_id, scores[n], label), Accepted)


def feedback(clock: ManualClock | None = None) -> Feedback:
    return Feedback(ServedLedger(3600.0, 10_000, clock or ManualClock()), SETTINGS, {})


def four_deployments(taken: Feedback) -> None:
    """Best quality: slow (0.93, but out on latency); best latency: big and cheap (0.30 s).
    Within 0.03 of 0.93 and 25% of 0.30 s: big, and mid exactly on both bounds' edge."""
    script(taken, "big", requests=40, cost=0.004, ttfb=0.30, scores=[0.92] * 4)
    script(taken, "mid", requests=20, cost=0.002, ttfb=0.375, scores=[0.90] * 4)
    script(taken, "slow", requests=20, cost=0.001, ttfb=0.50, scores=[0.93] * 4)
    script(taken, "cheap", requests=20, cost=0.0005, ttfb=0.30, scores=[0.70] * 4)


def group_view(result: dict[str, Any], name: str = "chat") -> dict[str, Any]:
    found: dict[str, Any] = next(g for g in result["groups"] if g["group"] == name)
    return found


def chat_group(taken: Feedback, deployments: list[str], bounds: Bounds = BOUNDS) -> dict[str, Any]:
    """Group chat's part of the recommendations, over `deployments`."""
    return group_view(recommendations(table({"chat": deployments}), taken, pricing(), bounds))


def test_the_cheapest_deployment_within_the_bounds_is_recommended_with_its_savings() -> None:
    taken = feedback()
    four_deployments(taken)
    result = recommendations(table({"chat": list(PRICED)}), taken, pricing(), BOUNDS)
    assert (result["window_s"], result["bounds"]) == (
        3600.0,
        {"quality_tolerance": 0.03, "latency_tolerance": 0.25, "min_count": 3},
    )
    chat = group_view(result)
    # the traffic now: (40·0.004 + 20·0.002 + 20·0.001 + 20·0.0005) / 100 requests, per 1,000
    assert (chat["requests"], chat["cost_per_1k_usd"]) == (100, 2.3)
    assert (chat["best_quality"], chat["best_p50_ttfb_ms"]) == (0.93, 300.0)
    assert chat["recommendation"] == {
        "deployment": "mid",
        "cost_per_1k_usd": 2.0,
        "quality": 0.9,
        "p50_ttfb_ms": 375.0,
        "share_now": 0.2,
        "savings_per_1k_usd": 0.3,
    }
    assert chat["reason"] is None
    assert chat["deployments"][0] == {
        "name": "big",
        "provider": "mock",
        "requests": 40,
        "share": 0.4,
        "cost_per_1k_usd": 4.0,
        "priced": True,
        "quality": 0.92,
        "scores": 4,
        "labels": {},
        "p50_ttfb_ms": 300.0,
        "missing": [],
    }
    assert chat["deployments"][3]["labels"] == {"wrong": 4}


@pytest.mark.parametrize(
    ("bounds", "chosen", "savings"),
    [
        (Bounds(0.03, 0.25, 3), "mid", 0.3),
        (Bounds(0.03, 0.2, 3), "big", -1.7),  # mid is now too slow: big costs more than now
        (Bounds(0.03, 1.0, 3), "slow", 1.3),  # slow's latency is within bounds
        (Bounds(0.25, 0.0, 3), "cheap", 1.8),  # cheap's quality is within bounds
    ],
)
def test_the_bounds_decide_which_deployments_qualify(
    bounds: Bounds, chosen: str, savings: float
) -> None:
    taken = feedback()
    four_deployments(taken)
    recommended = chat_group(taken, list(PRICED), bounds)["recommendation"]
    assert (recommended["deployment"], recommended["savings_per_1k_usd"]) == (chosen, savings)


@pytest.mark.parametrize(
    ("mid_quality", "mid_ttfb", "chosen"),
    [
        (0.95, 0.30, "mid"),  # the same cost: the better quality
        (0.90, 0.25, "mid"),  # the same cost and quality: the lower latency
        (0.90, 0.30, "big"),  # alike in everything: config order
    ],
)
def test_ties_on_cost_go_to_quality_then_latency_then_config_order(
    mid_quality: float, mid_ttfb: float, chosen: str
) -> None:
    taken = feedback()
    script(taken, "big", requests=3, cost=0.002, ttfb=0.30, scores=[0.90] * 3)
    script(taken, "mid", requests=3, cost=0.002, ttfb=mid_ttfb, scores=[mid_quality] * 3)
    chat = chat_group(taken, ["big", "mid"])
    assert chat["recommendation"]["deployment"] == chosen
    assert chat["recommendation"]["savings_per_1k_usd"] == 0.0


def test_a_group_of_one_deployment_has_nothing_to_recommend() -> None:
    taken = feedback()
    script(taken, "big", requests=5, cost=0.004, ttfb=0.30, scores=[0.9] * 4)
    chat = chat_group(taken, ["big"])
    assert chat["recommendation"] is None
    assert chat["reason"] == "one deployment: nothing to choose between"
    assert chat["cost_per_1k_usd"] == 4.0


def test_without_enough_data_each_deployment_says_what_it_lacks() -> None:
    taken = feedback()
    script(taken, "big", requests=5, cost=0.004, ttfb=0.30, scores=[0.9] * 4)
    script(taken, "mid", requests=2, cost=0.002, ttfb=0.30, scores=[0.9])
    chat = chat_group(taken, ["big", "mid", "slow"])
    assert (chat["recommendation"], chat["best_quality"]) == (None, None)
    assert chat["reason"].startswith("not enough data: 1 deployment(s) have 3 scores, 3 requests")
    assert [d["missing"] for d in chat["deployments"]] == [
        [],
        ["1 of 3 scores", "2 of 3 requests in the window"],
        ["0 of 3 scores", "0 of 3 requests in the window", "no time to first byte measured"],
    ]
    assert chat["deployments"][2]["quality"] is None


def test_traffic_older_than_the_window_no_longer_counts() -> None:
    clock = ManualClock()
    taken = feedback(clock)
    four_deployments(taken)
    clock.advance(3600.0)
    chat = chat_group(taken, list(PRICED))
    assert (chat["requests"], chat["cost_per_1k_usd"], chat["recommendation"]) == (0, None, None)
    assert chat["deployments"][0]["missing"] == ["0 of 3 requests in the window"]


def test_an_unpriced_deployment_sets_the_bounds_but_is_never_recommended() -> None:
    taken = feedback()
    script(taken, "house", requests=10, cost=0.0, ttfb=0.30, scores=[0.95] * 4)
    script(taken, "big", requests=10, cost=0.004, ttfb=0.30, scores=[0.93] * 4)
    script(taken, "cheap", requests=10, cost=0.0005, ttfb=0.30, scores=[0.70] * 4)
    chat = chat_group(taken, ["house", "big", "cheap"])
    house = chat["deployments"][0]
    assert (house["priced"], house["cost_per_1k_usd"]) == (False, None)
    assert chat["best_quality"] == 0.95
    assert chat["recommendation"]["deployment"] == "big"
    assert chat["recommendation"]["savings_per_1k_usd"] is None
    assert chat["cost_per_1k_usd"] is None
    assert chat["reason"] == "savings unknown: some of the traffic went to unpriced deployments"


def test_no_recommendation_when_no_priced_deployment_is_within_the_bounds() -> None:
    taken = feedback()
    script(taken, "house", requests=10, cost=0.0, ttfb=0.30, scores=[0.95] * 4)
    script(taken, "cheap", requests=10, cost=0.0005, ttfb=0.30, scores=[0.70] * 4)
    chat = chat_group(taken, ["house", "cheap"])
    assert chat["recommendation"] is None
    assert chat["reason"] == "no priced deployment within the bounds of the best"


def test_a_recommender_uses_the_configured_bounds_unless_given_others() -> None:
    taken = feedback()
    four_deployments(taken)
    recommend = Recommender(table({"chat": list(PRICED)}), taken, pricing(), BOUNDS)
    assert group_view(recommend())["recommendation"]["deployment"] == "mid"
    loose = Bounds(0.25, 0.0, 3)
    assert group_view(recommend(loose))["recommendation"]["deployment"] == "cheap"
