"""A deployment's live record: local ceilings, moving averages, and leases that give places
back exactly once, on a manual clock."""

from __future__ import annotations

import pytest

from edgeproxy.config import BreakerSettings, DeploymentConfig
from edgeproxy.routing.health import DeploymentHealth, Ewma, Lease

T0 = 1000.0


def health(**limits: int) -> DeploymentHealth:
    return DeploymentHealth(DeploymentConfig("p", "m", name="p/m", **limits), BreakerSettings())


def test_a_moving_average_starts_at_its_first_sample_and_leans_to_new_ones() -> None:
    average = Ewma(alpha=0.5)
    average.update(1.0)
    average.update(3.0)
    assert average.value == 2.0


def test_max_in_flight_holds_requests_back_until_a_place_is_given_back() -> None:
    h = health(max_in_flight=2)
    assert h.acquire(T0, 10) and h.acquire(T0, 10)
    assert not h.available(T0) and not h.acquire(T0, 10)
    h.finished(T0, 0)
    assert h.acquire(T0, 10)


def test_requests_per_minute_are_counted_over_a_sliding_minute() -> None:
    h = health(rpm=3)
    for _ in range(3):
        assert h.acquire(T0, 0)
        h.finished(T0, 0)
    assert not h.available(T0 + 30)
    assert h.available(T0 + 61)


def test_tokens_per_minute_count_the_prompt_then_the_answer() -> None:
    h = health(tpm=1000)
    assert h.counts_tokens
    assert h.acquire(T0, 600)
    assert h.available(T0)
    h.finished(T0, 500)
    assert not h.available(T0), "600 prompt + 500 output tokens reach the ceiling"
    assert h.available(T0 + 61)


def test_successes_and_failures_move_the_success_rate_and_latency() -> None:
    h = health()
    h.succeeded(T0, 0.2)
    h.failed(T0)
    assert h.ttfb.value == pytest.approx(0.2)
    assert h.success_rate.value == pytest.approx(0.8)
    assert (h.failures, h.breaker.snapshot(T0)["consecutive_failures"]) == (1, 1)


@pytest.mark.parametrize(
    ("retry_after", "rate_limited", "held_back"),
    [
        (20.0, True, True),
        (None, True, False),  # a 429 that did not say how long: the breaker alone decides
        (20.0, False, False),  # a 503 asking for a pause: cooling, but not a rate limit
    ],
)
def test_a_rate_limit_holds_a_deployment_back_for_its_retry_after(
    retry_after: float | None, rate_limited: bool, held_back: bool
) -> None:
    h = health()
    h.failed(T0, retry_after, rate_limited=rate_limited)
    assert h.rate_limited(T0 + 19) is held_back
    assert not h.rate_limited(T0 + 20)


def test_a_rate_limit_lasts_as_long_as_the_longest_retry_after_and_through_the_breaker() -> None:
    h = health()
    h.failed(T0, 30, rate_limited=True)
    h.failed(T0 + 1, 5, rate_limited=True)
    assert h.rate_limited(T0 + 29) and not h.available(T0 + 29)
    assert not h.rate_limited(T0 + 30)


def test_a_lease_reports_a_rate_limit_to_its_deployment() -> None:
    h = health()
    assert h.acquire(T0, 0)
    Lease(h, T0).failed(T0 + 0.1, 10, rate_limited=True)
    assert h.rate_limited(T0 + 10) and not h.rate_limited(T0 + 10.1)


def test_a_lease_is_given_back_once() -> None:
    h = health(max_in_flight=1)
    assert h.acquire(T0, 0)
    lease = Lease(h, T0)
    lease.succeeded(T0 + 0.1)
    lease.release(T0 + 1)
    lease.release(T0 + 2)
    assert h.in_flight == 0


def test_a_stream_that_broke_after_a_good_start_is_a_failure_when_settled() -> None:
    h = health()
    assert h.acquire(T0, 0)
    lease = Lease(h, T0)
    lease.succeeded(T0 + 0.1)
    lease.settle(T0 + 5, 502, 0)
    assert (h.failures, h.in_flight) == (1, 0)


def test_an_answer_already_judged_a_failure_is_not_counted_twice() -> None:
    h = health()
    assert h.acquire(T0, 0)
    lease = Lease(h, T0)
    lease.failed(T0 + 0.1)
    lease.settle(T0 + 1, 503, 0)
    assert h.failures == 1


def test_a_call_abandoned_without_a_verdict_frees_its_probe_and_records_its_wait() -> None:
    h = health()
    for _ in range(5):
        h.failed(T0)
    later = T0 + 60
    probes = [h.acquire(later, 0) for _ in range(4)]
    assert probes == [True, True, True, False], "three half-open probes"
    Lease(h, later).release(later + 3.0)
    assert h.acquire(later + 3.0, 0), "the abandoned probe's place is free again"
    assert h.ttfb.value == pytest.approx(3.0), "it had waited 3 s without a first byte"


def test_the_snapshot_is_plain_json_values() -> None:
    h = health(rpm=10, max_in_flight=4)
    assert h.acquire(T0, 0)
    snapshot = h.snapshot(T0)
    assert snapshot["name"] == "p/m" and snapshot["in_flight"] == 1
    assert (snapshot["rpm"], snapshot["rpm_limit"], snapshot["tpm"]) == (1, 10, None)
    assert snapshot["breaker"]["state"] == "closed"
