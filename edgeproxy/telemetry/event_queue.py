"""Telemetry events from the request path to their sinks, in the background, in batches.

`emit` is all the request path does: it appends the event to each sink's lane and returns, never
awaiting, never doing I/O. Each sink has its own lane (a bounded buffer and one flusher task,
started through `Background.service`), so a webhook that is down, slow or failing holds up only
its own lane, never the file sink, the queue or a request. A lane sends a batch as soon as it
holds `batch` events, or, when fewer come, `interval` seconds after it began waiting for more;
one batch at a time, in the order the events were emitted. When a lane's buffer is full (its
sink has fallen that far behind) a new event is dropped for that sink and counted.

Counts are per sink and per event (`LaneCounts`): `sent` (delivered), `failed` (handed to the
sink, which gave the batch up), `dropped` (never handed to it: the buffer was full, the queue
was closed, or shutdown's wait ran out). With two sinks an event counts once in each. A sink
that starts failing is logged once, with its problem, and again when it delivers once more;
meanwhile its failures are only counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgeproxy.background import Background
from edgeproxy.telemetry.event_settings import EventsSettings
from edgeproxy.telemetry.event_sinks import JsonlSink, Sink, WebhookSink
from edgeproxy.telemetry.events import Queued
from edgeproxy.telemetry.json_post import Backoff, JsonPoster

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LaneCounts:
    """What became of the events emitted for one sink."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0


class _Lane:
    """One sink's buffer and flusher."""

    __slots__ = (
        "_batch",
        "_buffer",
        "_capacity",
        "_closing",
        "_failing",
        "_interval",
        "_wake",
        "counts",
        "sink",
    )

    def __init__(self, sink: Sink, capacity: int, batch: int, interval: float) -> None:
        self.sink = sink
        self.counts = LaneCounts()
        self._capacity = capacity
        self._batch = batch
        self._interval = interval
        self._buffer: list[Queued] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._failing = False

    @property
    def queued(self) -> int:
        return len(self._buffer)

    def put(self, event: Queued) -> None:
        held = len(self._buffer)
        if held >= self._capacity or self._closing:
            self.counts.dropped += 1
            return
        self._buffer.append(event)
        if held == 0 or held + 1 == self._batch:  # the first event, or a full batch
            self._wake.set()

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    def abandon(self) -> None:
        """Count what shutdown could not send as dropped."""
        self.counts.dropped += len(self._buffer)
        self._buffer.clear()

    async def flush_until_closed(self) -> None:
        while self._buffer or not self._closing:
            await self._until(self._has_events, None)
            await self._until(self._has_batch, self._interval)
            if self._buffer:
                batch = self._buffer[: self._batch]
                del self._buffer[: self._batch]
                await self._deliver(batch)

    def _has_events(self) -> bool:
        return bool(self._buffer) or self._closing

    def _has_batch(self) -> bool:
        return len(self._buffer) >= self._batch or self._closing

    async def _until(self, ready: Callable[[], bool], within: float | None) -> None:
        """Wait for `ready()`, `within` seconds at most (None: without limit)."""
        try:
            async with asyncio.timeout(within):
                while not ready():
                    self._wake.clear()
                    await self._wake.wait()
        except TimeoutError:
            return

    async def _deliver(self, batch: list[Queued]) -> None:
        try:
            problem = await self.sink.send(batch)
        except asyncio.CancelledError:
            self.counts.failed += len(batch)
            raise
        except Exception:  # a bug (an event that cannot be serialised) must not end the lane
            log.exception("events %s: a batch of %d failed", self.sink.name, len(batch))
            self.counts.failed += len(batch)
            return
        if problem is None:
            self.counts.sent += len(batch)
            if self._failing:
                self._failing = False
                log.warning("events %s: delivering again", self.sink.name)
            return
        self.counts.failed += len(batch)
        if not self._failing:
            self._failing = True
            log.warning(
                "events %s: a batch of %d was given up (%s); further failures are counted",
                self.sink.name,
                len(batch),
                problem,
            )


class EventQueue:
    """Bounded, batching, never-blocking delivery of events to `sinks` (see the module)."""

    __slots__ = ("_lanes", "_tasks")

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        capacity: int = 10_000,
        batch: int = 100,
        interval: float = 1.0,
    ) -> None:
        self._lanes = tuple(_Lane(sink, capacity, batch, interval) for sink in sinks)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, background: Background) -> None:
        """Start each lane's flusher (needs the running loop)."""
        self._tasks = [
            background.service(f"events-{lane.sink.name}", lane.flush_until_closed())
            for lane in self._lanes
        ]

    def emit(self, event: Queued) -> None:
        """Queue `event` (or a request's record, whose event its sinks make) for every sink;
        never waits. It must not change afterwards."""
        for lane in self._lanes:
            lane.put(event)

    def counts(self) -> dict[str, LaneCounts]:
        """Each sink's counts by its name, for metrics."""
        return {lane.sink.name: lane.counts for lane in self._lanes}

    @property
    def sent(self) -> int:
        return sum(lane.counts.sent for lane in self._lanes)

    @property
    def failed(self) -> int:
        return sum(lane.counts.failed for lane in self._lanes)

    @property
    def dropped(self) -> int:
        return sum(lane.counts.dropped for lane in self._lanes)

    @property
    def queued(self) -> int:
        return sum(lane.queued for lane in self._lanes)

    async def close(self, grace: float = 5.0) -> None:
        """Send what is queued, waiting `grace` seconds at most, then close the sinks. What
        is still queued then is counted as dropped, a batch still being sent as failed."""
        for lane in self._lanes:
            lane.close()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                log.warning("events: shutdown stopped %d sinks still sending", len(late))
        for lane in self._lanes:
            lane.abandon()
            await lane.sink.close()


def build_events(settings: EventsSettings) -> EventQueue:
    """The queue and sinks `settings` configure; `start` it once the loop runs."""
    sinks: list[Sink] = []
    if (hook := settings.webhook) is not None:
        sinks.append(
            WebhookSink(
                JsonPoster(
                    hook.url.reveal(),
                    {name: value.reveal() for name, value in hook.headers},
                    timeout=hook.timeout,
                    max_retries=hook.max_retries,
                    backoff=Backoff(hook.backoff, hook.max_backoff),
                )
            )
        )
    if settings.file is not None:
        sinks.append(JsonlSink(settings.file))
    return EventQueue(
        sinks, capacity=settings.queue, batch=settings.batch, interval=settings.interval
    )
