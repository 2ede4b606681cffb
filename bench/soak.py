"""The memory check: the proxy's RSS over 100,000 requests, and whether it keeps growing.

It runs a fresh proxy with an upstream of its own (as the chaos run does), so what it holds
depends on these requests alone, not on which scenarios ran before. The load alternates JSON
and streamed answers (both relay paths) at c=16, and the proxy's RSS is read from /proc every
`every` requests. A leak shows as a slope over the second half of the run, once pools, caches
and the allocator's arenas have grown to their working size; the first half is warm-up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench import load
from bench.load import Limits, RunResult
from bench.runner import SCENARIOS

NAME = "rss"
CONCURRENCY = 16
PER_10K = 10_000  # requests: the unit the growth is reported in


class Watched(Protocol):
    """What the soak reads of the process under load (a `bench.procs.Child`)."""

    def rss_kib(self) -> int: ...

    def check_alive(self) -> None: ...


@dataclass(frozen=True)
class SoakSettings:
    """Where the soak stops (`requests` sent or `seconds` passed) and how often RSS is read."""

    requests: int
    every: int
    seconds: float

    @staticmethod
    def default(quick: bool) -> SoakSettings:
        """100,000 requests read every 10,000 within 5 minutes; quick: 2,000 every 200."""
        return SoakSettings(2_000, 200, 10.0) if quick else SoakSettings(100_000, 10_000, 300.0)

    @property
    def about(self) -> str:
        return (
            f"{self.requests:,} requests, half JSON, half SSE, c={CONCURRENCY}, through a fresh "
            f"proxy; RSS read every {self.every:,}"
        )


def growth_kib_per_10k(samples: Sequence[tuple[int, int]]) -> float | None:
    """The least-squares slope of RSS (KiB) against requests sent, over the second half of
    `samples` (requests, KiB), in KiB per 10,000 requests; None with fewer than two readings
    there."""
    half = samples[len(samples) // 2 :]
    if len({requests for requests, _ in half}) < 2:
        return None
    fit = statistics.linear_regression([r for r, _ in half], [kib for _, kib in half])
    return fit.slope * PER_10K


@dataclass
class _Tally:
    """What the soak's runs saw, run after run."""

    issued: int = 0
    completed: int = 0
    errors: int = 0
    stalled: int = 0
    error_samples: set[str] = field(default_factory=set)

    def add(self, result: RunResult) -> None:
        self.issued += result.issued
        self.completed += result.completed
        self.errors += result.errors
        self.stalled += result.stalled
        self.error_samples.update(result.error_samples)


async def measure(url: str, proxy: Watched, settings: SoakSettings) -> dict[str, Any]:
    """Drive the soak's load through the proxy at `url` (its base URL) until `settings` stop
    it, reading the proxy's RSS before the first request and after every `every`."""
    endpoint = url + "/v1/chat/completions"
    kinds = ((False, SCENARIOS["nonstream-c16"].body()), (True, SCENARIOS["stream-c16"].body()))
    tally = _Tally()
    samples = [(0, proxy.rss_kib())]
    started = time.monotonic()
    deadline = started + settings.seconds
    client = load.session(CONCURRENCY)
    try:
        while tally.issued < settings.requests:
            block = min(settings.every, settings.requests - tally.issued)
            halves = (block - block // 2, block // 2)
            for (stream, body), count in zip(kinds, halves, strict=True):
                left = deadline - time.monotonic()
                if left <= 0 or count == 0:
                    continue
                limits = Limits(requests=count, seconds=left)
                tally.add(
                    await load.run(
                        client,
                        endpoint,
                        body,
                        stream=stream,
                        concurrency=CONCURRENCY,
                        limits=limits,
                    )
                )
            proxy.check_alive()
            samples.append((tally.issued, proxy.rss_kib()))
            if time.monotonic() >= deadline:
                break
    finally:
        await client.close()
    return _summary(settings, samples, tally, time.monotonic() - started)


def _summary(
    settings: SoakSettings, samples: list[tuple[int, int]], tally: _Tally, seconds: float
) -> dict[str, Any]:
    return {
        "scenario": NAME,
        "description": settings.about,
        "planned_requests": settings.requests,
        "planned_seconds": settings.seconds,
        "requests": tally.issued,
        "completed": tally.completed,
        "errors": tally.errors,
        "stalled": tally.stalled,
        "error_samples": sorted(tally.error_samples),
        "seconds": seconds,
        "rss_mib_start": samples[0][1] / 1024,
        "rss_mib_final": samples[-1][1] / 1024,
        "rss_growth_kib_per_10k": growth_kib_per_10k(samples),
        "rss_samples": [[requests, kib / 1024] for requests, kib in samples],
    }
