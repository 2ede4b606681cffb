"""Incident detection: rolling windows per deployment and per model group, judged periodically,
each condition raising at most one open incident until its numbers are back to normal.

Detections, each read over the last `window` seconds:
- `error_rate`: errors / requests above the threshold, with at least `min_requests` requests.
  A deployment counts what its breaker counts (every attempt, failed-over ones included, from
  its health counters: retry statuses such as 429 and 5xx, transport errors, broken streams);
  a group counts what its clients got (a status of 500 or more, or a provider's 429 relayed),
  cache answers left out since they say nothing about providers;
- `ttfb`: the mean time to first byte above `ttfb_factor` x its baseline and `min_ttfb`;
- `cost`: cost per minute above `cost_factor` x its baseline and `min_cost_per_minute`;
- `breaker_open` (deployments): the breaker is not closed now, or opened since the last look.
Baselines are slow moving averages, compared with only once they have learned long enough and
never taught while their incident is open (an anomaly does not become the new normal).

`observe` is the request's after-path (one clock read, a few additions); `evaluate` runs every
few seconds and returns what opened and resolved, for notifications and responses. An incident
resolves after `resolve_after` evaluations in a row without its condition (or without enough
data to judge it), so a number hovering at the threshold does not flap. Pure: times come from
the injected clocks.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from edgeproxy.routing.breaker import BreakerState
from edgeproxy.routing.health import DeploymentHealth
from edgeproxy.routing.router import ModelTable
from edgeproxy.telemetry.incident_settings import IncidentSettings
from edgeproxy.telemetry.incident_windows import Baseline, RollingTotals, Totals
from edgeproxy.telemetry.record import FREE, RequestRecord

WARNING, CRITICAL = "warning", "critical"
Scope = Literal["deployment", "group"]

_ACTIONS = {
    ("error_rate", "deployment"): "Check the provider's status and this deployment's recent "
    "errors; shift its weight away or open its breaker until it recovers.",
    ("error_rate", "group"): "Clients of this group are getting errors: look at its "
    "deployments' incidents, and consider a fallback group or another deployment.",
    ("ttfb", "deployment"): "The provider answers slowly: shift weight to the group's other "
    "deployments, or route the group by latency.",
    ("ttfb", "group"): "Answers of this group are slow: check its deployments and prompt sizes; "
    "longer cache TTLs answer more from the cache.",
    ("cost", "deployment"): "Spend is well above usual: look for a runaway client or loop "
    "(spend per key), and set budgets or rate limits.",
    ("cost", "group"): "Spend is well above usual: look for a runaway client or loop (spend "
    "per key), set budgets or rate limits; longer cache TTLs answer more from the cache.",
    ("breaker_open", "deployment"): "The deployment is out of rotation and its traffic goes to "
    "the group's other deployments and fallbacks: check the provider, its key and its quota.",
}


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def new_incident_id() -> str:
    """Unique across sidecars, so incidents from several replicas can share one sink."""
    return "inc_" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Reading:
    """One detection's verdict at one evaluation: whether its condition holds, how bad it is
    (`level`, to keep the worst numbers), whether that is critical, and the numbers."""

    holds: bool
    level: float
    critical: bool
    evidence: dict[str, Any]


@dataclass(slots=True, eq=False)
class Incident:
    """One condition on one deployment or group, from when it held until it stopped holding.
    Times are wall-clock seconds; `evidence` holds the latest numbers, `worst` those of the
    evaluation where it was at its worst; `responses` what was done about it automatically."""

    id: str
    kind: str
    scope: Scope
    name: str
    severity: str
    opened_at: float
    evidence: dict[str, Any]
    worst: dict[str, Any]
    level: float
    resolved_at: float | None = None
    responses: list[str] = field(default_factory=list)

    @property
    def suggested_action(self) -> str:
        return _ACTIONS[(self.kind, self.scope)]

    @property
    def summary(self) -> str:
        """One line for people: what happened where, with its numbers at the worst."""
        return f"{self.scope} {self.name}: {describe(self.kind, self.worst)}"

    def view(self) -> dict[str, Any]:
        """Plain JSON values, for /admin/incidents and the webhook payloads."""
        return {
            "id": self.id,
            "kind": self.kind,
            "scope": self.scope,
            "name": self.name,
            "severity": self.severity,
            "status": "open" if self.resolved_at is None else "resolved",
            "opened_at": _rfc3339(self.opened_at),
            "resolved_at": None if self.resolved_at is None else _rfc3339(self.resolved_at),
            "summary": self.summary,
            "evidence": self.evidence,
            "worst": self.worst,
            "suggested_action": self.suggested_action,
            "responses": list(self.responses),
        }

    def hold(self, reading: Reading) -> None:
        """The condition still holds: the latest numbers, the worst ones, a severity that only
        rises while the incident is open."""
        self.evidence = reading.evidence
        if reading.level > self.level:
            self.level, self.worst = reading.level, reading.evidence
        if reading.critical:
            self.severity = CRITICAL


def describe(kind: str, e: dict[str, Any]) -> str:
    """A detection's numbers in words."""
    if kind == "error_rate":
        return (
            f"{e['error_rate']:.1%} of {e['requests']} requests failed in {e['window_s']:g}s "
            f"(threshold {e['threshold']:.1%})"
        )
    times = f" ({e['ratio']:g}x)" if e.get("ratio") is not None else ""
    if kind == "ttfb":
        return (
            f"time to first byte {e['ttfb_ms']:g} ms against a baseline of "
            f"{e['baseline_ms']:g} ms{times}"
        )
    if kind == "cost":
        return (
            f"spending ${e['usd_per_minute']:g}/min against a baseline of "
            f"${e['baseline_usd_per_minute']:g}/min{times}"
        )
    opened = e["opened"]
    return f"circuit breaker {e['state']} (opened {opened} time{'' if opened == 1 else 's'})"


