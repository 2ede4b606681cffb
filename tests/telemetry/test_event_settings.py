"""The `telemetry.events` configuration: defaults, secrets kept as `Secret`s, and every mistake
reported with the path of its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgeproxy.config_reader import Reader, Secret
from edgeproxy.telemetry.event_settings import EventsSettings, WebhookSettings, parse_events

PATH = "telemetry.events"
URL = "https://observatory.example/v1/events"


def parse(raw: Any, env: dict[str, str] | None = None) -> tuple[EventsSettings | None, list[str]]:
    reader = Reader(env or {})
    return parse_events(reader, raw, PATH), reader.problems


def test_no_section_builds_no_events() -> None:
    assert parse(None) == (None, [])


def test_a_full_section_is_read_with_its_secrets_kept_secret(tmp_path: Path) -> None:
    raw = {
        "queue": 500,
        "batch": 50,
        "interval": "250ms",
        "webhook": {
            "url": URL + "/",
            "headers": {"Authorization": "Bearer ${OBSERVATORY_TOKEN}"},
            "timeout": "2s",
            "max_retries": 0,
            "backoff": "100ms",
            "max_backoff": "5s",
        },
        "file": str(tmp_path / "events.jsonl"),
    }
    settings, problems = parse(raw, {"OBSERVATORY_TOKEN": "tok-123456"})
    assert problems == []
    assert settings == EventsSettings(
        webhook=WebhookSettings(
            url=Secret(URL + "/"),
            headers=(("Authorization", Secret("Bearer tok-123456")),),
            timeout=2.0,
            max_retries=0,
            backoff=0.1,
            max_backoff=5.0,
        ),
        file=str(tmp_path / "events.jsonl"),
        queue=500,
        batch=50,
        interval=0.25,
    )
    assert "tok-123456" not in repr(settings)
    assert "observatory.example" not in repr(settings)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"file": "-"}, EventsSettings(file="-")),
        ({"file": "-", "queue": 40}, EventsSettings(file="-", queue=40, batch=40)),
        ({"webhook": {"url": URL}}, EventsSettings(webhook=WebhookSettings(Secret(URL)))),
    ],
    ids=["stdout", "small-queue", "webhook"],
)
def test_one_sink_is_enough_and_the_rest_has_defaults(raw: Any, expected: EventsSettings) -> None:
    assert parse(raw) == (expected, [])


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({}, "telemetry.events: give a webhook, a file, or both"),
        ("yes", "telemetry.events: expected a mapping"),
        ({"file": "-", "sinks": 2}, "telemetry.events.sinks: unknown field"),
        ({"file": ""}, "telemetry.events.file: expected a non-empty string"),
        ({"file": "/no/such/dir/e.jsonl"}, "telemetry.events.file: no directory '/no/such/dir'"),
        ({"file": "-", "queue": 0}, "telemetry.events.queue: expected an integer >= 1"),
        ({"file": "-", "batch": 2.5}, "telemetry.events.batch: expected an integer >= 1"),
        ({"file": "-", "batch": 200, "queue": 100}, "telemetry.events.batch: is larger than"),
        ({"file": "-", "interval": 0}, "telemetry.events.interval: expected a duration > 0"),
        ({"webhook": {}}, "telemetry.events.webhook.url: required"),
        ({"webhook": {"url": "ftp://x.example/e"}}, "telemetry.events.webhook.url: expected an"),
        ({"webhook": {"url": "https://u:p@x.example/e"}}, "webhook.url: has credentials"),
        ({"webhook": {"url": URL, "path": "/"}}, "telemetry.events.webhook.path: unknown field"),
        (
            {"webhook": {"url": URL, "headers": {"Content-Type": "text/plain"}}},
            "telemetry.events.webhook.headers.Content-Type: is set by the webhook sink itself",
        ),
        (
            {"webhook": {"url": URL, "headers": {"Bad Name": "x"}}},
            "telemetry.events.webhook.headers.Bad Name: is not an HTTP header name",
        ),
        (
            {"webhook": {"url": URL, "headers": ["Authorization"]}},
            "telemetry.events.webhook.headers: expected a mapping of strings",
        ),
        (
            {"webhook": {"url": URL, "max_retries": -1}},
            "telemetry.events.webhook.max_retries: expected an integer >= 0",
        ),
        (
            {"webhook": {"url": URL, "timeout": "soon"}},
            "telemetry.events.webhook.timeout: expected a duration > 0",
        ),
        (
            {"webhook": {"url": URL, "backoff": "2s", "max_backoff": "1s"}},
            "telemetry.events.webhook.max_backoff: is shorter than backoff (2s)",
        ),
        (
            {"webhook": {"url": URL, "headers": {"Authorization": "${MISSING_TOKEN}"}}},
            "telemetry.events.webhook.headers.Authorization: environment variable MISSING_TOKEN",
        ),
    ],
    ids=[
        "no-sink",
        "not-a-mapping",
        "unknown-field",
        "empty-file",
        "file-directory-missing",
        "queue-zero",
        "batch-fraction",
        "batch-above-queue",
        "interval-zero",
        "url-missing",
        "url-not-http",
        "url-credentials",
        "webhook-unknown-field",
        "header-reserved",
        "header-name",
        "headers-not-a-mapping",
        "retries-negative",
        "timeout-unreadable",
        "backoff-above-cap",
        "header-env-missing",
    ],
)
def test_each_mistake_is_reported_at_its_field(raw: Any, problem: str) -> None:
    _, problems = parse(raw)
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem) or problem in problems[0], problems
