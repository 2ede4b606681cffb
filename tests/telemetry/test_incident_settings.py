"""`telemetry.incidents` parses into typed settings with the documented defaults, and every
problem names its field."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.config_reader import Reader, Secret
from edgeproxy.telemetry.incident_settings import (
    IncidentSettings,
    ResponseSettings,
    WebhookSettings,
    parse_incidents,
)

PATH = "telemetry.incidents"


def parsed(raw: Any, env: dict[str, str] | None = None) -> tuple[IncidentSettings, list[str]]:
    reader = Reader(env or {})
    return parse_incidents(reader, raw, PATH), reader.problems


def test_nothing_configured_is_the_documented_defaults() -> None:
    settings, problems = parsed(None)
    assert problems == []
    assert settings == IncidentSettings()
    assert (settings.error_rate, settings.window, settings.interval) == (0.05, 300.0, 10.0)
    assert (settings.ttfb_factor, settings.cost_factor) == (2.0, 2.0)
    assert settings.webhook.url is None
    assert (
        not any((settings.responses.shift_weight, settings.responses.open_breaker))
        and not settings.responses.extend_cache_ttl
    )


def test_every_field_is_read() -> None:
    settings, problems = parsed(
        {
            "enabled": True,
            "interval": "5s",
            "window": "2m",
            "min_requests": 50,
            "error_rate": 0.1,
            "ttfb_factor": 3,
            "min_ttfb": "500ms",
            "cost_factor": 1.5,
            "min_cost_per_minute": 0.5,
            "baseline": "2h",
            "baseline_warmup": "30m",
            "resolve_after": 3,
            "keep_resolved": 10,
            "webhook": {
                "url": "${HOOK}",
                "format": "slack",
                "token": "t",
                "timeout": "2s",
                "retries": 0,
            },
            "responses": {
                "shift_weight": {"enabled": True, "factor": 0.25},
                "open_breaker": {"enabled": True, "pause": "2m"},
                "extend_cache_ttl": {"enabled": True, "factor": 3},
            },
        },
        {"HOOK": "https://hooks.example.com/services/T0/B0/secret"},
    )
    assert problems == []
    assert settings == IncidentSettings(
        enabled=True,
        interval=5.0,
        window=120.0,
        min_requests=50,
        error_rate=0.1,
        ttfb_factor=3.0,
        min_ttfb=0.5,
        cost_factor=1.5,
        min_cost_per_minute=0.5,
        baseline=7200.0,
        baseline_warmup=1800.0,
        resolve_after=3,
        keep_resolved=10,
        webhook=WebhookSettings(
            url=Secret("https://hooks.example.com/services/T0/B0/secret"),
            format="slack",
            token=Secret("t"),
            timeout=2.0,
            retries=0,
        ),
        responses=ResponseSettings(
            shift_weight=True,
            shift_weight_factor=0.25,
            open_breaker=True,
            open_breaker_pause=120.0,
            extend_cache_ttl=True,
            cache_ttl_factor=3.0,
        ),
    )


def test_the_webhook_url_is_a_secret_and_never_shows_itself() -> None:
    settings, _ = parsed({"webhook": {"url": "https://hooks.example.com/T0/secret"}})
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            {"error_rate": 1.5},
            "telemetry.incidents.error_rate: expected a number above 0 and below 1, got 1.5",
        ),
        ({"error_rate": 0}, "telemetry.incidents.error_rate: expected a number above 0 and"),
        ({"ttfb_factor": 0.5}, "telemetry.incidents.ttfb_factor: expected a number above 1"),
        (
            {"cost_factor": "x"},
            'telemetry.incidents.cost_factor: expected a number above 1, got "x"',
        ),
        ({"min_requests": 0}, "telemetry.incidents.min_requests: expected an integer >= 1"),
        ({"interval": "soon"}, "telemetry.incidents.interval: expected a duration > 0"),
        ({"typo": 1}, "telemetry.incidents.typo: unknown field"),
        ({"webhook": {"url": "ftp://x"}}, "telemetry.incidents.webhook.url: expected an http"),
        ({"webhook": {"format": "teams"}}, "telemetry.incidents.webhook.format: expected one of"),
        (
            {"responses": {"shift_weight": {"enabled": True, "factor": 2}}},
            "telemetry.incidents.responses.shift_weight.factor: expected a number above 0 and "
            "below 1",
        ),
        (
            {"responses": {"extend_cache_ttl": {"factor": 1}}},
            "telemetry.incidents.responses.extend_cache_ttl.factor: expected a number above 1",
        ),
        (
            {"responses": {"open_breaker": {"for": "1m"}}},
            "telemetry.incidents.responses.open_breaker.for: unknown field",
        ),
    ],
)
def test_a_problem_names_its_field(raw: dict[str, Any], problem: str) -> None:
    _, problems = parsed(raw)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
