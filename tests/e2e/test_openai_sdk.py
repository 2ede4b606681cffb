"""The official openai SDK, unchanged but for its base URL, through the proxy to the fake."""

from __future__ import annotations

import openai
import pytest

from tests.support.fake_upstream import Fail, Reply
from tests.support.stack import CLIENT_KEY, Stack

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(stack: Stack, **options: object) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=stack.openai_url,
        api_key=CLIENT_KEY,
        max_retries=0,
        **options,  # type: ignore[arg-type]
    )


def async_client(stack: Stack, **options: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=stack.openai_url,
        api_key=CLIENT_KEY,
        max_retries=0,
        **options,  # type: ignore[arg-type]
    )


def test_sync_completion_arrives_with_content_usage_and_finish_reason(thread_stack: Stack) -> None:
    thread_stack.fake.default["chat"] = Reply(
        text="Hello there!", prompt_tokens=9, completion_tokens=3
    )
    with client(thread_stack) as sdk:
        reply = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello there!"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 3)
    assert reply.model == "gpt-4o-2024-08-06"


def test_sync_stream_reassembles_the_same_text(thread_stack: Stack) -> None:
    thread_stack.fake.default["chat"] = Reply(text="One, two, three, four.", chunks=7)
    with client(thread_stack) as sdk:
        stream = sdk.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One, two, three, four."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 11


def test_sync_stream_helper_matches_the_non_streaming_answer(thread_stack: Stack) -> None:
    thread_stack.fake.default["chat"] = Reply(text="Same either way.", chunks=5)
    with client(thread_stack) as sdk:
        plain = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with sdk.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
            final = stream.get_final_completion()
    assert final.choices[0].message.content == plain.choices[0].message.content
    assert final.choices[0].finish_reason == plain.choices[0].finish_reason


async def test_async_completion_and_stream(stack: Stack) -> None:
    stack.fake.default["chat"] = Reply(text="Async works.", chunks=3)
    async with async_client(stack) as sdk:
        reply = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert reply.choices[0].message.content == text == "Async works."


async def test_streamed_tool_calls_survive_the_relay(stack: Stack) -> None:
    from tests.support.fake_upstream import ToolCall

    stack.fake.default["chat"] = Reply(
        text="",
        tool_calls=[
            ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
            ToolCall("call_2", "get_time", '{"tz": "CET"}'),
        ],
    )
    async with async_client(stack) as sdk:
        async with sdk.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
            final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", '{"city": "Paris"}'),
        ("get_time", '{"tz": "CET"}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


async def test_legacy_completions_and_embeddings(stack: Stack) -> None:
    async with async_client(stack) as sdk:
        completion = await sdk.completions.create(model="gpt-4o", prompt="Say hi")
        embeddings = await sdk.embeddings.create(model="gpt-4o", input=["a", "b"])
    assert completion.choices[0].text
    assert [len(e.embedding) for e in embeddings.data] == [8, 8]


async def test_mock_model_answers_offline_in_every_mode(stack: Stack) -> None:
    async with async_client(stack) as sdk:
        reply = await sdk.chat.completions.create(model="edgeproxy-mock", messages=MESSAGES)
        stream = await sdk.chat.completions.create(
            model="edgeproxy-mock",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        embeddings = await sdk.embeddings.create(model="edgeproxy-mock", input="text")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content
    assert chunks[-1].usage == reply.usage
    assert len(embeddings.data[0].embedding) == 16
    assert stack.fake.requests == []


@pytest.mark.parametrize(
    ("fail", "exception"),
    [
        (Fail(400, message="messages: too long"), openai.BadRequestError),
        (Fail(401), openai.AuthenticationError),
        (Fail(403), openai.PermissionDeniedError),
        (Fail(404), openai.NotFoundError),
        (Fail(429), openai.RateLimitError),
        (Fail(500), openai.InternalServerError),
        (Fail(503), openai.InternalServerError),
    ],
)
async def test_upstream_errors_raise_the_sdks_own_exception_types(
    stack: Stack, fail: Fail, exception: type[Exception]
) -> None:
    stack.fake.script("chat", fail)
    async with async_client(stack) as sdk:
        with pytest.raises(exception):
            await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)


async def test_unknown_model_is_not_found(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack(catch_all=False)
    async with async_client(stack) as sdk:
        with pytest.raises(openai.NotFoundError, match="no-such-model"):
            await sdk.chat.completions.create(model="no-such-model", messages=MESSAGES)


def test_rate_limit_retry_after_reaches_the_sdk_which_retries(thread_stack: Stack) -> None:
    thread_stack.fake.script("chat", Fail(429, headers={"retry-after-ms": "10"}), Reply(text="ok"))
    with openai.OpenAI(base_url=thread_stack.openai_url, api_key=CLIENT_KEY, max_retries=1) as sdk:
        reply = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert reply.parse().choices[0].message.content == "ok"
    assert thread_stack.fake.calls["chat"] == 2


def test_rate_limit_error_carries_the_retry_after_header(thread_stack: Stack) -> None:
    thread_stack.fake.script("chat", Fail(429, headers={"retry-after": "3"}))
    with client(thread_stack) as sdk, pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "3"


async def test_a_proxy_timeout_is_an_internal_server_error(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack(timeouts={"first_byte": "200ms"})
    stack.fake.script("chat", Reply(stall_after=0))
    async with async_client(stack) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 504
    await stack.fake.wait_for_disconnects(1)


async def test_the_sdks_own_timeout_cancels_the_upstream_request(stack: Stack) -> None:
    stack.fake.script("chat", Reply(stall_after=0))
    async with async_client(stack, timeout=0.3) as sdk:
        with pytest.raises(openai.APITimeoutError):
            await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await stack.fake.wait_for_disconnects(1)


async def test_a_mid_stream_failure_raises_in_the_sdk(stack: Stack) -> None:
    stack.fake.script("chat", Reply(chunks=6, drop_after=3))
    async with async_client(stack) as sdk:
        stream = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match="ended the response abnormally"):
            async for _ in stream:
                pass
