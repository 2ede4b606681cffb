"""Where batches of telemetry events go: an HTTP webhook and a JSON-lines file.

A sink is handed one batch at a time by its lane of `telemetry.event_queue.EventQueue`, in the
background, and answers None when the batch was delivered, else why not. It never raises for a
failure it expects (a refused connection, a 500, a full disk) and counts nothing itself: the
queue counts and logs.

The webhook posts `{"schema": "edgeproxy.event/1", "batch": "<id>", "events": [...]}` with the
same batch id in an `Idempotency-Key` header on every attempt, so a receiver can tell a retry of
a batch it already stored. Retries are the `JsonPoster`'s (telemetry/json_post.py): connection
errors, timeouts, 429 and 5xx, after a capped exponential backoff with jitter or Retry-After.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import orjson

from edgeproxy.ids import fresh_id
from edgeproxy.jsonl import AppendFile
from edgeproxy.telemetry.events import SCHEMA, Queued, encoded
from edgeproxy.telemetry.json_post import JsonPoster


class Sink(Protocol):
    """`name` labels its counters; `send` answers None once a batch is delivered, else the
    problem as a phrase for the log."""

    name: str

    async def send(self, events: Sequence[Queued]) -> str | None: ...

    async def close(self) -> None: ...


class WebhookSink:
    """POSTs each batch as JSON, retried by its `JsonPoster` (telemetry/json_post.py)."""

    __slots__ = ("_poster", "name")

    def __init__(self, poster: JsonPoster) -> None:
        self.name = "webhook"
        self._poster = poster

    async def send(self, events: Sequence[Queued]) -> str | None:
        batch = fresh_id()
        head = orjson.dumps({"schema": SCHEMA, "batch": batch})[:-1]
        body = b'%b,"events":[%b]}' % (head, b",".join(map(encoded, events)))
        return await self._poster.post(body, {"Idempotency-Key": batch})

    async def close(self) -> None:
        await self._poster.close()


class JsonlSink:
    """Appends each event as one line to `path` (or standard output for `-`), a batch in one
    write (edgeproxy.jsonl); the file is opened at the first batch, and again after a failure."""

    __slots__ = ("_file", "name")

    def __init__(self, path: str) -> None:
        self.name = "file"
        self._file = AppendFile(path)

    async def send(self, events: Sequence[Queued]) -> str | None:
        lines = [encoded(event, orjson.OPT_APPEND_NEWLINE) for event in events]
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
