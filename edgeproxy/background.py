"""The one place background tasks are spawned.

Tasks are bounded (work beyond the limit is dropped and counted, never queued without end),
named, strongly referenced until done (the event loop keeps only weak references), and drained
on shutdown so cache writes and telemetry are not lost when a pod stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """A bounded set of named tasks."""

    __slots__ = ("_services", "_tasks", "dropped", "failed", "max_pending")

    def __init__(self, max_pending: int = 1024) -> None:
        self.max_pending = max_pending
        self._tasks: set[asyncio.Task[Any]] = set()
        self._services: set[asyncio.Task[Any]] = set()
        self.dropped = 0
        self.failed = 0

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> bool:
        """Start `coro` unless the limit is reached; returns whether it was started."""
        if len(self._tasks) >= self.max_pending:
            coro.close()
            self.dropped += 1
            return False
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return True

    def service(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start a long-lived task (a listener) that runs until its owner cancels it. It is
        not work to drain: `pending` and `drain` leave it out, and it takes no place."""
        task = asyncio.create_task(coro, name=name)
        self._services.add(task)
        task.add_done_callback(self._service_ended)
        return task

    def _service_ended(self, task: asyncio.Task[Any]) -> None:
        self._services.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.failed += 1
            log.error("background service %s failed: %r", task.get_name(), exc)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.failed += 1
            log.error("background task %s failed: %r", task.get_name(), exc)

    async def settle(self, grace: float) -> None:
        """Wait up to `grace` seconds for the work pending now (not for work spawned later),
        cancelling nothing: a configuration reload lets the replaced configuration's work
        after answers (spend records, cache writes) finish before closing what it uses."""
        if self._tasks and grace > 0:
            await asyncio.wait(set(self._tasks), timeout=grace)

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for pending work, then cancel what is left."""
        if not self._tasks:
            return
        _, still_running = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in still_running:
            task.cancel()
        if still_running:
            log.warning("cancelled %d background tasks at shutdown", len(still_running))
            await asyncio.wait(still_running)
