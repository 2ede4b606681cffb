"""Retry policy: which answers are worth another attempt, how long to wait before one, and a
budget that stops retries from multiplying the load on a provider that is already failing.

Pure: times are monotonic seconds passed in as `now`, randomness a uniform `draw` in [0, 1).
A `retry_after` comes from `dialects.upstream.retry_after`.
"""

from __future__ import annotations

from edgeproxy.config import RetrySettings
from edgeproxy.routing.window import SlidingCounter

# 2.0 ** 1024 overflows a float; any base doubled this often is far beyond any backoff_max.
_MAX_DOUBLINGS = 64


def is_retryable_status(status: int, settings: RetrySettings) -> bool:
    return status in settings.on_status


def backoff(retry: int, settings: RetrySettings, draw: float) -> float:
    """Full jitter (AWS's "exponential backoff and jitter"): a uniform wait up to a ceiling
    that doubles from `backoff_base` per retry (counted from 1) up to `backoff_max`, so
    clients that failed together do not come back together."""
    ceiling = settings.backoff_base * 2.0 ** min(retry - 1, _MAX_DOUBLINGS)
    return draw * min(settings.backoff_max, ceiling)


def wait_before_retry(
    retry: int,
    settings: RetrySettings,
    draw: float,
    retry_after: float | None,
    remaining: float | None,
) -> float | None:
    """Seconds to wait before retrying the same deployment: the backoff, or the provider's
    `retry_after` when longer. None means do not retry: the wait is beyond `max_wait`, or it
    would reach the request's deadline (`remaining` seconds away, None when there is none),
    leaving no time for the attempt itself."""
    wait = max(backoff(retry, settings, draw), retry_after or 0.0)
    if wait > settings.max_wait or (remaining is not None and wait >= remaining):
        return None
    return wait


class RetryBudget:
    """Envoy's retry budget: retries in the last `budget_window` seconds stay below
    `budget_ratio` of the requests in it, and `budget_min` are always allowed so a quiet
    deployment can still retry. It bounds the extra load retries add during an outage."""

    __slots__ = ("_min", "_ratio", "_requests", "_retries", "denied")

    def __init__(self, settings: RetrySettings) -> None:
        self._ratio = settings.budget_ratio
        self._min = settings.budget_min
        self._requests = SlidingCounter(settings.budget_window)
        self._retries = SlidingCounter(settings.budget_window)
        self.denied = 0

    def record_request(self, now: float) -> None:
        """Count an incoming client request (retries are not requests)."""
        self._requests.add(now)

    def try_acquire(self, now: float) -> bool:
        """Whether one more retry fits the budget now; an allowed retry is counted."""
        allowed = max(self._min, self._ratio * self._requests.total(now))
        if self._retries.total(now) < allowed:
            self._retries.add(now)
            return True
        self.denied += 1
        return False

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "requests": int(self._requests.total(now)),
            "retries": int(self._retries.total(now)),
            "denied": self.denied,
        }
