"""The observed scenarios' pure parts: the two proxies' configs and what the proxy builds from
them, the OTLP sink that takes the traces, and how a run sets the observed proxy against the
one with its observability off. The runs themselves are `python -m bench --scenario observed`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from bench import guarded, observed, otlp_sink
from bench.__main__ import GROUPS
from bench.load import Limits, RunResult
from bench.procs import Pinning
from bench.report import markdown
from bench.runner import SCENARIOS, Sample, Settings, Target, proxy_config, summarize
from edgeproxy.config import Config, parse
from edgeproxy.state import build_state

UPSTREAM = "http://127.0.0.1:9000"
TRACES = "http://127.0.0.1:9001/v1/traces"
SETTINGS = Settings(2, Limits(100, 1.0), Limits(10, 0.5))


def _on(events: Path) -> str:
    return observed.observed_config(8123, UPSTREAM, events, TRACES)


def _config(text: str) -> Config:
    return parse(yaml.safe_load(text), {})


def test_the_two_proxies_differ_only_in_their_observability(tmp_path: Path) -> None:
    on, off = (
        yaml.safe_load(_on(tmp_path / "events.jsonl")),
        yaml.safe_load(observed.off_config(8123, UPSTREAM)),
    )
    plain = yaml.safe_load(proxy_config(8123, UPSTREAM))
    assert set(on) == set(off) == {*plain, "pricing", "telemetry"}
    assert on["pricing"] == off["pricing"] == yaml.safe_load(guarded.PRICING)["pricing"]
    assert {k: v for k, v in on.items() if k not in ("server", "logging", "telemetry")} == {
        k: v for k, v in off.items() if k not in ("server", "logging", "telemetry")
    }
    assert {**on["server"], "access_log": False} == off["server"]


def test_everything_is_on_in_the_observed_proxy(tmp_path: Path) -> None:
    config = _config(_on(tmp_path / "events.jsonl"))
    assert config.server.access_log and config.logging.level == "info"
    telemetry = config.telemetry
    assert telemetry.events is not None and telemetry.events.file == str(tmp_path / "events.jsonl")
    assert telemetry.feedback.enabled and telemetry.incidents.enabled
    tracing = telemetry.tracing
    assert (tracing.enabled, tracing.endpoint, tracing.sample_ratio) == (True, TRACES, 1.0)
    assert tracing.protocol == "http/json"


def test_everything_is_off_in_the_off_proxy() -> None:
    config = _config(observed.off_config(8123, UPSTREAM))
    assert not config.server.access_log
    telemetry = config.telemetry
    assert telemetry.events is None
    assert not (telemetry.feedback.enabled or telemetry.incidents.enabled)
    assert not telemetry.tracing.enabled


def test_the_proxy_built_from_each_has_its_features_or_none(tmp_path: Path) -> None:
    on = build_state(_config(_on(tmp_path / "events.jsonl")))
    assert on.events is not None and on.feedback is not None
    assert on.incidents is not None and on.tracer is not None
    off = build_state(_config(observed.off_config(8123, UPSTREAM)))
    assert (off.events, off.feedback, off.incidents, off.tracer) == (None, None, None, None)


def test_the_scenarios_send_what_the_plain_ones_do_beside_the_off_proxy() -> None:
    assert GROUPS["observed"] == observed.SCENARIOS
    same = {"observed-c16": "nonstream-c16", "observed-stream-c16": "stream-c16"}
    for name, plain in same.items():
        scenario = SCENARIOS[name]
        assert scenario.observed and scenario.references == ("off",)
        assert scenario.cache is None and scenario.guards is None and scenario.concurrency == 16
        assert scenario.bodies() == SCENARIOS[plain].bodies()


async def test_the_sink_takes_any_post_with_200_and_answers_the_readiness_probe() -> None:
    app = otlp_sink.build()
    async with TestClient(TestServer(app)) as client:
        sent = await client.post(observed.TRACES_PATH, data=b"\x0a\x00spans")
        probe = await client.get("/v1/models")
        assert (sent.status, probe.status) == (200, 200)
        assert app[otlp_sink.RECEIVED] == [1, 7]


def _sample(target: Target, cpu_seconds: float, latency_ms: float) -> Sample:
    """A run of 100 requests in one second, each taking `latency_ms`."""
    result = RunResult(issued=100, completed=100, seconds=1.0)
    result.latencies = [latency_ms / 1000] * 100
    return Sample(target, result, server_cpu=cpu_seconds, upstream_cpu=0.0, load_cpu=0.0)


def _observed_row(on_cpu: tuple[float, float]) -> dict[str, Any]:
    first, second = on_cpu
    samples = [
        *(_sample("direct", 0.0, 1.0), _sample("proxy", first, 1.4), _sample("off", 0.02, 1.3)),
        *(_sample("off", 0.02, 1.3), _sample("proxy", second, 1.4), _sample("direct", 0.0, 1.0)),
    ]
    return summarize(SCENARIOS["observed-c16"], SETTINGS, samples, rss_kib=[40_960])


def test_the_cost_is_the_median_of_per_repetition_differences() -> None:
    row = _observed_row((0.021, 0.022))
    assert row["references"] == ["off"]
    assert row["off_cpu_ms_per_request"] == pytest.approx(0.2)
    assert row["proxy_cpu_added_over_off_ms"] == pytest.approx(0.015)  # (0.01 + 0.02) / 2
    assert row["proxy_cpu_ratio_to_off"] == pytest.approx(1.075)  # (1.05 + 1.10) / 2


@pytest.mark.parametrize(
    ("on_cpu", "verdict"), [((0.021, 0.022), "met"), ((0.022, 0.0222), "MISSED")]
)
def test_the_report_sets_the_observed_proxy_against_the_off_one_and_judges_it(
    on_cpu: tuple[float, float], verdict: str
) -> None:
    meta = {"measured": "edgeproxy", "git_commit": "abc", "cpu_model": "cpu", "cpus": 2}
    meta["references"] = {"floor": "not measured", "nginx": "not measured", "off": "same"}
    row = _observed_row(on_cpu)
    text = markdown([row], {**meta, "date": "today"}, SETTINGS, Pinning(None, None, None))
    assert "**Observability on the hot path (issue 13" in text
    assert "| on CPU ms/req | off CPU ms/req | on - off ms | on/off |" in text
    assert f"| ≤ 1.10x off | {verdict} |" in text
    assert "Tenancy and guardrails" not in text and "Against the floor and nginx" not in text
    assert "PROBLEMS" not in text
