"""The supervisor's liveness check of its workers, as the kubelet's is of a lone process.

In a pod of workers the kubelet's liveness probe reaches the supervisor, which answers while
it runs: a worker whose event loop is stuck (a busy loop, a deadlock) would serve nothing and
never be restarted. So the supervisor asks each worker's `/healthz`, on its private admin
socket, every `INTERVAL` seconds; a worker that answered once since it started and then misses
`MISSES` checks in a row is killed, and the supervisor starts it again as after any crash
(edgeproxy.workers). A worker still starting is not judged until it answers, or until it has
had `STARTUP` seconds to (loading a semantic model takes a few).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from edgeproxy.worker import ask_worker

log = logging.getLogger("edgeproxy")

INTERVAL = 5.0  # seconds between checks (the kubelet's default period is 10 s)
MISSES = 3  # unanswered checks in a row before the worker is killed
TIMEOUT = 2.0  # seconds a check waits for the answer
STARTUP = 60.0  # seconds a new worker has to answer its first check
_ASK = b"GET /healthz HTTP/1.0\r\nhost: worker\r\n\r\n"


async def answers(socket: Path) -> bool:
    """Whether the admin app at `socket` answers /healthz with a 200 in time."""
    try:
        async with asyncio.timeout(TIMEOUT):
            answer = await ask_worker(socket, _ASK)
    except (OSError, TimeoutError):
        return False
    return answer.split(b" ", 2)[1:2] == [b"200"]


async def watch(
    socket: Path,
    process: Callable[[], asyncio.subprocess.Process | None],
    stopped: asyncio.Event,
    worker: int,
) -> None:
    """Check the worker `process()` names (the current one: it changes on a restart) until
    `stopped` is set, killing it once it stopped answering."""
    loop = asyncio.get_running_loop()
    judged: asyncio.subprocess.Process | None = None
    answered, missed, since = False, 0, loop.time()
    while not stopped.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), INTERVAL)
        current = process()
        if stopped.is_set() or current is None or current.returncode is not None:
            continue
        if current is not judged:  # a new process: not judged before it answers once
            judged, answered, missed, since = current, False, 0, loop.time()
        if await answers(socket):
            answered, missed = True, 0
        elif answered or loop.time() - since > STARTUP:
            missed += 1
            if missed >= MISSES:
                log.error(
                    "worker stopped answering: killing it to start it again",
                    extra={"worker": worker, "pid": current.pid, "missed": missed},
                )
                current.kill()
                answered, missed, since = False, 0, loop.time()
