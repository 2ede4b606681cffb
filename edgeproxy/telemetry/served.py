"""The answers this proxy served recently, by request id: what feedback is checked against,
and the traffic the routing recommendations weigh.

`ServedLedger.served(record)` takes every request record and keeps those that got an answer
(a status below 400): a dict insert and a few additions, no I/O. An id is forgotten once it is
older than `window` seconds or, past `max_ids`, when it is the oldest; either way its request
leaves the traffic sums too, so they always describe exactly the ids the ledger holds. Ages
are read on an injected monotonic clock: a wall clock stepped by NTP would forget ids early or
keep them too long.

A client may send its own x-request-id and send it again: the newest answer under an id
replaces the older one (it is the answer the app is rating).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from edgeproxy.pricing import nanos
from edgeproxy.telemetry.record import RequestRecord

# Times to first byte kept per deployment for its median (the newest, whatever their age).
LATENCY_SAMPLES = 256


@dataclass(slots=True, eq=False)
class Served:
    """One remembered answer. `deployment` is None for an answer from the cache (no
    deployment made it); `score` (in millionths) and `label` once the app rated it."""

    group: str | None
    deployment: str | None
    key_id: str | None
    at: float
    cost_nanos: int
    score: int | None = None
    label: str | None = None


class Traffic:
    """What a model group sent one deployment among the ids the ledger holds."""

    __slots__ = ("cost_nanos", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.cost_nanos = 0


class ServedLedger:
    """Recently served request ids, bounded by age and by count (see the module docstring)."""

    __slots__ = ("_clock", "_ids", "_latencies", "_next_expiry", "_traffic", "max_ids", "window")

    def __init__(
        self, window: float, max_ids: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if window <= 0 or max_ids < 1:
            raise ValueError("window must be positive and max_ids at least 1")
        self.window = window
        self.max_ids = max_ids
        self._clock = clock
        self._ids: OrderedDict[str, Served] = OrderedDict()  # oldest first
        self._traffic: dict[tuple[str, str], Traffic] = {}
        self._latencies: dict[str, deque[float]] = {}
        self._next_expiry = math.inf  # when the oldest id held leaves the window

    def __len__(self) -> int:
        return len(self._ids)

    def served(self, record: RequestRecord) -> None:
        """Remember `record`'s answer (a failed request is not remembered: there is no answer
        to rate)."""
        if record.status >= 400:
            return
        now = self._clock()
        deployment = record.deployment
        entry = Served(record.group, deployment, record.key_id, now, nanos(record.cost_usd))
        ids = self._ids
        earlier = ids.pop(record.request_id, None)
        if earlier is not None:
            self._count(earlier, -1)
        elif not ids:
            self._next_expiry = now + self.window
        ids[record.request_id] = entry
        self._count(entry, 1)
        if deployment is not None and record.upstream_ttfb is not None:
            samples = self._latencies.get(deployment)
            if samples is None:
                samples = self._latencies[deployment] = deque(maxlen=LATENCY_SAMPLES)
            samples.append(record.upstream_ttfb)
        if now >= self._next_expiry or len(ids) > self.max_ids:
            self._forget(now)

    def find(self, request_id: str) -> Served | None:
        """The answer served under `request_id` within the window, or None."""
        self._forget(self._clock())
        return self._ids.get(request_id)

    def traffic(self, group: str, deployment: str) -> Traffic:
        """The requests `group` sent `deployment` among the ids held (zeros when none)."""
        self._forget(self._clock())
        return self._traffic.get((group, deployment)) or Traffic()

    def median_ttfb(self, deployment: str) -> float | None:
        """The median time to first byte of the deployment's latest answers, in seconds."""
        samples = self._latencies.get(deployment)
        return statistics.median(samples) if samples else None

    def _count(self, entry: Served, sign: int) -> None:
        if entry.group is None or entry.deployment is None:
            return
        key = (entry.group, entry.deployment)
        traffic = self._traffic.get(key)
        if traffic is None:
            traffic = self._traffic[key] = Traffic()
        traffic.requests += sign
        traffic.cost_nanos += sign * entry.cost_nanos

    def _forget(self, now: float) -> None:
        """Drop ids past the window, then the oldest beyond `max_ids`: O(1) per id dropped."""
        ids = self._ids
        oldest = now - self.window
        while ids:
            request_id, entry = next(iter(ids.items()))
            if entry.at > oldest and len(ids) <= self.max_ids:
                self._next_expiry = entry.at + self.window
                return
            del ids[request_id]
            self._count(entry, -1)
        self._next_expiry = math.inf
