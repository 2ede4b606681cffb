"""A histogram as plain numbers: fixed bucket bounds, a count per bucket, a sum.

The request path observes a few values per request (and one per stream chunk); this costs a
bisection and two additions, with no lock and no prometheus_client object on the path. A
scrape turns the counts into cumulative Prometheus buckets. Two histograms with the same
bounds merge by adding, which is how several worker processes report as one.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

# Latencies of whole requests: a cache hit in microseconds to a long stream in minutes.
REQUEST_SECONDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
# What the proxy adds, and gaps between chunks: tens of microseconds to a second.
SHORT_SECONDS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
# Tokens of one request, in and out.
TOKENS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def merge(self, other: Histogram) -> None:
        if other.bounds != self.bounds:
            raise ValueError("histograms with different bounds do not merge")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum

    def cumulative(self) -> Iterator[tuple[str, int]]:
        """(upper bound as Prometheus writes it, observations at or below it), +Inf last."""
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            yield ("+Inf" if bound == float("inf") else repr(float(bound))), total
