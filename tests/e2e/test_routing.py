"""Routing and resilience, black box: the official SDKs (max_retries=0, so every retry seen is
the proxy's) and raw HTTP in front, fault-injecting fake upstreams behind, one per deployment.

Time in routing is a manual clock and every backoff or retry-after wait a recorded sleep, so
breaker cooldowns and retry-afters pass instantly. Only hedging runs on real time (its delay
is measured by asyncio); nothing here asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest

from tests.e2e.conftest import RoutingStackFactory
from tests.support.fake_upstream import Fail, Reply
from tests.support.routing_stack import RoutingStack
from tests.support.stack import ANTHROPIC_KEY, CLIENT_KEY

MESSAGES = [{"role": "user", "content": "Say hello"}]
PIXEL = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
OPENAI_IMAGE_MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PIXEL}},
        ],
    }
]
ANTHROPIC_IMAGE_MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
            },
        ],
    }
]
# About 2000 tokens by the proxy's estimate (a quarter of the characters).
LONG_MESSAGES = [{"role": "user", "content": "word " * 1600}]
ALL_CAPABILITIES = ["vision", "tools", "json", "streaming"]
NO_VISION = ["tools", "json", "streaming"]
ATTEMPTS, PROVIDER, DEPLOYMENT = (
    "x-edgeproxy-attempts",
    "x-edgeproxy-provider",
    "x-edgeproxy-deployment",
)


def first() -> float:
    """A random source that always draws 0: a weighted choice takes the first deployment that
    is available, so a test knows where each request goes."""
    return 0.0


def dep(provider: str, **settings: Any) -> dict[str, Any]:
    """A deployment named after its provider (so `stack.calls()` keys are deployment names)."""
    model = "claude-haiku-4-5" if provider.startswith("an") else "gpt-4o-mini"
    return {"provider": provider, "model": model, "name": provider, **settings}


def group(*deployments: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"deployments": list(deployments), **settings}


def openai_client(stack: RoutingStack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0)


def anthropic_client(stack: RoutingStack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stack.anthropic_url, api_key=CLIENT_KEY, max_retries=0)


async def ask(stack: RoutingStack, model: str, **options: Any) -> Any:
    """One OpenAI chat completion through the SDK; the raw response (headers, then .parse())."""
    options.setdefault("messages", MESSAGES)
    async with openai_client(stack) as sdk:
        return await sdk.chat.completions.with_raw_response.create(model=model, **options)


async def ask_many(stack: RoutingStack, model: str, count: int) -> list[Any]:
    """`count` completions one after the other, on one client."""
    async with openai_client(stack) as sdk:
        create = sdk.chat.completions.with_raw_response.create
        return [await create(model=model, messages=MESSAGES) for _ in range(count)]


async def post(
    stack: RoutingStack, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """A raw POST to the proxy: status, headers and JSON body."""
    sent = {"authorization": f"Bearer {CLIENT_KEY}", **(headers or {})}
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.proxy.url + path, json=body, headers=sent) as response,
    ):
        return response.status, dict(response.headers), await response.json()


def chat_body(model: str, messages: list[dict[str, Any]] = MESSAGES) -> dict[str, Any]:
    return {"model": model, "messages": messages}


def messages_body(model: str, messages: list[dict[str, Any]] = MESSAGES) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": messages}


async def routing_status(stack: RoutingStack, token: str | None = None) -> dict[str, Any]:
    status, body = await admin_get(stack, {"authorization": f"Bearer {token}"} if token else {})
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def admin_get(stack: RoutingStack, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(stack.admin_url + "/admin/routing", headers=headers) as response,
    ):
        return response.status, await response.json()


async def deployments(stack: RoutingStack) -> dict[str, dict[str, Any]]:
    """/admin/routing's deployments by name."""
    return {d["name"]: d for d in (await routing_status(stack))["deployments"]}


# --- breakers ------------------------------------------------------------------------------


async def test_failing_deployment_trips_its_breaker_and_no_client_request_fails(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"), dep("up1"), dep("up2"))},
        routing={"breaker": {"failure_threshold": 3, "reset_timeout": "60s"}},
    )
    stack.fakes["up0"].default["chat"] = Fail(500)

    replies = await ask_many(stack, "chat", 30)

    assert all(r.parse().choices[0].message.content for r in replies)
    calls = stack.calls()
    assert calls["up0"] == 3, "no call once its breaker opened"
    assert calls["up1"] > 0 and calls["up2"] > 0
    assert calls["up1"] + calls["up2"] == 30
    assert sorted(r.headers[ATTEMPTS] for r in replies) == ["1"] * 27 + ["2"] * 3
    assert {r.headers[DEPLOYMENT] for r in replies} == {"up1", "up2"}
    up0 = (await deployments(stack))["up0"]
    assert (up0["breaker"]["state"], up0["breaker"]["opened"], up0["available"]) == (
        "open",
        1,
        False,
    )
    assert (up0["requests"], up0["failures"], up0["in_flight"]) == (3, 3, 0)


