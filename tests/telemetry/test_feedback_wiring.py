"""Feedback through a configured proxy: an answer's request id is rated by the app, and the
admin listener's recommendations read the result."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import StackFactory
from tests.support.fake_upstream import Reply
from tests.support.poll import eventually

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


async def test_an_answer_served_can_be_rated_once_and_unknown_ids_cannot(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(
        sections={"telemetry": {"feedback": {"enabled": True, "min_count": 1}}},
    )
    stack.fake.default["chat"] = Reply(text="Hello!")
    async with aiohttp.ClientSession() as http:
        async with http.post(stack.openai_url + "/chat/completions", json=CHAT) as answer:
            request_id = answer.headers["x-request-id"]
            await answer.read()
        rating = {"request_id": request_id, "score": 0.9, "label": "helpful"}
        async with http.post(stack.openai_url + "/feedback", json=rating) as answer:
            assert answer.status == 200
            assert (await answer.json())["counted"] is True
        unknown = {"request_id": "req_unknown0000", "score": 0.5}
        async with http.post(stack.openai_url + "/feedback", json=unknown) as answer:
            assert answer.status == 404
        async with http.get(stack.proxy.admin_url + "/admin/recommendations") as answer:
            assert answer.status == 200
            groups = {group["group"]: group for group in (await answer.json())["groups"]}
        (deployment,) = groups["gpt-4o"]["deployments"]
        assert (deployment["requests"], deployment["quality"]) == (1, 0.9)


async def test_an_answer_served_just_before_a_reload_can_be_rated_at_once_after_it(
    make_stack: StackFactory,
) -> None:
    """Its record may still wait in the replaced handler's batch (telemetry/recorder.py), whose
    retirement waits for a stream still running on it: the new handler's feedback endpoint
    hands that batch over too before it looks the answer up."""
    stack = await make_stack(
        sections={"telemetry": {"feedback": {"enabled": True, "min_count": 1}}},
    )
    stack.fake.default["messages"] = Reply(chunks=4, chunk_delay=0.25)
    stack.fake.default["chat"] = Reply(text="Hello!")
    streaming = {"model": "claude-sonnet", "max_tokens": 5, "stream": True, "messages": []}
    async with aiohttp.ClientSession() as http:

        async def stream() -> None:
            url = stack.anthropic_url + "/v1/messages"
            async with http.post(url, json=streaming) as answer:
                await answer.read()

        running = asyncio.create_task(stream())
        await eventually(lambda: stack.fake.calls["messages"] == 1, "the stream under way")
        async with http.post(stack.openai_url + "/chat/completions", json=CHAT) as answer:
            request_id = answer.headers["x-request-id"]
            await answer.read()
        await stack.proxy.apply(stack.proxy.config)
        rating = {"request_id": request_id, "score": 0.9}
        async with http.post(stack.openai_url + "/feedback", json=rating) as answer:
            assert answer.status == 200
        await running
