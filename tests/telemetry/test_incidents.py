"""Incident detection on a manual clock: each condition opens one incident however many
evaluations see it, its evidence carries the numbers, and it resolves once they are back to
normal for `resolve_after` evaluations in a row."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from edgeproxy.routing.router import ModelTable
from edgeproxy.telemetry.incident_settings import IncidentSettings
from edgeproxy.telemetry.incidents import Change, IncidentManager
from edgeproxy.telemetry.record import RequestRecord
from tests.support.clock import ManualClock
from tests.support.incident_table import routing_table
from tests.support.records import record as a_record

# A one-minute window judged every ten seconds; baselines trusted after a minute of data.
SETTINGS = IncidentSettings(window=60.0, min_requests=10, baseline=600.0, baseline_warmup=60.0)
TICK = 10


def record(
    status: int = 200,
    *,
    deployment: str | None = "primary",
    ttfb: float | None = 0.2,
    cost: float = 0.001,
    cache: str | None = None,
) -> RequestRecord:
    return a_record(
        model="chat",
        group="chat",
        provider="a" if deployment else None,
        deployment=deployment,
        status=status,
        cache=cache,
        output_tokens=10,
        cost_usd=cost,
        upstream_wait=0.3,
        upstream_ttfb=ttfb,
    )


@dataclass
class Rig:
    settings: IncidentSettings = SETTINGS
    clock: ManualClock = field(default_factory=ManualClock)
    table: ModelTable = field(default_factory=routing_table)
    manager: IncidentManager = field(init=False)

    def __post_init__(self) -> None:
        self.manager = IncidentManager(self.settings, self.table, self.clock, self.clock)

    def feed(self, count: int, **fields: Any) -> None:
        for _ in range(count):
            self.manager.observe(record(**fields))

    def evaluate(self) -> list[Change]:
        return self.manager.evaluate(self.clock())

    def traffic(self, seconds: int, **fields: Any) -> list[Change]:
        """A request a second for `seconds`, evaluated every ten seconds."""
        changes: list[Change] = []
        for second in range(1, seconds + 1):
            self.feed(1, **fields)
            self.clock.advance(1.0)
            if second % TICK == 0:
                changes += self.evaluate()
        return changes

    def attempts(self, deployment: str, outcomes: str) -> None:
        """Calls to `deployment` as routing records them: `o` succeeded, `x` failed."""
        health, now = self.table.health[deployment], self.clock()
        for outcome in outcomes:
            assert health.acquire(now, 0)
            if outcome == "x":
                health.failed(now)
            else:
                health.succeeded(now, 0.1)
            health.finished(now, 0)


def described(changes: list[Change]) -> list[tuple[str, str, str, str]]:
    return [(c.event, c.incident.kind, c.incident.scope, c.incident.name) for c in changes]


@pytest.mark.parametrize(("errors", "severity"), [(7, "warning"), (12, "critical")])
def test_a_group_error_rate_over_the_threshold_opens_one_incident_with_its_numbers(
    errors: int, severity: str
) -> None:
    rig = Rig()
    rig.feed(100 - errors)
    rig.feed(errors, status=502)
    changes = rig.evaluate()
    assert described(changes) == [("opened", "error_rate", "group", "chat")]
    incident = changes[0].incident
    assert incident.severity == severity
    assert incident.evidence == {
        "error_rate": errors / 100,
        "errors": errors,
        "requests": 100,
        "threshold": 0.05,
        "window_s": 60.0,
    }
    assert incident.id.startswith("inc_")
    assert incident.suggested_action
    assert f"{errors}.0% of 100 requests failed" in incident.summary


def test_an_incident_is_raised_once_however_many_evaluations_see_it() -> None:
    rig = Rig()
    rig.feed(20, status=500)
    opened = rig.evaluate()
    later = rig.traffic(40, status=500)
    assert len(opened) == 1 and later == []
    assert rig.manager.open_incidents == [opened[0].incident]
    assert opened[0].incident.evidence["requests"] == 60  # updated while open


def test_it_resolves_once_the_numbers_are_normal_for_two_evaluations_in_a_row() -> None:
    rig = Rig()
    rig.feed(20, status=500)
    (opened,) = rig.evaluate()
    rig.clock.advance(60.0)  # the errors left the window
    rig.feed(20)
    assert rig.evaluate() == []  # normal once: not yet
    rig.feed(20, status=500)
    rig.clock.advance(TICK)
    assert rig.evaluate() == []  # a relapse: the same incident, the count starts again
    rig.clock.advance(60.0)
    rig.feed(20)
    assert rig.evaluate() == []
    rig.clock.advance(TICK)
    (resolved,) = rig.evaluate()
    assert resolved.event == "resolved" and resolved.incident is opened.incident
    assert resolved.incident.resolved_at == rig.clock()
    assert resolved.incident.evidence["error_rate"] == 0.0  # the numbers back to normal
    assert resolved.incident.worst["error_rate"] == 1.0  # and the worst they were
    assert rig.manager.open_incidents == []


def test_a_recovered_condition_that_returns_opens_a_new_incident() -> None:
    rig = Rig(settings=replace(SETTINGS, resolve_after=1))
    rig.feed(20, status=500)
    (first,) = rig.evaluate()
    rig.clock.advance(60.0)
    (resolved,) = rig.evaluate()
    rig.feed(20, status=500)
    (second,) = rig.evaluate()
    assert resolved.incident is first.incident
    assert second.event == "opened" and second.incident.id != first.incident.id


@pytest.mark.parametrize(("requests", "opens"), [(9, False), (10, True)])
def test_too_few_requests_give_no_verdict(requests: int, opens: bool) -> None:
    rig = Rig()
    rig.feed(requests, status=500)
    assert bool(rig.evaluate()) is opens


@pytest.mark.parametrize(
    ("status", "deployment", "counts"),
    [
        (500, "primary", True),
        (503, None, True),  # no deployment could take it
        (429, "primary", True),  # the provider's own limit, relayed
        (429, None, False),  # the caller's limit: a policy, not an incident
        (404, None, False),
        (400, "primary", False),
    ],
)
def test_which_answers_count_as_a_group_error(
    status: int, deployment: str | None, counts: bool
) -> None:
    rig = Rig()
    rig.feed(20, status=status, deployment=deployment)
    assert bool(rig.evaluate()) is counts


def test_cache_answers_say_nothing_about_providers() -> None:
    rig = Rig()
    rig.feed(500, cache="hit-l1", ttfb=None, cost=0.0)
    rig.feed(10, status=500)
    (change,) = rig.evaluate()
    assert change.incident.evidence["requests"] == 10


def test_a_deployment_error_rate_counts_every_attempt_routing_made() -> None:
    rig = Rig()
    rig.attempts("primary", "xooooooo" * 5)  # failed-over attempts: no record names them
    (change,) = rig.evaluate()
    assert described([change]) == [("opened", "error_rate", "deployment", "primary")]
    assert change.incident.evidence | {"threshold": None} == {
        "error_rate": 0.125,
        "errors": 5,
        "requests": 40,
        "threshold": None,
        "window_s": 60.0,
    }


def test_an_open_breaker_is_a_critical_incident_until_probes_close_it() -> None:
    rig = Rig()
    breaker = rig.table.health["backup"].breaker
    breaker.trip(rig.clock(), 90.0)  # (at least the reset timeout, 60 s)
    (opened,) = rig.evaluate()
    assert described([opened]) == [("opened", "breaker_open", "deployment", "backup")]
    assert opened.incident.severity == "critical"
    assert opened.incident.evidence == {"state": "open", "opened": 1, "available_in_s": 90.0}
    rig.clock.advance(90.0)
    assert rig.evaluate() == []  # still open: nothing has probed it
    for _ in range(3):
        assert breaker.acquire(rig.clock())
        breaker.record_success(rig.clock())
    assert rig.evaluate() == []
    rig.clock.advance(TICK)
    (resolved,) = rig.evaluate()
    assert resolved.event == "resolved" and resolved.incident is opened.incident


def test_a_breaker_that_opened_and_closed_between_evaluations_is_still_reported() -> None:
    rig = Rig()
    breaker = rig.table.health["primary"].breaker
    breaker.trip(rig.clock(), 60.0)
    rig.clock.advance(60.0)
    for _ in range(3):
        assert breaker.acquire(rig.clock())
        breaker.record_success(rig.clock())
    assert described(rig.evaluate()) == [("opened", "breaker_open", "deployment", "primary")]


def test_slow_first_bytes_open_an_incident_for_the_deployment_and_its_group() -> None:
    rig = Rig()
    assert rig.traffic(120, ttfb=0.2) == []
    changes = rig.traffic(30, ttfb=1.0)
    assert described(changes) == [
        ("opened", "ttfb", "deployment", "primary"),
        ("opened", "ttfb", "group", "chat"),
    ]
    evidence = changes[0].incident.evidence
    assert evidence["baseline_ms"] == pytest.approx(200.0, rel=0.1)  # (and slow seconds below 2x)
    assert evidence["ttfb_ms"] > 2 * evidence["baseline_ms"] and evidence["ratio"] > 2.0
    assert evidence["factor"] == 2.0 and evidence["samples"] >= 10
    assert [c.event for c in rig.traffic(120, ttfb=0.2)] == ["resolved", "resolved"]


def test_spending_over_twice_the_usual_opens_an_incident() -> None:
    rig = Rig()
    assert rig.traffic(180, cost=0.001) == []  # 0.06 US$ a minute
    changes = rig.traffic(30, cost=0.005)
    assert described(changes) == [
        ("opened", "cost", "deployment", "primary"),
        ("opened", "cost", "group", "chat"),
    ]
    evidence = changes[0].incident.evidence
    assert evidence["baseline_usd_per_minute"] == pytest.approx(0.06, rel=0.1)
    assert evidence["usd_per_minute"] > 2 * evidence["baseline_usd_per_minute"]
    assert evidence["ratio"] > 2.0 and evidence["factor"] == 2.0
    assert [c.event for c in rig.traffic(120, cost=0.001)] == ["resolved", "resolved"]


def test_the_baseline_does_not_learn_from_an_open_incident() -> None:
    rig = Rig()
    rig.traffic(120, ttfb=0.2)
    rig.traffic(600, ttfb=1.0)  # ten minutes slow: still an incident, not the new normal
    assert {i.kind for i in rig.manager.open_incidents} == {"ttfb"}
    assert rig.manager.open_incidents[0].evidence["baseline_ms"] == pytest.approx(200.0, rel=0.1)


@pytest.mark.parametrize(
    "fields",
    [{"ttfb": 5.0}, {"cost": 1.0}],
    ids=["ttfb", "cost"],
)
def test_no_baseline_no_verdict(fields: dict[str, float]) -> None:
    rig = Rig()
    assert rig.traffic(50, **fields) == []  # learning: anything is normal so far


@pytest.mark.parametrize(
    ("usual", "spike"),
    [({"ttfb": 0.01}, {"ttfb": 0.1}), ({"cost": 0.00001}, {"cost": 0.0001})],
    ids=["ttfb", "cost"],
)
def test_small_numbers_many_times_their_baseline_are_not_incidents(
    usual: dict[str, float], spike: dict[str, float]
) -> None:
    rig = Rig()
    rig.traffic(180, **usual)
    assert rig.traffic(120, **spike) == []


def test_the_listing_shows_open_incidents_and_recent_ones_newest_first() -> None:
    rig = Rig(settings=replace(SETTINGS, resolve_after=1, keep_resolved=1))
    for name in ("primary", "backup"):
        rig.table.health[name].breaker.trip(rig.clock(), 5.0)
        rig.evaluate()
        rig.clock.advance(1.0)
    rig.feed(20, status=500)
    rig.evaluate()
    listing = rig.manager.listing()
    assert [(i["kind"], i["name"]) for i in listing["open"]] == [
        ("error_rate", "chat"),
        ("breaker_open", "backup"),
        ("breaker_open", "primary"),
    ]
    opened = listing["open"][0]
    assert opened["status"] == "open" and opened["resolved_at"] is None
    assert opened["opened_at"] == "1970-01-01T00:16:42.000Z"
    rig.clock.advance(60.0)
    for name in ("primary", "backup"):
        breaker = rig.table.health[name].breaker
        for _ in range(3):
            breaker.acquire(rig.clock())
            breaker.record_success(rig.clock())
    rig.evaluate()
    listing = rig.manager.listing()
    assert listing["open"] == []
    assert [i["status"] for i in listing["recent"]] == ["resolved"]  # only the newest kept