async def test_open_breaker_skips_deployment_until_cooldown(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"), dep("up1"))},
        openai=2,
        routing={"breaker": {"failure_threshold": 2, "reset_timeout": "30s"}},
        rng=first,
    )
    stack.fakes["up0"].default["chat"] = Fail(500)

    await ask_many(stack, "chat", 5)
    assert stack.calls() == {"up0": 2, "up1": 5}

    stack.clock.advance(29.5)
    await ask_many(stack, "chat", 2)
    assert stack.calls() == {"up0": 2, "up1": 7}, "still open before reset_timeout"

    stack.clock.advance(0.5)
    reply = await ask(stack, "chat")
    assert stack.calls() == {"up0": 3, "up1": 8}, "one probe, which failed over"
    assert (reply.headers[DEPLOYMENT], reply.headers[ATTEMPTS]) == ("up1", "2")
    breaker = (await deployments(stack))["up0"]["breaker"]
    assert (breaker["state"], breaker["opened"]) == ("open", 2), "a failed probe reopens it"
    assert breaker["available_in"] == pytest.approx(30.0)


async def test_half_open_probes_restore_traffic_after_recovery(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"), dep("up1"))},
        openai=2,
        routing={
            "breaker": {"failure_threshold": 2, "reset_timeout": "10s", "half_open_requests": 2}
        },
        rng=first,
    )
    stack.fakes["up0"].script("chat", Fail(500), Fail(500))
    await ask_many(stack, "chat", 3)
    assert stack.calls() == {"up0": 2, "up1": 3}
    assert (await deployments(stack))["up0"]["breaker"]["state"] == "open"

    stack.clock.advance(10)
    probe = await ask(stack, "chat")
    assert (probe.headers[DEPLOYMENT], probe.headers[ATTEMPTS]) == ("up0", "1")
    assert (await deployments(stack))["up0"]["breaker"]["state"] == "half_open"

    await ask_many(stack, "chat", 4)
    up0 = (await deployments(stack))["up0"]
    assert stack.calls() == {"up0": 7, "up1": 3}, "traffic is back on the recovered deployment"
    assert (up0["breaker"]["state"], up0["available"]) == ("closed", True)


async def test_unreachable_deployment_fails_over_to_another(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack({"chat": group(dep("up0"), dep("up1"))}, openai=2, rng=first)
    await stack.fakes["up0"].close()  # connection refused from now on

    reply = await ask(stack, "chat")

    assert (reply.headers[DEPLOYMENT], reply.headers[ATTEMPTS]) == ("up1", "2")
    assert reply.parse().choices[0].message.content
    up0 = (await deployments(stack))["up0"]
    assert (up0["failures"], up0["in_flight"]) == (1, 0)


async def test_single_deployment_group_with_fallback_stops_paying_for_the_dead_primary(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {
            "primary": group(dep("up0"), fallbacks=["backup"], retry={"max_attempts": 1}),
            "backup": group(dep("up1")),
        },
        openai=2,
        routing={"breaker": {"failure_threshold": 3}},
    )
    stack.fakes["up0"].default["chat"] = Fail(500)

    replies = await ask_many(stack, "primary", 10)

    assert stack.calls() == {"up0": 3, "up1": 10}
    assert [r.headers[ATTEMPTS] for r in replies] == ["2"] * 3 + ["1"] * 7
    assert {r.headers[DEPLOYMENT] for r in replies} == {"up1"}
    assert (await deployments(stack))["up0"]["breaker"]["state"] == "open"


# --- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hint", [{"retry-after": "7"}, {"retry-after-ms": "7000"}], ids=["seconds", "ms"]
)
async def test_rate_limit_retry_after_is_waited_out_before_the_same_deployment_again(
    make_routing_stack: RoutingStackFactory, hint: dict[str, str]
) -> None:
    stack = await make_routing_stack({"chat": group(dep("up0"))}, openai=1)
    stack.fakes["up0"].script("chat", Fail(429, headers=hint), Reply(text="After the wait."))

    reply = await ask(stack, "chat")

    assert reply.parse().choices[0].message.content == "After the wait."
    assert stack.sleep.waits == [pytest.approx(7.0)]
    assert (stack.calls(), reply.headers[ATTEMPTS]) == ({"up0": 2}, "2")


