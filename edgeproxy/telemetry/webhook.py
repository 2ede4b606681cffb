"""Posting JSON payloads to one webhook, never on a request's path.

`send` only queues the payload (encoded at once, so later changes to what it was made from do
not show); a background service posts the queue in order. A sink that is down or slow costs
counters and a log line, never a request's time: the queue is bounded (the overflow is dropped
and counted), each post has a deadline, and a failed one is retried `retries` times with a
doubling pause before it is given up. The URL is a secret (a Slack webhook's path is its
credential): log lines name the failure, never the URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from edgeproxy.background import Background

log = logging.getLogger(__name__)


class WebhookSender:
    __slots__ = (
        "_backoff",
        "_closing",
        "_headers",
        "_queue",
        "_retries",
        "_sleep",
        "_task",
        "_timeout",
        "_url",
        "_wake",
        "dropped",
        "failed",
        "sent",
    )

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        max_pending: int = 256,
        backoff: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._url = url
        self._headers = {"content-type": "application/json"}
        if token is not None:
            self._headers["authorization"] = f"Bearer {token}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
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
        if task is None:
            return
        _, late = await asyncio.wait({task}, timeout=grace)
        if late:
            task.cancel()
            await asyncio.wait({task})
            self.dropped += len(self._queue)
            self._queue.clear()

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await self._deliver(session, self._queue.popleft())
                if self._closing:
                    return

    async def _deliver(self, session: aiohttp.ClientSession, body: bytes) -> None:
        pause = self._backoff
        for attempt in range(self._retries + 1):
            if attempt:
                await self._sleep(pause)
                pause *= 2
            problem = await self._post(session, body)
            if problem is None:
                self.sent += 1
                return
        self.failed += 1
        log.warning("incident webhook: a payload was given up: %s", problem)

    async def _post(self, session: aiohttp.ClientSession, body: bytes) -> str | None:
        """One attempt: None when the sink took it, else what went wrong (without the URL)."""
        try:
            async with session.post(
                self._url, data=body, headers=self._headers, allow_redirects=False
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"the sink answered {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return type(exc).__name__
