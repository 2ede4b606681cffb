"""Retry policy: statuses, jittered backoff, waits bounded by max_wait and the deadline, and
the retry budget."""

from __future__ import annotations

import math
import random

import pytest

from edgeproxy.config import RetrySettings
from edgeproxy.routing.retry import RetryBudget, backoff, wait_before_retry

SETTINGS = RetrySettings(
    backoff_base=0.5,
    backoff_max=4.0,
    max_wait=10.0,
    budget_ratio=0.2,
    budget_min=3,
)
T0 = 1000.0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (429, True),
        (500, True),
        (503, True),
        (529, True),
        (401, True),
        (403, True),
        (400, False),
        (404, False),
    ],
)
def test_the_default_retry_statuses(status: int, retryable: bool) -> None:
    assert (status in RetrySettings().on_status) is retryable


@pytest.mark.parametrize(
    ("retry", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (10_000, 4.0)],
)
def test_backoff_ceiling_doubles_per_retry_up_to_backoff_max(retry: int, ceiling: float) -> None:
    assert backoff(retry, SETTINGS, 0.5) == pytest.approx(ceiling / 2)


@pytest.mark.parametrize("retry", [1, 2, 3, 6])
def test_backoff_is_full_jitter_between_zero_and_the_ceiling(retry: int) -> None:
    ceiling = min(SETTINGS.backoff_max, SETTINGS.backoff_base * 2 ** (retry - 1))
    rng = random.Random(retry)
    waits = [backoff(retry, SETTINGS, rng.random()) for _ in range(1000)]
    assert all(0.0 <= wait < ceiling for wait in waits)
    assert backoff(retry, SETTINGS, 0.0) == 0.0
    assert min(waits) < ceiling / 10 and max(waits) > ceiling * 0.9


@pytest.mark.parametrize(
    ("retry_after", "remaining", "wait"),
    [
        (None, None, 1.0),  # the backoff: half of the third retry's ceiling of 2 s
        (0.5, None, 1.0),  # a shorter retry-after: the backoff
        (6.0, None, 6.0),  # a longer retry-after is honoured
        (10.0, None, 10.0),  # exactly max_wait
        (10.5, None, None),  # beyond max_wait: give up on this deployment
        (None, 5.0, 1.0),
        (6.0, 5.0, None),  # the retry-after outlasts the deadline
        (None, 1.0, None),  # the wait would end at the deadline, with no time left to try
        (None, 0.0, None),  # the deadline has passed
    ],
)
def test_wait_before_retry_honours_retry_after_within_max_wait_and_the_deadline(
    retry_after: float | None, remaining: float | None, wait: float | None
) -> None:
    assert wait_before_retry(3, SETTINGS, 0.5, retry_after, remaining) == wait


def test_wait_before_retry_never_overflows_on_a_huge_retry_count() -> None:
    wait = wait_before_retry(10_000, SETTINGS, 0.999, None, None)
    assert wait is not None
    assert math.isfinite(wait)


def test_budget_allows_budget_min_concurrent_retries_with_no_traffic() -> None:
    budget = RetryBudget(SETTINGS)
    assert [budget.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert budget.denied == 1


def test_budget_min_of_zero_allows_no_retry_without_traffic() -> None:
    budget = RetryBudget(RetrySettings(budget_min=0))
    assert not budget.try_acquire()


@pytest.mark.parametrize(("active", "allowed"), [(10, 3), (15, 3), (20, 4), (50, 10)])
def test_retries_in_flight_stay_within_the_ratio_of_requests_in_flight(
    active: int, allowed: int
) -> None:
    budget = RetryBudget(SETTINGS)
    for _ in range(active):
        budget.enter()
    granted = sum(budget.try_acquire() for _ in range(allowed + 5))
    assert (granted, budget.denied) == (allowed, 5)


def test_a_finished_retry_gives_its_place_back() -> None:
    budget = RetryBudget(SETTINGS)
    for _ in range(3):
        assert budget.try_acquire()
    assert not budget.try_acquire()
    budget.release()
    assert budget.try_acquire()


def test_requests_that_ended_no_longer_fund_retries() -> None:
    budget = RetryBudget(SETTINGS)
    for _ in range(50):
        budget.enter()
    for _ in range(50):
        budget.leave()
    assert sum(budget.try_acquire() for _ in range(10)) == SETTINGS.budget_min


def test_budget_snapshot_counts_requests_retries_and_denials() -> None:
    budget = RetryBudget(SETTINGS)
    for _ in range(5):
        budget.enter()
    for _ in range(4):
        budget.try_acquire()
    assert budget.snapshot() == {
        "active_requests": 5,
        "retries_in_flight": 3,
        "granted": 3,
        "denied": 1,
    }
