"""The status page's numbers (`GET /admin/stats`), computed from what the proxy counts anyway.

Nothing runs between asks, so a proxy nobody looks at does no work for the page: each ask
reads the request metrics once (a `Reading`) and compares it with an earlier reading kept in
a small ring. The live figures (requests per second, p50 and p99 of request duration and of
proxy overhead, the cache hit rate) cover `window_s`: the time since the newest kept reading
at least `min_window` old, which is the previous ask when the page refreshes every few
seconds, or the start. A reading is kept only when the newest kept one is at least
`min_window` old, so two viewers asking a moment apart do not shrink the window to nothing.

Percentiles are estimates from histogram buckets: the two readings' bucket counts are
subtracted, the bucket holding the wanted rank is found, and the value is interpolated
linearly within it (from 0 for the first bucket; above the last bound, the last bound is the
most that can be said). They are as precise as the buckets (telemetry.histogram).

Money, tokens and cache savings are totals since the start, and per hour on average since it
once the proxy has run for `RATE_AFTER` seconds (before that, an hour's rate extrapolated from
a few seconds would say more about the noise than about the spend).
Deployments are as routing sees them now; incidents come from an optional provider.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from edgeproxy.routing.router import ModelTable
from edgeproxy.telemetry.histogram import REQUEST_SECONDS, SHORT_SECONDS, Histogram
from edgeproxy.telemetry.record import FREE
from edgeproxy.telemetry.request_metrics import RequestMetrics

SCHEMA_VERSION = 1
HOUR = 3600.0
RATE_AFTER = 60.0  # seconds of uptime before spend per hour is given
IncidentSource = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Reading:
    """The request metrics' running totals at one moment."""

    at: float
    requests: int
    hits: int  # answered without a provider call (FREE outcomes)
    misses: int
    duration: tuple[int, ...]  # request-duration bucket counts, every route and group
    overhead: tuple[int, ...]  # proxy-overhead bucket counts


def read(metrics: RequestMetrics, at: float) -> Reading:
    metrics.settle()
    requests = hits = misses = 0
    for (_, _, _, _, cache), count in metrics.requests.items():
        requests += count
        if cache in FREE:
            hits += count
        elif cache == "miss":
            misses += count
    return Reading(
        at,
        requests,
        hits,
        misses,
        _merged(metrics.duration.values(), REQUEST_SECONDS),
        _merged(metrics.overhead.values(), SHORT_SECONDS),
    )


def _merged(histograms: Iterable[Histogram], bounds: tuple[float, ...]) -> tuple[int, ...]:
    total = Histogram(bounds)
    for histogram in histograms:
        total.merge(histogram)
    return tuple(total.counts)


