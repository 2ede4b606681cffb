"""After each answer: its record, handed to the request metrics and every other consumer the
configuration enabled (the access log, telemetry events, incident detection, feedback).

One call per request, after the client has its answer; consumers only add to numbers or
queue what they send, so none of this is latency and nothing is sent from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgeproxy.exchange import Exchange
from edgeproxy.telemetry.record import Costing, RequestRecord, record_of
from edgeproxy.telemetry.request_metrics import RequestMetrics

if TYPE_CHECKING:
    from edgeproxy.telemetry.event_queue import EventQueue

Consumer = Callable[[RequestRecord], None]


def request_events(queue: EventQueue) -> Consumer:
    """A `request.completed` event of each record, queued (sent in the background)."""
    from edgeproxy.telemetry.events import request_event

    def emit(record: RequestRecord) -> None:
        queue.emit(request_event(record, time.time()))

    return emit


class Recorder:
    __slots__ = ("_consumers", "costing", "metrics")

    def __init__(
        self, costing: Costing, metrics: RequestMetrics, consumers: tuple[Consumer, ...] = ()
    ) -> None:
        self.costing = costing
        self.metrics = metrics
        self._consumers = consumers

    def finished(self, exchange: Exchange, now: float) -> RequestRecord:
        record = record_of(exchange, self.costing, now)
        self.metrics.observe(record)
        for consume in self._consumers:
            consume(record)
        return record
