"""A per-deployment circuit breaker: stop sending to a deployment that keeps failing, probe it
after a pause, and close again once the probes succeed.

Pure: every call takes `now` in monotonic seconds, so tests drive it with a manual clock. The
selector filters candidates with `allows` (no side effects); the forwarder takes permission
with `acquire` and reports the outcome with exactly one of `record_success`,
`record_failure` or `release`. A `retry_after` comes from `dialects.upstream.retry_after`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum

from edgeproxy.config import BreakerSettings
from edgeproxy.routing.window import SlidingCounter


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Module-level names keep the hot path (`acquire`, `record_success` when CLOSED) to plain loads.
_CLOSED, _OPEN, _HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class CircuitBreaker:
    """The state machine of `BreakerSettings`, plus cooling: a retry-after that comes with a
    failure too small to open the circuit still keeps the deployment out until it has passed,
    because the provider said not to come back sooner.

    `_until` is the one moment before which nothing is admitted: the end of the open period
    when OPEN, the end of the cooling when CLOSED. In HALF_OPEN, `_admitted` counts the probes
    in flight plus those that succeeded, so `release` gives a cancelled probe's slot back.
    Calls admitted before the circuit opened cannot be told apart from probes (`acquire`
    answers a bool), so a late success counts as a probe success only up to `_admitted`.
    """

    __slots__ = (
        "_admitted",
        "_calls",
        "_consecutive",
        "_failures",
        "_settings",
        "_succeeded",
        "_until",
        "on_change",
        "opened",
        "state",
    )

    def __init__(self, settings: BreakerSettings) -> None:
        self._settings = settings
        self.state: BreakerState = _CLOSED
        self.opened = 0
        # Told of every change of state (telemetry events); None when nobody listens.
        self.on_change: Callable[[BreakerState], None] | None = None
        self._until = -math.inf
        self._consecutive = 0
        self._calls = SlidingCounter(settings.window)
        self._failures = SlidingCounter(settings.window)
        self._admitted = 0
        self._succeeded = 0

    def allows(self, now: float) -> bool:
        """Whether `acquire(now)` would admit a call; changes nothing."""
        if now < self._until:
            return False
        return self.state is not _HALF_OPEN or self._admitted < self._settings.half_open_requests

    def acquire(self, now: float) -> bool:
        """Take permission for one call; an OPEN circuit whose pause is over turns HALF_OPEN
        and admits it as the first probe."""
        if now < self._until:
            return False
        if self.state is _CLOSED:
            return True
        if self.state is _OPEN:
            self.state = _HALF_OPEN
            if self.on_change is not None:
                self.on_change(_HALF_OPEN)
        if self._admitted < self._settings.half_open_requests:
            self._admitted += 1
            return True
        return False

    def record_success(self, now: float) -> None:
        """Count a successful call; when OPEN (a call admitted before it opened) it changes
        nothing, the pause stands."""
        if self.state is _CLOSED:
            self._consecutive = 0
            self._calls.add(now)
        elif self.state is _HALF_OPEN and self._succeeded < self._admitted:
            self._succeeded += 1
            if self._succeeded >= self._settings.half_open_requests:
                self._close()

    def record_failure(self, now: float, retry_after: float | None = None) -> None:
        """Count a failed call; `retry_after` is the provider's requested pause in seconds. It
        lengthens the open period when it opens, else it only makes the deployment cool."""
        if self.state is _CLOSED:
            self._consecutive += 1
            self._calls.add(now)
            self._failures.add(now)
            if self._consecutive >= self._settings.failure_threshold or self._rate_exceeded(now):
                self._open(now, retry_after)
                return
        elif self.state is _HALF_OPEN:
            self._open(now, retry_after)
            return
        if retry_after is not None:
            self._until = max(self._until, now + retry_after)

    def release(self) -> None:
        """A call admitted by `acquire` ended without a verdict (cancelled): a probe frees its
        slot for another one."""
        if self.state is _HALF_OPEN and self._admitted > self._succeeded:
            self._admitted -= 1

    def trip(self, now: float, pause: float) -> None:
        """Open the circuit now, whatever the counts say (an incident response): nothing is
        admitted for `pause` seconds (at least the reset timeout), then it is probed as usual."""
        self._open(now, pause)

    def available_at(self, now: float) -> float:
        """The earliest moment a call is admitted again, for a 503's retry-after. A HALF_OPEN
        circuit with every probe slot taken reports `now`: a slot frees whenever a probe ends,
        which cannot be foreseen."""
        return max(now, self._until)

    def snapshot(self, now: float) -> dict[str, object]:
        """Plain JSON-ready values for the admin status page."""
        return {
            "state": self.state.value,
            "opened": self.opened,
            "consecutive_failures": self._consecutive,
            "window_calls": int(self._calls.total(now)),
            "window_failures": int(self._failures.total(now)),
            "available_in": self._until - now if now < self._until else None,
            "probes_admitted": self._admitted,
            "probes_succeeded": self._succeeded,
        }

    def _rate_exceeded(self, now: float) -> bool:
        calls = self._calls.total(now)
        return (
            calls >= self._settings.min_requests
            and self._failures.total(now) / calls >= self._settings.error_rate
        )

    def _open(self, now: float, retry_after: float | None) -> None:
        self.state = _OPEN
        self.opened += 1
        self._until = now + max(self._settings.reset_timeout, retry_after or 0.0)
        self._admitted = self._succeeded = 0
        if self.on_change is not None:
            self.on_change(_OPEN)

    def _close(self) -> None:
        self.state = _CLOSED
        self._consecutive = 0
        self._calls.clear()
        self._failures.clear()
        self._admitted = self._succeeded = 0
        if self.on_change is not None:
            self.on_change(_CLOSED)
