"""The one bounded wait the tests use for what another task or process does.

A condition polled every few milliseconds until it holds, failing after `within` seconds: a
wait for an event the test cannot await directly, never a claim about how long anything takes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], what: str, within: float = 10.0
) -> None:
    """`condition` may be a coroutine function too (a question asked over a socket)."""
    deadline = time.monotonic() + within
    while not await _holds(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {within}s for {what}")
        await asyncio.sleep(0.002)


async def _holds(condition: Callable[[], bool | Awaitable[bool]]) -> bool:
    found = condition()
    return await found if inspect.isawaitable(found) else found
