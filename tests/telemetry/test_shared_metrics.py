"""Request metrics of several worker processes: each writes its snapshot, any one reports the
sum; a worker that exited keeps its counts but not its in-flight requests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edgeproxy.config import parse
from edgeproxy.config_reader import ConfigError
from edgeproxy.telemetry.request_metrics import RequestMetrics
from edgeproxy.telemetry.shared_metrics import SharedMetrics
from tests.conftest import StackFactory
from tests.support.records import answered
from tests.telemetry.test_metrics import scrape

ROOT = Path(__file__).resolve().parents[2]
GROUPS = ("g",)
PROVIDERS = {"p": "openai"}

# A worker in a process of its own: two answers observed, one request in flight, a snapshot
# written, then it exits.
WORKER = """
import sys
from edgeproxy.telemetry.request_metrics import RequestMetrics
from edgeproxy.telemetry.shared_metrics import SharedMetrics
from tests.support.records import answered
metrics = RequestMetrics(("g",), {"p": "openai"})
for n in range(2):
    metrics.observe(answered(f"w{n}", deployment="p/g", cost_usd=0.5))
metrics.in_flight = 7
SharedMetrics(sys.argv[1], metrics).write()
"""


def samples(metrics: RequestMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)

    class Families:
        def collect(self):  # type: ignore[no-untyped-def]
            return metrics.families()

    registry.register(Families())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests_total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(v for (name, _), v in found.items() if name == "edgeproxy_requests_total")


def test_a_scrape_reports_every_workers_requests(tmp_path: Path) -> None:
    first, second = RequestMetrics(GROUPS, PROVIDERS), RequestMetrics(GROUPS, PROVIDERS)
    first.observe(answered("a", deployment="p/g", cost_usd=0.25))
    for n in range(3):
        second.observe(answered(f"b{n}", deployment="p/g", cost_usd=0.25))
    first.in_flight, second.in_flight = 1, 2
    mine = SharedMetrics(str(tmp_path), first, pid=1)
    theirs = SharedMetrics(str(tmp_path), second, pid=_live_pid())
    mine.write()
    theirs.write()
    found = samples(mine.merged())
    assert requests_total(found) == 4
    assert found[("edgeproxy_cost_usd_total", (("model_group", "g"), ("provider", "p")))] == 1.0
    assert found[("edgeproxy_requests_in_flight", ())] == 3
    duration = "edgeproxy_request_duration_seconds_count"
    assert found[(duration, (("model_group", "g"), ("route", "chat")))] == 4


def test_an_exited_worker_keeps_its_counts_but_not_its_requests_in_flight(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path)],
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    own = RequestMetrics(GROUPS, PROVIDERS)
    own.observe(answered("x", deployment="p/g", cost_usd=0.5))
    found = samples(SharedMetrics(str(tmp_path), own).merged())
    assert requests_total(found) == 3
    assert found[("edgeproxy_requests_in_flight", ())] == 0


def test_a_snapshot_round_trips_exactly() -> None:
    metrics = RequestMetrics(GROUPS, PROVIDERS, key_labels=("k",), teams=("t",))
    metrics.observe(answered("a", deployment="p/g", key_id="k", cost_usd=0.125))
    copy = metrics.empty_like()
    copy.absorb(metrics.snapshot(), live=True)
    assert samples(copy) == samples(metrics)


def _live_pid() -> int:
    """A process that is certainly alive: this test's own parent."""
    return os.getppid()


async def test_a_proxy_with_a_shared_directory_reports_and_leaves_its_snapshot(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = await make_stack(sections={"telemetry": {"metrics": {"shared_dir": str(tmp_path)}}})
    async with aiohttp.ClientSession() as session:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
        async with session.post(stack.openai_url + "/chat/completions", json=body) as answer:
            await answer.read()
    found = await scrape(stack.proxy.admin_url)
    assert requests_total(found) == 1
    await stack.proxy.stop()
    assert (tmp_path / f"requests-{os.getpid()}.json").is_file()


def test_the_shared_directory_must_exist() -> None:
    raw = {"telemetry": {"metrics": {"shared_dir": "/nonexistent/edgeproxy-metrics"}}}
    with pytest.raises(ConfigError, match=r"telemetry\.metrics\.shared_dir: no directory"):
        parse(raw, {})
