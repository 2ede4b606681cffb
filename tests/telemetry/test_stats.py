"""The status page's numbers from scripted request records and a manual clock: rates over the
time since the previous ask, percentiles interpolated within histogram buckets, the cache hit
rate, spend per group and team, deployments as routing sees them, and incidents."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from edgeproxy.config import parse
from edgeproxy.providers import build_provider
from edgeproxy.routing.router import ModelTable
from edgeproxy.telemetry.request_metrics import RequestMetrics
from edgeproxy.telemetry.stats import LiveStats, quantile
from tests.support.clock import ManualClock
from tests.support.records import record

BOUNDS = (1.0, 2.0, 4.0)
PLAIN = record(
    model="a",
    group="a",
    provider="mock",
    deployment="shared",
    cache="miss",
    input_tokens=100,
    output_tokens=10,
    duration=0.003,
    upstream_wait=0.0025,
    upstream_ttfb=0.002,
)
# Two groups sharing the deployment `shared`; group b also has `spare`.
CONFIG = parse(
    {
        "providers": {"mock": {"kind": "mock"}},
        "models": {
            "a": {"deployments": [{"provider": "mock", "name": "shared"}]},
            "b": {
                "deployments": [
                    {"provider": "mock", "name": "shared"},
                    {"provider": "mock", "name": "spare", "model": "mock-large"},
                ]
            },
        },
        "routing": {"breaker": {"failure_threshold": 2, "reset_timeout": "30s"}},
    },
    {},
)


def board(
    clock: ManualClock, incidents: list[dict[str, Any]] | None = None
) -> tuple[LiveStats, RequestMetrics, ModelTable]:
    metrics = RequestMetrics(("a", "b"), {"mock": "mock"}, teams=("red", "blue"))
    providers = {name: build_provider(p) for name, p in CONFIG.providers.items()}
    table = ModelTable(CONFIG.models, providers, CONFIG.routing)
    source = None if incidents is None else (lambda: incidents)
    return LiveStats(metrics, table, clock, source), metrics, table


def observe(metrics: RequestMetrics, times: int, **changes: Any) -> None:
    for _ in range(times):
        metrics.observe(replace(PLAIN, **changes))


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ([0, 0, 0, 0], 0.5, None),  # nothing counted
        ([4, 0, 0, 0], 0.5, 0.5),  # the first bucket starts at 0
        ([4, 0, 0, 0], 1.0, 1.0),
        ([0, 10, 0, 0], 0.5, 1.5),  # halfway through (1, 2]
        ([0, 10, 0, 0], 0.99, 1.99),
        ([5, 5, 0, 0], 0.5, 1.0),  # the rank ends the first bucket
        ([5, 0, 5, 0], 0.6, 2.4),  # empty buckets are passed over
        ([1, 0, 0, 9], 0.5, 4.0),  # above the last bound: that bound is all one can say
        ([0, 0, 0, 3], 0.99, 4.0),
    ],
)
def test_quantiles_are_interpolated_within_their_bucket(
    counts: list[int], q: float, expected: float | None
) -> None:
    assert quantile(BOUNDS, counts, q) == pytest.approx(expected)


@pytest.mark.parametrize("q", [0.0, -0.5, 1.5])
def test_a_quantile_outside_zero_to_one_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        quantile(BOUNDS, [1, 0, 0, 0], q)


def test_rates_cover_the_time_since_the_previous_ask() -> None:
    clock = ManualClock()
    stats, metrics, _ = board(clock)
    observe(metrics, 10)
    clock.advance(2)
    first = stats.report()
    assert (first["window_s"], first["requests"]["per_second"]) == (2, 5)
    observe(metrics, 3)
    clock.advance(3)
    second = stats.report()
    assert (second["window_s"], second["requests"]["per_second"]) == (3, 1)
    assert second["requests"]["total"] == 13
    assert second["uptime_s"] == 5


def test_asks_a_moment_apart_keep_the_window_of_the_earlier_reading() -> None:
    """A second viewer asking 0.1 s after the first does not shrink the window to 0.1 s."""
    clock = ManualClock()
    stats, metrics, _ = board(clock)
    clock.advance(2)
    stats.report()
    observe(metrics, 4)
    clock.advance(0.1)
    assert stats.report()["window_s"] == pytest.approx(2.1)
    clock.advance(1)
    assert stats.report()["window_s"] == pytest.approx(1.1)  # since the ask at 2 s


def test_latency_percentiles_cover_only_the_window() -> None:
    clock = ManualClock()
    stats, metrics, _ = board(clock)
    observe(metrics, 50, duration=30.0, upstream_wait=29.9)  # before the previous ask
    clock.advance(5)
    stats.report()
    # In the window: 10 requests in (0.1, 0.25] s, each with 0.3-0.5 ms of overhead.
    observe(metrics, 10, duration=0.2, upstream_wait=0.1996)
    clock.advance(5)
    report = stats.report()
    assert report["latency_ms"] == {"p50": 175.0, "p99": 248.5, "count": 10}
    # Rounded to the microsecond.
    overhead = report["overhead_ms"]
    assert overhead == {"p50": 0.375, "p99": pytest.approx(0.4975, abs=0.001), "count": 10}


def test_a_window_without_requests_has_no_percentiles() -> None:
    clock = ManualClock()
    stats, _, _ = board(clock)
    clock.advance(2)
    report = stats.report()
    assert report["latency_ms"] == {"p50": None, "p99": None, "count": 0}
    assert report["requests"]["per_second"] == 0
    assert report["cache"]["window"]["hit_rate"] is None


def test_the_cache_hit_rate_counts_answers_without_a_provider_call() -> None:
    clock = ManualClock()
    stats, metrics, _ = board(clock)
    observe(metrics, 1, cache="miss")
    observe(metrics, 1, cache="hit-l1", saved_usd=0.25)
    clock.advance(2)
    stats.report()
    observe(metrics, 1, cache="miss")
    for outcome in ("hit-l1", "hit-l2", "hit-semantic", "coalesced"):
        observe(metrics, 1, cache=outcome, saved_usd=0.25)
    observe(metrics, 5, cache="bypass")  # neither: the cache was not asked
    observe(metrics, 5, cache=None)  # the cache is off
    clock.advance(2)
    cache = stats.report()["cache"]
    assert cache["window"] == {"hits": 4, "misses": 1, "hit_rate": 0.8}
    assert cache["since_start"] == {
        "hits": 5,
        "misses": 2,
        "hit_rate": pytest.approx(5 / 7),
        "saved_usd": 1.25,
    }


def test_spend_per_group_and_team_since_start_costliest_first() -> None:
    clock = ManualClock()
    stats, metrics, _ = board(clock)
    observe(metrics, 2, group="a", team="red", cost_usd=0.5)
    observe(metrics, 1, group="b", team="blue", cost_usd=2.0)
    observe(metrics, 1, group="b", team="blue", cache="hit-l1", saved_usd=2.0)
    observe(metrics, 1, group="made-up", provider=None, status=404)
    clock.advance(1800)  # half an hour
    spend = stats.report()["spend"]
    assert (spend["total_usd"], spend["per_hour_usd"]) == (3.0, 6.0)
    groups = {g["name"]: g for g in spend["groups"]}
    assert [g["name"] for g in spend["groups"]] == ["b", "a", "other"]
    assert groups["b"] == {
        "name": "b",
        "requests": 2,
        "cost_usd": 2.0,
        "per_hour_usd": 4.0,
        "saved_usd": 2.0,
        "input_tokens": 200,
        "output_tokens": 20,
    }
    assert (groups["a"]["requests"], groups["a"]["cost_usd"]) == (2, 1.0)
    assert groups["other"]["cost_usd"] == 0
    assert spend["teams"] == [
        {"name": "blue", "requests": 2, "cost_usd": 2.0, "per_hour_usd": 4.0},
        {"name": "red", "requests": 2, "cost_usd": 1.0, "per_hour_usd": 2.0},
    ]


def test_spend_per_hour_waits_for_a_minute_of_uptime() -> None:
    clock = ManualClock()
    stats, metrics, _ = board(clock)
    observe(metrics, 1, team="red", cost_usd=0.5)
    clock.advance(59)
    spend = stats.report()["spend"]
    assert (spend["total_usd"], spend["per_hour_usd"]) == (0.5, None)
    assert spend["groups"][0]["per_hour_usd"] is spend["teams"][0]["per_hour_usd"] is None
    clock.advance(1)
    assert stats.report()["spend"]["per_hour_usd"] == 30.0


def test_deployments_show_breaker_load_latency_and_failures() -> None:
    clock = ManualClock()
    stats, _, table = board(clock)
    shared, spare = table.health["shared"], table.health["spare"]
    assert shared.acquire(clock(), 0)
    shared.succeeded(clock(), ttfb=0.120)  # still in flight: its answer is being relayed
    for _ in range(2):  # the breaker's failure threshold
        assert spare.acquire(clock(), 0)
        spare.failed(clock())
        spare.finished(clock(), 0)
    rows = {row["name"]: row for row in stats.report()["deployments"]}
    assert list(rows) == ["shared", "spare"]  # each once, though two groups name `shared`
    assert rows["shared"] == {
        "name": "shared",
        "provider": "mock",
        "model": None,
        "groups": ["a", "b"],
        "breaker": "closed",
        "breaker_opened": 0,
        "available": True,
        "in_flight": 1,
        "ewma_ttfb_ms": 120.0,
        "success_rate": 1.0,
        "requests": 1,
        "failures": 0,
    }
    assert rows["spare"]["model"] == "mock-large"
    assert (rows["spare"]["breaker"], rows["spare"]["available"]) == ("open", False)
    assert (rows["spare"]["failures"], rows["spare"]["breaker_opened"]) == (2, 1)
    assert rows["spare"]["ewma_ttfb_ms"] is None


@pytest.mark.parametrize(
    ("incidents", "shown"),
    [
        (None, None),  # incident detection is off
        ([], []),
        ([{"id": "inc_1", "severity": "critical"}], [{"id": "inc_1", "severity": "critical"}]),
    ],
)
def test_incidents_come_from_their_provider(
    incidents: list[dict[str, Any]] | None, shown: list[dict[str, Any]] | None
) -> None:
    stats, _, _ = board(ManualClock(), incidents)
    assert stats.report()["incidents"] == shown
