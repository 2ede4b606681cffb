"""Shared fixtures: a fake upstream with the proxy in front, in the test's loop or a thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.loop_thread import LoopThread
from tests.support.redis_servers import (
    Cluster,
    RedisServer,
    require_redis_server,
    start_cluster,
    start_redis,
)
from tests.support.stack import ProxyFront, Stack, start_stack, stop_stack

StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """A test that sets the proxy's logging up (the CLI run in process does) leaves the root
    logger as it found it: its handler writes to a capture stream that closes with the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def _settled(stack: ProxyFront) -> None:
    """After a test: every upstream connection is back in its pool and no work is pending."""
    for _ in range(100):
        if stack.connections_in_use() == 0 and stack.proxy.state.background.pending == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(
        f"leaked: {stack.connections_in_use()} upstream connections still in use, "
        f"{stack.proxy.state.background.pending} background tasks pending"
    )


@pytest.fixture
async def make_stack() -> AsyncIterator[StackFactory]:
    """Start stacks with custom config; each is checked for leaks and stopped after the test."""
    started: list[Stack] = []
    before = asyncio.all_tasks()

    async def factory(**config: Any) -> Stack:
        stack = await start_stack(**config)
        started.append(stack)
        return stack

    yield factory
    for stack in started:
        await _settled(stack)
        await stop_stack(stack)
    leftover = await _tasks_left(before)
    assert not leftover, f"tasks left running after the test: {leftover}"


async def _tasks_left(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks started during the test and still running after a few turns of the loop and at
    most a second more: that lets finalizers the loop itself scheduled (an SDK's async
    generator closing its connection, whenever the garbage collector found it) end."""
    for _ in range(10):
        leftover = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}
        if not leftover:
            return leftover
        await asyncio.sleep(0)
    _, pending = await asyncio.wait(leftover, timeout=1.0)
    return pending


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()


@pytest.fixture
def thread_stack() -> Iterator[Stack]:
    """The stack on its own event loop, for the SDKs' blocking clients."""
    with LoopThread() as loop:
        stack = loop.run(start_stack())
        try:
            yield stack
            loop.run(_settled(stack))
        finally:
            loop.run(stop_stack(stack))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server the test may count commands on, kill, pause and restart."""
    require_redis_server()
    server = start_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-master Redis Cluster, started once for the session (tests use unique prefixes)."""
    require_redis_server()
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()
