"""Routing stacks: several fake upstreams behind one proxy on a manual clock (see
tests/support/routing_stack.py), each checked for leaks and stopped after the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import _settled, _tasks_left
from tests.support.routing_stack import RoutingStack, start_routing_stack, stop_routing_stack

RoutingStackFactory = Callable[..., Awaitable[RoutingStack]]


@pytest.fixture
async def make_routing_stack() -> AsyncIterator[RoutingStackFactory]:
    """`await make_routing_stack(models, openai=3, anthropic=0, routing=..., rng=...)`; after
    the test every upstream connection is back in its pool and no task is left running."""
    started: list[RoutingStack] = []
    before = asyncio.all_tasks()

    async def factory(models: dict[str, Any], **options: Any) -> RoutingStack:
        stack = await start_routing_stack(models, **options)
        started.append(stack)
        return stack

    yield factory
    try:
        for stack in started:
            await _settled(stack)
    finally:
        for stack in started:
            await stop_routing_stack(stack)
    leftover = await _tasks_left(before)
    assert not leftover, f"tasks left running after the test: {leftover}"