@dataclass(frozen=True, slots=True)
class Change:
    event: Literal["opened", "resolved"]
    incident: Incident


class Watched:
    """One deployment or group: its window, its baselines and, for a deployment, its health
    record with the counters seen at the previous evaluation."""

    __slots__ = (
        "cost",
        "failures",
        "health",
        "name",
        "opened",
        "requests",
        "scope",
        "ttfb",
        "window",
    )

    def __init__(
        self,
        scope: Scope,
        name: str,
        settings: IncidentSettings,
        health: DeploymentHealth | None = None,
    ) -> None:
        self.scope: Scope = scope
        self.name = name
        self.window = RollingTotals(settings.window)
        self.ttfb = Baseline(settings.baseline, settings.baseline_warmup)
        self.cost = Baseline(settings.baseline, settings.baseline_warmup)
        self.health = health
        self.requests = health.requests if health is not None else 0
        self.failures = health.failures if health is not None else 0
        self.opened = health.breaker.opened if health is not None else 0

    def count_attempts(self, now: float) -> None:
        """A deployment's attempts and failures since the previous evaluation, into its window."""
        health = self.health
        assert health is not None
        requests, failures = health.requests, health.failures
        self.window.add(now, requests=requests - self.requests, errors=failures - self.failures)
        self.requests, self.failures = requests, failures


