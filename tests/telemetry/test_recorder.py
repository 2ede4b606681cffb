"""The recorder: each answer's record counted in the metrics at once, and handed to the other
consumers in batches (after `HOLD` seconds, at `BATCH` records, or on `flush`), each of them
getting every record once and in order, whatever another consumer does."""

from __future__ import annotations

import logging

import pytest

from edgeproxy.exchange import Exchange
from edgeproxy.operations import Operation
from edgeproxy.pricing import PricingTable
from edgeproxy.telemetry import recorder as recorder_module
from edgeproxy.telemetry.record import Costing, RequestRecord
from edgeproxy.telemetry.recorder import BATCH, Recorder
from edgeproxy.telemetry.request_metrics import RequestMetrics
from edgeproxy.telemetry.stats import read
from tests.support.poll import eventually


def finished(recorder: Recorder, request_id: str, now: float = 2.0) -> RequestRecord:
    exchange = Exchange(request_id, Operation.CHAT, {}, b"", {}, "m", False, 1.0, status=200)
    return recorder.finished(exchange, now)


def recorder_with(*consumers: recorder_module.Consumer) -> Recorder:
    metrics = RequestMetrics(groups=(), providers={})
    return Recorder(Costing(PricingTable({})), metrics, consumers)


def counted(recorder: Recorder) -> int:
    """Requests the metrics count, as every reader of them sees it."""
    return read(recorder.metrics, 0.0).requests


async def test_the_metrics_count_an_answer_at_once_and_the_consumers_get_it_shortly_after() -> None:
    seen: list[str] = []
    recorder = recorder_with(lambda record: seen.append(record.request_id))
    record = finished(recorder, "a")
    assert counted(recorder) == 1
    assert seen == []
    await eventually(lambda: seen == ["a"], "the batch handed over after its hold")
    assert record.duration == 1.0
    assert record.wall > 1_700_000_000  # epoch seconds: what the log line and event carry


async def test_a_full_batch_is_handed_over_at_once_and_in_order() -> None:
    seen: list[str] = []
    recorder = recorder_with(lambda record: seen.append(record.request_id))
    ids = [f"r{i}" for i in range(BATCH)]
    for request_id in ids:
        finished(recorder, request_id)
    assert seen == ids


async def test_flush_hands_over_what_waits_and_stops_the_timer() -> None:
    seen: list[str] = []
    recorder = recorder_with(lambda record: seen.append(record.request_id))
    finished(recorder, "a")
    finished(recorder, "b")
    recorder.flush()
    assert seen == ["a", "b"]
    finished(recorder, "c")
    await eventually(lambda: len(seen) == 3, "the next record handed over after its hold")
    assert seen == ["a", "b", "c"]  # nothing handed over twice


async def test_every_consumer_gets_every_record_even_when_one_fails_on_some(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first: list[str] = []
    last: list[str] = []

    def failing(record: RequestRecord) -> None:
        if record.request_id == "b":
            raise ValueError("a bug in a consumer")
        first.append(record.request_id)

    recorder = recorder_with(failing, lambda record: last.append(record.request_id))
    with caplog.at_level(logging.ERROR, logger=recorder_module.__name__):
        for request_id in "abc":
            finished(recorder, request_id)
        recorder.flush()
    assert first == ["a", "c"]
    assert last == ["a", "b", "c"]
    assert [r.exc_info is not None for r in caplog.records] == [True]


def test_without_a_running_loop_a_record_is_handed_over_at_once() -> None:
    seen: list[str] = []
    recorder = recorder_with(lambda record: seen.append(record.request_id))
    finished(recorder, "a")
    assert seen == ["a"]


def test_without_consumers_the_metrics_still_count_every_answer() -> None:
    recorder = recorder_with()
    finished(recorder, "a")
    recorder.flush()
    assert counted(recorder) == 1
