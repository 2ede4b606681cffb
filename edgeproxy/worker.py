"""One worker of a pod (`edgeproxy serve --workers N`, see edgeproxy.workers): what differs
from a process serving alone.

- The data port is shared (SO_REUSEPORT): the kernel spreads new connections over the workers.
- The admin app listens on a private unix socket in the pod's directory, where the
  supervisor's admin listener (edgeproxy.pod_admin) reaches it; the pod's admin port is the
  supervisor's.
- Its metrics, its own process's alone, go to a file in the pod's directory for the
  supervisor to merge (edgeproxy.telemetry.pod_metrics).
- It ends with its supervisor: the kernel sends it SIGTERM if the supervisor dies
  (PR_SET_PDEATHSIG), so a killed supervisor leaves no worker holding the port.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeproxy.telemetry.pod_metrics import MetricsSnapshots, snapshot_path

_PR_SET_PDEATHSIG = 1


def admin_socket(directory: Path, index: int) -> Path:
    """Where worker `index` serves its admin app."""
    return directory / f"admin-{index}.sock"


async def ask_worker(socket: Path, request: bytes) -> bytes:
    """`request` (HTTP/1.0, so the worker closes after its answer) sent to the admin app at
    `socket`; its whole answer (callers bound the wait). Raises OSError when it is not there."""
    reader, writer = await asyncio.open_unix_connection(str(socket))
    try:
        writer.write(request)
        return await reader.read()
    finally:
        writer.close()


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """Worker `index` of the pod whose files are in `directory`."""

    index: int
    directory: Path

    @property
    def admin_socket(self) -> str:
        return str(admin_socket(self.directory, self.index))

    def snapshots(self, render: Callable[[], bytes]) -> MetricsSnapshots:
        """This worker's metrics, written where the supervisor merges them."""
        return MetricsSnapshots(snapshot_path(self.directory, self.index, os.getpid()), render)


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent (the supervisor) dies, and stop at once if
    it died before the request took effect (Linux; a no-op where prctl is missing)."""
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    prctl = getattr(libc, "prctl", None)
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
