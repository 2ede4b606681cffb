"""Append-only JSON-lines files, written without blocking the event loop: the guardrail audit log
and the telemetry events' file sink both write through `AppendFile`.

Each batch of lines goes out in one `write` (continued if short) on a descriptor opened with
O_APPEND, from a thread, so lines of several writers appending to one local file never
interleave: the kernel appends each write whole. Rotation is the platform's: rotate by
copy-and-truncate (logrotate's `copytruncate`), which O_APPEND writes follow; or write to
standard output (`-`) for the container runtime to collect, where batches go out in writes of
at most PIPE_BUF bytes so that no line is torn by other writers of the same pipe.
"""

from __future__ import annotations

import asyncio
import os
import select
import time

STDOUT = "-"
_STDOUT_FD = 1
_CREATE_MODE = 0o600


class Timestamps:
    """RFC 3339 times in UTC to the millisecond, the date and time formatted once a second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, seconds: float) -> str:
        second, millis = divmod(int(seconds * 1000), 1000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{millis:03d}Z"


class AppendFile:
    """A file at `target` (created 0600 if absent), or standard output for `-`."""

    __slots__ = ("_fd", "target")

    def __init__(self, target: str) -> None:
        self.target = target
        self._fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    async def open(self) -> None:
        """OSError when the file cannot be opened for appending."""
        if self.target == STDOUT:
            self._fd = _STDOUT_FD
            return
        self._fd = await asyncio.to_thread(
            os.open,
            self.target,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
            _CREATE_MODE,
        )

    async def append(self, lines: list[bytes]) -> None:
        """Append whole lines (each ending in a newline); OSError when the file refuses them."""
        fd = self._fd
        if fd is None:
            raise RuntimeError(f"{self.target} is not open")
        writes = _pipe_sized(lines) if fd == _STDOUT_FD else [b"".join(lines)]
        await asyncio.to_thread(_write_all, fd, writes)

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and fd != _STDOUT_FD:
            await asyncio.to_thread(os.close, fd)


def _pipe_sized(lines: list[bytes]) -> list[bytes]:
    """Whole lines grouped into writes of at most PIPE_BUF bytes, which a pipe keeps whole."""
    writes: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for line in lines:
        if group and size + len(line) > select.PIPE_BUF:
            writes.append(b"".join(group))
            group, size = [], 0
        group.append(line)
        size += len(line)
    if group:
        writes.append(b"".join(group))
    return writes


def _write_all(fd: int, writes: list[bytes]) -> None:
    """Each buffer in full (a short write is continued)."""
    for data in writes:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
