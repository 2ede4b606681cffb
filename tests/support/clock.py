"""A manual monotonic clock and a sleep that only moves it, for deterministic routing tests.

Routing reads time, randomness and waiting through `edgeproxy.app.Clocks`. With these, a
backoff, a provider's retry-after or a breaker's reset timeout passes in no real time: the
sleep records how long it was asked to wait, moves the clock on by that much and yields once
so other tasks run, as a real sleep would let them.
"""

from __future__ import annotations

import asyncio


class ManualClock:
    """Monotonic seconds that move only when a test (or `RecordingSleep`) says so."""

    __slots__ = ("now",)

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go backwards")
        self.now += seconds


class RecordingSleep:
    """`await sleep(seconds)`: recorded in `waits`, then `clock` advanced by it."""

    __slots__ = ("clock", "waits")

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)
