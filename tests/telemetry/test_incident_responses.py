"""The automated responses, each off by default: applied when an incident opens (through the
hooks routing and the cache offer), undone when the last incident asking for it resolves."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from edgeproxy.background import Background
from edgeproxy.cache.lookup import LookupCache
from edgeproxy.config import CacheConfig, parse
from edgeproxy.exchange import Exchange
from edgeproxy.operations import Operation
from edgeproxy.providers import build_provider
from edgeproxy.routing.breaker import BreakerState
from edgeproxy.routing.router import ModelGroup, ModelTable
from edgeproxy.state import build_cache
from edgeproxy.telemetry.incident_responses import Responses
from edgeproxy.telemetry.incident_settings import ResponseSettings
from edgeproxy.telemetry.incidents import Incident, Scope
from tests.support.clock import ManualClock

EVERYTHING = ResponseSettings(shift_weight=True, open_breaker=True, extend_cache_ttl=True)
NOW = 1000.0
CHAT = Operation.CHAT


def routing_table() -> ModelTable:
    names = ("primary", "backup", "spare")
    config = parse(
        {
            "providers": {n: {"kind": "mock"} for n in names},
            "models": {"chat": {"deployments": [{"provider": n, "name": n} for n in names]}},
        },
        {},
    )
    providers = {n: build_provider(p) for n, p in config.providers.items()}
    return ModelTable(config.models, providers, config.routing)


def chat(table: ModelTable) -> ModelGroup:
    group = table.resolve("chat")
    assert group is not None
    return group


def incident(kind: str, scope: Scope = "deployment", name: str = "primary", n: int = 1) -> Incident:
    return Incident(
        id=f"inc_{n}",
        kind=kind,
        scope=scope,
        name=name,
        severity="warning",
        opened_at=NOW,
        evidence={},
        worst={},
        level=0.0,
    )


def weighted_choices(table: ModelTable) -> tuple[str, str]:
    """What a draw of 0.3 picks: from all three deployments (the table built at load), and
    from two of them (the weights read per request)."""
    group = chat(table)
    spare = next(d for d in group.deployments if d.name == "spare")
    fewer = group.choose("weighted", NOW, lambda: 0.3, CHAT, exclude={spare})
    assert fewer is not None
    return group.pick(0.3).name, fewer.name


def cache_stage(ttl: float = 100.0, max_ttl: float = 1000.0) -> LookupCache:
    clock = ManualClock(NOW)
    stage = build_cache(CacheConfig(ttl=ttl, max_ttl=max_ttl), Background(), clock)
    assert stage is not None
    return stage


async def kept_for(stage: LookupCache, group: ModelGroup) -> float:
    """How long the cache would keep the answer to a new question to `group`."""
    payload: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    exchange = Exchange("r", CHAT, {}, b"", payload, "chat", False, NOW, group=group)
    assert await stage(exchange) is None
    capture = exchange.capture
    assert capture is not None
    capture.close()
    return capture.ttl


@pytest.mark.parametrize(
    ("kind", "scope", "done"),
    [
        ("error_rate", "deployment", ["shift_weight x0.1", "open_breaker 60s"]),
        ("ttfb", "deployment", ["shift_weight x0.1"]),
        ("cost", "deployment", []),
        ("breaker_open", "deployment", []),  # already out of rotation
        ("error_rate", "group", ["extend_cache_ttl x4"]),
        ("ttfb", "group", ["extend_cache_ttl x4"]),
        ("cost", "group", ["extend_cache_ttl x4"]),
    ],
)
def test_which_incidents_get_which_responses(kind: str, scope: Scope, done: list[str]) -> None:
    table = routing_table()
    name = "primary" if scope == "deployment" else "chat"
    opened = incident(kind, scope, name)
    Responses(EVERYTHING, table, cache_stage()).opened(opened, NOW)
    assert opened.responses == done


async def test_responses_are_off_by_default() -> None:
    table, stage = routing_table(), cache_stage()
    responses = Responses(ResponseSettings(), table, stage)
    for opened in (incident("error_rate"), incident("error_rate", "group", "chat", n=2)):
        responses.opened(opened, NOW)
        assert opened.responses == []
    assert weighted_choices(table) == ("primary", "primary")
    assert table.health["primary"].breaker.state is BreakerState.CLOSED
    assert await kept_for(stage, chat(table)) == 100.0


def test_shifting_weight_sends_traffic_elsewhere_until_the_incident_resolves() -> None:
    table = routing_table()
    responses = Responses(EVERYTHING, table, None)
    failing = incident("ttfb")
    assert weighted_choices(table) == ("primary", "primary")
    responses.opened(failing, NOW)
    assert table.health["primary"].weight_factor == 0.1
    assert weighted_choices(table) == ("backup", "backup")
    responses.resolved(failing)
    assert table.health["primary"].weight_factor == 1.0
    assert weighted_choices(table) == ("primary", "primary")


def test_a_response_held_by_two_incidents_is_undone_by_the_last_to_resolve() -> None:
    table = routing_table()
    responses = Responses(EVERYTHING, table, None)
    failing, slow = incident("error_rate", n=1), incident("ttfb", n=2)
    responses.opened(failing, NOW)
    responses.opened(slow, NOW)
    responses.resolved(failing)
    assert table.health["primary"].weight_factor == 0.1
    responses.resolved(slow)
    assert table.health["primary"].weight_factor == 1.0


def test_opening_the_breaker_keeps_the_deployment_out_for_the_pause() -> None:
    table = routing_table()
    settings = replace(EVERYTHING, shift_weight=False, open_breaker_pause=120.0)
    Responses(settings, table, None).opened(incident("error_rate"), NOW)
    health = table.health["primary"]
    assert health.breaker.state is BreakerState.OPEN
    assert not health.available(NOW + 119.0)
    assert health.available(NOW + 120.0)  # then probed, as any open breaker


@pytest.mark.parametrize(("factor", "kept"), [(4.0, 400.0), (50.0, 1000.0)])
async def test_a_troubled_group_keeps_its_answers_longer_until_it_recovers(
    factor: float, kept: float
) -> None:
    table, stage = routing_table(), cache_stage(ttl=100.0, max_ttl=1000.0)
    responses = Responses(replace(EVERYTHING, cache_ttl_factor=factor), table, stage)
    troubled = incident("cost", "group", "chat")
    responses.opened(troubled, NOW)
    assert await kept_for(stage, chat(table)) == kept  # never beyond cache.max_ttl
    responses.resolved(troubled)
    assert await kept_for(stage, chat(table)) == 100.0


def test_without_a_cache_a_group_incident_changes_nothing() -> None:
    opened = incident("error_rate", "group", "chat")
    Responses(EVERYTHING, routing_table(), None).opened(opened, NOW)
    assert opened.responses == []
