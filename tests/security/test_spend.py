"""Budgets through the proxy: a key or team that spent its budget is refused before forwarding,
with an error the SDKs do not retry; the spend is the answer's real cost, shared through
Redis by every sidecar and kept across restarts."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest

from edgeproxy.security.auth import hash_key
from tests.conftest import StackFactory
from tests.support.fake_upstream import Reply
from tests.support.redis_servers import require_redis
from tests.support.stack import Stack, background_done
from tests.telemetry.test_metrics import scrape

KEY = "sk-ep-spender-0123456789abcdef"
TEAMMATE = "sk-ep-teammate-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Say hello"}]
# gpt-4o is priced at $2.50 per million prompt tokens: 400,000 of them cost $1.00.
ONE_DOLLAR = Reply(text="Hello!", prompt_tokens=400_000, completion_tokens=0)


def budget_sections(
    key_budget: dict[str, Any] | None = None,
    team_budget: dict[str, Any] | None = None,
    redis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    sections: dict[str, Any] = {
        "auth": {
            "mode": "keys",
            "keys": [
                {"id": "spender", "hash": hash_key(KEY), "team": "t", "budget": key_budget or {}},
                {"id": "teammate", "hash": hash_key(TEAMMATE), "team": "t"},
            ],
            "teams": {"t": {"budget": team_budget or {}}},
        }
    }
    if redis is not None:
        sections["redis"] = redis
    return sections


async def ask(stack: Stack, key: str) -> str:
    """One request with the SDK's default retries; the answer's text."""
    async with openai.AsyncOpenAI(base_url=stack.openai_url, api_key=key) as sdk:
        reply = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    await background_done(stack)  # the spend is recorded after the answer
    return reply.choices[0].message.content or ""


async def test_a_key_is_refused_once_its_daily_budget_is_spent(make_stack: StackFactory) -> None:
    stack = await make_stack(sections=budget_sections(key_budget={"daily_usd": 2}))
    stack.fake.default["chat"] = ONE_DOLLAR
    assert await ask(stack, KEY) == "Hello!"
    assert await ask(stack, KEY) == "Hello!"
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(stack, KEY)
    answer = caught.value.response
    assert answer.status_code == 429
    assert answer.headers["x-should-retry"] == "false"
    assert int(answer.headers["retry-after"]) > 0
    assert caught.value.code == "insufficient_quota"
    assert "key spender" in caught.value.message and "$2.00 per day" in caught.value.message
    assert stack.fake.calls["chat"] == 2  # refused before forwarding, and never retried


async def test_a_team_budget_covers_every_key_of_the_team(make_stack: StackFactory) -> None:
    stack = await make_stack(sections=budget_sections(team_budget={"monthly_usd": 1}))
    stack.fake.default["chat"] = ONE_DOLLAR
    await ask(stack, KEY)
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(stack, TEAMMATE)
    assert "team t" in caught.value.message


async def test_cache_hits_cost_nothing(make_stack: StackFactory) -> None:
    stack = await make_stack(
        sections=budget_sections(key_budget={"daily_usd": 1.5}), cache={"enabled": True}
    )
    stack.fake.default["chat"] = ONE_DOLLAR
    for _ in range(4):
        await ask(stack, KEY)  # one miss ($1.00), then hits
    assert stack.fake.calls["chat"] == 1


async def test_spend_is_shared_through_redis_and_survives_a_restart(
    make_stack: StackFactory,
) -> None:
    require_redis()
    redis = {"url": "redis://127.0.0.1:6379/0", "prefix": f"test-spend-{uuid.uuid4().hex}"}
    sections = budget_sections(key_budget={"daily_usd": 2}, redis=redis)
    first = await make_stack(sections=sections)
    first.fake.default["chat"] = ONE_DOLLAR
    await ask(first, KEY)
    await first.proxy.stop()  # a restart: the spend lives in Redis
    second = await make_stack(sections=sections)
    second.fake.default["chat"] = ONE_DOLLAR
    await ask(second, KEY)
    with pytest.raises(openai.RateLimitError):
        await ask(second, KEY)


async def test_refusals_are_counted_by_scope_and_period(make_stack: StackFactory) -> None:
    stack = await make_stack(sections=budget_sections(key_budget={"daily_usd": 1}))
    stack.fake.default["chat"] = ONE_DOLLAR
    await ask(stack, KEY)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            await ask(stack, KEY)
    metrics = await scrape(stack.proxy.admin_url)
    assert metrics[("edgeproxy_budget_refusals_total", (("period", "day"), ("scope", "key")))] == 2


async def test_a_stream_is_charged_even_when_its_client_did_not_ask_for_usage(
    make_stack: StackFactory,
) -> None:
    """The proxy asks the provider for the stream's usage (stream_options) and keeps the
    usage-only last chunk from the client, which did not expect a chunk without choices."""
    stack = await make_stack(sections=budget_sections(key_budget={"daily_usd": 1.5}))
    stack.fake.default["chat"] = Reply(text="Hello there!", prompt_tokens=400_000, chunks=4)
    async with openai.AsyncOpenAI(base_url=stack.openai_url, api_key=KEY) as sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello there!"
    (request,) = stack.fake.requests
    assert request.json["stream_options"] == {"include_usage": True}
    await background_done(stack)
    assert await ask(stack, KEY) == "Hello there!"  # $1.00 (the stream) of $1.50: allowed
    with pytest.raises(openai.RateLimitError):  # uncharged, the stream would leave $0.50
        await ask(stack, KEY)
