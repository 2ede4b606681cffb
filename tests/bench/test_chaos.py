"""The chaos run's pure parts: the flap's timing, what the proxy's answers say, the config it
writes and the summary it reports. The run itself is `python -m bench --scenario chaos`."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bench import chaos
from bench.chaos import ChaosSettings, Measured, Observed
from bench.load import RunResult
from bench.report import chaos_markdown
from edgeproxy.config import parse
from tests.support.fake_upstream import Flap


def test_down_seconds_counts_whole_and_partial_outages() -> None:
    # first outage at 10, period 5: down [10, 15), [20, 25), [30, 35), ...
    assert chaos.down_seconds(10.0, 5.0, 0.0, 10.0) == 0.0
    assert chaos.down_seconds(10.0, 5.0, 5.0, 35.0) == 15.0  # three whole cycles
    assert chaos.down_seconds(10.0, 5.0, 12.0, 22.0) == 3.0 + 2.0
    assert chaos.down_seconds(10.0, 5.0, 16.0, 19.0) == 0.0
    assert chaos.down_seconds(10.0, 5.0, 22.0, 12.0) == 0.0


@pytest.mark.parametrize(("start", "end"), [(0.0, 30.0), (3.3, 17.9), (12.5, 12.75)])
def test_down_seconds_agrees_with_the_fakes_flap(start: float, end: float) -> None:
    """The bench predicts the fake's phases from its epoch; both must keep one convention."""
    flap = Flap(period=1.5, offset=2.0, epoch=100.0)
    steps = 30_000
    width = (end - start) / steps
    sampled = sum(flap.down(100.0 + start + (i + 0.5) * width) for i in range(steps)) * width
    predicted = chaos.down_seconds(flap.first_outage, 1.5, 100.0 + start, 100.0 + end)
    assert math.isclose(predicted, sampled, abs_tol=2 * width)


def test_phase_at_names_the_phase_and_the_time_into_it() -> None:
    assert chaos.phase_at(10.0, 5.0, 8.0) == ("before", -2.0)
    assert chaos.phase_at(10.0, 5.0, 11.0) == ("down", 1.0)
    assert chaos.phase_at(10.0, 5.0, 16.5) == ("up", 1.5)
    assert chaos.phase_at(10.0, 5.0, 20.25) == ("down", 0.25)


def _answer(status: int, **headers: str) -> Any:
    return SimpleNamespace(status=status, headers=headers)


def test_observed_counts_attempts_and_keeps_failed_answers() -> None:
    observed = Observed()
    for _ in range(8):
        observed(_answer(200, **{"x-edgeproxy-attempts": "1", "x-edgeproxy-deployment": "a"}), b"")
    observed(_answer(200, **{"x-edgeproxy-attempts": "2", "x-edgeproxy-deployment": "b"}), b"")
    observed(
        _answer(500, **{"x-edgeproxy-attempts": "1", "x-edgeproxy-deployment": "flapping"}),
        b'{"error": {}}',
    )
    assert observed.answers == 10
    assert observed.attempts == 11
    assert observed.extra_attempts_per_request == pytest.approx(0.1)
    assert observed.by_attempts == {1: 9, 2: 1}
    assert observed.served_by == {"a": 8, "b": 1}
    assert [f["deployment"] for f in observed.failures] == ["flapping"]
    assert len(observed.failed_at) == 1


def test_an_answer_without_attempts_is_left_out_of_the_ratio() -> None:
    observed = Observed()
    observed(_answer(503), b"")
    assert observed.unmarked == 1
    assert observed.extra_attempts_per_request is None


def test_proxy_config_is_valid_and_shaped_as_the_issue_asks() -> None:
    settings = ChaosSettings(seconds=30.0, period=5.0)
    urls = {role: f"http://127.0.0.1:{9000 + i}" for i, role in enumerate(chaos.ROLES)}
    config = parse(yaml.safe_load(chaos.proxy_config(8123, 9123, urls, settings)), {})
    (group,) = config.models
    assert group.name == chaos.MODEL
    assert [d.name for d in group.deployments] == list(chaos.ROLES)
    assert {d.weight for d in group.deployments} == {1.0}
    assert {config.providers[d.provider].kind for d in group.deployments} == {"openai"}
    assert config.routing.breaker.reset_timeout == 2.0
    assert config.admin.enabled and config.admin.port == 9123
    assert config.server.port == 8123


def test_quick_settings_are_short_and_bounded() -> None:
    quick = ChaosSettings.default(quick=True)
    assert quick.seconds <= 10 and quick.reset_timeout < quick.period
    assert quick.limits.requests > 0 and quick.limits.seconds == quick.seconds


def test_counts_and_first_outage_are_read_from_the_fakes_log(tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    log.write_text(
        "FLAP period=5 mode=error first_outage=123.456000\nREADY http://127.0.0.1:1\n"
        'CALLS {"calls":{"chat":7},"flapped":3}\n'
    )
    assert chaos._first_outage(log) == 123.456
    assert chaos._counts(log) == {"calls": {"chat": 7}, "flapped": 3}


def _routing(requests: int, opened: int, denied: int) -> dict[str, Any]:
    """An /admin/routing answer: every deployment took `requests`; only the flapping one fails."""

    def deployment(role: str) -> dict[str, Any]:
        flapping = role == chaos.FLAPPING
        breaker = {"opened": opened if flapping else 0, "state": "open" if flapping else "closed"}
        failures = 2 if flapping else 0
        return {"name": role, "requests": requests, "failures": failures, "breaker": breaker}

    return {
        "groups": [{"name": chaos.MODEL, "retry_budget": {"denied": denied}}],
        "deployments": [deployment(role) for role in chaos.ROLES],
    }


def test_summary_and_report_say_what_happened() -> None:
    settings = ChaosSettings(seconds=20.0, period=5.0)
    result = RunResult(issued=10, completed=9, errors=1, seconds=20.0, latencies=[0.01] * 9)
    observed = Observed(answers=10, attempts=12)
    observed.by_attempts.update({1: 8, 2: 2})
    observed.failed_at.append(106.0)
    measured = Measured(
        result,
        observed,
        window=(100.0, 120.0),
        admin_before=_routing(0, opened=0, denied=0),
        admin_after=_routing(4, opened=3, denied=1),
        breaker_samples=[(106.0, "open"), (111.0, "closed"), (112.0, "half_open")],
    )
    counts = {role: {"calls": {"chat": 4}, "flapped": 0} for role in chaos.ROLES}
    row = chaos.summarize(settings, measured, counts, first_outage=105.0)
    assert row["success_rate"] == 0.9
    assert row["extra_attempts_per_request"] == pytest.approx(0.2)
    assert row["flapping_down_share"] == pytest.approx(0.5)
    assert row["direct_failure_share_one_in_three"] == pytest.approx(0.5 / 3)
    assert row["flapping_breaker_opened"] == 3
    assert row["flapping_out_share_while_down"] == 1.0
    assert row["flapping_out_share_while_up"] == 0.5
    assert row["upstream_calls_total"] == row["proxy_attempts_total"] == 12
    assert row["retry_budget_denied"] == 1
    assert row["failures_by_phase"] == {"down": 1}
    text = chaos_markdown(row, {"git_commit": "abc", "date": "today"})
    assert "MISSED" in text
    assert "CHAOS PROBLEMS" in text
