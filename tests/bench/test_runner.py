"""Measuring a scenario against several sides: the order of their runs, and what the row says
about the references beside the proxy."""

from __future__ import annotations

import pytest

from bench.load import Limits, RunResult
from bench.runner import SCENARIOS, Sample, Settings, Target, run_order, summarize

SETTINGS = Settings(2, Limits(100, 1.0), Limits(10, 0.5))


@pytest.mark.parametrize(
    ("targets", "repetition", "order"),
    [
        (["direct", "proxy"], 0, ["direct", "proxy"]),
        (["direct", "proxy"], 1, ["proxy", "direct"]),
        (["direct", "proxy", "floor", "nginx"], 2, ["direct", "proxy", "floor", "nginx"]),
        (["direct", "proxy", "floor", "nginx"], 3, ["nginx", "floor", "proxy", "direct"]),
    ],
)
def test_sides_run_in_abba_order(
    targets: list[Target], repetition: int, order: list[Target]
) -> None:
    assert run_order(targets, repetition) == order


def _sample(target: Target, cpu_seconds: float, latency_ms: float) -> Sample:
    """A run of 100 requests in one second, each taking `latency_ms`."""
    result = RunResult(issued=100, completed=100, seconds=1.0)
    result.latencies = [latency_ms / 1000] * 100
    return Sample(target, result, server_cpu=cpu_seconds, upstream_cpu=0.0, load_cpu=0.0)


def _repetition(proxy_cpu: float, floor_cpu: float, nginx_cpu: float) -> list[Sample]:
    return [
        _sample("direct", 0.0, 1.0),
        _sample("proxy", proxy_cpu, 1.5),
        _sample("floor", floor_cpu, 1.3),
        _sample("nginx", nginx_cpu, 1.1),
    ]


def test_references_get_their_own_figures_and_the_proxy_a_ratio_to_each() -> None:
    samples = [*_repetition(0.03, 0.06, 0.01), *_repetition(0.05, 0.05, 0.01)]
    row = summarize(SCENARIOS["nonstream-c16"], SETTINGS, samples, rss_kib=[51_200])
    assert row["references"] == ["floor", "nginx"]
    assert row["proxy_cpu_ms_per_request"] == pytest.approx(0.4)
    assert row["floor_cpu_ms_per_request"] == pytest.approx(0.55)
    assert row["nginx_cpu_ms_per_request"] == pytest.approx(0.1)
    # Per repetition (0.5 and 1.0), then the median: not the ratio of the medians (0.73).
    assert row["proxy_cpu_ratio_to_floor"] == pytest.approx(0.75)
    assert row["proxy_cpu_ratio_to_nginx"] == pytest.approx(4.0)
    assert row["p50_added_ms"] == pytest.approx(0.5)
    assert row["p50_floor_added_ms"] == pytest.approx(0.3)
    assert row["p50_nginx_added_ms"] == pytest.approx(0.1)
    assert row["errors_nginx"] == row["stalled_floor"] == 0


def test_a_row_without_references_has_none_of_their_fields() -> None:
    samples = [_sample("direct", 0.0, 1.0), _sample("proxy", 0.03, 1.5)]
    row = summarize(SCENARIOS["passthrough-c16"], SETTINGS, samples, rss_kib=[51_200])
    assert row["references"] == []
    assert not any("floor" in key or "nginx" in key for key in row)


def test_only_the_event_by_event_scenario_has_its_upstream_write_each_event_alone() -> None:
    split = {name: s.split for name, s in SCENARIOS.items() if s.stream}
    assert split == {
        "stream-c16": "whole",
        "stream-events-c16": "events",
        "stream-xdialect-c16": "whole",
        "guarded-stream-c16": "whole",
        "observed-stream-c16": "whole",
    }


@pytest.mark.parametrize(
    "name", ["nonstream-c1", "nonstream-c16", "stream-c16", "stream-events-c16"]
)
def test_data_plane_scenarios_are_measured_against_the_floor_and_nginx_only(name: str) -> None:
    """The same-proxy references (plain, off) belong to the guarded and observed scenarios:
    run beside these they would be the proxy itself, reported as if it were guarded."""
    assert SCENARIOS[name].references == ("floor", "nginx")
