"""Identical requests in flight at the same time make one upstream call: every waiter gets the
whole answer (streams fanned out live, late joiners first get what was already sent), and when
the leader fails or its client goes away, a waiter takes over instead of all failing."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail, Reply
from tests.support.stack import Stack, background_done

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20}
ON = {"enabled": True}


async def ask(
    session: aiohttp.ClientSession, stack: Stack, body: dict[str, Any] | None = None
) -> tuple[int, str, bytes]:
    async with session.post(stack.openai_url + "/chat/completions", json=body or CHAT) as r:
        return r.status, r.headers.get("x-edgeproxy-cache", ""), await r.read()


def streamed_text(body: bytes) -> str:
    text = []
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            chunk = orjson.loads(line[6:])
            if "error" in chunk:
                raise AssertionError(f"stream ended with an error: {chunk}")
            for choice in chunk.get("choices", ()):
                text.append(choice["delta"].get("content") or "")
    return "".join(text)


async def waiting(stack: Stack, count: int) -> None:
    """Until a request leads a flight and `count` others wait on it (bounded; a condition on
    what the proxy does, not on timing)."""
    cache = stack.proxy.state.cache
    assert cache is not None
    for _ in range(500):
        flights = list(cache._flights.values())
        if flights and sum(f.waiting for f in flights) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} requests never waited")


async def following(stack: Stack, count: int) -> None:
    """Until `count` requests relay a flight's live stream to their clients (bounded)."""
    cache = stack.proxy.state.cache
    assert cache is not None
    for _ in range(500):
        if sum(f.followers for f in cache._flights.values()) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} requests never followed a stream")


async def test_fifty_identical_requests_make_one_upstream_call(make_stack: StackFactory) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default["chat"] = Reply(text="Shared answer.", first_byte_delay=0.3)
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(ask(session, stack) for _ in range(50)))
    assert stack.fake.calls["chat"] == 1
    assert {status for status, _, _ in results} == {200}
    assert sorted({cache for _, cache, _ in results}) == ["coalesced", "miss"]
    assert {orjson.loads(body)["choices"][0]["message"]["content"] for *_, body in results} == {
        "Shared answer."
    }