async def test_rate_limited_deployment_cools_down_for_its_retry_after_while_others_serve(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack({"chat": group(dep("up0"), dep("up1"))}, openai=2, rng=first)
    stack.fakes["up0"].script("chat", Fail(429, headers={"retry-after": "20"}))

    replies = await ask_many(stack, "chat", 4)

    assert [r.headers[DEPLOYMENT] for r in replies] == ["up1"] * 4
    assert stack.calls() == {"up0": 1, "up1": 4}
    assert stack.sleep.waits == [], "moving to another deployment costs no wait"
    up0 = (await deployments(stack))["up0"]
    assert (up0["breaker"]["state"], up0["available"]) == ("closed", False)
    assert up0["breaker"]["available_in"] == pytest.approx(20.0)

    stack.clock.advance(20)
    reply = await ask(stack, "chat")
    assert (reply.headers[DEPLOYMENT], stack.calls()) == ("up0", {"up0": 2, "up1": 4})


async def test_retry_after_beyond_max_wait_is_relayed_to_the_client(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"), retry={"max_wait": "5s"})}, openai=1
    )
    stack.fakes["up0"].script("chat", Fail(429, headers={"retry-after": "60"}))

    async with openai_client(stack) as sdk:
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk.chat.completions.create(model="chat", messages=MESSAGES)

    assert caught.value.response.headers["retry-after"] == "60"
    assert (stack.calls(), stack.sleep.waits) == ({"up0": 1}, [])


async def test_same_deployment_is_retried_after_jittered_backoff_up_to_max_attempts(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"), retry={"max_attempts": 3, "backoff_base": "1s"})}, openai=1
    )
    stack.fakes["up0"].default["chat"] = Fail(503)

    async with openai_client(stack) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(model="chat", messages=MESSAGES)

    assert caught.value.status_code == 503
    assert caught.value.response.headers[ATTEMPTS] == "3"
    assert stack.calls() == {"up0": 3}, "each attempt is one upstream call, nothing cached"
    first_wait, second_wait = stack.sleep.waits
    assert 0 <= first_wait <= 1.0 and 0 <= second_wait <= 2.0, "full jitter under the ceiling"


async def test_spent_retry_budget_relays_the_first_failure_but_failover_is_free(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"), dep("up1")), "lone": group(dep("up2"))},
        openai=3,
        routing={"retry": {"budget_ratio": 0, "budget_min": 0}},
        rng=first,
    )
    stack.fakes["up0"].script("chat", Fail(503, message="Overloaded right now."))
    stack.fakes["up2"].script("chat", Fail(503, message="Overloaded right now."))

    async with openai_client(stack) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
        assert (raw.headers[ATTEMPTS], raw.headers[DEPLOYMENT]) == ("2", "up1")
        with pytest.raises(openai.InternalServerError, match="Overloaded right now") as caught:
            await sdk.chat.completions.create(model="lone", messages=MESSAGES)

    headers = caught.value.response.headers
    assert (headers[ATTEMPTS], headers[DEPLOYMENT]) == ("1", "up2")
    assert stack.calls() == {"up0": 1, "up1": 1, "up2": 1}
    groups = {g["name"]: g["retry_budget"] for g in (await routing_status(stack))["groups"]}
    assert (groups["chat"]["granted"], groups["chat"]["denied"]) == (0, 0)
    budget = groups["lone"]
    assert (budget["granted"], budget["denied"], budget["retries_in_flight"]) == (0, 1, 0)


# --- hedging and streams -----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_slow_first_byte_triggers_a_hedge_and_the_loser_is_cancelled(
    make_routing_stack: RoutingStackFactory, stream: bool
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"), dep("up1"), hedge_after="50ms")}, openai=2, rng=first
    )
    stack.fakes["up0"].default["chat"] = Reply(text="Too late.", first_byte_delay=30.0)
    stack.fakes["up1"].default["chat"] = Reply(text="The hedge won.", chunks=3)

    async with openai_client(stack) as sdk:
        if stream:
            response = await sdk.chat.completions.with_raw_response.create(
                model="chat", messages=MESSAGES, stream=True
            )
            chunks = [c async for c in response.parse()]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            response = await sdk.chat.completions.with_raw_response.create(
                model="chat", messages=MESSAGES
            )
            text = response.parse().choices[0].message.content

    assert text == "The hedge won."
    assert (response.headers[DEPLOYMENT], response.headers[ATTEMPTS]) == ("up1", "2")
    await stack.fakes["up0"].wait_for_disconnects(1)
    assert stack.calls() == {"up0": 1, "up1": 1}
    status = await routing_status(stack)
    by_name = {d["name"]: d for d in status["deployments"]}
    assert status["hedges"] == 1
    assert status["groups"][0]["retry_budget"]["granted"] == 1, "the hedge took a place"
    assert (by_name["up0"]["hedges"], by_name["up0"]["in_flight"]) == (1, 0)
    assert (by_name["up1"]["hedges"], by_name["up1"]["in_flight"]) == (0, 0)
    assert by_name["up0"]["breaker"]["state"] == "closed", "losing a race is no failure"
    assert by_name["up0"]["failures"] == 0


