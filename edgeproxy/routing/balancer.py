"""Weighted random choice over a table of cumulative weights built once at load."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate


class WeightedChoice:
    """Picks index i with probability weight[i] / sum(weights), given a uniform draw in [0, 1)."""

    __slots__ = ("_cumulative", "_total")

    def __init__(self, weights: Sequence[float]) -> None:
        if not weights or any(w <= 0 for w in weights):
            raise ValueError("weights must be a non-empty sequence of positive numbers")
        self._cumulative = list(accumulate(weights))
        self._total = self._cumulative[-1]

    def pick(self, draw: float) -> int:
        index = bisect_right(self._cumulative, draw * self._total)
        return min(index, len(self._cumulative) - 1)
