"""The configuration of telemetry events (docs/events.md): where they go and how they are batched.

    telemetry:
      events:
        queue: 10000            # events each sink may fall behind by before new ones are dropped
        batch: 100              # events a batch holds at most
        interval: 1s            # the longest a partial batch waits for more
        webhook:
          url: https://observatory.example/v1/events
          headers: {Authorization: "Bearer ${OBSERVATORY_TOKEN}"}
          timeout: 5s           # one attempt
          max_retries: 5        # attempts after the first
          backoff: 500ms        # the first retry's wait, doubling up to max_backoff
          max_backoff: 30s      # also the longest Retry-After honoured
        file: /var/log/edgeproxy/events.jsonl   # or "-" for standard output

At least one of `webhook` and `file` is given. The webhook's URL and header values are held as
`Secret`s: a webhook is authenticated by a header or by a token in its URL's path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeproxy.config_reader import HEADER_NAME, Reader, Secret
from edgeproxy.jsonl import STDOUT

# Headers the webhook sink sets itself.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "idempotency-key", "transfer-encoding"}
)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: Secret
    headers: tuple[tuple[str, Secret], ...] = ()
    timeout: float = 5.0
    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0


@dataclass(frozen=True, slots=True)
class EventsSettings:
    webhook: WebhookSettings | None = None
    file: str | None = None  # a JSONL path, or "-" for standard output
    queue: int = 10_000
    batch: int = 100
    interval: float = 1.0


def parse_events(r: Reader, raw: Any, path: str) -> EventsSettings | None:
    """The `events` section at `path`; None when it is absent (no events are built)."""
    if raw is None:
        return None
    s = r.section(raw, path, ("queue", "batch", "interval", "webhook", "file"))
    d = EventsSettings()
    problems = len(r.problems)
    queue = r.get(s, path, "queue", r.count, d.queue)
    batch = r.get(s, path, "batch", r.count, min(d.batch, queue))
    if batch > queue and len(r.problems) == problems:
        r.fail(f"{path}.batch", f"is larger than the queue ({queue})")
    settings = EventsSettings(
        webhook=_webhook(r, s.get("webhook"), f"{path}.webhook"),
        file=r.get(s, path, "file", _jsonl_target(r), None),
        queue=queue,
        batch=batch,
        interval=r.get(s, path, "interval", r.positive_duration, d.interval),
    )
    if isinstance(raw, dict) and settings.webhook is None and settings.file is None:
        r.fail(path, "give a webhook, a file, or both")
    return settings


def _webhook(r: Reader, raw: Any, path: str) -> WebhookSettings | None:
    if raw is None:
        return None
    s = r.section(raw, path, ("url", "headers", "timeout", "max_retries", "backoff", "max_backoff"))
    d = WebhookSettings(Secret(""))
    webhook = WebhookSettings(
        url=r.get(s, path, "url", _webhook_url(r)),
        headers=_headers(r, r.get(s, path, "headers", r.string_map, {}), f"{path}.headers"),
        timeout=r.get(s, path, "timeout", r.positive_duration, d.timeout),
        max_retries=r.get(s, path, "max_retries", r.whole, d.max_retries),
        backoff=r.get(s, path, "backoff", r.positive_duration, d.backoff),
        max_backoff=r.get(s, path, "max_backoff", r.positive_duration, d.max_backoff),
    )
    if webhook.max_backoff < webhook.backoff:
        r.fail(f"{path}.max_backoff", f"is shorter than backoff ({webhook.backoff:g}s)")
    return webhook


def _webhook_url(r: Reader) -> Callable[[str, Any], Secret]:
    def parse(path: str, value: Any) -> Secret:
        checked = r.url(path, value)
        # Reader.url drops a trailing slash, which a webhook's path may need.
        return Secret(value if isinstance(value, str) else checked)

    return parse


def _headers(r: Reader, given: dict[str, str], path: str) -> tuple[tuple[str, Secret], ...]:
    for name in given:
        if not HEADER_NAME(name):
            r.fail(f"{path}.{name}", "is not an HTTP header name")
        elif name.lower() in RESERVED_HEADERS:
            r.fail(f"{path}.{name}", "is set by the webhook sink itself")
    return tuple((name, Secret(value)) for name, value in given.items())


def _jsonl_target(r: Reader) -> Callable[[str, Any], str]:
    def parse(path: str, value: Any) -> str:
        target = r.nonempty_text(path, value)
        if target.strip() and target != STDOUT and not Path(target).parent.is_dir():
            r.fail(path, f"no directory {str(Path(target).parent)!r} to write {target!r} in")
        return target

    return parse