async def test_hedge_needs_a_place_in_the_retry_budget(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"), dep("up1"), hedge_after="50ms")},
        openai=2,
        routing={"retry": {"budget_ratio": 0, "budget_min": 0}},
        rng=first,
    )
    stack.fakes["up0"].default["chat"] = Reply(text="Slow but alone.", first_byte_delay=0.3)

    reply = await ask(stack, "chat")

    assert reply.parse().choices[0].message.content == "Slow but alone."
    assert (reply.headers[DEPLOYMENT], reply.headers[ATTEMPTS]) == ("up0", "1")
    assert stack.calls() == {"up0": 1, "up1": 0}
    status = await routing_status(stack)
    assert status["hedges"] == 0
    assert status["groups"][0]["retry_budget"]["granted"] == 0


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (Reply(chunks=6, drop_after=3), "ended the response abnormally"),
        (Reply(chunks=5, error_event_after=3), "server had an error"),
    ],
    ids=["dropped", "error-event"],
)
async def test_failure_after_the_first_byte_is_a_clean_sse_error_not_a_retry(
    make_routing_stack: RoutingStackFactory, failure: Reply, message: str
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"), dep("up1"), retry={"max_attempts": 3})}, openai=2
    )
    for fake in stack.fakes.values():
        fake.default["chat"] = failure

    async with openai_client(stack) as sdk:
        stream = await sdk.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match=message):
            async for _ in stream:
                pass

    assert sum(stack.calls().values()) == 1
    assert stack.sleep.waits == []
    served = [d for d in (await deployments(stack)).values() if d["requests"]]
    assert [(d["failures"], d["in_flight"]) for d in served] == [(1, 0)], "the breaker heard"


async def test_anthropic_stream_failing_after_its_first_byte_ends_in_an_error_event(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"claude": group(dep("an0"), dep("an1"))}, openai=0, anthropic=2
    )
    for fake in stack.fakes.values():
        fake.default["messages"] = Reply(chunks=6, drop_after=4)

    async with anthropic_client(stack) as sdk:
        with pytest.raises(anthropic.APIStatusError, match="ended the response abnormally"):
            async with sdk.messages.stream(
                model="claude", max_tokens=64, messages=MESSAGES
            ) as stream:
                await stream.get_final_message()

    assert sum(stack.calls("messages").values()) == 1


# --- fallbacks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_openai_client_falls_back_to_an_anthropic_served_group(
    make_routing_stack: RoutingStackFactory, stream: bool
) -> None:
    stack = await make_routing_stack(
        {
            "gpt-main": group(dep("up0"), fallbacks=["claude-backup"], retry={"max_attempts": 1}),
            "claude-backup": group(dep("an0")),
        },
        openai=1,
        anthropic=1,
    )
    stack.fakes["up0"].default["chat"] = Fail(500)
    stack.fakes["an0"].default["messages"] = Reply(
        text="Claude stands in.", chunks=4, prompt_tokens=7, completion_tokens=3
    )

    async with openai_client(stack) as sdk:
        if stream:
            response = await sdk.chat.completions.with_raw_response.create(
                model="gpt-main",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [c async for c in response.parse()]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
            usage = chunks[-1].usage
        else:
            response = await sdk.chat.completions.with_raw_response.create(
                model="gpt-main", messages=MESSAGES
            )
            completion = response.parse()
            text = completion.choices[0].message.content
            finish = completion.choices[0].finish_reason
            usage = completion.usage

    assert (text, finish) == ("Claude stands in.", "stop")
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (7, 3)
    headers = response.headers
    assert (headers[PROVIDER], headers[DEPLOYMENT], headers[ATTEMPTS]) == ("an0", "an0", "2")
    assert (stack.fakes["up0"].calls["chat"], stack.fakes["an0"].calls["messages"]) == (1, 1)
    sent = stack.fakes["an0"].requests[-1]
    assert (sent.path, sent.headers["x-api-key"]) == ("/v1/messages", ANTHROPIC_KEY)
    assert (sent.json["model"], sent.json.get("stream", False)) == ("claude-haiku-4-5", stream)
    assert sent.json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Say hello"}]}
    ]


async def test_fallback_serving_a_stream_holds_its_place_until_the_stream_ends(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {
            "primary": group(dep("up0"), fallbacks=["backup"], retry={"max_attempts": 1}),
            "backup": group(dep("up1", max_in_flight=1), dep("up2")),
        },
        rng=first,
    )
    stack.fakes["up0"].default["chat"] = Fail(500)
    stack.fakes["up1"].default["chat"] = Reply(chunks=6, stall_after=3)

    async with openai_client(stack) as sdk:
        opened = await sdk.chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES, stream=True
        )
        stream = opened.parse()
        first_chunk = await stream.__anext__()
        held = (await deployments(stack))["up1"]
        second = await ask(stack, "primary")
        await stream.close()

    assert first_chunk.choices[0].delta.role == "assistant"
    assert opened.headers[DEPLOYMENT] == "up1"
    assert held["in_flight"] == 1, "the stream still holds its place"
    assert second.headers[DEPLOYMENT] == "up2", "up1 is at its max_in_flight"
    await stack.fakes["up1"].wait_for_disconnects(1)
    assert (await deployments(stack))["up1"]["in_flight"] == 0, "and lets go when it ends"


