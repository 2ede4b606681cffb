"""Posting incident notices to one webhook, never on a request's path.

`send` only queues the payload (encoded at once, so later changes to what it was made from do
not show); a background service posts the queue in order, each through the `JsonPoster`
(telemetry/json_post.py), which retries and backs off as it does for the events' batches. A
sink that is down or slow costs counters and a log line, never a request's time: the queue is
bounded (the overflow is dropped and counted), and each post has a deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson

from edgeproxy.background import Background
from edgeproxy.telemetry.json_post import JsonPoster

log = logging.getLogger(__name__)


class WebhookSender:
    __slots__ = ("_closing", "_poster", "_queue", "_task", "_wake", "dropped", "failed", "sent")

    def __init__(self, poster: JsonPoster, max_pending: int = 256) -> None:
        self._poster = poster
        self._queue: deque[bytes] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.sent = 0
        self.failed = 0  # payloads given up after their retries
        self.dropped = 0  # payloads pushed out of a full queue, or sent after close

    @property
    def pending(self) -> int:
        return len(self._queue)

    def send(self, payload: Mapping[str, Any]) -> None:
        """Queue `payload`; never waits. A full queue drops its oldest payload."""
        if self._closing:
            self.dropped += 1
            return
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.dropped += 1
        queue.append(orjson.dumps(payload))
        self._wake.set()

    def start(self, background: Background) -> None:
        self._task = background.service("incident-webhook", self._run())

    async def close(self, grace: float) -> None:
        """Post what is queued within `grace` seconds, then stop."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            _, late = await asyncio.wait({task}, timeout=grace)
            if late:
                task.cancel()
                await asyncio.wait({task})
                self.dropped += len(self._queue)
                self._queue.clear()
        await self._poster.close()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                problem = await self._poster.post(self._queue.popleft())
                if problem is None:
                    self.sent += 1
                else:
                    self.failed += 1
                    log.warning("incident webhook: a payload was given up: %s", problem)
            if self._closing:
                return
