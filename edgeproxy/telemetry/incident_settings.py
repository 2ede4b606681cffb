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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from edgeproxy.config_reader import Reader, Secret, show
from edgeproxy.wire.urls import url_problem

WEBHOOK_FORMATS = ("observatory", "slack")


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: Secret | None = None  # None: incidents are only listed at /admin/incidents
    format: Literal["observatory", "slack"] = "observatory"
    token: Secret | None = None
    timeout: float = 5.0
    retries: int = 2


@dataclass(frozen=True, slots=True)
class ResponseSettings:
    """The automated responses, each off unless enabled: weigh a failing or slow deployment at
    `shift_weight_factor` of its weight; open a failing deployment's breaker for
    `open_breaker_pause` seconds; keep a troubled group's answers `cache_ttl_factor` times
    longer."""

    shift_weight: bool = False
    shift_weight_factor: float = 0.1
    open_breaker: bool = False
    open_breaker_pause: float = 60.0
    extend_cache_ttl: bool = False
    cache_ttl_factor: float = 4.0


@dataclass(frozen=True, slots=True)
class IncidentSettings:
    enabled: bool = True
    interval: float = 10.0
    window: float = 300.0
    min_requests: int = 20
    error_rate: float = 0.05
    ttfb_factor: float = 2.0
    min_ttfb: float = 0.25
    cost_factor: float = 2.0
    min_cost_per_minute: float = 0.01
    baseline: float = 3600.0
    baseline_warmup: float = 900.0
    resolve_after: int = 2
    keep_resolved: int = 100
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    responses: ResponseSettings = field(default_factory=ResponseSettings)


def parse_incidents(r: Reader, raw: Any, path: str) -> IncidentSettings:
    s = r.section(
        raw,
        path,
        (
            "enabled",
            "interval",
            "window",
            "min_requests",
            "error_rate",
            "ttfb_factor",
            "min_ttfb",
            "cost_factor",
            "min_cost_per_minute",
            "baseline",
            "baseline_warmup",
            "resolve_after",
            "keep_resolved",
            "webhook",
            "responses",
        ),
    )
    d = IncidentSettings()
    return IncidentSettings(
        enabled=r.get(s, path, "enabled", r.boolean, d.enabled),
        interval=r.get(s, path, "interval", r.positive_duration, d.interval),
        window=r.get(s, path, "window", r.positive_duration, d.window),
        min_requests=r.get(s, path, "min_requests", r.count, d.min_requests),
        error_rate=r.get(s, path, "error_rate", _between(r, 0, 1), d.error_rate),
        ttfb_factor=r.get(s, path, "ttfb_factor", _between(r, 1), d.ttfb_factor),
        min_ttfb=r.get(s, path, "min_ttfb", r.duration, d.min_ttfb),
        cost_factor=r.get(s, path, "cost_factor", _between(r, 1), d.cost_factor),
        min_cost_per_minute=r.get(
            s, path, "min_cost_per_minute", r.nonnegative_number, d.min_cost_per_minute
        ),
        baseline=r.get(s, path, "baseline", r.positive_duration, d.baseline),
        baseline_warmup=r.get(s, path, "baseline_warmup", r.duration, d.baseline_warmup),
        resolve_after=r.get(s, path, "resolve_after", r.count, d.resolve_after),
        keep_resolved=r.get(s, path, "keep_resolved", r.whole, d.keep_resolved),
        webhook=_webhook(r, s.get("webhook"), f"{path}.webhook"),
        responses=_responses(r, s.get("responses"), f"{path}.responses"),
    )


def _between(r: Reader, low: float, high: float | None = None) -> Callable[[str, Any], float]:
    """A parser of numbers strictly above `low` (and below `high`): one problem for a value that
    is not one."""
    bound = f"above {low:g}" + (f" and below {high:g}" if high is not None else "")

    def parse(path: str, value: Any) -> float:
        known = len(r.problems)
        number = r.nonnegative_number(path, value)
        if len(r.problems) > known or not (number > low and (high is None or number < high)):
            del r.problems[known:]  # one message, saying what is expected here
            r.fail(path, f"expected a number {bound}, got {show(value)}")
        return number

    return parse


def _webhook(r: Reader, raw: Any, path: str) -> WebhookSettings:
    s = r.section(
        raw, path, ("url", "url_file", "format", "token", "token_file", "timeout", "retries")
    )
    d = WebhookSettings()
    url = r.secret(s, path, "url")
    if url is not None and (problem := url_problem(url.reveal())) is not None:
        r.fail(f"{path}.url", problem)
    fmt = r.get(s, path, "format", r.choice(WEBHOOK_FORMATS), d.format)
    return WebhookSettings(
        url=url,
        format="slack" if fmt == "slack" else "observatory",
        token=r.secret(s, path, "token"),
        timeout=r.get(s, path, "timeout", r.positive_duration, d.timeout),
        retries=r.get(s, path, "retries", r.whole, d.retries),
    )


def _responses(r: Reader, raw: Any, path: str) -> ResponseSettings:
    s = r.section(raw, path, ("shift_weight", "open_breaker", "extend_cache_ttl"))
    d = ResponseSettings()
    shift_at, pause_at, ttl_at = (
        f"{path}.{k}" for k in ("shift_weight", "open_breaker", "extend_cache_ttl")
    )
    shift = r.section(s.get("shift_weight"), shift_at, ("enabled", "factor"))
    pause = r.section(s.get("open_breaker"), pause_at, ("enabled", "pause"))
    ttl = r.section(s.get("extend_cache_ttl"), ttl_at, ("enabled", "factor"))
    return ResponseSettings(
        shift_weight=r.get(shift, shift_at, "enabled", r.boolean, d.shift_weight),
        shift_weight_factor=r.get(
            shift, shift_at, "factor", _between(r, 0, 1), d.shift_weight_factor
        ),
        open_breaker=r.get(pause, pause_at, "enabled", r.boolean, d.open_breaker),
        open_breaker_pause=r.get(
            pause, pause_at, "pause", r.positive_duration, d.open_breaker_pause
        ),
        extend_cache_ttl=r.get(ttl, ttl_at, "enabled", r.boolean, d.extend_cache_ttl),
        cache_ttl_factor=r.get(ttl, ttl_at, "factor", _between(r, 1), d.cache_ttl_factor),
    )