class IncidentManager:
    """Windows, baselines and the incidents they raise (see the module docstring)."""

    __slots__ = (
        "_calm",
        "_clock",
        "_deployments",
        "_groups",
        "_last",
        "_new_id",
        "_open",
        "_settings",
        "_since",
        "_wall",
        "recent",
    )

    def __init__(
        self,
        settings: IncidentSettings,
        table: ModelTable,
        clock: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = new_incident_id,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._wall = wall_clock
        self._new_id = new_id
        self._deployments = {
            name: Watched("deployment", name, settings, health)
            for name, health in table.health.items()
        }
        self._groups = {g.name: Watched("group", g.name, settings) for g in table.groups}
        self._open: dict[tuple[str, Scope, str], Incident] = {}
        self._calm: dict[tuple[str, Scope, str], int] = {}  # evaluations in a row without it
        self._last: float | None = None
        self._since = clock()  # when watching began: a window is whole one span later
        self.recent: deque[Incident] = deque(maxlen=settings.keep_resolved)

    @property
    def open_incidents(self) -> list[Incident]:
        return list(self._open.values())

    def observe(self, record: RequestRecord) -> None:
        """One finished request (its answer sent): cheap, on the request's after-path."""
        if record.cache in FREE:
            return
        now = self._clock()
        ttfb, cost = record.upstream_ttfb, record.cost_usd
        if record.group is not None and (group := self._groups.get(record.group)) is not None:
            status = record.status
            failed = status >= 500 or (status == 429 and record.deployment is not None)
            group.window.add(
                now, answers=1.0, requests=1.0, errors=float(failed), ttfb=ttfb, cost=cost
            )
        name = record.deployment
        if name is not None and (deployment := self._deployments.get(name)) is not None:
            deployment.window.add(now, answers=1.0, ttfb=ttfb, cost=cost)  # attempts: its health

    def evaluate(self, now: float) -> list[Change]:
        """Judge every window at `now` (monotonic seconds): the incidents that opened and those
        that resolved."""
        # What each evaluation teaches the baselines stands for at most one interval, so a
        # late evaluation does not count one window's numbers as a long stretch of data.
        dt = 0.0 if self._last is None else min(max(0.0, now - self._last), self._settings.interval)
        self._last = now
        changes: list[Change] = []
        for watched in self._deployments.values():
            watched.count_attempts(now)
            self._judge_window(changes, watched, now, dt)
            self._judge(changes, "breaker_open", watched, self._breaker(watched, now))
        for watched in self._groups.values():
            self._judge_window(changes, watched, now, dt)
        return changes

    def listing(self) -> dict[str, list[dict[str, Any]]]:
        """Open incidents and recently resolved ones, newest first (GET /admin/incidents)."""
        return {
            "open": [i.view() for i in sorted(self._open.values(), key=_newest)],
            "recent": [i.view() for i in reversed(self.recent)],
        }

    def _judge_window(self, changes: list[Change], watched: Watched, now: float, dt: float) -> None:
        totals = watched.window.totals(now)
        self._judge(changes, "error_rate", watched, self._error_rate(totals))
        self._judge(changes, "ttfb", watched, self._ttfb(totals, watched.ttfb))
        # Cost per minute reads low until the window has been watched for its whole span.
        whole = now - self._since >= self._settings.window
        if whole:
            self._judge(changes, "cost", watched, self._cost(totals, watched.cost))
        enough = self._settings.min_requests
        if totals.ttfb_count >= enough and ("ttfb", watched.scope, watched.name) not in self._open:
            watched.ttfb.learn(totals.ttfb or 0.0, dt)
        if (
            whole
            and totals.answers >= enough
            and ("cost", watched.scope, watched.name) not in self._open
        ):
            watched.cost.learn(totals.cost_per_minute, dt)

    def _error_rate(self, totals: Totals) -> Reading | None:
        threshold = self._settings.error_rate
        if totals.requests < self._settings.min_requests:
            return None
        rate = totals.error_rate
        evidence = {
            "error_rate": round(rate, 4),
            "errors": int(totals.errors),
            "requests": int(totals.requests),
            "threshold": threshold,
            "window_s": self._settings.window,
        }
        return Reading(rate > threshold, rate, rate >= 2 * threshold, evidence)

    def _ttfb(self, totals: Totals, baseline: Baseline) -> Reading | None:
        settings = self._settings
        mean = totals.ttfb
        if mean is None or totals.ttfb_count < settings.min_requests or not baseline.ready:
            return None
        usual = baseline.value or 0.0
        evidence = {
            "ttfb_ms": round(mean * 1000, 1),
            "baseline_ms": round(usual * 1000, 1),
            "ratio": _ratio(mean, usual),
            "factor": settings.ttfb_factor,
            "samples": int(totals.ttfb_count),
            "window_s": self._settings.window,
        }
        holds = mean > settings.ttfb_factor * usual and mean >= settings.min_ttfb
        return Reading(holds, mean, False, evidence)

    def _cost(self, totals: Totals, baseline: Baseline) -> Reading | None:
        settings = self._settings
        if not baseline.ready:
            return None
        spent, usual = totals.cost_per_minute, baseline.value or 0.0
        evidence = {
            "usd_per_minute": round(spent, 6),
            "baseline_usd_per_minute": round(usual, 6),
            "ratio": _ratio(spent, usual),
            "factor": settings.cost_factor,
            "window_s": self._settings.window,
        }
        holds = spent > settings.cost_factor * usual and spent >= settings.min_cost_per_minute
        return Reading(holds, spent, False, evidence)

    @staticmethod
    def _breaker(watched: Watched, now: float) -> Reading:
        health = watched.health
        assert health is not None
        breaker = health.breaker
        flapped = breaker.opened > watched.opened  # opened (and maybe closed) since last time
        watched.opened = breaker.opened
        evidence = {
            "state": breaker.state.value,
            "opened": breaker.opened,
            "available_in_s": round(breaker.available_at(now) - now, 3),
        }
        return Reading(breaker.state is not BreakerState.CLOSED or flapped, 1.0, True, evidence)

    def _judge(
        self, changes: list[Change], kind: str, watched: Watched, reading: Reading | None
    ) -> None:
        key = (kind, watched.scope, watched.name)
        incident = self._open.get(key)
        if reading is not None and reading.holds:
            self._calm[key] = 0
            if incident is not None:
                incident.hold(reading)
                return
            incident = self._open[key] = Incident(
                id=self._new_id(),
                kind=kind,
                scope=watched.scope,
                name=watched.name,
                severity=CRITICAL if reading.critical else WARNING,
                opened_at=self._wall(),
                evidence=reading.evidence,
                worst=reading.evidence,
                level=reading.level,
            )
            changes.append(Change("opened", incident))
            return
        if incident is None:
            return
        if reading is not None:
            incident.evidence = reading.evidence
        calm = self._calm[key] = self._calm[key] + 1
        if calm >= self._settings.resolve_after:
            del self._open[key], self._calm[key]
            incident.resolved_at = self._wall()
            self.recent.append(incident)
            changes.append(Change("resolved", incident))


def _newest(incident: Incident) -> float:
    return -incident.opened_at


def _ratio(value: float, usual: float) -> float | None:
    """How many times its baseline a value is, for people; None against a baseline of 0."""
    return round(value / usual, 2) if usual > 0 else None
