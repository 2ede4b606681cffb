"""The events' schema (edgeproxy.event/1): what each builder puts in an event, checked against
docs/events.schema.json, and what it never puts in."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson
import pytest

from edgeproxy.routing.breaker import BreakerState
from edgeproxy.security.audit import ACTIONS
from edgeproxy.telemetry.events import (
    MAX_VALUE,
    SCHEMA,
    breaker_event,
    guard_event,
    request_event,
)
from edgeproxy.telemetry.record import RequestRecord
from tests.support.event_schema import EVENT_SCHEMA
from tests.support.records import record as a_record
from tests.support.shield_schemas import DOCS

WALL = 1738324800.123  # 2025-01-31T12:00:00.123Z
HEAD = {"schema", "type", "time", "id"}
RECORD = a_record(
    request_id="req-1",
    model="gpt-4o-mini",
    group="small",
    provider="openai",
    deployment="openai-east",
    status=200,
    cache="miss",
    attempts=2,
    stream=True,
    key_id="web",
    team="storefront",
    input_tokens=120,
    output_tokens=30,
    cached_tokens=64,
    cost_usd=0.000036,
    saved_usd=0.0,
    started=500.0,
    duration=0.8125,
    queued=0.0005,
    cache_time=0.0001,
    upstream_wait=0.75,
    upstream_ttfb=0.25,
)


def record(**changes: Any) -> RequestRecord:
    return dataclasses.replace(RECORD, **changes)


def test_a_request_event_holds_the_record_in_its_documented_fields() -> None:
    event = request_event(RECORD, WALL)
    assert re.fullmatch("[0-9a-f]{32}", str(event.pop("id")))
    assert event == {
        "schema": SCHEMA,
        "type": "request.completed",
        "time": "2025-01-31T12:00:00.123Z",
        "request_id": "req-1",
        "route": "chat",
        "model": "gpt-4o-mini",
        "group": "small",
        "provider": "openai",
        "deployment": "openai-east",
        "status": 200,
        "error": False,
        "cache": "miss",
        "attempts": 2,
        "stream": True,
        "key_id": "web",
        "team": "storefront",
        "input_tokens": 120,
        "output_tokens": 30,
        "cached_tokens": 64,
        "cost_usd": 0.000036,
        "saved_usd": 0.0,
        "duration_ms": 812.5,
        "upstream_wait_ms": 750.0,
        "upstream_ttfb_ms": 250.0,
        "overhead_ms": 62.5,
    }


@pytest.mark.parametrize(
    ("status", "error"),
    [(200, False), (400, False), (429, False), (499, False), (500, True), (502, True), (504, True)],
)
def test_a_request_answered_with_a_server_error_is_an_error(status: int, error: bool) -> None:
    assert request_event(record(status=status), WALL)["error"] is error


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"cache": None, "key_id": None, "team": None},
        {"cache": "hit-l1", "provider": None, "deployment": None, "attempts": 0, "saved_usd": 0.01},
        {"status": 503, "group": None, "upstream_ttfb": None, "stream": False},
        {"route": "embeddings", "cache": "coalesced", "upstream_wait": 0.0},
    ],
    ids=["served", "no-auth-no-cache", "cache-hit", "no-deployment", "coalesced"],
)
def test_every_request_event_matches_the_published_schema(changes: dict[str, Any]) -> None:
    EVENT_SCHEMA.validate(request_event(record(**changes), WALL))


def test_strings_a_client_chose_are_cut_and_no_value_is_a_container() -> None:
    event = request_event(record(model="m" * 10_000, request_id="r" * 10_000), WALL)
    assert len(str(event["model"])) == len(str(event["request_id"])) == MAX_VALUE
    assert all(value is None or isinstance(value, str | int | float) for value in event.values())


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        (BreakerState.OPEN, "breaker.opened"),
        (BreakerState.HALF_OPEN, "breaker.half_open"),
        (BreakerState.CLOSED, "breaker.closed"),
    ],
)
def test_a_breaker_event_names_the_state_the_deployment_entered(
    state: BreakerState, kind: str
) -> None:
    event = breaker_event("openai-east", state.value, WALL)
    EVENT_SCHEMA.validate(event)
    assert set(event) == HEAD | {"deployment"}
    assert (event["type"], event["deployment"]) == (kind, "openai-east")


def test_a_breaker_state_outside_the_breakers_is_refused() -> None:
    with pytest.raises(ValueError, match="tripped"):
        breaker_event("openai-east", "tripped", WALL)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_guard_event_says_who_was_checked_by_which_rule_and_what_was_done(action: str) -> None:
    event = guard_event("req-1", "web", "pii", action, WALL)
    EVENT_SCHEMA.validate(event)
    assert {k: v for k, v in event.items() if k not in ("id", "time")} == {
        "schema": SCHEMA,
        "type": "guard.decision",
        "request_id": "req-1",
        "key_id": "web",
        "rule": "pii",
        "action": action,
    }


def test_a_guard_action_outside_the_audit_logs_is_refused() -> None:
    with pytest.raises(ValueError, match="blocked"):
        guard_event("req-1", None, "pii", "blocked", WALL)


def test_every_event_has_its_own_id() -> None:
    events = [request_event(RECORD, WALL) for _ in range(500)]
    events += [breaker_event("d", "open", WALL) for _ in range(500)]
    assert len({event["id"] for event in events}) == 1000


def test_every_json_example_in_the_doc_is_a_valid_event() -> None:
    doc = (DOCS / "events.md").read_text()
    examples = [orjson.loads(block) for block in re.findall(r"```json\n(.*?)```", doc, re.S)]
    assert [example["type"] for example in examples] == [
        "request.completed",
        "breaker.opened",
        "guard.decision",
    ]
    for example in examples:
        EVENT_SCHEMA.validate(example)
