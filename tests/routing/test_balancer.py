"""Weighted choice follows the configured weights."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from edgeproxy.routing.balancer import WeightedChoice


def test_draws_follow_the_weights_within_tolerance() -> None:
    choice = WeightedChoice([3, 1, 6])
    rng = random.Random(42)
    counts = Counter(choice.pick(rng.random()) for _ in range(100_000))
    for index, share in ((0, 0.3), (1, 0.1), (2, 0.6)):
        assert abs(counts[index] / 100_000 - share) < 0.01


@pytest.mark.parametrize(("draw", "index"), [(0.0, 0), (0.2499, 0), (0.25, 1), (0.9999999, 1)])
def test_boundaries_of_the_cumulative_table(draw: float, index: int) -> None:
    assert WeightedChoice([1, 3]).pick(draw) == index


@pytest.mark.parametrize("weights", [[], [1, 0], [-1]])
def test_weights_must_be_positive(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        WeightedChoice(weights)
