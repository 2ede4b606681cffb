"""The telemetry events the Observatory consumes, schema `edgeproxy.event/1` (docs/events.md,
docs/events.schema.json): what each event holds, built as plain values, sent by
`telemetry.event_queue`.

Every event starts with the same four fields:

    {"schema": "edgeproxy.event/1", "type": "request.completed",
     "time": "2025-01-31T12:00:00.123Z", "id": "0f6c3f9e52d04b7e9a1c...", ...}

An event is built from values the proxy already holds (a request's `RequestRecord`, a breaker's
new state, a guard's decision) and holds identifiers, names, numbers and outcomes only: never a
prompt, an answer, a header or a credential, and nothing a caller could put one in. Strings a
client chose (its model name, its request id) are cut to `MAX_VALUE` characters.

One request is one `request.completed` event. The issue's other per-request events are its
fields, not events of their own: the cache outcome (`cache`), the deployment that answered
(`deployment`, with `attempts`) and whether it failed (`error`: status 500 or above). Each is
final only once the answer is, which is when the record exists; separate events would repeat
the request's identity in two or three events per request, and double the traffic exactly when
errors surge and the queue is under the most pressure.
"""

from __future__ import annotations

import orjson

from edgeproxy.ids import fresh_id
from edgeproxy.jsonl import Timestamps
from edgeproxy.security.audit import ACTIONS
from edgeproxy.telemetry.record import RequestRecord

SCHEMA = "edgeproxy.event/1"
REQUEST_COMPLETED = "request.completed"
GUARD_DECISION = "guard.decision"
# A breaker's state (routing.breaker.BreakerState's values) and the event that announces it.
BREAKER_EVENTS = {
    "open": "breaker.opened",
    "half_open": "breaker.half_open",
    "closed": "breaker.closed",
}
MAX_VALUE = 128

Value = str | int | float | bool | None
Event = dict[str, Value]
# What the queue holds: an event, or a request's record, made into its `request.completed`
# event only when its sink encodes the batch. The record exists anyway; its event, a dict of
# 26 fields, then lives only while it is encoded, never on the request path.
Queued = Event | RequestRecord

_stamp = Timestamps()


def request_event(record: RequestRecord, wall: float) -> Event:
    """`request.completed`: one request, once its answer has ended (`wall`: epoch seconds).
    One dict literal, built on every request's after-path: no merge of a head into it."""
    ttfb = record.upstream_ttfb
    duration = record.duration
    upstream = record.upstream_wait
    return {
        "schema": SCHEMA,
        "type": REQUEST_COMPLETED,
        "time": _stamp(wall),
        "id": fresh_id(),
        "request_id": record.request_id[:MAX_VALUE],
        "route": record.route,
        "model": record.model[:MAX_VALUE],
        "group": record.group,
        "provider": record.provider,
        "deployment": record.deployment,
        "status": record.status,
        "error": record.status >= 500,
        "cache": record.cache,
        "attempts": record.attempts,
        "stream": record.stream,
        "key_id": record.key_id,
        "team": record.team,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cached_tokens": record.cached_tokens,
        "cost_usd": record.cost_usd,
        "saved_usd": record.saved_usd,
        "duration_ms": round(duration * 1000, 3),
        "upstream_wait_ms": round(upstream * 1000, 3),
        "upstream_ttfb_ms": None if ttfb is None else round(ttfb * 1000, 3),
        "overhead_ms": round(max(0.0, duration - upstream) * 1000, 3),
    }


def encoded(item: Queued, option: int = 0) -> bytes:
    """`item` as JSON (`option`: orjson's, such as a trailing newline)."""
    event = request_event(item, item.wall) if isinstance(item, RequestRecord) else item
    return orjson.dumps(event, option=option)


def breaker_event(deployment: str, state: str, wall: float) -> Event:
    """`breaker.opened`, `breaker.half_open` or `breaker.closed`: a deployment's circuit
    breaker entered `state` (a `BreakerState` value); ValueError for another state."""
    kind = BREAKER_EVENTS.get(state)
    if kind is None:
        raise ValueError(f"breaker state {state!r} is not one of {sorted(BREAKER_EVENTS)}")
    return _head(kind, wall) | {"deployment": deployment}


def guard_event(request_id: str, key_id: str | None, rule: str, action: str, wall: float) -> Event:
    """`guard.decision`: what a guardrail rule made the proxy do with a request (an audit
    log action); ValueError for another action."""
    if action not in ACTIONS:
        raise ValueError(f"action {action!r} is not one of {ACTIONS}")
    return _head(GUARD_DECISION, wall) | {
        "request_id": request_id[:MAX_VALUE],
        "key_id": key_id,
        "rule": rule[:MAX_VALUE],
        "action": action,
    }


def _head(kind: str, wall: float) -> Event:
    return {"schema": SCHEMA, "type": kind, "time": _stamp(wall), "id": fresh_id()}
