"""What a configuration reload keeps of the running state, part by part (edgeproxy.carry)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgeproxy.carry import kept_from
from edgeproxy.config import parse
from edgeproxy.state import ProxyState, build_state

Raw = dict[str, Any]


def base() -> Raw:
    return {
        "cache": {"enabled": True, "ttl": "1h"},
        "providers": {
            "first": {"kind": "mock", "mock": {"reply": "first"}},
            "second": {"kind": "mock", "mock": {"reply": "second"}},
        },
        "models": {
            "chat": {"deployments": [{"provider": "first"}]},
            "other": {"deployments": [{"provider": "second"}]},
        },
        "limits": {"groups": {"chat": {"rpm": 100}}},
    }


def reloaded(edit: Callable[[Raw], None]) -> tuple[ProxyState, ProxyState]:
    """The state of the base configuration, and the state a reload builds after `edit`."""
    running = build_state(parse(base(), {}))
    raw = copy.deepcopy(base())
    edit(raw)
    config = parse(raw, {})
    return running, build_state(config, kept=kept_from(running, config))


def strategy(raw: Raw) -> None:
    raw["routing"] = {"strategy": "latency"}


def reply(raw: Raw) -> None:
    raw["providers"]["first"]["mock"]["reply"] = "changed"


def move(raw: Raw) -> None:
    raw["models"]["chat"]["deployments"] = [{"provider": "second"}]


def ttl(raw: Raw) -> None:
    raw["cache"]["ttl"] = "2h"


def breaker(raw: Raw) -> None:
    raw["routing"] = {"breaker": {"failure_threshold": 9}}


def price(raw: Raw) -> None:
    price = {"input": 1.0, "output": 2.0, "source": "https://example.com", "as_of": "2026-12-01"}
    raw["pricing"] = {"overrides": {"mock": {"chat": price}}}


def limit(raw: Raw) -> None:
    raw["limits"]["groups"]["chat"]["rpm"] = 50


# Per edit: the providers, deployments' health records and parts kept (the others rebuilt).
CASES = [
    (strategy, {"first", "second"}, {"first/*", "second/*"}, {"cache", "costing", "guards"}),
    (reply, {"second"}, {"second/*"}, {"cache", "costing", "guards"}),
    (move, {"first", "second"}, {"second/*"}, {"cache", "costing", "guards"}),
    (ttl, {"first", "second"}, {"first/*", "second/*"}, {"costing", "guards"}),
    (breaker, {"first", "second"}, set(), {"cache", "costing", "guards"}),
    (price, {"first", "second"}, {"first/*", "second/*"}, {"cache"}),
    (limit, {"first", "second"}, {"first/*", "second/*"}, {"cache", "costing"}),
]


@pytest.mark.parametrize(
    ("edit", "providers", "health", "parts"), CASES, ids=[c[0].__name__ for c in CASES]
)
def test_a_reload_keeps_only_what_its_change_left_alone(
    edit: Callable[[Raw], None], providers: set[str], health: set[str], parts: set[str]
) -> None:
    running, state = reloaded(edit)
    assert {n for n, p in state.providers.items() if p is running.providers.get(n)} == providers
    assert {
        name for name, record in state.table.health.items() if record is running.table.health[name]
    } == health
    kept = {
        name
        for name in ("cache", "costing", "guards")
        if getattr(state, name) is getattr(running, name)
    }
    assert kept == parts
    assert state.background is running.background, "one background runner per process"
    assert state.requests is running.requests, "the request metrics count on"


@pytest.mark.parametrize(
    ("cache", "entries_kept"),
    [
        ({"ttl": "2h", "max_ttl": "48h"}, True),
        ({"redis": {"url": "redis://127.0.0.1:1"}}, True),
        ({"namespace": "other"}, False),
        ({"max_entries": 5}, False),
        ({"enabled": False}, False),
    ],
    ids=["ttls", "redis", "namespace", "size", "off"],
)
def test_a_rebuilt_cache_keeps_its_l1_entries_unless_their_keys_or_sizes_changed(
    cache: Raw, entries_kept: bool
) -> None:
    running, state = reloaded(lambda raw: raw["cache"].update(cache))
    assert running.cache is not None
    assert state.cache is not running.cache
    memory = state.cache.cache.memory if state.cache is not None else None
    assert (memory is running.cache.cache.memory) == entries_kept


def test_rebuilt_guards_keep_the_rate_limit_windows_of_this_process() -> None:
    running, state = reloaded(limit)
    assert state.guards is not running.guards
    assert state.guards.limiter is running.guards.limiter


def test_kept_request_metrics_take_the_new_groups_as_labels() -> None:
    def renamed(raw: Raw) -> None:
        raw["models"]["renamed"] = raw["models"].pop("other")

    _, state = reloaded(renamed)
    assert state.requests._groups == {"chat", "renamed"}


def test_events_switched_off_by_a_reload_are_no_longer_told_of_kept_breakers(
    tmp_path: Path,
) -> None:
    raw = base()
    raw["telemetry"] = {"events": {"file": str(tmp_path / "events.jsonl")}}
    running = build_state(parse(raw, {}))
    health = running.table.health["first/*"]
    assert health.breaker.on_change is not None
    config = parse(base(), {})
    state = build_state(config, kept=kept_from(running, config))
    assert state.table.health["first/*"] is health
    assert health.breaker.on_change is None
