"""The configuration of incident detection (`telemetry.incidents`), parsed with the
configuration's one `Reader` so every problem names its field.

    telemetry:
      incidents:
        enabled: true
        interval: 10s              # how often the windows are judged
        window: 5m                 # the rolling window each detection reads
        min_requests: 20           # fewer requests (or answers timed) in the window: no verdict
        error_rate: 0.05           # errors / requests above this opens an incident
        ttfb_factor: 2.0           # mean time to first byte above factor x baseline ...
        min_ttfb: 250ms            # ... and above this
        cost_factor: 2.0           # cost per minute above factor x baseline ...
        min_cost_per_minute: 0.01  # ... and above this many US dollars
        baseline: 1h               # how slowly baselines move
        baseline_warmup: 15m       # data a baseline needs before it is compared with
        resolve_after: 2           # evaluations back to normal before an incident resolves
        keep_resolved: 100         # resolved incidents listed at /admin/incidents
        webhook:
          url: ${INCIDENT_WEBHOOK_URL}   # or url_file: a secret mount (a Slack URL is a secret)
          format: observatory            # or slack
          token: ${OBSERVATORY_TOKEN}    # optional: sent as Authorization: Bearer
          timeout: 5s
          retries: 2
        responses:                 # each off by default
          shift_weight: {enabled: false, factor: 0.1}
          open_breaker: {enabled: false, pause: 60s}
          extend_cache_ttl: {enabled: false, factor: 4}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from edgeproxy.config_reader import Reader, Secret, show
from edgeproxy.config_spec import (
    BOOLEAN,
    COUNT,
    DURATION,
    NONNEGATIVE_NUMBER,
    POSITIVE_DURATION,
    WHOLE,
    Kind,
    choice,
    read,
    secret,
    section,
    setting,
)
from edgeproxy.wire.urls import url_problem

WEBHOOK_FORMATS = ("observatory", "slack")


def between(low: float, high: float | None = None) -> Kind:
    """Numbers strictly above `low` (and below `high`): one problem for a value that is not
    one, saying what is expected here."""
    bound = f"above {low:g}" + (f" and below {high:g}" if high is not None else "")

    def parse(r: Reader, path: str, value: Any) -> float:
        known = len(r.problems)
        number = r.nonnegative_number(path, value)
        if len(r.problems) > known or not (number > low and (high is None or number < high)):
            del r.problems[known:]
            r.fail(path, f"expected a number {bound}, got {show(value)}")
        return number

    json: dict[str, Any] = {"type": "number", "exclusiveMinimum": low}
    if high is not None:
        json["exclusiveMaximum"] = high
    return Kind(parse, json, f"number {bound}", (low + (high or low + 2)) / 2)


def _webhook(r: Reader, raw: Any, path: str) -> WebhookSettings:
    webhook = read(r, WebhookSettings, raw, path)
    if webhook.url is not None and (problem := url_problem(webhook.url.reveal())) is not None:
        r.fail(f"{path}.url", problem)
    return webhook


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: Secret | None = secret(  # None: incidents are only listed at /admin/incidents
        "Where incidents are POSTed (a Slack URL is a secret: url_file reads a mount); "
        "left out, they are only listed at /admin/incidents.",
        example="${INCIDENT_WEBHOOK_URL}",
    )
    format: Literal["observatory", "slack"] = setting(
        "observatory", choice(WEBHOOK_FORMATS), "The body's shape."
    )
    token: Secret | None = secret("Sent as Authorization: Bearer.")
    timeout: float = setting(5.0, POSITIVE_DURATION, "One attempt.")
    retries: int = setting(2, WHOLE, "Attempts after the first.")


@dataclass(frozen=True, slots=True)
class ResponseSettings:
    """The automated responses, each off unless enabled: weigh a failing or slow deployment at
    `shift_weight_factor` of its weight; open a failing deployment's breaker for
    `open_breaker_pause` seconds; keep a troubled group's answers `cache_ttl_factor` times
    longer."""

    shift_weight: bool = setting(
        False, BOOLEAN, "Weigh a failing or slow deployment down.", key="shift_weight.enabled"
    )
    shift_weight_factor: float = setting(
        0.1, between(0, 1), "Its weight is multiplied by this.", key="shift_weight.factor"
    )
    open_breaker: bool = setting(
        False, BOOLEAN, "Open a failing deployment's breaker.", key="open_breaker.enabled"
    )
    open_breaker_pause: float = setting(
        60.0, POSITIVE_DURATION, "For this long.", key="open_breaker.pause"
    )
    extend_cache_ttl: bool = setting(
        False,
        BOOLEAN,
        "Keep a troubled group's answers longer.",
        key="extend_cache_ttl.enabled",
    )
    cache_ttl_factor: float = setting(
        4.0, between(1), "Their TTL is multiplied by this.", key="extend_cache_ttl.factor"
    )


@dataclass(frozen=True, slots=True)
class IncidentSettings:
    enabled: bool = setting(True, BOOLEAN, "Detect incidents (/admin/incidents, the status page).")
    interval: float = setting(10.0, POSITIVE_DURATION, "How often the windows are judged.")
    window: float = setting(300.0, POSITIVE_DURATION, "The rolling window each detection reads.")
    min_requests: int = setting(
        20, COUNT, "Fewer requests (or answers timed) in the window: no verdict."
    )
    error_rate: float = setting(
        0.05, between(0, 1), "Errors / requests above this opens an incident."
    )
    ttfb_factor: float = setting(
        2.0, between(1), "Mean time to first byte above this times its baseline (and min_ttfb)."
    )
    min_ttfb: float = setting(0.25, DURATION, "... and above this.")
    cost_factor: float = setting(
        2.0, between(1), "Cost per minute above this times its baseline (and the minimum)."
    )
    min_cost_per_minute: float = setting(
        0.01, NONNEGATIVE_NUMBER, "... and above this many US dollars."
    )
    baseline: float = setting(3600.0, POSITIVE_DURATION, "How slowly baselines move.")
    baseline_warmup: float = setting(
        900.0, DURATION, "Data a baseline needs before it is compared with."
    )
    resolve_after: int = setting(
        2, COUNT, "Evaluations back to normal before an incident resolves."
    )
    keep_resolved: int = setting(100, WHOLE, "Resolved incidents listed at /admin/incidents.")
    webhook: WebhookSettings = section(WebhookSettings, "Where incidents are sent.", parse=_webhook)
    responses: ResponseSettings = section(
        ResponseSettings, "Automated responses, each off by default."
    )


def parse_incidents(r: Reader, raw: Any, path: str) -> IncidentSettings:
    return read(r, IncidentSettings, raw, path)
