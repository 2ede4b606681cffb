"""The supervisor's liveness check: a worker that answered and then stops answering is
killed (so restarted); one that answers, or is still starting, is left alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgeproxy import worker_liveness
from tests.support.poll import eventually


class FakeProcess:
    """What the watch reads of a worker process, and whether it was killed."""

    def __init__(self) -> None:
        self.pid = 4242
        self.returncode: int | None = None
        self.killed = 0

    def kill(self) -> None:
        self.killed += 1


class Worker:
    """A worker's admin socket that answers /healthz while `alive`, else holds the request."""

    def __init__(self) -> None:
        self.alive = True
        self.asked = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.asked += 1
            if self.alive:
                writer.write(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
            else:
                await reader.read()  # a stuck loop answers nothing; the asker hangs up
        finally:
            writer.close()


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_liveness, "INTERVAL", 0.01)
    monkeypatch.setattr(worker_liveness, "TIMEOUT", 0.05)


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[tuple[Worker, Path]]:
    socket = tmp_path / "admin-0.sock"
    answering = Worker()
    server = await asyncio.start_unix_server(answering, str(socket))
    async with server:
        yield answering, socket


async def watching(socket: Path, process: FakeProcess) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stopped = asyncio.Event()
    task = asyncio.ensure_future(
        worker_liveness.watch(socket, lambda: process, stopped, 0)  # type: ignore[arg-type,return-value]
    )
    return stopped, task


async def test_a_worker_that_stops_answering_is_killed_after_its_misses(
    worker: tuple[Worker, Path],
) -> None:
    answering, socket = worker
    process = FakeProcess()
    stopped, task = await watching(socket, process)
    await eventually(lambda: answering.asked >= 2, "the worker answered")
    answering.alive = False
    await eventually(lambda: process.killed == 1, "the stuck worker killed")
    assert answering.asked >= 2 + worker_liveness.MISSES
    stopped.set()
    await task


async def test_a_worker_that_answers_is_left_alone(worker: tuple[Worker, Path]) -> None:
    answering, socket = worker
    process = FakeProcess()
    stopped, task = await watching(socket, process)
    await eventually(lambda: answering.asked >= 3 * worker_liveness.MISSES, "many checks")
    stopped.set()
    await task
    assert process.killed == 0


async def test_a_worker_that_never_answers_is_killed_once_its_start_up_time_is_over(
    worker: tuple[Worker, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    answering, socket = worker
    answering.alive = False
    monkeypatch.setattr(worker_liveness, "STARTUP", 0.2)
    process = FakeProcess()
    stopped, task = await watching(socket, process)
    await eventually(lambda: process.killed == 1, "the worker stuck at start-up killed")
    stopped.set()
    await task


async def test_a_worker_that_never_answered_is_still_starting_and_not_judged(
    worker: tuple[Worker, Path],
) -> None:
    answering, socket = worker
    answering.alive = False
    process = FakeProcess()
    stopped, task = await watching(socket, process)
    await eventually(lambda: answering.asked >= 3 * worker_liveness.MISSES, "many checks")
    stopped.set()
    await task
    assert process.killed == 0
