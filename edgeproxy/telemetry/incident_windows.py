"""The numbers incident detection judges: recent totals in a ring of time buckets, and slow
baselines to compare them with. Pure: times are passed in, so a manual clock drives them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# A bucket index older than any real clock reading, so the first observation starts a fresh ring.
_NEVER = -(2**63)


@dataclass(frozen=True, slots=True)
class Totals:
    """What one scope (a deployment or a group) did during a window."""

    answers: float  # requests whose record was observed (a deployment's attempts may be more)
    requests: float
    errors: float
    ttfb_sum: float  # seconds, over `ttfb_count` answers that reported one
    ttfb_count: float
    cost: float  # US dollars
    seconds: float  # the time the window covers now (its span, less part of its oldest bucket)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def ttfb(self) -> float | None:
        """The mean time to first byte, None without samples."""
        return self.ttfb_sum / self.ttfb_count if self.ttfb_count else None

    @property
    def cost_per_minute(self) -> float:
        return self.cost * 60.0 / self.seconds


class RollingTotals:
    """Answers, requests, errors, time-to-first-byte samples and cost during the last `span`
    seconds, kept in `buckets` slots.

    One observation costs one bucket index and a few additions, however long the ring sat
    idle (stale slots are zeroed when time reaches them, as in routing.window); memory is fixed
    at construction. An amount counts for between `span - span/buckets` and `span` seconds.
    """

    __slots__ = (
        "_answers",
        "_cost",
        "_errors",
        "_head",
        "_requests",
        "_rings",
        "_size",
        "_ttfb_count",
        "_ttfb_sum",
        "span",
    )

    def __init__(self, span: float, buckets: int = 10) -> None:
        if span <= 0 or buckets < 1:
            raise ValueError("span must be positive and buckets at least 1")
        self.span = span
        self._size = buckets
        self._answers = [0.0] * buckets
        self._requests = [0.0] * buckets
        self._errors = [0.0] * buckets
        self._ttfb_sum = [0.0] * buckets
        self._ttfb_count = [0.0] * buckets
        self._cost = [0.0] * buckets
        self._rings = (
            self._answers,
            self._requests,
            self._errors,
            self._ttfb_sum,
            self._ttfb_count,
            self._cost,
        )
        self._head = _NEVER  # the newest bucket index the ring holds

    def add(
        self,
        now: float,
        *,
        answers: float = 0.0,
        requests: float = 0.0,
        errors: float = 0.0,
        ttfb: float | None = None,
        cost: float = 0.0,
    ) -> None:
        slot = self._slot(now)
        if slot < 0:
            return  # older than the window
        self._answers[slot] += answers
        self._requests[slot] += requests
        self._errors[slot] += errors
        if ttfb is not None:
            self._ttfb_sum[slot] += ttfb
            self._ttfb_count[slot] += 1.0
        self._cost[slot] += cost

    def totals(self, now: float) -> Totals:
        self._slot(now)
        return Totals(
            answers=sum(self._answers),
            requests=sum(self._requests),
            errors=sum(self._errors),
            ttfb_sum=sum(self._ttfb_sum),
            ttfb_count=sum(self._ttfb_count),
            cost=sum(self._cost),
            seconds=now - (self._head - self._size + 1) * self.span / self._size,
        )

    def _slot(self, now: float) -> int:
        """The ring position of the bucket holding `now` (advancing the ring to it), or -1 when
        that bucket has already left the window."""
        index = int(now * self._size // self.span)
        if index > self._head:
            self._advance(index)
        elif index <= self._head - self._size:
            return -1
        return index % self._size

    def _advance(self, index: int) -> None:
        """Make `index` the newest bucket, zeroing the slots it reuses (all after a long gap)."""
        if index - self._head >= self._size:
            stale: Iterable[int] = range(self._size)
        else:
            stale = [i % self._size for i in range(self._head + 1, index + 1)]
        for ring in self._rings:
            for i in stale:
                ring[i] = 0.0
        self._head = index


class Baseline:
    """What a measure usually is: the time-weighted mean of the samples it was taught (each
    weighing the seconds it stood for) until it has seen `span` seconds, then a moving average
    that forgets with time constant `span`. Trusted once it has seen `warmup` seconds.

    The detector teaches it only from windows with enough data and never while an incident on
    that measure is open, so an anomaly does not become the new normal.
    """

    __slots__ = ("_span", "_warmup", "learned", "value")

    def __init__(self, span: float, warmup: float) -> None:
        self._span = span
        self._warmup = warmup
        self.value: float | None = None
        self.learned = 0.0  # seconds of data it has seen

    @property
    def ready(self) -> bool:
        return self.value is not None and self.learned >= self._warmup

    def learn(self, sample: float, seconds: float) -> None:
        """`sample` stood for the last `seconds`."""
        self.learned += seconds
        value, learned = self.value, self.learned
        if value is None or learned <= 0:
            self.value = sample
            return
        if learned < self._span:
            weight = seconds / learned
        else:
            weight = 1.0 - math.exp(-seconds / self._span)
        self.value = value + weight * (sample - value)
