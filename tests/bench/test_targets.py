"""Issue 11's targets: each scenario's verdict from its row, and the report's table of them."""

from __future__ import annotations

from typing import Any

import pytest

from bench import targets
from bench.load import Limits
from bench.procs import Pinning
from bench.report import markdown
from bench.runner import SCENARIOS, Settings
from bench.targets import MET, MISSED


def _row(name: str, **fields: Any) -> dict[str, Any]:
    scenario = SCENARIOS[name]
    return {
        "scenario": name,
        "concurrency": scenario.concurrency,
        "references": list(scenario.references),
        "proxy_cpu_ms_per_request": 0.3,
        "p50_added_ms": 0.3,
        "other_cores_busy": 0.0,
        **{f"{kind}_{side}": 0 for kind in ("errors", "stalled") for side in ("direct", "proxy")},
        **{f"{kind}_{ref}": 0 for kind in ("errors", "stalled") for ref in scenario.references},
        "error_samples": [],
        **fields,
    }


@pytest.mark.parametrize(
    ("scenario", "ratio", "outcome"),
    [
        ("nonstream-c16", 0.35, MET),
        ("nonstream-c16", 0.40, MET),
        ("nonstream-c16", 0.41, MISSED),
        ("stream-c16", 0.50, MET),
        ("stream-c16", 0.55, MISSED),
        ("stream-events-c16", 0.55, MET),
        ("stream-events-c16", 0.61, MISSED),
        ("l1-hit-c16", 0.30, MET),
        ("l1-hit-c16", 0.31, MISSED),
    ],
)
def test_cpu_is_judged_as_a_ratio_to_the_floor(scenario: str, ratio: float, outcome: str) -> None:
    verdict = targets.judge(_row(scenario, proxy_cpu_ratio_to_floor=ratio))
    assert verdict is not None and verdict.outcome == outcome
    assert "floor" in verdict.target


@pytest.mark.parametrize(
    ("proxy_ms", "nginx_ms", "outcome"),
    [(0.25, 0.2, MET), (0.30, 0.2, MET), (0.31, 0.2, MISSED), (0.1, 0.2, MET)],
)
def test_c1_latency_is_judged_against_nginxs_added_p50(
    proxy_ms: float, nginx_ms: float, outcome: str
) -> None:
    row = _row("nonstream-c1", p50_added_ms=proxy_ms, p50_nginx_added_ms=nginx_ms)
    verdict = targets.judge(row)
    assert verdict is not None and verdict.outcome == outcome


@pytest.mark.parametrize("scenario", ["nonstream-c16", "nonstream-c1"])
def test_a_missing_reference_is_not_judged_and_says_which(scenario: str) -> None:
    verdict = targets.judge(_row(scenario))
    assert verdict is not None
    assert verdict.outcome.startswith("not judged: no ")


def test_cache_numbers_that_are_not_hits_are_not_judged() -> None:
    row = _row("l1-hit-c16", proxy_cpu_ratio_to_floor=0.1, cache_hits_ok=False)
    verdict = targets.judge(row)
    assert verdict is not None and verdict.outcome.startswith("not judged: too few hits")


def test_scenarios_without_a_target_have_no_verdict() -> None:
    assert targets.judge(_row("passthrough-c16")) is None


def _soak(**fields: Any) -> dict[str, Any]:
    return {
        "requests": 100_000,
        "errors": 0,
        "stalled": 0,
        "rss_mib_final": 30.0,
        "rss_growth_kib_per_10k": 5.0,
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({}, MET),
        ({"rss_mib_final": 40.0}, MET),
        ({"rss_mib_final": 41.0}, MISSED),
        ({"rss_growth_kib_per_10k": 250.0}, MISSED),
        ({"rss_growth_kib_per_10k": -80.0}, MET),
        ({"requests": 5_000}, "not judged: 5,000 requests, not 100,000"),
        ({"errors": 3}, "not judged: 3 requests failed or stalled"),
        ({"rss_growth_kib_per_10k": None}, "not judged: too few RSS readings for a trend"),
    ],
)
def test_memory_is_judged_on_a_full_clean_soak(fields: dict[str, Any], outcome: str) -> None:
    assert targets.judge_rss(_soak(**fields)).outcome == outcome


def _report(rows: list[dict[str, Any]], references: dict[str, str]) -> str:
    settings = Settings(5, Limits(20_000, 2.0), Limits(4000, 1.0))
    meta = {
        "measured": "edgeproxy",
        "git_commit": "abc",
        "cpu_model": "cpu",
        "cpus": 2,
        "date": "today",
        "references": references,
    }
    return markdown(rows, meta, settings, Pinning(None, None, None))


def test_report_sets_the_proxy_beside_the_floor_and_nginx_with_each_verdict() -> None:
    rows = [
        _row(
            "nonstream-c16",
            proxy_cpu_ms_per_request=0.31,
            floor_cpu_ms_per_request=0.31,
            nginx_cpu_ms_per_request=0.07,
            proxy_cpu_ratio_to_floor=1.0,
            proxy_cpu_ratio_to_nginx=4.43,
        ),
        _row("nonstream-c1", p50_added_ms=0.25, p50_nginx_added_ms=0.2),
    ]
    text = _report(rows, {"floor": "bench.floor", "nginx": "nginx/1.22.1"})
    assert (
        "| nonstream-c16 | 16 | 0.310 | 0.310 | 0.070 | 1.00 | 4.43 | 0.30 | - | - "
        "| ≤ 0.40x floor | MISSED |"
    ) in text
    assert "| nonstream-c1 | 1 |" in text and "| +p50 ≤ nginx's + 0.1 ms | met |" in text
    assert "nginx cannot read JSON" in text and "lower bound" in text


def test_report_says_why_nginx_was_not_measured() -> None:
    why = "not measured: not found on PATH or in /usr/sbin"
    rows = [
        _row("nonstream-c16", references=["floor"], proxy_cpu_ratio_to_floor=0.9),
        _row("nonstream-c1", references=["floor"]),
    ]
    text = _report(rows, {"floor": "bench.floor", "nginx": why})
    assert f"- nginx: {why}." in text
    assert "| ≤ 0.40x floor | MISSED |" in text
    assert "not judged: no nginx in this run" in text


def test_report_without_any_reference_says_so_in_one_line() -> None:
    rows = [_row("nonstream-c16", references=[]), _row("stream-events-c16", references=[])]
    off = {"floor": "not measured (--no-floor)", "nginx": "not measured (--no-nginx)"}
    text = _report(rows, off)
    assert (
        "- Issue 11's targets (ratios to the floor and nginx): not judged (floor: not measured "
        "(--no-floor); nginx: not measured (--no-nginx))."
    ) in text
    assert "| target | verdict |" not in text


def test_report_lists_failed_requests_of_a_reference() -> None:
    text = _report([_row("stream-c16", errors_nginx=2, events_per_stream=23.0)], {})
    assert "PROBLEMS:" in text
    assert "errors direct 0, proxy 0, floor 0, nginx 2" in text
