"""The memory soak: the trend read from its RSS readings, the bounds of its load, and its
section of the report. The soak itself is `python -m bench --scenario rss`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bench import soak
from bench.report import soak_markdown
from bench.soak import SoakSettings, growth_kib_per_10k
from tests.support.fake_upstream import FakeUpstream

MIB = 1024


@pytest.mark.parametrize(
    ("samples", "growth"),
    [
        ([(n * 10_000, 50 * MIB) for n in range(11)], 0.0),
        ([(n * 10_000, 50 * MIB + 30 * n) for n in range(11)], 30.0),
        ([(n * 500, 50 * MIB + 3 * n) for n in range(11)], 60.0),  # per 10,000, not per reading
        ([(0, 40 * MIB), *((n * 10_000, 52 * MIB) for n in range(1, 11))], 0.0),
        ([(n * 10_000, 60 * MIB - 20 * n) for n in range(11)], -20.0),
    ],
    ids=["flat", "leaking", "scaled", "warm-up-then-flat", "shrinking"],
)
def test_growth_is_the_slope_of_the_second_half(
    samples: list[tuple[int, int]], growth: float
) -> None:
    assert growth_kib_per_10k(samples) == pytest.approx(growth)


@pytest.mark.parametrize("samples", [[], [(0, MIB)], [(0, MIB), (0, 2 * MIB)]])
def test_too_few_readings_have_no_trend(samples: list[tuple[int, int]]) -> None:
    assert growth_kib_per_10k(samples) is None


@dataclass
class _Process:
    """Stands in for the proxy's process: an RSS that grows by a page per reading."""

    readings: list[int] = field(default_factory=list)

    def rss_kib(self) -> int:
        self.readings.append(50 * MIB + 4 * len(self.readings))
        return self.readings[-1]

    def check_alive(self) -> None:
        pass


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    fake = FakeUpstream()
    await fake.start()
    yield fake.url
    await fake.close()


async def test_the_soak_stops_at_its_count_reading_rss_at_every_step(upstream: str) -> None:
    process = _Process()
    row = await soak.measure(upstream, process, SoakSettings(requests=45, every=10, seconds=30))
    assert row["requests"] == row["completed"] == 45
    assert row["errors"] == row["stalled"] == 0
    assert [requests for requests, _ in row["rss_samples"]] == [0, 10, 20, 30, 40, 45]
    assert len(process.readings) == 6
    assert row["rss_mib_final"] == process.readings[-1] / MIB


async def test_the_soak_stops_at_its_time_limit(upstream: str) -> None:
    row = await soak.measure(upstream, _Process(), SoakSettings(10**9, 10**9, seconds=0.2))
    assert 0 < row["requests"] < 10**9
    assert len(row["rss_samples"]) == 2  # at the start, and where time ran out


def test_report_shows_the_readings_the_trend_and_the_verdict() -> None:
    samples = [(n * 10_000, 30 * MIB) for n in range(11)]
    row = {
        "description": "100,000 requests, half JSON, half SSE",
        "requests": 100_000,
        "seconds": 61.0,
        "planned_requests": 100_000,
        "planned_seconds": 300.0,
        "errors": 0,
        "stalled": 0,
        "error_samples": [],
        "rss_mib_start": 30.0,
        "rss_mib_final": 30.0,
        "rss_growth_kib_per_10k": growth_kib_per_10k(samples),
        "rss_samples": [[requests, kib / MIB] for requests, kib in samples],
    }
    text = soak_markdown(row, {"measured": "edgeproxy"})
    assert "0: 30.0, 10,000: 30.0," in text
    assert "growth over the second half 0.0 KiB per 10,000 requests" in text
    assert "after 100,000 requests" in text and text.rstrip().endswith("— met.")
    assert "PROBLEMS" not in text
