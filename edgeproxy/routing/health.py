"""What the proxy knows about one deployment right now: its breaker, how fast and how reliably
it answers, and how much of its local capacity (in-flight, requests and tokens per minute) is
in use. Pure bookkeeping: the time is passed in, so it is tested with a manual clock.
"""

from __future__ import annotations

import math
from typing import Any

from edgeproxy.config import BreakerSettings, DeploymentConfig
from edgeproxy.routing.breaker import CircuitBreaker
from edgeproxy.routing.window import SlidingCounter

# Weight of the newest sample in the moving averages: about the last ten calls matter.
EWMA_ALPHA = 0.2
MINUTE = 60.0


class Ewma:
    """An exponentially weighted moving average; None until the first sample."""

    __slots__ = ("alpha", "value")

    def __init__(self, alpha: float = EWMA_ALPHA, value: float | None = None) -> None:
        self.alpha = alpha
        self.value = value

    def update(self, sample: float) -> None:
        value = self.value
        self.value = sample if value is None else value + self.alpha * (sample - value)


class DeploymentHealth:
    """One deployment's live record, shared by every model group that names it."""

    __slots__ = (
        "breaker",
        "failures",
        "hedges",
        "in_flight",
        "max_in_flight",
        "name",
        "quality",
        "rate_limited_until",
        "requests",
        "rpm",
        "rpm_limit",
        "success_rate",
        "tpm",
        "tpm_limit",
        "ttfb",
        "weight_factor",
    )

    def __init__(self, config: DeploymentConfig, breaker: BreakerSettings) -> None:
        self.name = config.name
        self.breaker = CircuitBreaker(breaker)
        self.ttfb = Ewma()
        self.success_rate = Ewma(value=1.0)
        self.in_flight = 0
        self.max_in_flight = config.max_in_flight
        self.rpm_limit = config.rpm
        self.tpm_limit = config.tpm
        self.rpm = SlidingCounter(MINUTE) if config.rpm else None
        self.tpm = SlidingCounter(MINUTE) if config.tpm else None
        self.requests = 0
        self.failures = 0
        self.hedges = 0
        self.rate_limited_until = -math.inf
        # The apps' mean feedback score in [0, 1], kept by telemetry/feedback.py; None until
        # it has enough scores (the hybrid strategy's quality term).
        self.quality: float | None = None
        # What the weighted strategy multiplies this deployment's configured weight by: below
        # 1 while an incident response shifts traffic away (see ModelTable.scale_weight).
        self.weight_factor = 1.0

    @property
    def counts_tokens(self) -> bool:
        return self.tpm is not None

    def has_room(self, now: float) -> bool:
        """Whether the local ceilings leave room for one more request."""
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            return False
        if self.rpm is not None and self.rpm.total(now) >= (self.rpm_limit or 0):
            return False
        return self.tpm is None or self.tpm.total(now) < (self.tpm_limit or 0)

    def available(self, now: float) -> bool:
        """Whether a request may be sent here now (a query: nothing is taken)."""
        return self.breaker.allows(now) and self.has_room(now)

    def acquire(self, now: float, tokens: int) -> bool:
        """Take a place for one request (`tokens`: its estimated prompt, for the TPM ceiling)."""
        if not self.has_room(now) or not self.breaker.acquire(now):
            return False
        self.in_flight += 1
        self.requests += 1
        if self.rpm is not None:
            self.rpm.add(now)
        if self.tpm is not None:
            self.tpm.add(now, tokens)
        return True

    def succeeded(self, now: float, ttfb: float) -> None:
        self.breaker.record_success(now)
        self.ttfb.update(ttfb)
        self.success_rate.update(1.0)

    def failed(
        self, now: float, retry_after: float | None = None, *, rate_limited: bool = False
    ) -> None:
        """A failed call; `rate_limited`: the provider answered 429, asking for `retry_after`."""
        self.failures += 1
        self.breaker.record_failure(now, retry_after)
        self.success_rate.update(0.0)
        if rate_limited and retry_after is not None:
            self.rate_limited_until = max(self.rate_limited_until, now + retry_after)

    def rate_limited(self, now: float) -> bool:
        """Whether the provider's own rate limit keeps this deployment out now: a 429's
        retry-after has not passed (the breaker holds it out at least that long)."""
        return now < self.rate_limited_until

    def finished(self, now: float, output_tokens: int) -> None:
        """The request let go of its place (its answer was relayed, or it was abandoned)."""
        self.in_flight -= 1
        if self.tpm is not None and output_tokens:
            self.tpm.add(now, output_tokens)

    def snapshot(self, now: float) -> dict[str, Any]:
        ttfb = self.ttfb.value
        return {
            "name": self.name,
            "breaker": self.breaker.snapshot(now),
            "available": self.available(now),
            "ewma_ttfb_ms": None if ttfb is None else round(ttfb * 1000, 3),
            "success_rate": round(self.success_rate.value or 0.0, 4),
            "quality": None if self.quality is None else round(self.quality, 4),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "rpm": None if self.rpm is None else int(self.rpm.total(now)),
            "rpm_limit": self.rpm_limit,
            "tpm": None if self.tpm is None else int(self.tpm.total(now)),
            "tpm_limit": self.tpm_limit,
            "requests": self.requests,
            "failures": self.failures,
            "hedges": self.hedges,
            "weight_factor": self.weight_factor,
        }


class Lease:
    """One request's place at a deployment, from `acquire` until the answer is relayed.

    The breaker hears the verdict as soon as it is known (headers, or a stream's first bytes);
    the place itself is given back when the exchange ends, once.
    """

    __slots__ = ("_done", "_failed", "_verdict", "health", "started", "ttfb")

    def __init__(self, health: DeploymentHealth, started: float) -> None:
        self.health = health
        self.started = started
        self.ttfb: float | None = None  # once the answer's head came, how long it took
        self._verdict = False
        self._failed = False
        self._done = False

    def succeeded(self, now: float) -> None:
        self._verdict = True
        self.ttfb = now - self.started
        self.health.succeeded(now, self.ttfb)

    def failed(
        self, now: float, retry_after: float | None = None, *, rate_limited: bool = False
    ) -> None:
        self._verdict = self._failed = True
        self.health.failed(now, retry_after, rate_limited=rate_limited)

    def release(self, now: float, output_tokens: int = 0) -> None:
        """Give the place back; an admitted call that never got a verdict frees its probe."""
        if self._done:
            return
        self._done = True
        health = self.health
        if not self._verdict:
            health.breaker.release()
            waited = now - self.started
            if waited > (health.ttfb.value or 0.0):  # abandoned while slow (a lost hedge):
                health.ttfb.update(waited)  # its first byte would have come later still
        health.finished(now, output_tokens)

    def settle(self, now: float, status: int, output_tokens: int) -> None:
        """The exchange ended with `status`: a 5xx after a good start (a stream that broke, an
        answer that could not be read) is the deployment's failure too."""
        if self._verdict and status >= 500 and not self._failed:
            self.health.failed(now)
        self.release(now, output_tokens)
