"""The official anthropic SDK, unchanged but for its base URL, through the proxy to the fake."""

from __future__ import annotations

import anthropic
import pytest

from tests.support.fake_upstream import Fail, Reply, ToolCall
from tests.support.stack import CLIENT_KEY, Stack

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.anthropic_url, api_key=CLIENT_KEY, max_retries=0)


def async_client(stack: Stack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stack.anthropic_url, api_key=CLIENT_KEY, max_retries=0)


def test_sync_message_arrives_with_content_usage_and_stop_reason(thread_stack: Stack) -> None:
    thread_stack.fake.default["messages"] = Reply(
        text="Hello there!", prompt_tokens=9, completion_tokens=3
    )
    with client(thread_stack) as sdk:
        message = sdk.messages.create(model="claude-sonnet", max_tokens=64, messages=MESSAGES)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello there!"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 3)
    assert message.model == "claude-sonnet-4-5"


def test_sync_stream_helper_matches_the_non_streaming_answer(thread_stack: Stack) -> None:
    thread_stack.fake.default["messages"] = Reply(text="Same either way, ✓.", chunks=6)
    with client(thread_stack) as sdk:
        plain = sdk.messages.create(model="claude-sonnet", max_tokens=64, messages=MESSAGES)
        with sdk.messages.stream(model="claude-sonnet", max_tokens=64, messages=MESSAGES) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text == plain.content[0].text  # type: ignore[union-attr]
    assert [b.model_dump(include={"type", "text"}) for b in final.content] == [
        b.model_dump(include={"type", "text"}) for b in plain.content
    ]
    assert final.stop_reason == plain.stop_reason
    assert final.usage.output_tokens == plain.usage.output_tokens


async def test_async_stream_with_tool_use_blocks(stack: Stack) -> None:
    stack.fake.default["messages"] = Reply(
        text="Let me check.",
        tool_calls=[ToolCall("toolu_1", "get_weather", '{"city": "Paris"}')],
    )
    async with (
        async_client(stack) as sdk,
        sdk.messages.stream(model="claude-sonnet", max_tokens=64, messages=MESSAGES) as stream,
    ):
        final = await stream.get_final_message()
    assert [block.type for block in final.content] == ["text", "tool_use"]
    tool = final.content[1]
    assert tool.type == "tool_use"
    assert (tool.name, tool.input) == ("get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use"


async def test_count_tokens_and_models(stack: Stack) -> None:
    async with async_client(stack) as sdk:
        counted = await sdk.messages.count_tokens(model="claude-sonnet", messages=MESSAGES)
        models = [m.id async for m in sdk.models.list()]
    assert counted.input_tokens > 0
    assert "claude-sonnet" in models


async def test_mock_model_answers_offline(stack: Stack) -> None:
    async with async_client(stack) as sdk:
        message = await sdk.messages.create(
            model="edgeproxy-mock", max_tokens=64, messages=MESSAGES
        )
        async with sdk.messages.stream(
            model="edgeproxy-mock", max_tokens=64, messages=MESSAGES
        ) as stream:
            final = await stream.get_final_message()
    assert [b.model_dump(include={"type", "text"}) for b in final.content] == [
        b.model_dump(include={"type", "text"}) for b in message.content
    ]
    assert final.usage.output_tokens == message.usage.output_tokens
    assert stack.fake.requests == []


@pytest.mark.parametrize(
    ("fail", "exception"),
    [
        (Fail(400), anthropic.BadRequestError),
        (Fail(401), anthropic.AuthenticationError),
        (Fail(403), anthropic.PermissionDeniedError),
        (Fail(404), anthropic.NotFoundError),
        (Fail(429), anthropic.RateLimitError),
        (Fail(500), anthropic.InternalServerError),
        (Fail(529), anthropic.InternalServerError),
    ],
)
async def test_upstream_errors_raise_the_sdks_own_exception_types(
    stack: Stack, fail: Fail, exception: type[Exception]
) -> None:
    stack.fake.script("messages", fail)
    async with async_client(stack) as sdk:
        with pytest.raises(exception):
            await sdk.messages.create(model="claude-sonnet", max_tokens=64, messages=MESSAGES)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (Reply(chunks=5, error_event_after=3), "Overloaded"),
        (Reply(chunks=6, drop_after=3), "ended the response abnormally"),
    ],
)
async def test_a_failure_mid_stream_raises_in_the_sdk(
    stack: Stack, failure: Reply, message: str
) -> None:
    stack.fake.script("messages", failure)
    async with async_client(stack) as sdk:
        with pytest.raises(anthropic.APIStatusError, match=message):
            async with sdk.messages.stream(
                model="claude-sonnet", max_tokens=64, messages=MESSAGES
            ) as stream:
                await stream.get_final_message()


def test_rate_limit_retry_after_reaches_the_sdk_which_retries(thread_stack: Stack) -> None:
    thread_stack.fake.script(
        "messages", Fail(429, headers={"retry-after-ms": "10"}), Reply(text="ok")
    )
    with anthropic.Anthropic(
        base_url=thread_stack.anthropic_url, api_key=CLIENT_KEY, max_retries=1
    ) as sdk:
        message = sdk.messages.create(model="claude-sonnet", max_tokens=64, messages=MESSAGES)
    assert message.content[0].text == "ok"  # type: ignore[union-attr]
    assert thread_stack.fake.calls["messages"] == 2