async def test_fallback_group_retries_by_its_own_retry_statuses(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {
            "main": group(dep("up0"), fallbacks=["spare"], retry={"max_attempts": 1}),
            "spare": group(dep("up1"), dep("up2"), retry={"on_status": [500]}),
        },
        rng=first,
    )
    stack.fakes["up0"].script("chat", Fail(503))
    stack.fakes["up1"].script("chat", Fail(503, message="Spare is overloaded."))

    async with openai_client(stack) as sdk:
        with pytest.raises(openai.InternalServerError, match="Spare is overloaded") as caught:
            await sdk.chat.completions.create(model="main", messages=MESSAGES)

    headers = caught.value.response.headers
    assert (headers[DEPLOYMENT], headers[ATTEMPTS]) == ("up1", "2")
    assert stack.calls() == {"up0": 1, "up1": 1, "up2": 0}


async def test_prompt_too_long_for_the_group_goes_to_its_context_fallback_unsent(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {
            "small": group(dep("up0", context_window=1000), context_fallbacks=["large"]),
            "large": group(dep("up1", context_window=200_000)),
        },
        openai=2,
    )

    short = await ask(stack, "small")
    long = await ask(stack, "small", messages=LONG_MESSAGES)

    assert short.headers[DEPLOYMENT] == "up0"
    assert (long.headers[DEPLOYMENT], long.headers[ATTEMPTS]) == ("up1", "1")
    assert stack.calls() == {"up0": 1, "up1": 1}


@pytest.mark.parametrize(
    ("small", "large", "route", "refusal"),
    [
        (
            "up0",
            "up1",
            "chat",
            Fail(
                400,
                code="context_length_exceeded",
                message="This model's maximum context length is 8192 tokens.",
            ),
        ),
        (
            "an0",
            "an1",
            "messages",
            Fail(400, message="prompt is too long: 250000 tokens > 200000 maximum"),
        ),
    ],
    ids=["openai", "anthropic"],
)
async def test_upstream_context_length_error_is_retried_on_the_context_fallback(
    make_routing_stack: RoutingStackFactory, small: str, large: str, route: str, refusal: Fail
) -> None:
    stack = await make_routing_stack(
        {
            "small": group(dep(small), context_fallbacks=["large"]),
            "large": group(dep(large)),
        },
        openai=2,
        anthropic=2,
    )
    stack.fakes[small].script(route, refusal)
    stack.fakes[large].default[route] = Reply(text="Plenty of room here.")

    if route == "chat":
        reply = await ask(stack, "small")
        text = reply.parse().choices[0].message.content
    else:
        async with anthropic_client(stack) as sdk:
            reply = await sdk.messages.with_raw_response.create(
                model="small", max_tokens=64, messages=MESSAGES
            )
        text = (await reply.parse()).content[0].text

    assert text == "Plenty of room here."
    assert (reply.headers[DEPLOYMENT], reply.headers[ATTEMPTS]) == (large, "2")
    assert (stack.fakes[small].calls[route], stack.fakes[large].calls[route]) == (1, 1)
    health = (await deployments(stack))[small]
    assert (health["failures"], health["breaker"]["state"]) == (0, "closed"), "the prompt's fault"


async def test_an_ordinary_400_is_relayed_not_retried_nor_failed_over(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {
            "small": group(dep("up0"), dep("up1"), context_fallbacks=["large"]),
            "large": group(dep("up2")),
        },
        rng=first,
    )
    stack.fakes["up0"].script("chat", Fail(400, message="temperature: out of range."))

    async with openai_client(stack) as sdk:
        with pytest.raises(openai.BadRequestError, match="temperature: out of range") as caught:
            await sdk.chat.completions.create(model="small", messages=MESSAGES)

    headers = caught.value.response.headers
    assert (headers[DEPLOYMENT], headers[ATTEMPTS]) == ("up0", "1")
    assert stack.calls() == {"up0": 1, "up1": 0, "up2": 0}


# --- filters and strategies ----------------------------------------------------------------------


