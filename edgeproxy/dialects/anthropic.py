"""Anthropic's Messages wire format: error bodies, replies, stream events and usage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from edgeproxy.dialects.neutral import TextReply, Usage, split_text
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
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def error_object(err: ProxyError) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(
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


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def read_usage(obj: dict[str, Any]) -> Usage | None:
    """Usage from a Messages body (or the `message` inside message_start)."""
    raw = obj.get("usage")
    if not isinstance(raw, dict):
        return None
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=int(raw.get("cache_read_input_tokens") or 0),
    )


def usage_of_body(body: bytes) -> Usage | None:
    """Usage from a complete non-streaming response body; None if it has none or is not JSON."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return read_usage(payload) if isinstance(payload, dict) else None


class StreamUsage:
    """Watches relayed Anthropic events: input tokens in message_start, output in message_delta."""

    __slots__ = ("usage",)

    def __init__(self) -> None:
        self.usage: Usage | None = None

    def observe(self, event: SSEEvent) -> None:
        if event.event not in ("message_start", "message_delta"):
            return
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return
        if event.event == "message_start":
            self.usage = read_usage(payload.get("message") or {})
        elif (delta := read_usage(payload)) is not None:
            usage = self.usage or Usage()
            usage.output_tokens = delta.output_tokens
            usage.input_tokens = delta.input_tokens or usage.input_tokens
            self.usage = usage


def message(reply: TextReply) -> bytes:
    return orjson.dumps(
        {
            "id": reply.id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": _STOP_REASONS[reply.finish],
            "stop_sequence": None,
            "usage": _usage(reply.usage),
        }
    )


def message_stream(reply: TextReply, pieces: int) -> Iterator[bytes]:
    """The event sequence the SDK's stream helpers reassemble into the same message."""
    start_usage = Usage(input_tokens=reply.usage.input_tokens, output_tokens=1)
    yield _event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": reply.id,
                "type": "message",
                "role": "assistant",
                "model": reply.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _usage(start_usage),
            },
        },
    )
    yield _event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    yield _event("ping", {"type": "ping"})
    for part in split_text(reply.text, pieces):
        yield _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": part},
            },
        )
    yield _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP_REASONS[reply.finish], "stop_sequence": None},
            "usage": {"output_tokens": reply.usage.output_tokens},
        },
    )
    yield _event("message_stop", {"type": "message_stop"})


def token_count(input_tokens: int) -> bytes:
    return orjson.dumps({"input_tokens": input_tokens})


def model_list(names: list[str]) -> bytes:
    data = [
        {
            "type": "model",
            "id": n,
            "display_name": n,
            "created_at": "1970-01-01T00:00:00Z",
        }
        for n in names
    ]
    return orjson.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    )