async def test_streaming_waiters_follow_the_live_stream_and_late_joiners_catch_up(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    text = "one two three four five six seven eight nine ten"
    stack.fake.default["chat"] = Reply(text=text, chunks=10, chunk_delay=0.05)
    body = {**CHAT, "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(stack.openai_url + "/chat/completions", json=body) as leader:
            first = await leader.content.readany()
            assert first, "the leader's stream has started"
            late = [asyncio.ensure_future(ask(session, stack, body)) for _ in range(5)]
            rest = await leader.read()
        results = await asyncio.gather(*late)
    assert streamed_text(first + rest) == text
    assert stack.fake.calls["chat"] == 1
    for status, cache, replay in results:
        assert (status, cache) == (200, "coalesced")
        assert streamed_text(replay) == text, "what was sent before joining, then the rest"


async def test_waiters_of_another_shape_get_the_answer_rendered_for_them(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default["chat"] = Reply(text="Either way.", chunks=3, first_byte_delay=0.2)
    async with aiohttp.ClientSession() as session:
        leader = asyncio.ensure_future(ask(session, stack, {**CHAT, "stream": True}))
        await waiting(stack, 0)
        plain = asyncio.ensure_future(ask(session, stack))
        usage = asyncio.ensure_future(
            ask(session, stack, {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
        )
        results = await asyncio.gather(leader, plain, usage)
    assert stack.fake.calls["chat"] == 1
    assert streamed_text(results[0][2]) == "Either way."
    assert orjson.loads(results[1][2])["choices"][0]["message"]["content"] == "Either way."
    assert streamed_text(results[2][2]) == "Either way."
    assert b'"usage":{' in results[2][2], "the usage chunk this waiter asked for"


async def test_when_the_leader_fails_a_waiter_takes_over(make_stack: StackFactory) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.script("chat", Fail(500))
    stack.fake.default["chat"] = Reply(text="Second time lucky.", first_byte_delay=0.2)
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(ask(session, stack) for _ in range(10)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * 9 + [500], "only the leader's client sees its failure"
    assert stack.fake.calls["chat"] == 2


async def test_when_the_leaders_client_goes_away_a_waiter_takes_over(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default["chat"] = Reply(text="Still answered.", first_byte_delay=0.5)
    async with aiohttp.ClientSession() as leaving, aiohttp.ClientSession() as staying:
        leader = asyncio.ensure_future(ask(leaving, stack))
        await waiting(stack, 0)
        waiters = [asyncio.ensure_future(ask(staying, stack)) for _ in range(3)]
        await waiting(stack, 3)
        leader.cancel()
        await leaving.close()
        results = await asyncio.gather(*waiters)
    assert [status for status, _, _ in results] == [200, 200, 200]
    await stack.fake.wait_for_disconnects(1)
    assert stack.fake.calls["chat"] == 2


async def test_a_follower_of_a_stream_that_breaks_gets_an_error_event_not_a_retry(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.script("chat", Reply(chunks=8, chunk_delay=0.05, drop_after=6))
    body = {**CHAT, "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(stack.openai_url + "/chat/completions", json=body) as leader:
            await leader.content.readany()
            follower = asyncio.ensure_future(ask(session, stack, body))
            await leader.read()
        status, cache, replay = await follower
    assert (status, cache) == (200, "coalesced")
    assert b'"error"' in replay.split(b"\n\n")[-2], "the stream ends with an error event"
    assert stack.fake.calls["chat"] == 1


STREAM = {**CHAT, "stream": True}
TEXT = "one two three four five six seven eight nine ten eleven twelve"


async def lead_and_leave(
    stack: Stack, followers: int, body: dict[str, Any] = STREAM
) -> list[asyncio.Future[Any]]:
    """A streaming request whose client goes away after the first chunk, once `followers`
    identical requests follow its stream; their futures."""
    leaving = aiohttp.ClientSession()
    try:
        leader = await leaving.post(stack.openai_url + "/chat/completions", json=body)
        assert await leader.content.readany(), "the leader's stream has started"
        staying = aiohttp.ClientSession()
        late = [asyncio.ensure_future(_ask_closing(staying, stack, body)) for _ in range(followers)]
        await following(stack, followers)
        leader.close()
    finally:
        await leaving.close()
    return late


async def _ask_closing(
    session: aiohttp.ClientSession, stack: Stack, body: dict[str, Any]
) -> tuple[int, str, bytes]:
    async with session:
        return await ask(session, stack, body)


@pytest.mark.parametrize(
    ("model", "route"),
    [("gpt-4o", "chat"), ("claude-sonnet", "messages")],
    ids=["relayed", "translated"],
)
async def test_when_the_leaders_client_leaves_mid_stream_its_followers_still_get_it_all(
    make_stack: StackFactory, model: str, route: str
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default[route] = Reply(text=TEXT, chunks=12, chunk_delay=0.05)
    body = {**STREAM, "model": model}
    results = await asyncio.gather(*await lead_and_leave(stack, 2, body))
    for status, cache, replay in results:
        assert (status, cache) == (200, "coalesced")
        assert streamed_text(replay) == TEXT and replay.endswith(b"data: [DONE]\n\n")
    await background_done(stack)
    async with aiohttp.ClientSession() as session:
        status, cache, replay = await ask(session, stack, body)
    assert (status, cache, streamed_text(replay)) == (200, "hit-l1", TEXT), "and it was stored"
    assert stack.fake.calls[route] == 1


async def test_a_stream_nobody_follows_any_more_is_dropped_and_not_stored(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default["chat"] = Reply(text=TEXT, chunks=12, chunk_delay=0.1)
    (follower,) = await lead_and_leave(stack, followers=1)
    follower.cancel()  # its client goes too
    await stack.fake.wait_for_disconnects(1)  # the proxy stopped reading the provider
    await background_done(stack)
    async with aiohttp.ClientSession() as session:
        _, cache, _ = await ask(session, stack, STREAM)
    assert cache == "miss"
    assert stack.fake.calls["chat"] == 2


async def test_a_leader_whose_client_leaves_with_no_follower_releases_the_provider_at_once(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=ON)
    stack.fake.default["chat"] = Reply(text=TEXT, chunks=12, chunk_delay=0.1)
    async with aiohttp.ClientSession() as leaving:
        leader = await leaving.post(stack.openai_url + "/chat/completions", json=STREAM)
        assert await leader.content.readany()
        leader.close()
    await stack.fake.wait_for_disconnects(1)
    await background_done(stack)
    async with aiohttp.ClientSession() as session:
        _, cache, _ = await ask(session, stack, STREAM)
    assert cache == "miss", "a stream cut short is not stored"
