"""How answers reach clients, end to end: what the relay adds, masks and keeps."""

from __future__ import annotations

import gzip
from typing import Any

import aiohttp
import orjson
import pytest

from edgeproxy.dialects import anthropic, openai
from edgeproxy.redact import MASK
from edgeproxy.relay import PassThrough
from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail
from tests.support.stack import ANTHROPIC_KEY, OPENAI_KEY, Stack, background_done
from tests.test_handlers import CHAT, MESSAGES, anthropic_error, openai_error, post, stream_events


@pytest.mark.parametrize(
    ("route", "path", "body", "error_of"),
    [
        ("chat", "/v1/chat/completions", CHAT, openai_error),
        ("chat", "/v1/chat/completions", {**CHAT, "stream": True}, openai_error),
        ("messages", "/v1/messages", MESSAGES, anthropic_error),
        # translated: the Anthropic provider's error, rendered for an OpenAI client
        ("messages", "/v1/chat/completions", {**CHAT, "model": "claude-sonnet"}, openai_error),
    ],
)
async def test_an_upstream_error_quoting_the_provider_key_reaches_the_client_masked(
    stack: Stack, route: str, path: str, body: dict[str, Any], error_of: Any
) -> None:
    key = OPENAI_KEY if route == "chat" else ANTHROPIC_KEY
    stack.fake.script(route, Fail(401, message=f"Incorrect API key provided: {key}."))
    status, _, answer = await post(stack, path, body)
    assert status == 401
    assert key.encode() not in answer
    assert error_of(answer)["message"] == f"Incorrect API key provided: {MASK}."


# --- compressed answers ----------------------------------------------------------------


async def raw_post(stack: Stack, body: dict[str, Any], encoding: str) -> tuple[int, Any, bytes]:
    """A POST whose answer is read as it came, its content coding left on."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(
            stack.proxy.url + "/v1/chat/completions",
            data=orjson.dumps(body),
            headers={"accept-encoding": encoding},
        ) as response,
    ):
        return response.status, response.headers.copy(), await response.read()


async def test_a_gzipped_answer_passes_through_untouched_to_a_client_that_accepts_gzip(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(server={"access_log": True})
    stack.fake.compress = True
    status, headers, body = await raw_post(stack, CHAT, "gzip, deflate")
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(body))["object"] == "chat.completion"
    assert stack.fake.requests[0].headers["accept-encoding"] == "gzip"


async def test_a_client_that_does_not_accept_gzip_never_gets_it(stack: Stack) -> None:
    stack.fake.compress = True
    status, headers, body = await raw_post(stack, CHAT, "identity")
    assert status == 200 and "content-encoding" not in headers
    assert orjson.loads(body)["object"] == "chat.completion"
    assert "accept-encoding" not in stack.fake.requests[0].headers


async def test_a_gzipped_answer_is_stored_decoded_and_replayed_plain(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache={"enabled": True})
    stack.fake.compress = True
    await raw_post(stack, CHAT, "gzip")
    await background_done(stack)
    status, headers, body = await raw_post(stack, CHAT, "identity")
    assert (status, headers["x-edgeproxy-cache"]) == (200, "hit-l1")
    assert orjson.loads(body)["object"] == "chat.completion"


async def test_a_gzipped_error_quoting_the_key_is_decoded_and_masked(stack: Stack) -> None:
    stack.fake.compress = True
    stack.fake.script("chat", Fail(401, message=f"bad key {OPENAI_KEY}"))
    status, headers, body = await raw_post(stack, CHAT, "gzip")
    assert status == 401 and "content-encoding" not in headers
    assert openai_error(body)["message"] == f"bad key {MASK}"


async def test_a_translated_request_never_asks_the_provider_for_gzip(stack: Stack) -> None:
    stack.fake.compress = True
    status, _, body = await post(
        stack, "/v1/messages", {**MESSAGES, "model": "gpt-4o"}, {"accept-encoding": "gzip"}
    )
    assert status == 200 and orjson.loads(body)["type"] == "message"
    assert "accept-encoding" not in stack.fake.requests[0].headers


async def test_a_gzipped_stream_is_decoded_and_relayed_event_by_event(stack: Stack) -> None:
    stack.fake.compress_streams = True
    _, headers, events = await stream_events(stack, "/v1/chat/completions", CHAT)
    assert "content-encoding" not in headers
    assert events[-1].data == b"[DONE]"
    assert stack.fake.requests[0].headers["accept-encoding"] == "gzip"


# --- watching a relayed stream -------------------------------------------------------------

OPENAI_STREAM = (
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n'
    b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,'
    b'"total_tokens":12}}\n\n'
    b"data: [DONE]\n\n"
)
ANTHROPIC_STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":'
    b'{"input_tokens":9,"output_tokens":1}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":3}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


@pytest.mark.parametrize(
    ("codec", "stream"), [(openai, OPENAI_STREAM), (anthropic, ANTHROPIC_STREAM)]
)
@pytest.mark.parametrize("cut", [1, 7, 64, 10_000])
def test_a_passed_through_stream_is_relayed_whole_and_its_usage_read(
    codec: Any, stream: bytes, cut: int
) -> None:
    relay = PassThrough(codec)
    out = b"".join(relay.feed(stream[i : i + cut]) for i in range(0, len(stream), cut))
    assert out + relay.finish() == stream
    assert relay.usage is not None
    assert (relay.usage.input_tokens, relay.usage.output_tokens) == (9, 3)
    assert not relay.failed


@pytest.mark.parametrize(
    ("codec", "error"),
    [
        (openai, b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'),
        (
            anthropic,
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n',
        ),
    ],
)
def test_a_providers_error_event_in_a_passed_through_stream_is_noticed(
    codec: Any, error: bytes
) -> None:
    relay = PassThrough(codec)
    assert relay.feed(error[:5]) + relay.feed(error[5:]) == error
    assert relay.failed
