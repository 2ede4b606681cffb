"""Rolling totals keep the last window's numbers in fixed memory; baselines move slowly and are
trusted only after their warm-up."""

from __future__ import annotations

import math

import pytest

from edgeproxy.telemetry.incident_windows import Baseline, RollingTotals


def test_totals_sum_what_the_window_holds() -> None:
    window = RollingTotals(60.0)
    window.add(1000.0, requests=1, errors=1, ttfb=0.2, cost=0.01)
    window.add(1010.0, requests=2, ttfb=0.4, cost=0.02)
    window.add(1020.0, requests=1)  # no first byte timed (an error before any answer)
    totals = window.totals(1030.0)
    assert (totals.requests, totals.errors, totals.ttfb_count) == (4, 1, 2)
    assert totals.error_rate == 0.25
    assert totals.ttfb == pytest.approx(0.3)
    assert totals.cost == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (1026.0, 54.0),  # the newest 6 s bucket has just begun: nine whole ones behind it
        (1031.0, 59.0),
    ],
)
def test_a_rate_divides_by_the_time_the_window_covers(now: float, seconds: float) -> None:
    window = RollingTotals(60.0)
    window.add(1000.0, cost=0.09)
    totals = window.totals(now)
    assert totals.seconds == pytest.approx(seconds)
    assert totals.cost_per_minute == pytest.approx(0.09 * 60 / seconds)


@pytest.mark.parametrize(
    ("later", "kept"),
    [
        (48.0, 1.0),  # inside the window
        (54.0, 1.0),  # its bucket is still one of the newest ten
        (60.0, 0.0),  # a whole window later
        (10_000.0, 0.0),  # after a long idle gap, everything is gone
    ],
)
def test_amounts_leave_the_window_after_its_span(later: float, kept: float) -> None:
    window = RollingTotals(60.0)
    window.add(1000.0, requests=1)
    assert window.totals(1000.0 + later).requests == kept


def test_an_amount_older_than_the_window_is_dropped() -> None:
    window = RollingTotals(60.0)
    window.add(1100.0, requests=1)
    window.add(1000.0, requests=5)
    assert window.totals(1100.0).requests == 1


def test_an_empty_window_has_no_rates() -> None:
    totals = RollingTotals(60.0).totals(1000.0)
    assert (totals.error_rate, totals.ttfb, totals.cost_per_minute) == (0.0, None, 0.0)


def test_a_baseline_is_trusted_only_after_its_warm_up() -> None:
    baseline = Baseline(span=3600.0, warmup=60.0)
    assert not baseline.ready
    baseline.learn(0.5, 0.0)
    assert baseline.value == 0.5 and not baseline.ready
    for _ in range(6):
        baseline.learn(0.5, 10.0)
    assert baseline.ready and baseline.value == 0.5


def test_a_young_baseline_is_the_time_weighted_mean_of_its_samples() -> None:
    baseline = Baseline(span=100.0, warmup=0.0)
    baseline.learn(9.0, 0.0)  # stood for no time: replaced by the next one
    baseline.learn(1.0, 10.0)
    baseline.learn(4.0, 30.0)
    assert baseline.value == pytest.approx((1.0 * 10 + 4.0 * 30) / 40)


def test_a_grown_baseline_forgets_with_its_time_constant() -> None:
    baseline = Baseline(span=100.0, warmup=0.0)
    baseline.learn(1.0, 100.0)
    baseline.learn(2.0, 100.0)  # stood for one span: 1 - 1/e of the way
    assert baseline.value == pytest.approx(1.0 + (1 - math.exp(-1)))
