"""Closed-loop load: `c` workers, each sending requests back to back over keep-alive connections.

A closed loop holds concurrency fixed, so per-request cost and latency are measured at a known
load instead of wherever an open-loop rate happens to saturate. Every run stops by itself at a
request count or a wall-clock limit, whichever comes first, and a stalled request cannot hold it
beyond a short grace period: it is cut and counted as stalled.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import aiohttp

HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-client"}
STALL_GRACE = 5.0  # seconds past a run's time limit before in-flight requests count as stalled
_DONE = b"data: [DONE]\n\n"
_MAX_SAMPLES = 5

# Sees every answer (status and headers final, body read) before it is judged; for scenarios
# that read the proxy's own headers, such as the chaos run's x-edgeproxy-attempts.
Observer = Callable[[aiohttp.ClientResponse, bytes], None]


@dataclass(frozen=True)
class Limits:
    """Where a run stops: after `requests` were issued or `seconds` passed."""

    requests: int
    seconds: float


@dataclass
class RunResult:
    """What one run against one target observed; latencies in seconds, successes only."""

    issued: int = 0
    completed: int = 0
    errors: int = 0
    events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    @property
    def stalled(self) -> int:
        """Requests still in flight when the run was cut at its time limit plus the grace."""
        return self.issued - self.completed - self.errors

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, pct: float) -> float:
        """Nearest-rank percentile, so p99 is a latency some request really had."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(pct / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    def fail(self, problem: str) -> None:
        self.errors += 1
        if len(self.error_samples) < _MAX_SAMPLES and problem not in self.error_samples:
            self.error_samples.append(problem)


def session(concurrency: int) -> aiohttp.ClientSession:
    """One keep-alive pool per target, sized to the workers so each keeps its own connection."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, keepalive_timeout=60.0)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
        trust_env=False,  # loopback only: never route through an HTTP(S)_PROXY from the env
    )


def _problem(status: int, data: bytes, stream: bool) -> str | None:
    """Cheap checks (the load generator shares a core with the upstream): is this an answer?"""
    if status != 200:
        return f"HTTP {status}: {data[:200]!r}"
    if stream and not data.endswith(_DONE):
        return f"stream did not end with [DONE]: ...{data[-120:]!r}"
    if not stream and data[:1] != b"{":
        return f"not a JSON object: {data[:120]!r}"
    return None


async def run(
    client: aiohttp.ClientSession,
    url: str,
    body: bytes | Iterator[bytes],
    *,
    stream: bool,
    concurrency: int,
    limits: Limits,
    observe: Observer | None = None,
) -> RunResult:
    """Drive `concurrency` workers against `url` until `limits`; streams are read to the end.

    `body` is one body for every request, or an iterator giving each request its own; an
    endless one (`itertools.cycle`) passed to run after run keeps its place between them, as
    the l2-hit scenarios need to keep missing their one-entry L1.
    """
    bodies = itertools.repeat(body) if isinstance(body, bytes) else body
    result = RunResult()
    started = time.perf_counter()  # not loop.time(): uvloop's clock has 1 ms steps
    deadline = started + limits.seconds

    async def worker() -> None:
        while result.issued < limits.requests and time.perf_counter() < deadline:
            request = next(bodies, None)
            if request is None:
                break  # a finite iterator ran out
            result.issued += 1
            sent = time.perf_counter()
            try:
                async with client.post(url, data=request, headers=HEADERS) as response:
                    if stream:
                        data = b"".join([part async for part in response.content.iter_any()])
                    else:
                        data = await response.read()
                    status = response.status
            except (aiohttp.ClientError, OSError) as exc:
                result.fail(repr(exc))
                continue
            if observe is not None:
                observe(response, data)
            elapsed = time.perf_counter() - sent
            problem = _problem(status, data, stream)
            if problem is not None:
                result.fail(problem)
                continue
            result.completed += 1
            result.latencies.append(elapsed)
            if stream:
                result.events += data.count(b"\n\n")

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        async with asyncio.timeout(limits.seconds + STALL_GRACE):
            await asyncio.gather(*workers)
    except TimeoutError:
        pass  # the workers were cancelled; what they had in flight shows up as `stalled`
    finally:
        for task in workers:
            task.cancel()
    result.seconds = time.perf_counter() - started
    return result
