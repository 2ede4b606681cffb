"""Where batches of telemetry events go: an HTTP webhook and a JSON-lines file.

A sink is handed one batch at a time by its lane of `telemetry.event_queue.EventQueue`, in the
background, and answers None when the batch was delivered, else why not. It never raises for a
failure it expects (a refused connection, a 500, a full disk) and counts nothing itself: the
queue counts and logs.

The webhook posts `{"schema": "edgeproxy.event/1", "batch": "<id>", "events": [...]}` with the
same batch id in an `Idempotency-Key` header on every attempt, so a receiver can tell a retry of
a batch it already stored. Connection errors, timeouts, 429 and 5xx answers are retried, up to
`max_retries` more times, after a capped exponential backoff with jitter, or after the answer's
Retry-After (cut to the same cap, so one batch holds its lane for a bounded time); any other
answer (a 4xx, a redirect) gives the batch up at once, since repeating it would change nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import orjson

from edgeproxy.dialects.upstream import retry_after
from edgeproxy.jsonl import AppendFile
from edgeproxy.telemetry.events import SCHEMA, Event


class Sink(Protocol):
    """`name` labels its counters; `send` answers None once a batch is delivered, else the
    problem as a phrase for the log."""

    name: str

    async def send(self, events: Sequence[Event]) -> str | None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between a batch's attempts: the ceiling doubles from `base` up to `cap`, and the
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


class WebhookSink:
    """POSTs each batch as JSON to `url`, retried as the module says."""

    __slots__ = (
        "_backoff",
        "_clock",
        "_headers",
        "_max_retries",
        "_rng",
        "_session",
        "_sleep",
        "_timeout",
        "name",
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
        self.name = "webhook"
        self.url = url
        self._headers = {**(headers or {}), "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock  # wall time, for a Retry-After given as a date
        self._session: aiohttp.ClientSession | None = None

    async def send(self, events: Sequence[Event]) -> str | None:
        batch = os.urandom(16).hex()
        body = orjson.dumps({"schema": SCHEMA, "batch": batch, "events": list(events)})
        headers = {**self._headers, "Idempotency-Key": batch}
        attempt = 0
        while True:
            status, asked, shown = await self._post(body, headers)
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

    async def _post(
        self, body: bytes, headers: dict[str, str]
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
                asked = retry_after(answer.headers, self._clock)
                return answer.status, asked, f"answered {answer.status}"
        except TimeoutError:
            return None, None, "no answer in time"
        except aiohttp.ClientError as exc:
            return None, None, f"unreachable: {exc!r}"


class JsonlSink:
    """Appends each event as one line to `path` (or standard output for `-`), a batch in one
    write (edgeproxy.jsonl); the file is opened at the first batch, and again after a failure."""

    __slots__ = ("_file", "name")

    def __init__(self, path: str) -> None:
        self.name = "file"
        self._file = AppendFile(path)

    async def send(self, events: Sequence[Event]) -> str | None:
        lines = [orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE) for event in events]
        try:
            if not self._file.is_open:
                await self._file.open()
            await self._file.append(lines)
        except OSError as exc:
            await self._file.close()
            return f"{self._file.target}: {exc.strerror or exc}"
        return None

    async def close(self) -> None:
        await self._file.close()