async def test_request_with_an_image_skips_deployments_without_vision(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {
            "chat": group(
                dep("up0", capabilities=NO_VISION),
                dep("up1", capabilities=ALL_CAPABILITIES),
                dep("up2"),
            )
        }
    )

    pictures = [await ask(stack, "chat", messages=OPENAI_IMAGE_MESSAGES) for _ in range(12)]
    seen_with_pictures = stack.calls()
    await ask_many(stack, "chat", 12)

    assert seen_with_pictures["up0"] == 0
    assert seen_with_pictures["up1"] + seen_with_pictures["up2"] == 12
    assert {p.headers[DEPLOYMENT] for p in pictures} <= {"up1", "up2"}
    assert stack.calls()["up0"] > 0, "text alone may go anywhere"


@pytest.mark.parametrize(
    ("dialect", "messages", "reason", "code"),
    [
        ("openai", OPENAI_IMAGE_MESSAGES, "needs vision", "invalid_request"),
        ("anthropic", ANTHROPIC_IMAGE_MESSAGES, "needs vision", "invalid_request"),
        ("openai", LONG_MESSAGES, "1500-token context window", "context_length_exceeded"),
        ("anthropic", LONG_MESSAGES, "1500-token context window", "context_length_exceeded"),
    ],
    ids=["openai-image", "anthropic-image", "openai-too-long", "anthropic-too-long"],
)
async def test_request_no_deployment_can_serve_is_a_400_in_the_clients_dialect_naming_why(
    make_routing_stack: RoutingStackFactory,
    dialect: str,
    messages: list[dict[str, Any]],
    reason: str,
    code: str,
) -> None:
    stack = await make_routing_stack(
        {"text-only": group(dep("up0", capabilities=NO_VISION, context_window=1500))},
        openai=1,
    )

    if dialect == "openai":
        body = chat_body("text-only", messages)
        status, _, answer = await post(stack, "/v1/chat/completions", body)
        error = answer["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", code)
    else:
        body = messages_body("text-only", messages)
        version = {"anthropic-version": "2023-06-01"}
        status, _, answer = await post(stack, "/v1/messages", body, version)
        error = answer["error"]
        assert (answer["type"], error["type"]) == ("error", "invalid_request_error")

    assert status == 400
    assert "text-only" in error["message"] and reason in error["message"]
    assert stack.calls() == {"up0": 0}


@pytest.mark.parametrize("value", ["cost", "COST"])
async def test_cost_strategy_header_picks_the_cheapest_priced_deployment(
    make_routing_stack: RoutingStackFactory, value: str
) -> None:
    stack = await make_routing_stack(
        {
            "chat": group(
                dep("up0", price={"input": 2.5, "output": 10}),
                dep("up1", price={"input": 0.15, "output": 0.6}),
                dep("up2"),
            )
        }
    )

    replies = [
        await ask(stack, "chat", extra_headers={"x-edgeproxy-strategy": value}) for _ in range(6)
    ]

    assert {r.headers[DEPLOYMENT] for r in replies} == {"up1"}
    assert stack.calls() == {"up0": 0, "up1": 6, "up2": 0}


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_unknown_strategy_header_is_a_400_in_the_clients_dialect(
    make_routing_stack: RoutingStackFactory, dialect: str
) -> None:
    stack = await make_routing_stack({"chat": group(dep("up0"))}, openai=1)
    header = {"x-edgeproxy-strategy": "cheapest"}

    if dialect == "openai":
        status, _, body = await post(stack, "/v1/chat/completions", chat_body("chat"), header)
        message = body["error"]["message"]
    else:
        header["anthropic-version"] = "2023-06-01"
        status, _, body = await post(stack, "/v1/messages", messages_body("chat"), header)
        assert body["error"]["type"] == "invalid_request_error"
        message = body["error"]["message"]

    assert status == 400
    assert "cheapest" in message and "weighted, latency, cost, hybrid" in message
    assert stack.calls() == {"up0": 0}


# --- local ceilings ---------------------------------------------------------------------------


async def test_deployment_at_max_in_flight_leaves_concurrent_requests_to_the_others(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0", max_in_flight=1), dep("up1"))}, openai=2, rng=first
    )
    stack.fakes["up0"].default["chat"] = Reply(stall_after=0)  # holds its one place

    requests = [asyncio.create_task(ask(stack, "chat")) for _ in range(4)]
    pending: set[asyncio.Task[Any]] = set(requests)
    while len(pending) > 1:
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    (held,) = pending
    up0 = (await deployments(stack))["up0"]
    held.cancel()

    served = [r.result() for r in requests if r is not held]
    assert {r.headers[DEPLOYMENT] for r in served} == {"up1"}
    assert (up0["in_flight"], up0["max_in_flight"], up0["available"]) == (1, 1, False)
    assert stack.calls() == {"up0": 1, "up1": 3}
    with pytest.raises(asyncio.CancelledError):
        await held
    await stack.fakes["up0"].wait_for_disconnects(1)
    assert (await deployments(stack))["up0"]["in_flight"] == 0, "the cancelled one let go"


