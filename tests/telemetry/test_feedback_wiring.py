"""Feedback through a configured proxy: an answer's request id is rated by the app, and the
admin listener's recommendations read the result."""

from __future__ import annotations

import aiohttp

from tests.conftest import StackFactory
from tests.support.fake_upstream import Reply

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
