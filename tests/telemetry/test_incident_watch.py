"""Incident detection in the running proxy: an incident that opens and resolves reaches the
webhook once each way, in the configured format, and the evaluation runs as a background
service that stops with the proxy."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from edgeproxy.background import Background
from edgeproxy.config_reader import Secret
from edgeproxy.routing.health import DeploymentHealth
from edgeproxy.telemetry.incident_responses import Responses
from edgeproxy.telemetry.incident_settings import (
    IncidentSettings,
    ResponseSettings,
    WebhookSettings,
)
from edgeproxy.telemetry.incident_watch import IncidentWatch, build_incidents
from edgeproxy.telemetry.incidents import IncidentManager
from tests.support.clock import ManualClock
from tests.support.incident_table import routing_table
from tests.support.poll import eventually
from tests.support.webhook_sink import webhook_sink

SETTINGS = IncidentSettings(resolve_after=1)


def watching(settings: IncidentSettings, clock: ManualClock) -> tuple[IncidentWatch, Any]:
    table = routing_table()
    watch = build_incidents(settings, table, None, Background(), clock, wall_clock=clock)
    assert watch is not None
    return watch, table


async def open_and_resolve_a_breaker_incident(watch: IncidentWatch, table: Any) -> None:
    breaker = table.health["backup"].breaker
    breaker.trip(1000.0, 60.0)
    assert [c.event for c in watch.tick(1000.0)] == ["opened"]
    assert watch.tick(1010.0) == []  # still open: nothing more is sent
    for _ in range(3):
        breaker.acquire(1060.0)
        breaker.record_success(1060.0)
    assert [c.event for c in watch.tick(1060.0)] == ["resolved"]


async def test_an_incident_reaches_the_sink_in_the_observatory_format() -> None:
    clock = ManualClock()
    async with webhook_sink() as sink:
        webhook = WebhookSettings(url=Secret(sink.url))
        watch, table = watching(replace(SETTINGS, webhook=webhook), clock)
        watch.start()
        await open_and_resolve_a_breaker_incident(watch, table)
        await eventually(lambda: len(sink.posts) == 2, "both notifications")
        await watch.close(1.0)
    opened, resolved = sink.bodies
    assert [opened["schema"], opened["type"], opened["source"]] == [
        "edgeproxy.event/1",
        "incident.opened",
        "edgeproxy",
    ]
    assert resolved["type"] == "incident.resolved"
    assert opened["data"]["id"] == resolved["data"]["id"]
    assert opened["time"] == opened["data"]["opened_at"] == "1970-01-01T00:16:40.000Z"
    assert resolved["time"] == resolved["data"]["resolved_at"]
    assert opened["data"] | {"id": None, "opened_at": None} == {
        "id": None,
        "kind": "breaker_open",
        "scope": "deployment",
        "name": "backup",
        "severity": "critical",
        "status": "open",
        "opened_at": None,
        "resolved_at": None,
        "summary": "deployment backup: circuit breaker open (opened 1 time)",
        "evidence": {"state": "open", "opened": 1, "available_in_s": 60.0},
        "worst": {"state": "open", "opened": 1, "available_in_s": 60.0},
        "suggested_action": opened["data"]["suggested_action"],
        "responses": [],
    }
    assert resolved["data"]["status"] == "resolved"
    assert resolved["data"]["evidence"]["state"] == "closed"


async def test_an_incident_reaches_the_sink_as_a_slack_message() -> None:
    clock = ManualClock()
    async with webhook_sink() as sink:
        webhook = WebhookSettings(url=Secret(sink.url), format="slack")
        watch, table = watching(replace(SETTINGS, webhook=webhook), clock)
        watch.start()
        await open_and_resolve_a_breaker_incident(watch, table)
        await eventually(lambda: len(sink.posts) == 2, "both notifications")
        await watch.close(1.0)
    opened, resolved = sink.bodies
    assert opened["text"] == (
        "[CRITICAL] breaker_open on deployment backup: circuit breaker open (opened 1 time)"
    )
    assert resolved["text"] == (
        "[RESOLVED] breaker_open on deployment backup: back to normal: circuit breaker closed "
        "(opened 1 time); at worst circuit breaker open (opened 1 time)"
    )
    header, summary, numbers, action, context = opened["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[CRITICAL] breaker_open on deployment backup"},
    }
    assert summary["text"]["type"] == "mrkdwn"
    assert [f["text"] for f in numbers["fields"]] == [
        "*state*\nopen",
        "*opened*\n1",
        "*available_in_s*\n60.0",
    ]
    assert action["text"]["text"].startswith("*Suggested action*: ")
    assert context["elements"][0]["text"].startswith("inc_")


async def test_the_evaluation_runs_every_interval_until_closed() -> None:
    clock, table = ManualClock(), routing_table()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    manager = IncidentManager(SETTINGS, table, clock, clock)
    responses = Responses(SETTINGS.responses, table, None)
    watch = IncidentWatch(manager, responses, Background(), clock, interval=10.0, sleep=sleep)
    table.health["primary"].breaker.trip(clock(), 60.0)
    watch.start()
    await eventually(lambda: len(watch.manager.open_incidents) == 1, "an evaluation")
    await watch.close(1.0)
    assert set(waits) == {10.0}


def one_call_in_eight_fails(health: DeploymentHealth, clock: ManualClock) -> None:
    for i in range(40):
        assert health.acquire(clock(), 0)
        if i % 8 == 0:
            health.failed(clock())
        else:
            health.succeeded(clock(), 0.1)
        health.finished(clock(), 0)


def test_responses_follow_the_incidents_the_watch_sees() -> None:
    clock = ManualClock()
    responses = ResponseSettings(shift_weight=True)
    watch, table = watching(replace(SETTINGS, responses=responses), clock)
    health = table.health["primary"]
    one_call_in_eight_fails(health, clock)
    (opened,) = watch.tick(clock())
    assert opened.incident.responses == ["shift_weight x0.1"]
    assert health.weight_factor == 0.1
    clock.advance(SETTINGS.window)
    (resolved,) = watch.tick(clock())
    assert resolved.incident is opened.incident
    assert health.weight_factor == 1.0


async def test_a_watch_a_reload_replaced_undoes_the_responses_of_its_open_incidents() -> None:
    clock = ManualClock()
    responses = ResponseSettings(shift_weight=True)
    watch, table = watching(replace(SETTINGS, responses=responses), clock)
    health = table.health["primary"]
    one_call_in_eight_fails(health, clock)
    watch.tick(clock())
    assert health.weight_factor == 0.1
    watch.stand_down()
    assert health.weight_factor == 1.0, "the health record outlives the watch: restored"
    await watch.close(1.0)


def test_disabled_detection_builds_nothing() -> None:
    settings = replace(SETTINGS, enabled=False)
    assert build_incidents(settings, routing_table(), None, Background(), ManualClock()) is None