async def test_deployment_at_its_rpm_ceiling_is_skipped_until_the_minute_passes(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0", rpm=2), dep("up1"))}, openai=2, rng=first
    )

    replies = await ask_many(stack, "chat", 5)
    assert [r.headers[DEPLOYMENT] for r in replies] == ["up0", "up0", "up1", "up1", "up1"]
    up0 = (await deployments(stack))["up0"]
    assert (up0["rpm"], up0["rpm_limit"], up0["available"]) == (2, 2, False)

    stack.clock.advance(60)
    assert (await ask(stack, "chat")).headers[DEPLOYMENT] == "up0"
    assert stack.calls() == {"up0": 3, "up1": 3}


# --- failing fast --------------------------------------------------------------------------------


Call = Callable[[RoutingStack, str], Awaitable[Any]]


async def _openai_call(stack: RoutingStack, model: str) -> Any:
    async with openai_client(stack) as sdk:
        return await sdk.chat.completions.create(model=model, messages=MESSAGES)


async def _anthropic_call(stack: RoutingStack, model: str) -> Any:
    async with anthropic_client(stack) as sdk:
        return await sdk.messages.create(model=model, max_tokens=64, messages=MESSAGES)


@pytest.mark.parametrize(
    ("call", "error"),
    [(_openai_call, openai.APIStatusError), (_anthropic_call, anthropic.APIStatusError)],
    ids=["openai", "anthropic"],
)
async def test_open_breaker_without_fallback_fails_fast_with_503_and_retry_after(
    make_routing_stack: RoutingStackFactory, call: Call, error: type[Exception]
) -> None:
    stack = await make_routing_stack(
        {"solo": group(dep("up0"), retry={"max_attempts": 1})},
        openai=1,
        routing={"breaker": {"failure_threshold": 2, "reset_timeout": "30s"}},
    )
    stack.fakes["up0"].default["chat"] = Fail(500)
    for _ in range(2):
        with pytest.raises(error) as relayed:
            await call(stack, "solo")
        assert relayed.value.status_code == 500  # type: ignore[attr-defined]

    with pytest.raises(error) as fast:
        await call(stack, "solo")
    stack.clock.advance(12)
    with pytest.raises(error) as later:
        await call(stack, "solo")

    assert fast.value.status_code == 503  # type: ignore[attr-defined]
    assert fast.value.response.headers["retry-after"] == "30"  # type: ignore[attr-defined]
    assert later.value.response.headers["retry-after"] == "18"  # type: ignore[attr-defined]
    assert fast.value.response.headers[ATTEMPTS] == "0"  # type: ignore[attr-defined]
    assert "solo" in str(fast.value)
    assert stack.calls() == {"up0": 2}, "the upstream was not touched"


RATE_LIMITED = Fail(429, headers={"retry-after": "60"})


async def both_providers(make: RoutingStackFactory, **options: Any) -> RoutingStack:
    """Group `both`: an OpenAI and an Anthropic deployment, retries waiting at most 5 s."""
    return await make(
        {"both": group(dep("up0"), dep("an0"), retry={"max_wait": "5s"})},
        openai=1,
        anthropic=1,
        rng=first,
        **options,
    )


@pytest.mark.parametrize(
    ("call", "error"),
    [(_openai_call, openai.RateLimitError), (_anthropic_call, anthropic.RateLimitError)],
    ids=["openai", "anthropic"],
)
async def test_a_group_every_provider_rate_limits_answers_429_with_the_remaining_retry_after(
    make_routing_stack: RoutingStackFactory, call: Call, error: type[Exception]
) -> None:
    stack = await both_providers(make_routing_stack)
    stack.fakes["up0"].script("chat", RATE_LIMITED)
    stack.fakes["an0"].script("messages", RATE_LIMITED)
    with pytest.raises(error):  # the provider's own 429: 60s is beyond max_wait
        await call(stack, "both")
    stack.clock.advance(15)

    with pytest.raises(error) as caught:
        await call(stack, "both")

    response = caught.value.response  # type: ignore[attr-defined]
    assert response.status_code == 429
    assert (response.headers["retry-after"], response.headers[ATTEMPTS]) == ("45", "0")
    assert orjson.loads(response.content)["error"]["type"] == "rate_limit_error"
    assert (stack.fakes["up0"].calls["chat"], stack.fakes["an0"].calls["messages"]) == (1, 1)


