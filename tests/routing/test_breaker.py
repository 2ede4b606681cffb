"""The circuit breaker's state machine, driven by a manual clock (plain floats)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from edgeproxy.config import BreakerSettings
from edgeproxy.routing.breaker import BreakerState, CircuitBreaker

SETTINGS = BreakerSettings(
    failure_threshold=3,
    error_rate=0.5,
    min_requests=10,
    window=10.0,
    reset_timeout=30.0,
    half_open_requests=2,
)
T0 = 1000.0


def opened_at(now: float, retry_after: float | None = None) -> CircuitBreaker:
    """A breaker that opened at `now` on consecutive failures."""
    breaker = CircuitBreaker(SETTINGS)
    for _ in range(SETTINGS.failure_threshold - 1):
        breaker.record_failure(now)
    breaker.record_failure(now, retry_after)
    assert breaker.state is BreakerState.OPEN
    return breaker


def half_open_at(now: float) -> CircuitBreaker:
    """A breaker that opened one reset_timeout before `now` and has admitted one probe."""
    breaker = opened_at(now - SETTINGS.reset_timeout)
    assert breaker.acquire(now)
    assert breaker.state is BreakerState.HALF_OPEN
    return breaker


def play(breaker: CircuitBreaker, outcomes: str, start: float) -> None:
    """Record `outcomes` ("S" success, "F" failure) a tenth of a second apart."""
    for i, outcome in enumerate(outcomes):
        now = start + i / 10
        if outcome == "S":
            breaker.record_success(now)
        else:
            breaker.record_failure(now)


def test_a_new_breaker_is_closed_and_admits_calls() -> None:
    breaker = CircuitBreaker(SETTINGS)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allows(T0)
    assert breaker.acquire(T0)
    assert breaker.available_at(T0) == T0


def test_consecutive_failures_open_the_breaker() -> None:
    breaker = CircuitBreaker(SETTINGS)
    play(breaker, "FF", T0)
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(T0 + 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened == 1
    assert not breaker.allows(T0 + 1)
    assert not breaker.acquire(T0 + 1)


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(SETTINGS)
    play(breaker, "FFSFF", T0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot(T0 + 1)["consecutive_failures"] == 2


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        ("SF" * 5, BreakerState.OPEN),  # 5 of 10 failed: the rate is reached
        ("FFS" * 3 + "F", BreakerState.OPEN),  # 7 of 10, never 3 in a row
        ("SF" * 4 + "F", BreakerState.CLOSED),  # 5 of 9 failed: fewer than min_requests
        ("SSF" * 3 + "F", BreakerState.CLOSED),  # 4 of 10 failed: below the rate
        ("S" * 9 + "F", BreakerState.CLOSED),
    ],
)
def test_error_rate_over_the_window_opens_the_breaker(outcomes: str, state: BreakerState) -> None:
    breaker = CircuitBreaker(SETTINGS)
    play(breaker, outcomes, T0)
    assert breaker.state is state


def test_failures_that_left_the_window_do_not_count_towards_the_rate() -> None:
    breaker = CircuitBreaker(SETTINGS)
    play(breaker, "SF" * 4 + "S", T0 - 20)  # 4 of 9 failed, long ago
    breaker.record_failure(T0)  # with them it would be 5 of 10
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot(T0)["window_calls"] == 1


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    [(None, 30.0), (10.0, 30.0), (30.0, 30.0), (90.0, 90.0)],
)
def test_open_breaker_refuses_calls_for_reset_timeout_or_a_longer_retry_after(
    retry_after: float | None, pause: float
) -> None:
    breaker = opened_at(T0, retry_after)
    assert breaker.available_at(T0) == T0 + pause
    assert not breaker.allows(T0 + pause - 0.001)
    assert not breaker.acquire(T0 + pause - 0.001)
    assert breaker.allows(T0 + pause)
    assert breaker.state is BreakerState.OPEN  # allows changes nothing


def test_open_breaker_admits_probes_after_reset_timeout() -> None:
    breaker = opened_at(T0)
    now = T0 + SETTINGS.reset_timeout
    assert breaker.acquire(now)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allows(now)
    assert breaker.acquire(now)
    assert not breaker.allows(now)
    assert not breaker.acquire(now)


def test_half_open_breaker_closes_after_enough_probe_successes() -> None:
    now = T0 + 100
    breaker = half_open_at(now)
    assert breaker.acquire(now)
    breaker.record_success(now + 1)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(now + 2)
    assert breaker.state is BreakerState.CLOSED
    snapshot = breaker.snapshot(now + 2)
    assert snapshot["consecutive_failures"] == 0
    assert snapshot["window_calls"] == snapshot["window_failures"] == 0
    assert breaker.acquire(now + 2)


def test_one_probe_failure_opens_the_breaker_again() -> None:
    now = T0 + 100
    breaker = half_open_at(now)
    breaker.record_failure(now + 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened == 2
    assert breaker.available_at(now + 1) == now + 1 + SETTINGS.reset_timeout


def test_probe_failure_with_a_long_retry_after_opens_for_the_retry_after() -> None:
    now = T0 + 100
    breaker = half_open_at(now)
    breaker.record_failure(now, retry_after=120.0)
    assert breaker.available_at(now) == now + 120.0


def test_release_frees_a_probe_slot() -> None:
    now = T0 + 100
    breaker = half_open_at(now)
    assert breaker.acquire(now)
    assert not breaker.allows(now)
    breaker.release()
    assert breaker.allows(now)
    assert breaker.acquire(now)
    assert not breaker.acquire(now)


def test_release_does_not_free_the_slot_of_a_probe_that_succeeded() -> None:
    now = T0 + 100
    breaker = half_open_at(now)
    breaker.record_success(now)
    breaker.release()  # a stray release: the one admitted probe already succeeded
    assert breaker.snapshot(now)["probes_admitted"] == 1
    assert breaker.acquire(now)
    assert not breaker.acquire(now)


def test_successes_beyond_the_admitted_probes_do_not_close_the_breaker() -> None:
    now = T0 + 100
    breaker = half_open_at(now)
    breaker.record_success(now)
    breaker.record_success(now)  # a call admitted before the breaker opened
    assert breaker.state is BreakerState.HALF_OPEN


@pytest.mark.parametrize("verdict", ["success", "release"])
def test_late_verdicts_on_an_open_breaker_change_nothing(verdict: str) -> None:
    breaker = opened_at(T0)
    if verdict == "success":
        breaker.record_success(T0 + 1)
    else:
        breaker.release()
    assert breaker.state is BreakerState.OPEN
    assert breaker.available_at(T0 + 1) == T0 + SETTINGS.reset_timeout


def test_a_late_failure_with_a_longer_retry_after_extends_the_open_period() -> None:
    breaker = opened_at(T0)
    breaker.record_failure(T0 + 1, retry_after=60.0)
    assert breaker.opened == 1
    assert breaker.available_at(T0 + 1) == T0 + 61.0


def test_retry_after_on_a_failure_that_does_not_open_cools_the_deployment() -> None:
    breaker = CircuitBreaker(SETTINGS)
    breaker.record_failure(T0, retry_after=5.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.opened == 0
    assert breaker.available_at(T0) == T0 + 5.0
    assert not breaker.allows(T0 + 4.9)
    assert not breaker.acquire(T0 + 4.9)
    assert breaker.allows(T0 + 5.0)
    assert breaker.acquire(T0 + 5.0)


def test_a_shorter_retry_after_does_not_shorten_the_cooling() -> None:
    breaker = CircuitBreaker(SETTINGS)
    breaker.record_failure(T0, retry_after=5.0)
    breaker.record_success(T0 + 1)
    breaker.record_failure(T0 + 1, retry_after=1.0)
    assert breaker.available_at(T0 + 1) == T0 + 5.0


@pytest.mark.parametrize(
    ("build", "available_in"),
    [
        (lambda: CircuitBreaker(SETTINGS), 0.0),
        (lambda: opened_at(T0 - 10), 20.0),
        (lambda: opened_at(T0 - 40), 0.0),  # its pause is over
        (lambda: half_open_at(T0), 0.0),  # a probe slot is free
    ],
)
def test_available_at_is_the_earliest_moment_a_call_is_admitted(
    build: Callable[[], CircuitBreaker], available_in: float
) -> None:
    assert build().available_at(T0) == T0 + available_in


def test_a_full_half_open_breaker_reports_now_as_it_cannot_foresee_a_probe_ending() -> None:
    breaker = half_open_at(T0)
    assert breaker.acquire(T0)
    assert not breaker.allows(T0)
    assert breaker.available_at(T0) == T0


def test_snapshot_is_plain_json() -> None:
    breaker = opened_at(T0, retry_after=45.0)
    snapshot = breaker.snapshot(T0 + 5)
    assert json.loads(json.dumps(snapshot)) == {
        "state": "open",
        "opened": 1,
        "consecutive_failures": 3,
        "window_calls": 3,
        "window_failures": 3,
        "available_in": 40.0,
        "probes_admitted": 0,
        "probes_succeeded": 0,
    }
    assert breaker.snapshot(T0 + 45)["available_in"] is None
