"""The exact cache, black box: the official SDKs in front, the fake upstream's call counters
behind (a hit means zero calls), stored answers replayed in either dialect, stream or not."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail, Reply
from tests.support.stack import CLIENT_KEY, Stack, background_done

MESSAGES = [{"role": "user", "content": "What is a sidecar?"}]
ON: dict[str, Any] = {"enabled": True}


def openai_client(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0)


def anthropic_client(stack: Stack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stack.anthropic_url, api_key=CLIENT_KEY, max_retries=0)


async def post(
    stack: Stack, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            stack.openai_url + "/chat/completions", json=body, headers=headers or {}
        ) as response,
    ):
        return response.status, dict(response.headers), await response.read()


CHAT = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 50}


async def test_an_identical_request_is_answered_from_memory_without_calling_the_provider(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default["chat"] = Reply(text="A helper process.", prompt_tokens=9)
    async with openai_client(stack) as sdk:
        first = await sdk.chat.completions.with_raw_response.create(**CHAT)
        await background_done(stack)
        second = await sdk.chat.completions.with_raw_response.create(**CHAT)
    assert first.headers["x-edgeproxy-cache"] == "miss"
    assert second.headers["x-edgeproxy-cache"] == "hit-l1"
    assert int(second.headers["age"]) >= 0
    assert second.headers["x-edgeproxy-attempts"] == "0"
    assert stack.fake.calls["chat"] == 1, "a hit makes no upstream call"
    a, b = first.parse(), second.parse()
    assert b.choices[0].message.content == a.choices[0].message.content == "A helper process."
    assert b.usage is not None and b.usage.prompt_tokens == 9


async def test_a_streamed_answer_is_replayed_as_a_stream_and_as_a_whole(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default["chat"] = Reply(text="One, two, three, four, five.", chunks=6)
    async with openai_client(stack) as sdk:
        stream = await sdk.chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True}
        )
        original = [chunk async for chunk in stream]
        await background_done(stack)
        replay = await sdk.chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True}
        )
        replayed = [chunk async for chunk in replay]
        whole = await sdk.chat.completions.create(**CHAT)
    assert stack.fake.calls["chat"] == 1

    def text(chunks: list[Any]) -> str:
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert text(replayed) == text(original) == "One, two, three, four, five."
    content_chunks = [c for c in replayed if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 6, "the original deltas, not one aggregated blob"
    assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == "stop"
    assert replayed[-1].usage is not None
    assert replayed[-1].usage.completion_tokens == original[-1].usage.completion_tokens
    assert whole.choices[0].message.content == "One, two, three, four, five."
    assert whole.usage is not None and whole.usage.completion_tokens == 6


async def test_the_anthropic_stream_helper_gets_the_same_final_message_from_the_cache(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default["messages"] = Reply(text="Sidecars share a pod.", chunks=4)
    request = {"model": "claude-sonnet", "max_tokens": 64, "messages": MESSAGES}
    async with anthropic_client(stack) as sdk:
        async with sdk.messages.stream(**request) as stream:
            original = await stream.get_final_message()
        await background_done(stack)
        async with sdk.messages.stream(**request) as stream:
            replayed = await stream.get_final_message()
        whole = await sdk.messages.create(**request)
    assert stack.fake.calls["messages"] == 1
    assert replayed.content == original.content
    assert (replayed.stop_reason, replayed.usage.output_tokens) == (
        original.stop_reason,
        original.usage.output_tokens,
    )
    assert [(b.type, b.text) for b in whole.content if b.type == "text"] == [
        (b.type, b.text) for b in original.content if b.type == "text"
    ]


async def test_clients_of_both_dialects_share_an_entry_only_when_configured_to(
    make_stack: StackFactory,
) -> None:
    for share in (False, True):
        stack = await make_stack(cache={"enabled": True, "key": {"share_across_dialects": share}})
        async with openai_client(stack) as oa, anthropic_client(stack) as an:
            first = await oa.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, max_tokens=64
            )
            await background_done(stack)
            raw = await an.messages.with_raw_response.create(
                model="gpt-4o", messages=MESSAGES, max_tokens=64
            )
        assert raw.headers["x-edgeproxy-cache"] == ("hit-l1" if share else "miss")
        assert stack.fake.calls["chat"] == (1 if share else 2)
        answer = await raw.parse()
        assert answer.content[0].type == "text"
        assert answer.content[0].text == first.choices[0].message.content


async def test_errors_are_never_stored(make_stack: StackFactory) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.script("chat", Fail(500))
    status, headers, _ = await post(stack, CHAT)
    assert (status, headers["x-edgeproxy-cache"]) == (500, "miss")
    await background_done(stack)
    status, headers, _ = await post(stack, CHAT)
    assert (status, headers["x-edgeproxy-cache"]) == (200, "miss")
    assert stack.fake.calls["chat"] == 2


@pytest.mark.parametrize(
    "reply",
    [Reply(chunks=6, drop_after=3), Reply(chunks=6, error_event_after=3)],
    ids=["connection dropped", "provider error event"],
)
async def test_a_truncated_or_failed_stream_is_never_stored(
    make_stack: StackFactory, reply: Reply
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.script("chat", reply)
    async with openai_client(stack) as sdk:
        with pytest.raises(openai.APIError):
            stream = await sdk.chat.completions.create(**CHAT, stream=True)
            async for _ in stream:
                pass
        await background_done(stack)
        again = await sdk.chat.completions.with_raw_response.create(**CHAT)
    assert again.headers["x-edgeproxy-cache"] == "miss"
    assert stack.fake.calls["chat"] == 2


@pytest.mark.parametrize(
    ("headers", "second", "calls"),
    [
        ({"cache-control": "no-cache"}, "bypass", 2),
        ({"cache-control": "max-age=0"}, "miss", 2),
        ({}, "hit-l1", 1),
    ],
)
async def test_cache_control_on_the_second_request(
    make_stack: StackFactory, headers: dict[str, str], second: str, calls: int
) -> None:
    stack = await make_stack(cache=ON)
    await post(stack, CHAT)
    await background_done(stack)
    _, got, _ = await post(stack, CHAT, headers)
    assert got["x-edgeproxy-cache"] == second
    assert stack.fake.calls["chat"] == calls


async def test_no_cache_refreshes_the_entry(make_stack: StackFactory) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default["chat"] = Reply(text="old")
    await post(stack, CHAT)
    await background_done(stack)
    stack.fake.default["chat"] = Reply(text="new")
    await post(stack, CHAT, {"cache-control": "no-cache"})
    await background_done(stack)
    _, headers, body = await post(stack, CHAT)
    assert headers["x-edgeproxy-cache"] == "hit-l1" and b'"new"' in body


async def test_no_store_keeps_nothing(make_stack: StackFactory) -> None:
    stack = await make_stack(cache=ON)
    await post(stack, CHAT, {"cache-control": "no-store"})
    await background_done(stack)
    _, headers, _ = await post(stack, CHAT)
    assert headers["x-edgeproxy-cache"] == "miss"


@pytest.mark.parametrize(
    ("cache", "body"),
    [
        ({"enabled": True, "skip_temperature_above": 0.5}, {**CHAT, "temperature": 0.9}),
        (ON, {**CHAT, "n": 2}),
        (ON, {**CHAT, "logprobs": True}),
    ],
    ids=["temperature rule", "several choices", "logprobs"],
)
async def test_requests_the_cache_must_not_answer_bypass_it(
    make_stack: StackFactory, cache: dict[str, Any], body: dict[str, Any]
) -> None:
    stack = await make_stack(cache=cache)
    for _ in range(2):
        _, headers, _ = await post(stack, body)
        await background_done(stack)
        assert headers["x-edgeproxy-cache"] == "bypass"
    assert stack.fake.calls["chat"] == 2


async def test_a_different_question_is_never_answered_from_the_cache(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    await post(stack, CHAT)
    await background_done(stack)
    for changed in (
        {**CHAT, "max_tokens": 51},
        {**CHAT, "temperature": 0.2},
        {**CHAT, "messages": [{"role": "user", "content": "What is a sidecar!"}]},
        {**CHAT, "model": "claude-sonnet"},
    ):
        _, headers, _ = await post(stack, changed)
        assert headers["x-edgeproxy-cache"] == "miss", changed


async def test_a_header_configured_to_change_answers_is_part_of_the_question(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache={**ON, "key": {"headers": ["x-adapter"]}})
    legal = await post(stack, CHAT, {"x-adapter": "legal"})
    await background_done(stack)
    medical = await post(stack, CHAT, {"x-adapter": "medical"})
    plain = await post(stack, CHAT)
    await background_done(stack)
    again = await post(stack, CHAT, {"X-Adapter": "legal"})
    statuses = [headers["x-edgeproxy-cache"] for _, headers, _ in (legal, medical, plain, again)]
    assert statuses == ["miss", "miss", "miss", "hit-l1"]


async def test_anthropic_beta_features_are_part_of_the_question(make_stack: StackFactory) -> None:
    stack = await make_stack(cache=ON)
    request = {"model": "claude-sonnet", "max_tokens": 64, "messages": MESSAGES}
    async with anthropic_client(stack) as sdk:
        await sdk.messages.create(**request)
        await background_done(stack)
        beta = await sdk.messages.with_raw_response.create(
            **request, extra_headers={"anthropic-beta": "some-feature-2025-01-01"}
        )
        plain = await sdk.messages.with_raw_response.create(**request)
    assert beta.headers["x-edgeproxy-cache"] == "miss"
    assert plain.headers["x-edgeproxy-cache"] == "hit-l1"
