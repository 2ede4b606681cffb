"""Anthropic's Messages wire format: error bodies, replies, stream events and usage."""

from __future__ import annotations

from typing import Any

import orjson

from edgeproxy.dialects.neutral import Usage
from edgeproxy.dialects.usage_body import body_usage
from edgeproxy.errors import ProxyError
from edgeproxy.sse import SSEEvent

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# Neutral codes of provider failures (errors.UPSTREAM_CODES) as the error type Anthropic's own
# API gives them, whatever status the provider used (an OpenAI 503 is Anthropic's overload).
_UPSTREAM_TYPES = {
    "invalid_request": "invalid_request_error",
    "context_length_exceeded": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_denied": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limited": "rate_limit_error",
    "overloaded": "overloaded_error",
    "upstream_timeout": "timeout_error",
    "upstream_error": "api_error",
}
# Neutral finish reasons as Anthropic's stop_reason (a matched stop string is "stop_sequence").
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def status_for(err: ProxyError) -> int:
    """The HTTP status an Anthropic client gets: an overloaded provider is Anthropic's 529,
    which the SDK retries and reports as overloaded, whatever status the provider used."""
    return 529 if err.code == "overloaded" else err.status


def error_object(err: ProxyError) -> dict[str, Any]:
    kind = _UPSTREAM_TYPES.get(err.code) or _ERROR_TYPES.get(
        err.status, "api_error" if err.status >= 500 else "invalid_request_error"
    )
    return {"type": "error", "error": {"type": kind, "message": err.message}}


def render_error(err: ProxyError) -> bytes:
    return orjson.dumps(error_object(err))


def error_event(err: ProxyError) -> bytes:
    """The final event of a stream that failed after it started: the SDKs raise on it."""
    return _event("error", error_object(err))


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def usage_object(usage: Usage) -> dict[str, Any]:
    """Neutral usage in Anthropic's terms, where `input_tokens` counts only the part of the
    prompt neither read from nor written to the cache."""
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
    }


def _count(raw: dict[str, Any], name: str) -> int:
    value = raw.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(raw: dict[str, Any]) -> Usage:
    """A `usage` object in neutral terms: the whole prompt, cached parts included."""
    read = _count(raw, "cache_read_input_tokens")
    written = _count(raw, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_count(raw, "input_tokens") + read + written,
        output_tokens=_count(raw, "output_tokens"),
        cached_tokens=read,
        cache_write_tokens=written,
    )


def usage_after_delta(start: Usage | None, raw: dict[str, Any]) -> Usage:
    """The usage once a message_delta's counts (cumulative totals) are applied to the one
    message_start gave: output always, input counts only where the delta names them."""
    base = usage_object(start) if start is not None else {}
    merged = {**base, **{k: v for k, v in raw.items() if v is not None}}
    return usage_of(merged)


def read_usage(obj: dict[str, Any]) -> Usage | None:
    """Usage from a Messages body (or the `message` inside message_start)."""
    raw = obj.get("usage")
    return usage_of(raw) if isinstance(raw, dict) else None


def answer_id_of_body(body: bytes) -> str | None:
    """None: no later request names an answer of this API (the Responses API's are)."""
    return None


def usage_of_body(body: bytes) -> Usage | None:
    """Usage from a complete non-streaming response body; None if it has none or is not JSON.
    Its usage object is decoded alone when it can be found (dialects/usage_body.py)."""
    return body_usage(body, read_usage)


# What an event must contain for StreamUsage to learn anything from it (see openai.py).
NAME = "anthropic"  # the dialect, as headers and logs name it
USAGE_MARKERS = (b"message_start", b"message_delta", b"event: error", b"event:error")


class StreamUsage:
    """Watches relayed Anthropic events: input tokens in message_start, output in message_delta,
    and an `error` event the provider sent mid-stream."""

    __slots__ = ("failed", "usage")
    answer_id: str | None = None  # only the Responses API's answers are named in later requests

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.failed = False

    def observe(self, event: SSEEvent) -> None:
        if event.event not in ("message_start", "message_delta"):
            self.failed = self.failed or event.event == "error"
            return
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return
        if event.event == "message_start":
            self.usage = read_usage(payload.get("message") or {})
        elif isinstance(raw := payload.get("usage"), dict):
            self.usage = usage_after_delta(self.usage, raw)


def token_count(input_tokens: int) -> bytes:
    return orjson.dumps({"input_tokens": input_tokens})


def _model(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}


def model_entry(name: str) -> bytes:
    """One model, as `GET /v1/models/{model_id}` answers."""
    return orjson.dumps(_model(name))


def model_list(names: list[str]) -> bytes:
    return orjson.dumps(
        {
            "data": [_model(n) for n in names],
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    )
