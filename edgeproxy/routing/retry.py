"""Retry policy: how long to wait before another attempt at the same deployment, and a budget
that stops retries from multiplying the load on a provider that is already failing (which
answers are worth another attempt is `RetrySettings.on_status`).

Pure: randomness is a uniform `draw` in [0, 1). A `retry_after` comes from
`dialects.upstream.retry_after`.
"""

from __future__ import annotations

from edgeproxy.config import RetrySettings

# 2.0 ** 1024 overflows a float; any base doubled this often is far beyond any backoff_max.
_MAX_DOUBLINGS = 64


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
    """Envoy's retry budget: retries in flight stay below `budget_ratio` of the requests in
    flight, and `budget_min` concurrent retries are always allowed so a quiet sidecar can
    still retry. It bounds the extra load retries add during an outage: under heavy traffic
    at most that fraction more, whatever the attempt caps say."""

    __slots__ = ("_min", "_ratio", "active", "denied", "granted", "retrying")

    def __init__(self, settings: RetrySettings) -> None:
        self._ratio = settings.budget_ratio
        self._min = settings.budget_min
        self.active = 0
        self.retrying = 0
        self.granted = 0
        self.denied = 0

    def enter(self) -> None:
        """A client request starts (retries are not requests)."""
        self.active += 1

    def leave(self) -> None:
        self.active -= 1

    def try_acquire(self) -> bool:
        """Whether one more retry fits the budget now; an allowed one holds its place until
        `release`."""
        if self.retrying < max(self._min, self._ratio * self.active):
            self.retrying += 1
            self.granted += 1
            return True
        self.denied += 1
        return False

    def release(self) -> None:
        """A retry granted by `try_acquire` has ended."""
        self.retrying -= 1

    def snapshot(self) -> dict[str, object]:
        return {
            "active_requests": self.active,
            "retries_in_flight": self.retrying,
            "granted": self.granted,
            "denied": self.denied,
        }
