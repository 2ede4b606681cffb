"""The drain of a stopping proxy, in process: what clients in flight see when the grace runs
out, or when a second signal hurries the stop, and what is left behind (nothing). The real
process, its signals and its readiness are tested in tests/test_drain_process.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from edgeproxy.drain import Drain, never
from tests.conftest import _tasks_left
from tests.support.fake_upstream import Reply
from tests.support.poll import eventually
from tests.support.stack import CLIENT_KEY, Stack, start_stack

MESSAGES = [{"role": "user", "content": "Say hello"}]
SLOW_STREAM = Reply(chunks=200, chunk_delay=0.05, split="frames")  # 10 s: longer than any grace
STUCK = Reply(first_byte_delay=60)
GRACE = 0.3


@dataclass(frozen=True)
class Dialect:
    """How one SDK streams and asks, and the fake upstream's route behind it."""

    route: str
    stream: Callable[[Stack, asyncio.Event], Coroutine[Any, Any, None]]
    ask: Callable[[Stack], Coroutine[Any, Any, None]]
    stream_error: type[Exception]
    connection_error: type[Exception]
    status_error: type[Exception]


async def openai_stream(stack: Stack, first: asyncio.Event) -> None:
    async with openai.AsyncOpenAI(
        base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0
    ) as sdk:
        stream = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        async for _ in stream:
            first.set()


async def openai_ask(stack: Stack) -> None:
    async with openai.AsyncOpenAI(
        base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0
    ) as sdk:
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)


async def anthropic_stream(stack: Stack, first: asyncio.Event) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=stack.anthropic_url, api_key=CLIENT_KEY, max_retries=0
    ) as sdk:
        stream = await sdk.messages.create(
            model="claude-sonnet", max_tokens=64, messages=MESSAGES, stream=True
        )
        async for _ in stream:
            first.set()


async def anthropic_ask(stack: Stack) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=stack.anthropic_url, api_key=CLIENT_KEY, max_retries=0
    ) as sdk:
        await sdk.messages.create(model="claude-sonnet", max_tokens=64, messages=MESSAGES)


DIALECTS = [
    Dialect(
        "chat",
        openai_stream,
        openai_ask,
        openai.APIError,
        openai.APIConnectionError,
        openai.InternalServerError,
    ),
    Dialect(
        "messages",
        anthropic_stream,
        anthropic_ask,
        anthropic.APIStatusError,
        anthropic.APIConnectionError,
        anthropic.InternalServerError,
    ),
]
IDS = ["openai", "anthropic"]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    """A proxy the test stops itself; after it, nothing is left: no client or upstream
    connection, no task."""
    before = asyncio.all_tasks()
    stack = await start_stack(server={"shutdown_grace": f"{GRACE}s"})
    try:
        yield stack
    finally:
        await stack.fake.close()
    assert stack.proxy.client_connections == 0
    assert stack.connections_in_use() == 0
    assert not await _tasks_left(before), "tasks left running after the drain"


async def stream_cut_by(
    stack: Stack, dialect: Dialect, stop: Callable[[], Awaitable[None]]
) -> BaseException:
    """What the SDK raises on a stream in flight when `stop` runs."""
    stack.fake.script(dialect.route, SLOW_STREAM)
    first = asyncio.Event()
    streaming = asyncio.create_task(dialect.stream(stack, first))
    await asyncio.wait_for(first.wait(), 10)
    await stop()
    with pytest.raises(dialect.stream_error) as raised:
        await streaming
    return raised.value


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
async def test_a_stream_longer_than_the_grace_ends_with_an_error_event_in_its_dialect(
    stack: Stack, dialect: Dialect
) -> None:
    error = await stream_cut_by(stack, dialect, stack.proxy.stop)
    assert not isinstance(error, dialect.connection_error), "the connection was dropped"
    assert "The proxy is shutting down" in str(error)
    await stack.fake.wait_for_disconnects(1)  # the upstream call was cancelled


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
async def test_a_second_signal_ends_the_delay_and_the_grace_at_once(
    stack: Stack, dialect: Dialect
) -> None:
    hurry = asyncio.get_running_loop().create_future()
    stopping: list[asyncio.Task[None]] = []

    async def stop_then_hurry() -> None:
        stopping.append(asyncio.create_task(stack.proxy.stop(Drain(600, 600, hurry))))
        await eventually(lambda: not stack.proxy.state.ready, "readiness to turn false")
        hurry.set_result(None)

    error = await stream_cut_by(stack, dialect, stop_then_hurry)
    assert "The proxy is shutting down" in str(error)
    await asyncio.wait_for(stopping[0], 30)


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
async def test_a_request_still_waiting_for_its_answer_gets_a_503_in_its_dialect(
    stack: Stack, dialect: Dialect
) -> None:
    stack.fake.script(dialect.route, STUCK)
    asking = asyncio.create_task(dialect.ask(stack))
    await eventually(lambda: stack.fake.calls[dialect.route] == 1, "the upstream to be asked")
    await stack.proxy.stop()
    with pytest.raises(dialect.status_error) as raised:
        await asking
    assert getattr(raised.value, "status_code", None) == 503
    assert "The proxy is shutting down" in str(raised.value)
    await stack.fake.wait_for_disconnects(1)


async def test_requests_that_end_within_the_grace_are_not_interrupted(stack: Stack) -> None:
    stack.fake.script("chat", Reply(chunks=5, chunk_delay=0.01))
    first = asyncio.Event()
    streaming = asyncio.create_task(openai_stream(stack, first))
    await asyncio.wait_for(first.wait(), 10)
    await stack.proxy.stop(Drain(0.0, 30.0, never()))
    await streaming
