"""The events' queue: batches by size and by interval, a bound that drops and counts, emit that
never waits whatever the sinks do, one lane per sink, and close that sends what is queued."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from edgeproxy.background import Background
from edgeproxy.config_reader import Secret
from edgeproxy.telemetry.event_queue import EventQueue, LaneCounts, build_events
from edgeproxy.telemetry.event_settings import EventsSettings, WebhookSettings
from edgeproxy.telemetry.event_sinks import JsonlSink, WebhookSink
from edgeproxy.telemetry.events import Event, breaker_event
from edgeproxy.telemetry.json_post import Backoff, JsonPoster
from tests.support.clock import ManualClock, RecordingSleep
from tests.support.fake_shield import BLACK_HOLE, Answer, FakeShield
from tests.support.poll import eventually
from tests.support.redis_servers import free_port

pytestmark = pytest.mark.timeout(30)

HOUR = 3600.0  # an interval no test waits for: only a full batch or close sends


class RecordingSink:
    """Keeps each batch; `gate` holds every send until the test sets it; `problems` are the
    answers of the next sends (None: delivered), or an exception a send raises."""

    def __init__(self, name: str = "recording", gate: asyncio.Event | None = None) -> None:
        self.name = name
        self.gate = gate
        self.batches: list[list[Event]] = []
        self.sending = 0
        self.problems: list[str | Exception | None] = []
        self.closed = False

    async def send(self, events: Sequence[Event]) -> str | None:
        self.sending += 1
        if self.gate is not None:
            await self.gate.wait()
        self.batches.append(list(events))
        problem = self.problems.pop(0) if self.problems else None
        if isinstance(problem, Exception):
            raise problem
        return problem

    async def close(self) -> None:
        self.closed = True

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]


def emit(queue: EventQueue, count: int, start: int = 0) -> list[Event]:
    """Emit `count` events in one turn of the loop (nothing else runs meanwhile); returns them."""
    emitted = [breaker_event(f"deployment-{n}", "open", 1.0) for n in range(start, start + count)]
    for event in emitted:
        queue.emit(event)
    return emitted


def started(background: Background, *sinks: object, **options: float) -> EventQueue:
    queue = EventQueue(sinks, **options)  # type: ignore[arg-type]
    queue.start(background)
    return queue


async def test_a_full_batch_is_sent_at_once_and_a_partial_one_waits(
    background: Background,
) -> None:
    sink = RecordingSink()
    queue = started(background, sink, batch=3, interval=HOUR)
    emitted = emit(queue, 7)
    await eventually(lambda: len(sink.batches) == 2, "two full batches")
    assert sink.batches == [emitted[:3], emitted[3:6]]
    assert queue.queued == 1
    await queue.close()
    assert sink.batches[2] == emitted[6:]
    assert (queue.sent, queue.failed, queue.dropped) == (7, 0, 0)


async def test_a_partial_batch_is_sent_once_its_interval_has_passed(
    background: Background,
) -> None:
    sink = RecordingSink()
    queue = started(background, sink, batch=100, interval=0.01)
    emitted = emit(queue, 5)
    await eventually(lambda: sink.events == emitted, "the partial batch")
    more = emit(queue, 2, start=5)
    await eventually(lambda: sink.events == emitted + more, "the next partial batch")
    assert sink.batches == [emitted, more]
    await queue.close()


async def test_emit_never_waits_for_a_hung_sink_and_drops_beyond_the_bound(
    background: Background,
) -> None:
    gate = asyncio.Event()
    sink = RecordingSink(gate=gate)
    queue = started(background, sink, capacity=100, batch=10, interval=HOUR)
    emit(queue, 10_000)
    assert (queue.queued, queue.dropped) == (100, 9_900)
    await eventually(lambda: sink.sending == 1, "the first batch handed to the sink")
    emit(queue, 10_000)
    assert (queue.queued, queue.dropped) == (100, 9_900 + 9_990)
    gate.set()
    await eventually(lambda: queue.sent == 110, "the queued events once the sink answers")
    await queue.close()
    assert queue.counts() == {"recording": LaneCounts(sent=110, failed=0, dropped=19_890)}


async def test_a_hung_sink_holds_only_its_own_lane(background: Background) -> None:
    hung = RecordingSink("hung", gate=asyncio.Event())
    fine = RecordingSink("fine")
    queue = started(background, hung, fine, capacity=50, batch=10, interval=HOUR)
    first = emit(queue, 50)
    await eventually(lambda: fine.events == first, "the first 50 at the healthy sink")
    second = emit(queue, 50, start=50)
    await eventually(lambda: fine.events == first + second, "the next 50 at the healthy sink")
    assert hung.sending == 1
    await queue.close(grace=0.05)
    counts = queue.counts()
    assert counts["fine"] == LaneCounts(sent=100, failed=0, dropped=0)
    assert counts["hung"] == LaneCounts(sent=0, failed=10, dropped=90)
    assert hung.closed and fine.closed


async def test_close_sends_what_is_queued_then_refuses_new_events(
    background: Background,
) -> None:
    sink = RecordingSink()
    queue = started(background, sink, batch=100, interval=HOUR)
    emitted = emit(queue, 250)
    await queue.close()
    assert sink.events == emitted
    assert [len(batch) for batch in sink.batches] == [100, 100, 50]
    assert sink.closed
    emit(queue, 1)
    assert (queue.sent, queue.dropped, queue.queued) == (250, 1, 0)


async def test_close_stops_waiting_after_its_grace_and_counts_what_was_lost(
    background: Background,
) -> None:
    sink = RecordingSink(gate=asyncio.Event())
    queue = started(background, sink, batch=10, interval=HOUR)
    emit(queue, 25)
    await eventually(lambda: sink.sending == 1, "a batch handed to the sink")
    await queue.close(grace=0.05)
    assert (queue.sent, queue.failed, queue.dropped, queue.queued) == (0, 10, 15, 0)
    assert sink.closed


async def test_a_failing_sink_is_logged_once_until_it_delivers_again(
    background: Background, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RecordingSink()
    sink.problems = ["answered 500 (attempt 6 of 6)", "answered 500 (attempt 6 of 6)", None]
    queue = started(background, sink, batch=2, interval=HOUR)
    with caplog.at_level(logging.WARNING, "edgeproxy.telemetry.event_queue"):
        emit(queue, 8)
        await queue.close()
    assert (queue.sent, queue.failed) == (4, 4)
    assert [r.getMessage() for r in caplog.records] == [
        "events recording: a batch of 2 was given up (answered 500 (attempt 6 of 6)); "
        "further failures are counted",
        "events recording: delivering again",
    ]


async def test_a_sink_that_raises_loses_its_batch_not_its_lane(background: Background) -> None:
    sink = RecordingSink()
    sink.problems = [TypeError("not serialisable")]
    queue = started(background, sink, batch=2, interval=HOUR)
    emit(queue, 6)
    await queue.close()
    assert (queue.sent, queue.failed, background.failed) == (4, 2, 0)


def webhook_sink(url: str, **options: float) -> WebhookSink:
    return WebhookSink(
        JsonPoster(
            url,
            rng=random.Random(3),
            sleep=RecordingSleep(ManualClock()),
            backoff=Backoff(0.1, 1.0),
            **options,  # type: ignore[arg-type]
        )
    )


async def test_a_webhook_answering_500_then_200_gets_each_batch_delivered_once(
    background: Background, webhook: FakeShield
) -> None:
    webhook.script(Answer(status=500), Answer(status=200), Answer(status=503))
    queue = started(background, webhook_sink(webhook.url), batch=5, interval=HOUR)
    emitted = emit(queue, 10)
    await queue.close()
    assert webhook.calls == 4
    delivered = [webhook.bodies[1], webhook.bodies[3]]
    assert [event for body in delivered for event in body["events"]] == emitted
    assert (queue.sent, queue.failed, queue.dropped) == (10, 0, 0)


async def test_emit_never_waits_for_a_webhook_that_holds_its_answers(
    background: Background, webhook: FakeShield
) -> None:
    webhook.default = BLACK_HOLE
    sink = webhook_sink(webhook.url, timeout=60.0)
    queue = started(background, sink, capacity=1_000, batch=100, interval=HOUR)
    emit(queue, 10_000)
    await eventually(lambda: webhook.calls == 1, "the first batch at the webhook")
    emit(queue, 10_000)
    assert (queue.queued, queue.dropped) == (1_000, 9_000 + 9_900)
    await queue.close(grace=0.05)
    assert (queue.sent, queue.failed, queue.dropped) == (0, 100, 18_900 + 1_000)


async def test_a_webhook_that_is_down_leaves_the_file_sink_complete(
    background: Background, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    down = webhook_sink(f"http://127.0.0.1:{free_port()}", max_retries=2)
    queue = started(background, down, JsonlSink(str(path)), batch=10, interval=0.01)
    emitted = emit(queue, 35)
    await queue.close()
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == emitted
    assert queue.counts() == {
        "webhook": LaneCounts(sent=0, failed=35, dropped=0),
        "file": LaneCounts(sent=35, failed=0, dropped=0),
    }


async def test_built_events_go_to_each_configured_sink(
    background: Background, webhook: FakeShield, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    settings = EventsSettings(
        webhook=WebhookSettings(
            Secret(webhook.url + "/ingest/"), (("X-Observatory-Key", Secret("k-123456")),)
        ),
        file=str(path),
        batch=10,
    )
    queue = build_events(settings)
    queue.start(background)
    emitted = emit(queue, 3)
    await queue.close()
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == emitted
    (body,) = webhook.bodies
    assert body["events"] == emitted
    assert webhook.paths == ["/ingest/"]
    assert webhook.headers[0]["X-Observatory-Key"] == "k-123456"
