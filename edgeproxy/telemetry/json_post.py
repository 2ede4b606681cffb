"""Posting one JSON body to a webhook until it is taken, the one way telemetry does it.

Both webhooks, the events' batches (telemetry/event_sinks.py) and the incidents' notices
(telemetry/webhook.py), post through a `JsonPoster`, in the background. Connection errors,
timeouts, 429 and 5xx answers are retried, up to `max_retries` more times, after a capped
exponential backoff with jitter, or after the answer's Retry-After (cut to the same cap, so one
body holds its sender for a bounded time); any other answer (a 4xx, a redirect) gives the body
up at once, since repeating it would change nothing. It never raises for a failure it expects:
it answers what went wrong, as a phrase for the log, which never holds the URL (a Slack
webhook's path is its credential).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from edgeproxy.dialects.upstream import retry_after


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between a body's attempts: the ceiling doubles from `base` up to `cap`, and the
    wait is drawn from its upper half (equal jitter), so retries of many replicas spread out
    but none comes back at once. A Retry-After is waited instead, up to `cap`."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random, asked: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first)."""
        if asked is not None:
            return min(asked, self.cap)
        ceiling = min(self.cap, self.base * 2.0**attempt)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def should_retry(status: int | None) -> bool:
    """Whether an attempt that ended with `status` (None: no answer) is worth repeating."""
    return status is None or status == 429 or status >= 500


class JsonPoster:
    """POSTs JSON bodies to `url` with `headers`, each retried as the module says, over one
    connection opened at the first post."""

    __slots__ = (
        "_backoff",
        "_clock",
        "_headers",
        "_max_retries",
        "_rng",
        "_session",
        "_sleep",
        "_timeout",
        "url",
    )

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 5.0,
        max_retries: int = 5,
        backoff: Backoff = Backoff(),
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._headers = {**(headers or {}), "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock  # wall time, for a Retry-After given as a date
        self._session: aiohttp.ClientSession | None = None

    async def post(self, body: bytes, headers: Mapping[str, str] | None = None) -> str | None:
        """None once `body` was taken, else why not (with `headers` added to this body's)."""
        sent = {**self._headers, **headers} if headers else self._headers
        attempt = 0
        while True:
            status, asked, shown = await self._attempt(body, sent)
            if status is not None and 200 <= status < 300:
                return None
            if not should_retry(status) or attempt == self._max_retries:
                return f"{shown} (attempt {attempt + 1} of {self._max_retries + 1})"
            await self._sleep(self._backoff.delay(attempt, self._rng, asked))
            attempt += 1

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _attempt(
        self, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int | None, float | None, str]:
        """The answer's status (None: no answer), its Retry-After, and the outcome shown."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=1)
            )
        try:
            async with self._session.post(
                self.url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                await answer.read()
                asked = retry_after(answer.headers, self._clock)
                return answer.status, asked, f"answered {answer.status}"
        except TimeoutError:
            return None, None, "no answer in time"
        except aiohttp.ClientError as exc:
            return None, None, f"unreachable: {type(exc).__name__}"
