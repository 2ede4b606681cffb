"""Choosing one deployment among the available candidates of a group.

The router builds plain per-candidate sequences from live health records; each strategy
returns an index into them. Random draws in [0, 1) are passed in, so choices are testable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edgeproxy.config import HybridWeights, Price
from edgeproxy.routing.balancer import WeightedChoice

# Output tokens assumed for a cost estimate when the request does not cap its answer.
DEFAULT_OUTPUT_TOKENS = 256


def estimated_cost(
    price: Price | None, needs_prompt: int, needs_output: int | None
) -> float | None:
    """What the request would cost in US dollars on a deployment; None when unpriced."""
    if price is None:
        return None
    return price.estimate(needs_prompt, needs_output or DEFAULT_OUTPUT_TOKENS)


def pick_weighted(weights: Sequence[float], draw: float) -> int:
    """Weighted random over a subset of a group (some deployments unavailable); the all-healthy
    case uses the group's precomputed `WeightedChoice`. Weights must be positive."""
    return WeightedChoice(weights).pick(draw)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _uniform(count: int, draw: float) -> int:
    return min(int(draw * count), count - 1)


def pick_latency(
    latencies: Sequence[float | None], exploration: float, explore_draw: float, pick_draw: float
) -> int:
    """Lowest time to first byte. Unmeasured (None) counts as best, so it gets measured; with
    probability `exploration` any candidate, uniformly, so a deployment measured slow (or just
    recovered) gets traffic back and its average can improve. Ties go to the first."""
    if explore_draw < exploration:
        return _uniform(len(latencies), pick_draw)
    return min(range(len(latencies)), key=lambda i: _or(latencies[i], -math.inf))


def pick_cost(costs: Sequence[float | None]) -> int:
    """Cheapest estimate; unpriced (None) ranks after every priced one. Ties go to the first."""
    return min(range(len(costs)), key=lambda i: _or(costs[i], math.inf))


def _headroom(value: float | None, largest: float, unknown: float) -> float:
    """1 - value/largest: how far below the largest a value is (1 when the largest is 0)."""
    if value is None:
        return unknown
    return 1.0 if largest <= 0 else 1.0 - value / largest


def _known_mean(values: Sequence[float | None]) -> float:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else 0.0


def hybrid_scores(
    costs: Sequence[float | None],
    latencies: Sequence[float | None],
    success_rates: Sequence[float],
    weights: HybridWeights,
    qualities: Sequence[float | None] | None = None,
) -> list[float]:
    """w_cost·(1 - cost/max_cost) + w_latency·(1 - ttfb/max_ttfb) + w_reliability·success_rate
    + w_quality·quality, the maxima taken over the known values of the candidates, success
    rates and qualities (the apps' feedback, telemetry/feedback.py) in [0, 1].

    Edge cases: a maximum of 0 (all free, all instant) gives that term its full weight to
    every known value; an unknown cost scores 0 on cost (as if the most expensive, the same
    rank pick_cost gives it); an unknown latency scores the full latency weight, so an
    unmeasured deployment gets measured, as in pick_latency; an unknown quality (too few
    scores yet) scores the mean of the known ones, neither favoured nor held back by a
    judgement nobody made (no qualities given: the term is left out).
    """
    max_cost = max((c for c in costs if c is not None), default=0.0)
    max_latency = max((t for t in latencies if t is not None), default=0.0)
    scores = [
        weights.cost * _headroom(cost, max_cost, 0.0)
        + weights.latency * _headroom(latency, max_latency, 1.0)
        + weights.reliability * rate
        for cost, latency, rate in zip(costs, latencies, success_rates, strict=True)
    ]
    if qualities is None or not weights.quality:
        return scores
    unknown = _known_mean(qualities)
    return [
        score + weights.quality * _or(quality, unknown)
        for score, quality in zip(scores, qualities, strict=True)
    ]


def pick_hybrid(
    costs: Sequence[float | None],
    latencies: Sequence[float | None],
    success_rates: Sequence[float],
    weights: HybridWeights,
    qualities: Sequence[float | None] | None = None,
) -> int:
    """The highest hybrid score; ties go to the first."""
    scores = hybrid_scores(costs, latencies, success_rates, weights, qualities)
    return max(range(len(scores)), key=scores.__getitem__)
