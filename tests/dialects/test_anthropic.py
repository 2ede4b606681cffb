"""Anthropic's wire helpers: error types and statuses an Anthropic client gets, and usage in
Anthropic's convention (input counted apart from the cache) read and written back."""

from __future__ import annotations

import orjson
import pytest

from edgeproxy import errors
from edgeproxy.dialects import anthropic
from edgeproxy.dialects.neutral import Usage
from edgeproxy.errors import ProxyError
from edgeproxy.sse import SSEEvent


@pytest.mark.parametrize(
    ("err", "status", "kind"),
    [
        (errors.from_upstream(400, "context_length_exceeded", "m"), 400, "invalid_request_error"),
        (errors.from_upstream(429, "rate_limited", "m"), 429, "rate_limit_error"),
        (errors.from_upstream(503, "overloaded", "m"), 529, "overloaded_error"),
        (errors.from_upstream(529, "overloaded", "m"), 529, "overloaded_error"),
        (errors.from_upstream(403, "permission_denied", "m"), 403, "permission_error"),
        (errors.from_upstream(402, "permission_denied", "m"), 402, "permission_error"),
        (errors.from_upstream(401, "authentication_error", "m"), 401, "authentication_error"),
        (errors.from_upstream(404, "not_found", "m"), 404, "not_found_error"),
        (errors.from_upstream(413, "request_too_large", "m"), 413, "request_too_large"),
        (errors.from_upstream(408, "upstream_timeout", "m"), 408, "timeout_error"),
        (errors.from_upstream(502, "upstream_error", "m"), 502, "api_error"),
        (errors.from_upstream(422, "invalid_request", "m"), 422, "invalid_request_error"),
        (errors.upstream_broken("openai", "cut"), 502, "api_error"),
        (errors.upstream_timeout("openai", "first byte", 30), 504, "timeout_error"),
        (errors.model_not_found("x"), 404, "not_found_error"),
        (errors.payload_too_large(1024), 413, "request_too_large"),
        (ProxyError(503, "no_deployment", "m"), 503, "overloaded_error"),
    ],
)
def test_errors_reach_an_anthropic_client_with_anthropics_status_and_type(
    err: ProxyError, status: int, kind: str
) -> None:
    assert anthropic.status_for(err) == status
    assert orjson.loads(anthropic.render_error(err)) == {
        "type": "error",
        "error": {"type": kind, "message": err.message},
    }


def test_a_stream_error_event_is_the_error_body_as_an_error_event() -> None:
    event = anthropic.error_event(errors.from_upstream(503, "overloaded", "Overloaded"))
    assert event == (
        b'event: error\ndata: {"type":"error","error":'
        b'{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )


ANTHROPIC_USAGE = {
    "input_tokens": 12,
    "cache_creation_input_tokens": 1500,
    "cache_read_input_tokens": 2048,
    "output_tokens": 161,
}
NEUTRAL_USAGE = Usage(
    input_tokens=3560, output_tokens=161, cached_tokens=2048, cache_write_tokens=1500
)


def test_usage_counts_the_whole_prompt_in_neutral_terms_and_back() -> None:
    assert anthropic.read_usage({"usage": ANTHROPIC_USAGE}) == NEUTRAL_USAGE
    assert anthropic.usage_object(NEUTRAL_USAGE) == ANTHROPIC_USAGE


@pytest.mark.parametrize(
    ("raw", "usage"),
    [
        ({"input_tokens": 5, "output_tokens": 2}, Usage(5, 2)),
        ({"input_tokens": 5, "cache_read_input_tokens": None}, Usage(5, 0)),
        ({}, Usage()),
        ({"input_tokens": "5", "output_tokens": True}, Usage()),
    ],
)
def test_absent_or_malformed_counts_read_as_zero(raw: dict[str, object], usage: Usage) -> None:
    assert anthropic.read_usage({"usage": raw}) == usage
    assert anthropic.read_usage({"usage": None}) is None


def observe(watcher: anthropic.StreamUsage, name: str, payload: dict[str, object]) -> None:
    watcher.observe(SSEEvent(name, orjson.dumps(payload)))


@pytest.mark.parametrize(
    ("delta", "usage"),
    [
        ({"output_tokens": 161}, NEUTRAL_USAGE),
        (
            {"input_tokens": 20, "output_tokens": 161},
            Usage(20 + 1500 + 2048, 161, cached_tokens=2048, cache_write_tokens=1500),
        ),
        (
            {"cache_read_input_tokens": 0, "output_tokens": 161, "input_tokens": None},
            Usage(12 + 1500, 161, cache_write_tokens=1500),
        ),
    ],
)
def test_relayed_stream_usage_applies_message_delta_counts_over_message_start(
    delta: dict[str, object], usage: Usage
) -> None:
    watcher = anthropic.StreamUsage()
    start = {**ANTHROPIC_USAGE, "output_tokens": 1}
    observe(watcher, "message_start", {"type": "message_start", "message": {"usage": start}})
    observe(watcher, "message_delta", {"type": "message_delta", "usage": delta})
    assert watcher.usage == usage


def test_a_usage_only_stream_delta_without_start_counts_from_zero() -> None:
    watcher = anthropic.StreamUsage()
    observe(watcher, "message_delta", {"type": "message_delta", "usage": {"output_tokens": 3}})
    assert watcher.usage == Usage(output_tokens=3)
