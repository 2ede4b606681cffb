"""Rate limits through the proxy: exact under concurrency, per key, team and model group, in
one sidecar and across sidecars sharing Redis; refusals carry the client dialect's headers."""

from __future__ import annotations

import asyncio
import importlib.machinery
import sys
import types
import uuid
from typing import Any

import aiohttp
import orjson
import pytest

from edgeproxy.security.auth import hash_key
from tests.conftest import StackFactory
from tests.support.fake_upstream import Reply
from tests.support.redis_servers import free_port, require_redis
from tests.support.stack import Stack, background_done
from tests.telemetry.test_metrics import scrape

KEY = "sk-ep-limited-0123456789abcdef"
TEAMMATE = "sk-ep-teammate-0123456789abcdef"
CHAT = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]})
MESSAGE = orjson.dumps(
    {"model": "claude-sonnet", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
)


def keyed(limits: dict[str, Any] | None = None, team: dict[str, Any] | None = None) -> dict:
    return {
        "auth": {
            "mode": "keys",
            "keys": [
                {"id": "limited", "hash": hash_key(KEY), "team": "t", "limits": limits or {}},
                {"id": "teammate", "hash": hash_key(TEAMMATE), "team": "t"},
            ],
            "teams": {"t": {"limits": team or {}}},
        }
    }


async def burst(
    stacks: list[Stack], count: int, key: str | None = KEY, path: str = "/v1/chat/completions"
) -> list[tuple[int, dict[str, str]]]:
    """`count` requests at once, spread over `stacks`: each answer's status and headers."""
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    body = CHAT if path == "/v1/chat/completions" else MESSAGE
    if path == "/v1/messages":
        headers["anthropic-version"] = "2023-06-01"

    async def one(http: aiohttp.ClientSession, stack: Stack) -> tuple[int, dict[str, str]]:
        async with http.post(stack.proxy.url + path, data=body, headers=headers) as answer:
            await answer.read()
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}

    connector = aiohttp.TCPConnector(limit=count)
    async with aiohttp.ClientSession(connector=connector) as http:
        return await asyncio.gather(*(one(http, stacks[i % len(stacks)]) for i in range(count)))


async def test_a_hundred_requests_at_once_against_rpm_10_let_exactly_10_through(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(sections=keyed(limits={"rpm": 10}))
    answers = await burst([stack], 100)
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 90
    assert stack.fake.calls["chat"] == 10
    refused = next(headers for status, headers in answers if status == 429)
    assert refused["x-ratelimit-limit-requests"] == "10"
    assert refused["x-ratelimit-remaining-requests"] == "0"
    assert refused["x-ratelimit-reset-requests"].endswith("s")
    assert int(refused["retry-after"]) >= 1
    assert "x-should-retry" not in refused  # a rate limit is worth retrying later


async def test_anthropic_clients_get_anthropic_rate_limit_headers(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(sections=keyed(limits={"rpm": 2}))
    stack.fake.default["messages"] = Reply(text="Hi")
    answers = await burst([stack], 5, path="/v1/messages")
    assert [s for s, _ in answers].count(200) == 2
    refused = next(headers for status, headers in answers if status == 429)
    assert refused["anthropic-ratelimit-requests-limit"] == "2"
    assert refused["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert "x-ratelimit-limit-requests" not in refused


async def test_a_team_limit_is_shared_by_its_keys(make_stack: StackFactory) -> None:
    stack = await make_stack(sections=keyed(team={"rpm": 3}))
    first = await burst([stack], 2, key=KEY)
    second = await burst([stack], 2, key=TEAMMATE)
    assert [s for s, _ in first + second].count(200) == 3


async def test_a_model_group_limit_applies_without_keys(make_stack: StackFactory) -> None:
    stack = await make_stack(sections={"limits": {"groups": {"gpt-4o": {"rpm": 5}}}})
    answers = await burst([stack], 20, key=None)
    assert [s for s, _ in answers].count(200) == 5


async def test_tokens_per_minute_reserve_the_estimate_and_settle_on_real_usage(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(sections=keyed(limits={"tpm": 2000}))
    stack.fake.default["chat"] = Reply(text="Hi", prompt_tokens=10, completion_tokens=10)
    # Each request reserves about 1,050 tokens (no max_tokens: 1,024 for the answer), so only
    # one fits at once; once settled at its real 20 tokens, the next ones fit again.
    answers = await burst([stack], 2)
    assert [s for s, _ in answers].count(200) == 1
    await background_done(stack)
    answers = await burst([stack], 1)
    assert answers[0][0] == 200


async def test_sidecars_sharing_redis_let_exactly_the_limit_through(
    make_stack: StackFactory,
) -> None:
    require_redis()
    sections = {
        **keyed(limits={"rpm": 10}),
        "redis": {  # a generous timeout: this is about exactness, not a slow Redis
            "url": "redis://127.0.0.1:6379/0",
            "prefix": f"test-rl-{uuid.uuid4().hex}",
            "timeout": "2s",
        },
    }
    first = await make_stack(sections=sections)
    second = await make_stack(sections=sections)
    answers = await burst([first, second], 100)
    assert [s for s, _ in answers].count(200) == 10
    assert first.fake.calls["chat"] + second.fake.calls["chat"] == 10


@pytest.mark.parametrize(
    ("policy", "passed"),
    [("local", 5), ("open", 20), ("closed", 0)],
)
async def test_with_redis_down_the_configured_policy_applies_and_nothing_hangs(
    make_stack: StackFactory, policy: str, passed: int
) -> None:
    sections = {
        **keyed(limits={"rpm": 5}),
        "limits": {"on_redis_error": policy},
        "redis": {"url": f"redis://127.0.0.1:{free_port()}/0", "timeout": "100ms"},
    }
    stack = await make_stack(sections=sections)
    answers = await burst([stack], 20)
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == passed
    assert statuses.count(503 if policy == "closed" else 429) == 20 - passed


async def test_a_configured_tokenizer_counts_the_prompt_for_tpm(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With tiktoken (here a stand-in counting words), the reservation is the prompt's token
    count: 60 words + 4 for the message + max_tokens 10 = 74 of TPM 140, so one request of
    two fits (by characters / 4, 196 / 4 + 14 = 63, both would)."""
    encoding = types.SimpleNamespace(encode_ordinary=str.split)
    tiktoken = types.ModuleType("tiktoken")
    tiktoken.__spec__ = importlib.machinery.ModuleSpec("tiktoken", None)
    tiktoken.get_encoding = lambda name: encoding  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", tiktoken)
    sections = {**keyed(limits={"tpm": 140}), "limits": {"tokenizer": "tiktoken"}}
    stack = await make_stack(sections=sections)
    body = orjson.dumps(
        {"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "w " * 60}]}
    )
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    async with aiohttp.ClientSession() as http:

        async def one() -> int:
            url = stack.proxy.url + "/v1/chat/completions"
            async with http.post(url, data=body, headers=headers) as answer:
                return answer.status

        statuses = await asyncio.gather(one(), one())
    assert sorted(statuses) == [200, 429]


async def test_refusals_are_counted_by_scope_and_limit(make_stack: StackFactory) -> None:
    stack = await make_stack(sections=keyed(limits={"rpm": 3}))
    await burst([stack], 10)
    metrics = await scrape(stack.proxy.admin_url)
    assert (
        metrics[("edgeproxy_ratelimit_refusals_total", (("limit", "rpm"), ("scope", "key")))] == 7
    )
