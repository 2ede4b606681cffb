"""Request metrics of several worker processes serving one port, reported as the pod's.

Each process writes a snapshot of its request metrics to `<dir>/requests-<pid>.json` every
`interval` seconds and when it stops (a temporary file renamed over the old one, so a reader
never sees half a file), and a scrape adds every other process's snapshot to its own: whichever
worker answers `/metrics` reports all of them, as prometheus-client's multiprocess mode does,
without a lock or a file write on the request path. The counts of a worker that exited stand
(a counter never goes down); its in-flight requests do not. A snapshot is at most `interval`
old, so a scrape may lag the other workers by that much.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson

from edgeproxy.background import Background
from edgeproxy.telemetry.request_metrics import RequestMetrics

log = logging.getLogger("edgeproxy.metrics")
_PREFIX = "requests-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class SharedMetrics:
    __slots__ = ("_directory", "_file", "_interval", "_metrics", "_pid", "_task")

    def __init__(
        self, directory: str, metrics: RequestMetrics, interval: float = 1.0, pid: int = 0
    ) -> None:
        self._directory = Path(directory)
        self._metrics = metrics
        self._interval = interval
        self._pid = pid or os.getpid()
        self._file = self._directory / f"{_PREFIX}{self._pid}.json"
        self._task: asyncio.Task[None] | None = None

    def start(self, background: Background) -> None:
        self._task = background.service("shared metrics", self.run())

    async def stop(self) -> None:
        """At shutdown: the last snapshot written, so the pod's counts keep this worker's."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def write(self) -> None:
        """This process's numbers, replacing its previous snapshot at once."""
        partial = self._file.with_suffix(".tmp")
        partial.write_bytes(orjson.dumps(self._metrics.snapshot()))
        partial.replace(self._file)

    def merged(self) -> RequestMetrics:
        """This process's metrics plus every other worker's latest snapshot."""
        merged = self._metrics.empty_like()
        merged.absorb(self._metrics.snapshot(), live=True)
        for path in self._directory.glob(f"{_PREFIX}*.json"):
            number = path.stem.removeprefix(_PREFIX)
            if not number.isdigit() or int(number) == self._pid:
                continue
            pid = int(number)
            try:
                snapshot = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:  # mid-rename elsewhere, or gone
                log.debug("skipped a worker's metrics snapshot %s: %r", path.name, exc)
                continue
            merged.absorb(snapshot, live=_alive(pid))
        return merged

    async def run(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Write a snapshot every interval until cancelled, then one last time."""
        try:
            while True:
                await sleep(self._interval)
                self.write()
        finally:
            with contextlib.suppress(OSError):
                self.write()
