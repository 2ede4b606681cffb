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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeproxy.config_reader import HEADER_NAME, Reader, Secret
from edgeproxy.config_spec import (
    COUNT,
    POSITIVE_DURATION,
    STRING_MAP,
    WHOLE,
    Kind,
    optional_section,
    read,
    read_values,
    required,
    setting,
)
from edgeproxy.jsonl import STDOUT

# Headers the webhook sink sets itself.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "idempotency-key", "transfer-encoding"}
)


def _webhook_url(r: Reader, path: str, value: Any) -> Secret:
    checked = r.url(path, value)
    # Reader.url drops a trailing slash, which a webhook's path may need.
    return Secret(value if isinstance(value, str) else checked)


def _headers(r: Reader, path: str, value: Any) -> tuple[tuple[str, Secret], ...]:
    given = r.string_map(path, value)
    for name in given:
        if not HEADER_NAME(name):
            r.fail(f"{path}.{name}", "is not an HTTP header name")
        elif name.lower() in RESERVED_HEADERS:
            r.fail(f"{path}.{name}", "is set by the webhook sink itself")
    return tuple((name, Secret(value)) for name, value in given.items())


def _jsonl_target(r: Reader, path: str, value: Any) -> str:
    target = r.nonempty_text(path, value)
    if target.strip() and target != STDOUT and not Path(target).parent.is_dir():
        r.fail(path, f"no directory {str(Path(target).parent)!r} to write {target!r} in")
    return target


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: Secret = required(
        Kind(
            _webhook_url,
            {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
            "URL (a secret)",
            "https://observatory.example/v1/events",
        ),
        "Where batches are POSTed; held as a secret (a token may sit in its path).",
    )
    headers: tuple[tuple[str, Secret], ...] = setting(
        (),
        Kind(
            _headers,
            STRING_MAP.json,
            "mapping of strings",
            {"Authorization": "Bearer ${OBSERVATORY_TOKEN}"},
            lambda value: None,
        ),
        "Sent with every batch; values are secrets.",
    )
    timeout: float = setting(5.0, POSITIVE_DURATION, "One attempt.")
    max_retries: int = setting(5, WHOLE, "Attempts after the first.")
    backoff: float = setting(
        0.5, POSITIVE_DURATION, "The first retry's wait, doubling up to max_backoff."
    )
    max_backoff: float = setting(
        30.0, POSITIVE_DURATION, "The longest wait; also the longest Retry-After honoured."
    )


def _webhook(r: Reader, raw: Any, path: str) -> WebhookSettings:
    webhook = read(r, WebhookSettings, raw, path)
    if webhook.max_backoff < webhook.backoff:
        r.fail(f"{path}.max_backoff", f"is shorter than backoff ({webhook.backoff:g}s)")
    return webhook


@dataclass(frozen=True, slots=True)
class EventsSettings:
    webhook: WebhookSettings | None = optional_section(
        WebhookSettings, "Batches POSTed to an observability platform.", parse=_webhook
    )
    file: str | None = setting(  # a JSONL path, or "-" for standard output
        None,
        Kind(_jsonl_target, {"type": "string", "minLength": 1}, "file path", "-"),
        'A JSONL file, or "-" for standard output.',
        example="/var/log/edgeproxy/events.jsonl",
    )
    queue: int = setting(
        10_000, COUNT, "Events each sink may fall behind by before new ones are dropped."
    )
    batch: int = setting(100, COUNT, "Events a batch holds at most.")
    interval: float = setting(1.0, POSITIVE_DURATION, "The longest a partial batch waits.")


def parse_events(r: Reader, raw: Any, path: str) -> EventsSettings | None:
    """The `events` section at `path`; None when it is absent (no events are built)."""
    if raw is None:
        return None
    problems = len(r.problems)
    values = read_values(r, EventsSettings, raw, path)
    if not isinstance(raw, dict) or raw.get("batch") is None:
        values["batch"] = min(values["batch"], values["queue"])  # a small queue, its batch
    settings = EventsSettings(**values)
    if settings.batch > settings.queue and len(r.problems) == problems:
        r.fail(f"{path}.batch", f"is larger than the queue ({settings.queue})")
    if isinstance(raw, dict) and settings.webhook is None and settings.file is None:
        r.fail(path, "give a webhook, a file, or both")
    return settings
