"""Strategies choose one candidate from plain per-candidate numbers and the draws given."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from edgeproxy.config import HybridWeights, Price
from edgeproxy.routing.strategies import (
    DEFAULT_OUTPUT_TOKENS,
    estimated_cost,
    hybrid_scores,
    pick_cost,
    pick_hybrid,
    pick_latency,
    pick_weighted,
)

DRAWS = 100_000


@pytest.mark.parametrize(
    ("price", "prompt", "output", "cost"),
    [
        (None, 1000, 100, None),
        (Price(input=2.0, output=10.0), 1_000_000, 0, 2.0 + 10.0 * DEFAULT_OUTPUT_TOKENS / 1e6),
        (Price(input=2.0, output=10.0), 1_000_000, None, 2.0 + 10.0 * DEFAULT_OUTPUT_TOKENS / 1e6),
        (Price(input=2.0, output=10.0), 500_000, 100_000, 1.0 + 1.0),
    ],
)
def test_estimated_cost_assumes_default_output_when_not_capped(
    price: Price | None, prompt: int, output: int | None, cost: float | None
) -> None:
    assert estimated_cost(price, prompt, output) == (None if cost is None else pytest.approx(cost))


def test_weighted_pick_over_a_subset_follows_its_weights() -> None:
    rng = random.Random(7)
    counts = Counter(pick_weighted([2.0, 6.0], rng.random()) for _ in range(DRAWS))
    assert abs(counts[0] / DRAWS - 0.25) < 0.01
    assert abs(counts[1] / DRAWS - 0.75) < 0.01


@pytest.mark.parametrize(
    ("draw", "index"), [(0.0, 0), (0.24, 0), (0.25, 1), (0.49, 1), (0.5, 2), (0.9999999, 2)]
)
def test_weighted_pick_boundaries(draw: float, index: int) -> None:
    assert pick_weighted([1.0, 1.0, 2.0], draw) == index


@pytest.mark.parametrize(
    ("latencies", "index"),
    [
        ([0.5, 0.2, 0.9], 1),
        ([0.5, None, 0.1], 1),
        ([None, None, 0.1], 0),
        ([0.3, 0.3, 0.4], 0),
        ([0.0, 0.3], 0),
        ([0.7], 0),
    ],
)
def test_latency_picks_the_fastest_and_the_unmeasured_first(
    latencies: list[float | None], index: int
) -> None:
    assert pick_latency(latencies, 0.05, explore_draw=0.5, pick_draw=0.99) == index


@pytest.mark.parametrize(("pick_draw", "index"), [(0.0, 0), (0.33, 0), (0.34, 1), (0.999999, 2)])
def test_exploration_picks_uniformly_with_the_second_draw(pick_draw: float, index: int) -> None:
    assert pick_latency([0.1, 0.5, 0.9], 0.05, explore_draw=0.01, pick_draw=pick_draw) == index


def test_exploration_share_matches_the_configured_rate_and_spreads_evenly() -> None:
    rng = random.Random(11)
    counts = Counter(
        pick_latency([0.1, 0.5, 0.9, 2.0], 0.1, rng.random(), rng.random()) for _ in range(DRAWS)
    )
    # Exploring 10% of the time over 4 candidates sends 2.5% to each slow one.
    slow = [counts[i] / DRAWS for i in (1, 2, 3)]
    assert all(abs(share - 0.025) < 0.003 for share in slow)
    assert abs(sum(slow) * 4 / 3 - 0.1) < 0.005


def test_no_exploration_always_picks_the_fastest() -> None:
    rng = random.Random(3)
    picks = {pick_latency([0.4, 0.1], 0.0, rng.random(), rng.random()) for _ in range(1000)}
    assert picks == {1}


@pytest.mark.parametrize(
    ("costs", "index"),
    [
        ([0.3, 0.1, 0.2], 1),
        ([None, 0.5, 0.4], 2),
        ([None, 9.0], 1),
        ([0.2, 0.2, 0.1, 0.1], 2),
        ([None, None], 0),
        ([0.0, None], 0),
    ],
)
def test_cost_picks_the_cheapest_and_unpriced_last(costs: list[float | None], index: int) -> None:
    assert pick_cost(costs) == index


DEFAULT = HybridWeights()


def test_hybrid_scores_worked_by_hand_with_default_weights() -> None:
    # max cost 4, max latency 0.8:
    #   a: 0.4·(1-1/4) + 0.4·(1-0.2/0.8) + 0.2·1.0 = 0.3 + 0.3 + 0.2  = 0.8
    #   b: 0.4·(1-2/4) + 0.4·(1-0.8/0.8) + 0.2·0.5 = 0.2 + 0.0 + 0.1  = 0.3
    #   c: 0.4·(1-4/4) + 0.4·(1-0.4/0.8) + 0.2·0.9 = 0.0 + 0.2 + 0.18 = 0.38
    costs, latencies, rates = [1.0, 2.0, 4.0], [0.2, 0.8, 0.4], [1.0, 0.5, 0.9]
    assert HybridWeights(cost=0.4, latency=0.4, reliability=0.2) == DEFAULT
    assert hybrid_scores(costs, latencies, rates, DEFAULT) == pytest.approx([0.8, 0.3, 0.38])
    assert pick_hybrid(costs, latencies, rates, DEFAULT) == 0


@pytest.mark.parametrize(
    ("costs", "latencies", "rates", "scores"),
    [
        # all free: full cost weight to everyone
        ([0.0, 0.0], [0.2, 0.4], [1.0, 1.0], [0.4 + 0.2 + 0.2, 0.4 + 0.0 + 0.2]),
        # all instant: full latency weight to everyone
        ([1.0, 2.0], [0.0, 0.0], [0.0, 0.0], [0.2 + 0.4, 0.0 + 0.4]),
        # unknown cost scores 0 on cost, as the most expensive would
        ([None, 1.0, 2.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0], [0.2, 0.2 + 0.2, 0.2]),
        # unknown cost with every known price free still scores 0 on cost
        ([None, 0.0], [0.5, 0.5], [0.0, 0.0], [0.0, 0.4]),
        # unknown latency scores the full latency weight
        ([1.0, 1.0], [None, 1.0], [0.0, 0.0], [0.4, 0.0]),
        # nothing known at all: only reliability tells them apart
        ([None, None], [None, None], [0.5, 1.0], [0.4 + 0.1, 0.4 + 0.2]),
    ],
)
def test_hybrid_edge_cases(
    costs: list[float | None],
    latencies: list[float | None],
    rates: list[float],
    scores: list[float],
) -> None:
    assert hybrid_scores(costs, latencies, rates, DEFAULT) == pytest.approx(scores)


@pytest.mark.parametrize(
    ("weights", "index"),
    [
        (HybridWeights(cost=1.0, latency=0.0, reliability=0.0), 0),
        (HybridWeights(cost=0.0, latency=1.0, reliability=0.0), 1),
        (HybridWeights(cost=0.0, latency=0.0, reliability=1.0), 2),
    ],
)
def test_hybrid_pick_follows_the_weights(weights: HybridWeights, index: int) -> None:
    costs, latencies, rates = [1.0, 3.0, 2.0], [0.9, 0.1, 0.5], [0.5, 0.6, 1.0]
    assert pick_hybrid(costs, latencies, rates, weights) == index


def test_hybrid_ties_go_to_the_first() -> None:
    assert pick_hybrid([1.0, 1.0], [0.5, 0.5], [1.0, 1.0], DEFAULT) == 0


QUALITY = HybridWeights(cost=0.4, latency=0.4, reliability=0.2, quality=0.5)


@pytest.mark.parametrize(
    ("qualities", "extra"),
    [
        # known qualities add w_quality·quality
        ([0.6, 0.9], [0.3, 0.45]),
        # an unknown quality scores the mean of the known ones
        ([None, 0.8, 0.4], [0.3, 0.4, 0.2]),
        # nothing known: the term adds nothing
        ([None, None], [0.0, 0.0]),
    ],
)
def test_hybrid_quality_term(qualities: list[float | None], extra: list[float]) -> None:
    count = len(qualities)
    costs, latencies, rates = [1.0] * count, [0.5] * count, [1.0] * count
    base = hybrid_scores(costs, latencies, rates, QUALITY)
    scores = hybrid_scores(costs, latencies, rates, QUALITY, qualities)
    assert [s - b for s, b in zip(scores, base, strict=True)] == pytest.approx(extra)


def test_hybrid_prefers_the_better_quality_all_else_equal() -> None:
    same = ([1.0, 1.0], [0.5, 0.5], [1.0, 1.0])
    assert pick_hybrid(*same, QUALITY, [0.7, 0.9]) == 1
    assert pick_hybrid(*same, DEFAULT, [0.7, 0.9]) == 0, "quality weighs 0 by default"
