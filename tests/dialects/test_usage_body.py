"""A whole answer's usage, read from its usage object alone, is the usage the whole decoded
body gives, whatever the answer's content holds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.dialects import anthropic, openai
from edgeproxy.dialects.usage_body import SHORTCUT_OVER, trailing_usage

OPENAI_USAGE = {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0},
}
ANTHROPIC_USAGE = {
    "input_tokens": 12,
    "output_tokens": 6,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 3,
    "server_tool_use": {"web_search_requests": 0},
}


PADDING = "x" * SHORTCUT_OVER  # each answer long enough for the shortcut to be taken


def chat(content: str, usage: Any = OPENAI_USAGE, **more: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "system_padding": PADDING,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": usage,
        **more,
    }


def message(content: list[dict[str, Any]], usage: Any = ANTHROPIC_USAGE) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "padding": PADDING,
        "type": "message",
        "content": content,
        "usage": usage,
    }


def whole(codec: Any, body: bytes) -> Any:
    """What decoding the whole body reads."""
    payload = orjson.loads(body)
    return codec.read_usage(payload) if isinstance(payload, dict) else None


@pytest.mark.parametrize(
    ("codec", "payload"),
    [
        (openai, chat("hello")),
        (openai, chat('she said "usage": {"prompt_tokens": 1000} }}}')),
        (openai, chat("hi", service_tier="default", system_fingerprint="fp_1")),
        (openai, {"usage": OPENAI_USAGE, **chat("usage first")}),
        (openai, chat("no usage", usage=None)),
        (openai, {"object": "list", "data": [PADDING], "model": "usage"}),
        (openai, {"data": [PADDING], "usage": {"prompt_tokens": 8, "total_tokens": 8}}),
        (openai, chat("x", usage=None, note={"kind": "usage"})),
        (anthropic, message([{"type": "text", "text": "hello"}])),
        (
            anthropic,
            message([{"type": "tool_use", "id": "t", "name": "f", "input": {"usage": {"a": 1}}}]),
        ),
        (anthropic, message([], usage={"input_tokens": 1, "output_tokens": 2})),
    ],
)
def test_the_usage_object_alone_reads_as_the_whole_body_does(codec: Any, payload: Any) -> None:
    body = orjson.dumps(payload)
    assert codec.usage_of_body(body) == whole(codec, body)
    spaced = orjson.dumps(payload, option=orjson.OPT_INDENT_2)
    assert codec.usage_of_body(spaced) == whole(codec, spaced)


@given(st.text())
def test_no_content_can_forge_the_usage(content: str) -> None:
    body = orjson.dumps(chat(content))
    assert openai.usage_of_body(body) == whole(openai, body)
    answer = orjson.dumps(message([{"type": "text", "text": content}]))
    assert anthropic.usage_of_body(answer) == whole(anthropic, answer)


@pytest.mark.parametrize(
    "end",
    [b"", b"not json", b'"usage": "none"}', b'"usage": null}', b'"usage": {"a": 1'],
)
def test_no_usage_object_is_found_where_there_is_none_to_decode_alone(end: bytes) -> None:
    body = b'{"padding": "' + PADDING.encode() + b'", ' + end
    assert trailing_usage(body) is None
    assert openai.usage_of_body(body) is None


def test_a_short_answer_is_decoded_whole() -> None:
    body = orjson.dumps({"usage": {"prompt_tokens": 3}})
    assert trailing_usage(body) is None
    usage = openai.usage_of_body(body)
    assert usage is not None and usage.input_tokens == 3


def test_a_long_answers_usage_is_read_alone() -> None:
    body = orjson.dumps(chat("hello"))
    assert trailing_usage(body) == OPENAI_USAGE