@pytest.mark.parametrize(
    ("call", "error"),
    [(_openai_call, openai.InternalServerError), (_anthropic_call, anthropic.InternalServerError)],
    ids=["openai", "anthropic"],
)
async def test_a_group_with_a_breaker_open_besides_rate_limits_keeps_the_503(
    make_routing_stack: RoutingStackFactory, call: Call, error: type[Exception]
) -> None:
    breaker = {"breaker": {"failure_threshold": 1, "reset_timeout": "30s"}}
    stack = await both_providers(make_routing_stack, routing=breaker)
    stack.fakes["up0"].script("chat", RATE_LIMITED)
    stack.fakes["an0"].script("messages", Fail(500))
    with pytest.raises(error):
        await call(stack, "both")

    with pytest.raises(error) as caught:
        await call(stack, "both")

    response = caught.value.response  # type: ignore[attr-defined]
    assert (response.status_code, response.headers["retry-after"]) == (503, "30")
    assert (stack.fakes["up0"].calls["chat"], stack.fakes["an0"].calls["messages"]) == (1, 1)


# --- headers, names and the admin view -------------------------------------------------------


@pytest.mark.parametrize(
    ("up0_says", "up1_says", "expected"),
    [
        (Reply(), Reply(), (200, "up0", "east", "1")),
        (Fail(500), Reply(), (200, "up1", "west", "2")),
        (Fail(500), Fail(502), (502, "up1", "west", "2")),
        (Fail(404), Reply(), (404, "up0", "east", "1")),
    ],
    ids=["first-try", "after-failover", "relayed-last-failure", "relayed-client-error"],
)
async def test_routing_headers_name_the_deployment_and_the_attempts(
    make_routing_stack: RoutingStackFactory,
    up0_says: Reply | Fail,
    up1_says: Reply | Fail,
    expected: tuple[int, str, str, str],
) -> None:
    stack = await make_routing_stack(
        {
            "chat": group(
                dep("up0", name="east"), dep("up1", name="west"), retry={"max_attempts": 2}
            )
        },
        openai=2,
        rng=first,
    )
    stack.fakes["up0"].script("chat", up0_says)
    stack.fakes["up1"].script("chat", up1_says)

    status, headers, _ = await post(stack, "/v1/chat/completions", chat_body("chat"))

    assert (status, headers[PROVIDER], headers[DEPLOYMENT], headers[ATTEMPTS]) == expected


async def test_alias_resolves_to_its_group(make_routing_stack: RoutingStackFactory) -> None:
    stack = await make_routing_stack(
        {
            "main": group(
                {"provider": "up0", "model": "gpt-4o-2024-08-06"}, aliases=["main-latest", "m"]
            )
        },
        openai=1,
    )

    replies = [await ask(stack, name) for name in ("main", "main-latest", "m")]
    async with openai_client(stack) as sdk:
        listed = {m.id async for m in sdk.models.list()}

    assert {r.headers[DEPLOYMENT] for r in replies} == {"up0/gpt-4o-2024-08-06"}
    assert [r.json["model"] for r in stack.fakes["up0"].requests] == ["gpt-4o-2024-08-06"] * 3
    assert {"main", "main-latest", "m"} <= listed


async def test_admin_routing_lists_deployments_with_their_live_state(
    make_routing_stack: RoutingStackFactory,
) -> None:
    stack = await make_routing_stack(
        {
            "chat": group(dep("up0"), dep("up1", max_in_flight=4, rpm=100), fallbacks=["spare"]),
            "spare": group(dep("up2")),
        },
        rng=first,
    )
    stack.fakes["up0"].script("chat", Fail(500))
    await ask_many(stack, "chat", 2)

    status = await routing_status(stack)

    assert [g["name"] for g in status["groups"]] == ["chat", "spare"]
    chat = status["groups"][0]
    assert [d["name"] for d in chat["deployments"]] == ["up0", "up1"]
    assert chat["fallbacks"] == ["spare"]
    by_name = {d["name"]: d for d in status["deployments"]}
    assert set(by_name) == {"up0", "up1", "up2"}
    up0, up1, up2 = by_name["up0"], by_name["up1"], by_name["up2"]
    assert up0["breaker"]["state"] == "closed"
    assert (up0["requests"], up0["failures"]) == (2, 1)
    assert 0 < up0["success_rate"] < 1
    assert up1["success_rate"] == 1.0
    assert up0["ewma_ttfb_ms"] is not None and up1["ewma_ttfb_ms"] is not None
    assert up2["ewma_ttfb_ms"] is None, "never called"
    assert (up1["in_flight"], up1["max_in_flight"], up1["rpm"], up1["rpm_limit"]) == (0, 4, 1, 100)
    assert status["hedges"] == 0 and up0["hedges"] == 0


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("Basic admin-token-123", 401),
        ("Bearer admin-token-123", 200),
        ("bearer admin-token-123", 200),
    ],
)
async def test_admin_routing_requires_the_admin_token_when_one_is_set(
    make_routing_stack: RoutingStackFactory, authorization: str | None, status: int
) -> None:
    stack = await make_routing_stack(
        {"chat": group(dep("up0"))}, openai=1, admin_token="admin-token-123"
    )

    got, body = await admin_get(stack, {"authorization": authorization} if authorization else {})

    assert got == status
    assert ("deployments" in body) == (status == 200)