def quantile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The `q`-quantile (0 < q <= 1) of values counted in buckets with these upper `bounds`
    (one more count than bounds: the last is above them all), interpolated within its bucket;
    None when nothing was counted."""
    if not 0 < q <= 1:
        raise ValueError(f"a quantile is in (0, 1], not {q}")
    cumulative = list(accumulate(counts))
    if not cumulative[-1]:
        return None
    rank = q * cumulative[-1]
    index = bisect_left(cumulative, rank)  # the first bucket reaching the rank: never empty
    if index == len(bounds):
        return bounds[-1]
    below = cumulative[index - 1] if index else 0
    lower = bounds[index - 1] if index else 0.0
    return lower + (bounds[index] - lower) * (rank - below) / (cumulative[index] - below)


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _latency_ms(bounds: Sequence[float], now: Sequence[int], then: Sequence[int]) -> dict[str, Any]:
    counts = [a - b for a, b in zip(now, then, strict=True)]
    p50, p99 = quantile(bounds, counts, 0.5), quantile(bounds, counts, 0.99)
    return {
        "p50": None if p50 is None else round(p50 * 1000, 3),
        "p99": None if p99 is None else round(p99 * 1000, 3),
        "count": sum(counts),
    }


class LiveStats:
    """Answers `report()` with the page's numbers (schema in docs/observability.md).

    `clock` is the routing clock (monotonic seconds): it times the windows and tells the
    breakers' state. `incidents` lists the open incidents as JSON values, when incident
    detection runs; without it, `incidents` is null.
    """

    __slots__ = (
        "_clock",
        "_incidents",
        "_metrics",
        "_min_window",
        "_readings",
        "_table",
        "started",
    )

    def __init__(
        self,
        metrics: RequestMetrics,
        table: ModelTable,
        clock: Callable[[], float],
        incidents: IncidentSource | None = None,
        *,
        min_window: float = 1.0,
        keep: int = 4,
    ) -> None:
        self._metrics = metrics
        self._table = table
        self._clock = clock
        self._incidents = incidents
        self._min_window = min_window
        self.started = clock()
        self._readings: deque[Reading] = deque([read(metrics, self.started)], maxlen=keep)

    def report(self) -> dict[str, Any]:
        now = self._clock()
        current = read(self._metrics, now)
        baseline = self._baseline(now)
        if now - self._readings[-1].at >= self._min_window:
            self._readings.append(current)
        window = now - baseline.at
        uptime = now - self.started
        return {
            "version": SCHEMA_VERSION,
            "uptime_s": round(uptime, 3),
            "window_s": round(window, 3),
            "requests": {
                "total": current.requests,
                "in_flight": self._metrics.in_flight,
                "per_second": round(_ratio(current.requests - baseline.requests, window) or 0, 3),
            },
            "latency_ms": _latency_ms(REQUEST_SECONDS, current.duration, baseline.duration),
            "overhead_ms": _latency_ms(SHORT_SECONDS, current.overhead, baseline.overhead),
            "cache": self._cache(current, baseline),
            "spend": self._spend(uptime),
            "deployments": self._deployments(now),
            "incidents": None if self._incidents is None else self._incidents(),
        }

    def _baseline(self, now: float) -> Reading:
        """The newest kept reading at least `min_window` old, else the oldest kept."""
        for reading in reversed(self._readings):
            if now - reading.at >= self._min_window:
                return reading
        return self._readings[0]

    def _cache(self, current: Reading, baseline: Reading) -> dict[str, Any]:
        hits, misses = current.hits - baseline.hits, current.misses - baseline.misses
        return {
            "window": {"hits": hits, "misses": misses, "hit_rate": _ratio(hits, hits + misses)},
            "since_start": {
                "hits": current.hits,
                "misses": current.misses,
                "hit_rate": _ratio(current.hits, current.hits + current.misses),
                "saved_usd": sum(self._metrics.saved.values()),
            },
        }

    def _spend(self, uptime: float) -> dict[str, Any]:
        hours = uptime / HOUR if uptime >= RATE_AFTER else 0.0  # no rate yet: None
        metrics = self._metrics
        requests: defaultdict[str, int] = defaultdict(int)
        for (_, group, _, _, _), count in metrics.requests.items():
            requests[group] += count
        cost: defaultdict[str, float] = defaultdict(float)
        for (group, _), usd in metrics.cost.items():
            cost[group] += usd
        groups = [
            {
                "name": group,
                "requests": count,
                "cost_usd": cost[group],
                "per_hour_usd": _ratio(cost[group], hours),
                "saved_usd": metrics.saved.get(group, 0.0),
                "input_tokens": metrics.tokens.get((group, "input"), 0),
                "output_tokens": metrics.tokens.get((group, "output"), 0),
            }
            for group, count in requests.items()
        ]
        teams = [
            {
                "name": team,
                "requests": int(count),
                "cost_usd": usd,
                "per_hour_usd": _ratio(usd, hours),
            }
            for team, (count, usd) in metrics.by_team.items()
        ]
        total = sum(cost.values())
        return {
            "total_usd": total,
            "per_hour_usd": _ratio(total, hours),
            "groups": _by_cost(groups),
            "teams": _by_cost(teams),
        }

    def _deployments(self, now: float) -> list[dict[str, Any]]:
        """Each deployment once (groups may share one), in configuration order."""
        served: dict[str, list[str]] = {}
        rows: dict[str, dict[str, Any]] = {}
        for group in self._table.groups:
            for deployment in group.deployments:
                served.setdefault(deployment.name, []).append(group.name)  # the row's list
                if deployment.name in rows:
                    continue
                health = deployment.health
                ttfb = health.ttfb.value
                rows[deployment.name] = {
                    "name": deployment.name,
                    "provider": deployment.provider.name,
                    "model": deployment.model,
                    "groups": served[deployment.name],
                    "breaker": health.breaker.state.value,
                    "breaker_opened": health.breaker.opened,
                    "available": health.available(now),
                    "in_flight": health.in_flight,
                    "ewma_ttfb_ms": None if ttfb is None else round(ttfb * 1000, 3),
                    "success_rate": round(health.success_rate.value or 0.0, 4),
                    "requests": health.requests,
                    "failures": health.failures,
                }
        return list(rows.values())


def _by_cost(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: (-row["cost_usd"], row["name"]))
