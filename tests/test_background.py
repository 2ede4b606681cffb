"""Background work is bounded, counted, and drained at shutdown."""

from __future__ import annotations

import asyncio

from edgeproxy.background import Background


async def test_work_beyond_the_limit_is_dropped_and_counted() -> None:
    gate = asyncio.Event()
    background = Background(max_pending=2)
    assert background.spawn("a", gate.wait())
    assert background.spawn("b", gate.wait())
    assert not background.spawn("c", gate.wait())
    assert (background.pending, background.dropped) == (2, 1)
    gate.set()
    await background.drain(grace=1.0)
    assert background.pending == 0


async def test_drain_waits_for_pending_work() -> None:
    background = Background()
    done: list[str] = []

    async def write() -> None:
        await asyncio.sleep(0)
        done.append("written")

    background.spawn("cache-write", write())
    await background.drain(grace=1.0)
    assert done == ["written"]


async def test_drain_cancels_what_outlives_the_grace_period() -> None:
    background = Background()
    background.spawn("stuck", asyncio.Event().wait())
    await background.drain(grace=0.01)
    assert background.pending == 0


async def test_failures_are_counted_not_raised() -> None:
    background = Background()

    async def boom() -> None:
        raise RuntimeError("telemetry sink down")

    background.spawn("boom", boom())
    await background.drain(grace=1.0)
    assert background.failed == 1


async def test_a_service_runs_until_its_owner_cancels_it_and_is_not_work_to_drain() -> None:
    background = Background(max_pending=1)
    stop = asyncio.Event()
    service = background.service("listener", stop.wait())
    assert background.pending == 0, "a service is not pending work"
    assert background.spawn("work", asyncio.sleep(0)), "and takes no place from work"
    await background.drain(grace=1.0)
    assert not service.done()
    service.cancel()
    await asyncio.wait({service})
    assert background.failed == 0


async def test_settle_waits_for_the_work_pending_now_and_cancels_nothing() -> None:
    background = Background()
    done: list[str] = []
    stuck = asyncio.Event()

    async def write() -> None:
        await asyncio.sleep(0)
        done.append("written")

    background.spawn("spend record", write())
    background.spawn("stuck", stuck.wait())
    await background.settle(grace=0.01)
    assert done == ["written"]
    assert background.pending == 1, "what outlived the grace still runs"
    stuck.set()
    await background.drain(grace=1.0)
