"""The events' sinks: the webhook against a scripted HTTP server (batches as JSON, retries with
backoff, Retry-After, a server that is down or holds its answers) and the JSON-lines file."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest

from edgeproxy.telemetry.event_sinks import JsonlSink, WebhookSink
from edgeproxy.telemetry.events import (
    SCHEMA,
    Event,
    Queued,
    breaker_event,
    guard_event,
    request_event,
)
from edgeproxy.telemetry.json_post import Backoff, JsonPoster, should_retry
from tests.support.clock import ManualClock, RecordingSleep
from tests.support.event_schema import EVENT_SCHEMA
from tests.support.fake_shield import BLACK_HOLE, Answer, FakeShield
from tests.support.records import record
from tests.support.redis_servers import free_port

# Timeouts make some tests wait for a deadline: generous, and not a claim about speed.
pytestmark = pytest.mark.timeout(30)

BATCH: list[Event] = [
    breaker_event("openai-east", "open", 1738324800.0),
    guard_event("req-1", "web", "pii", "redact", 1738324800.5),
]


def sink_for(
    url: str, sleep: RecordingSleep, max_retries: int = 3, timeout: float = 5.0
) -> WebhookSink:
    return WebhookSink(
        JsonPoster(
            url + "/v1/events",
            {"Authorization": "Bearer observatory-token"},
            timeout=timeout,
            max_retries=max_retries,
            backoff=Backoff(0.5, 30.0),
            rng=random.Random(7),
            sleep=sleep,
        )
    )


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep(ManualClock())


async def test_a_batch_is_posted_as_json_under_its_schema_with_its_id_as_idempotency_key(
    webhook: FakeShield, sleep: RecordingSleep
) -> None:
    sink = sink_for(webhook.url, sleep)
    assert await sink.send(BATCH) is None
    await sink.close()
    (body,) = webhook.bodies
    EVENT_SCHEMA.validate(body)
    assert body["schema"] == SCHEMA
    assert body["events"] == BATCH
    (headers,) = webhook.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer observatory-token"
    assert headers["Idempotency-Key"] == body["batch"]
    assert webhook.paths == ["/v1/events"]


ANSWERED = record(request_id="req-2", cost_usd=0.25, wall=1738324801.25)


def as_sent(event: dict[str, object]) -> dict[str, object]:
    """An event without its id, which each encoding draws afresh (checked apart)."""
    assert isinstance(event["id"], str) and len(event["id"]) == 32
    return {k: v for k, v in event.items() if k != "id"}


async def test_a_queued_record_is_sent_as_its_request_completed_event_by_either_sink(
    webhook: FakeShield, sleep: RecordingSleep, tmp_path: Path
) -> None:
    batch: list[Queued] = [BATCH[0], ANSWERED]
    expected = [as_sent(BATCH[0]), as_sent(request_event(ANSWERED, ANSWERED.wall))]
    posting = sink_for(webhook.url, sleep)
    assert await posting.send(batch) is None
    await posting.close()
    (body,) = webhook.bodies
    EVENT_SCHEMA.validate(body)
    assert [as_sent(event) for event in body["events"]] == expected
    path = tmp_path / "events.jsonl"
    writing = JsonlSink(str(path))
    assert await writing.send(batch) is None
    await writing.close()
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [as_sent(line) for line in lines] == expected
    assert lines[1]["time"] == "2025-01-31T12:00:01.250Z"


@pytest.mark.parametrize(
    ("statuses", "delivered"),
    [
        ([200], True),
        ([204], True),
        ([500, 200], True),
        ([503, 502, 504, 202], True),
        ([429, 200], True),
        ([500, 500, 500, 500], False),
        ([400], False),
        ([401], False),
        ([404], False),
        ([307], False),
    ],
    ids=lambda value: "-".join(map(str, value)) if isinstance(value, list) else str(value),
)
async def test_server_errors_and_429_are_retried_and_other_answers_end_the_batch(
    webhook: FakeShield, sleep: RecordingSleep, statuses: list[int], delivered: bool
) -> None:
    webhook.script(*(Answer(status=s, headers={"Location": "/elsewhere"}) for s in statuses))
    sink = sink_for(webhook.url, sleep, max_retries=3)
    problem = await sink.send(BATCH)
    await sink.close()
    assert (problem is None) is delivered
    if problem is not None:
        assert f"answered {statuses[-1]}" in problem
    assert webhook.calls == len(statuses)
    assert len(sleep.waits) == len(statuses) - 1
    assert len({str(body["batch"]) for body in webhook.bodies}) == 1  # one batch, retried
    assert all(body["events"] == BATCH for body in webhook.bodies)


async def test_retry_after_is_waited_as_asked_up_to_the_backoffs_cap(
    webhook: FakeShield, sleep: RecordingSleep
) -> None:
    webhook.script(
        Answer(status=429, headers={"Retry-After": "7"}),
        Answer(status=503, headers={"Retry-After": "3600"}),
        Answer(status=429, headers={"retry-after-ms": "250"}),
    )
    sink = sink_for(webhook.url, sleep)
    assert await sink.send(BATCH) is None
    await sink.close()
    assert sleep.waits == [7.0, 30.0, 0.25]


async def test_a_webhook_that_is_down_costs_the_batch_after_its_retries(
    sleep: RecordingSleep,
) -> None:
    sink = sink_for(f"http://127.0.0.1:{free_port()}", sleep, max_retries=2)
    problem = await sink.send(BATCH)
    await sink.close()
    assert problem is not None
    assert "unreachable" in problem
    assert "attempt 3 of 3" in problem
    assert len(sleep.waits) == 2


async def test_a_webhook_that_holds_its_answers_times_out_each_attempt(
    webhook: FakeShield, sleep: RecordingSleep
) -> None:
    webhook.default = BLACK_HOLE
    sink = sink_for(webhook.url, sleep, max_retries=1, timeout=0.05)
    problem = await sink.send(BATCH)
    await sink.close()
    assert problem is not None
    assert "no answer in time" in problem
    assert webhook.calls == 2


@pytest.mark.parametrize(
    ("status", "retried"),
    [(None, True), (429, True), (500, True), (599, True), (400, False), (409, False)],
)
def test_what_is_worth_retrying(status: int | None, retried: bool) -> None:
    assert should_retry(status) is retried


def test_backoff_doubles_with_jitter_in_its_upper_half_up_to_its_cap() -> None:
    backoff = Backoff(0.5, 4.0)
    rng = random.Random(1)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for attempt, ceiling in enumerate(ceilings):
        delays = {backoff.delay(attempt, rng) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1
    assert backoff.delay(0, rng, asked=2.5) == 2.5
    assert backoff.delay(0, rng, asked=60.0) == 4.0


async def test_the_file_sink_appends_one_valid_event_a_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(str(path))
    assert await sink.send(BATCH) is None
    assert await sink.send(BATCH[:1]) is None
    await sink.close()
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [*BATCH, BATCH[0]]
    assert path.stat().st_mode & 0o777 == 0o600


async def test_writers_of_one_file_never_interleave_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sinks = [JsonlSink(str(path)) for _ in range(4)]
    batch = [
        guard_event(f"{n:03d}" + "x" * 120, f"key-{n}", "pii" * 40, "flag", 1.0) for n in range(300)
    ]
    outcomes = await asyncio.gather(*(sink.send(batch) for sink in sinks for _ in range(5)))
    for sink in sinks:
        await sink.close()
    assert outcomes == [None] * 20
    lines = path.read_bytes().splitlines()
    assert len(lines) == 20 * len(batch)
    assert all(orjson.loads(line)["rule"] == "pii" * 40 for line in lines)


async def test_a_file_that_cannot_be_written_fails_the_batch_until_it_can(tmp_path: Path) -> None:
    path = tmp_path / "later" / "events.jsonl"
    sink = JsonlSink(str(path))
    problem = await sink.send(BATCH)
    assert problem is not None
    assert str(path) in problem
    path.parent.mkdir()
    assert await sink.send(BATCH) is None
    await sink.close()
    assert len(path.read_bytes().splitlines()) == len(BATCH)
