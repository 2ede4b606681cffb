"""Guardrail decisions: counted for Prometheus, and written to an append-only JSONL audit log.

An audit line says who was checked (request id, key id), by which rule, and what the proxy
did; it never holds the text that was checked or matched. That is enforced here rather than
left to callers' care: besides the four identifying fields, a record takes only the names in
`FIELDS`, each with one scalar value (strings cut to `MAX_VALUE` characters), so there is no
field a prompt could be put in, and a caller passing another name or a list fails its tests.

    {"ts": "2025-01-31T12:00:00.123Z", "request_id": "9f0c...", "key_id": "team-a-1",
     "rule": "shield", "action": "block", "phase": "input", "mode": "blocking",
     "reasons": "prompt_injection", "score": 0.97, "latency_ms": 12.5}

Writing never blocks the event loop: `record` serialises the line (a few microseconds) into a
bounded buffer, and one writer task hands whole batches to a thread, one `write` per batch on
a descriptor opened with O_APPEND, so lines of several processes appending to one local file
do not interleave (the kernel appends each write whole). When the buffer is full a record is
dropped and counted (`dropped`); a batch the file refused (disk full) is counted in `failed`.
`close` writes what is buffered.

Rotation is the platform's: with a file, rotate by copy-and-truncate (logrotate's
`copytruncate`), which O_APPEND writes follow; or write to standard output (`-`) for the
container runtime to collect, where batches go out in writes of at most PIPE_BUF bytes so that
no line is torn by other writers of the same pipe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import time
from collections.abc import Callable, Iterable, Iterator

import orjson

from edgeproxy.background import Background

log = logging.getLogger(__name__)

# What the proxy did: let it pass, refused it, rewrote part of it, only noted what a guard
# would have done (monitoring and audit modes), or could not get a decision.
ACTIONS = ("allow", "block", "redact", "flag", "error")
# The only fields a record may carry besides request_id, key_id, rule and action.
FIELDS = frozenset(
    {
        "phase",  # input | output
        "mode",  # blocking | monitoring | audit
        "verdict",  # the guard's own action where it differs from what the proxy did
        "reasons",  # the guard's rule ids, comma-separated
        "score",  # the highest score among the reasons
        "latency_ms",
        "failure",  # why no decision came: timeout, unreachable, broken, status, ...
        "fail_open",  # whether the proxy let the request pass without a decision
        "team",
        "model",
        "operation",
        "category",  # a detector's kind of finding (email, api_key), never the finding
        "count",  # how many findings
    }
)
MAX_VALUE = 128
OTHER_RULE = "other"
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


def audit_line(
    ts: str,
    request_id: str,
    key_id: str | None,
    rule: str,
    action: str,
    *,
    fields: dict[str, str | int | float | bool | None],
) -> bytes:
    """One JSONL line; ValueError or TypeError for a field or action the log does not take."""
    if action not in ACTIONS:
        raise ValueError(f"action {action!r} is not one of {ACTIONS}")
    record: dict[str, str | int | float | bool | None] = {
        "ts": ts,
        "request_id": request_id[:MAX_VALUE],
        "key_id": None if key_id is None else key_id[:MAX_VALUE],
        "rule": rule[:MAX_VALUE],
        "action": action,
    }
    for name, value in fields.items():
        if name not in FIELDS:
            raise ValueError(f"the audit log has no field {name!r} (allowed: {sorted(FIELDS)})")
        if isinstance(value, str):
            record[name] = value[:MAX_VALUE]
        elif value is None or isinstance(value, int | float):
            record[name] = value
        else:
            raise TypeError(f"audit field {name!r} must be a scalar, not {type(value).__name__}")
    return orjson.dumps(record) + b"\n"


class DecisionCounter:
    """Decisions by rule and action, read at scrape time as
    edgeproxy_guardrail_decisions_total{rule, action}. Labels stay bounded: a rule outside the
    set given at construction counts as `other`, and actions are `ACTIONS`."""

    __slots__ = ("counts", "rules")

    def __init__(self, rules: Iterable[str]) -> None:
        self.rules = frozenset(rules) | {OTHER_RULE}
        self.counts = {(rule, action): 0 for rule in sorted(self.rules) for action in ACTIONS}

    def count(self, rule: str, action: str) -> None:
        key = (rule if rule in self.rules else OTHER_RULE, action)
        if key not in self.counts:
            raise ValueError(f"action {action!r} is not one of {ACTIONS}")
        self.counts[key] += 1

    def samples(self) -> Iterator[tuple[str, str, int]]:
        for (rule, action), count in self.counts.items():
            yield rule, action, count


class AuditLog:
    """The JSONL audit log at `target` (a path, or `-` for standard output)."""

    __slots__ = (
        "_buffer",
        "_clock",
        "_closing",
        "_fd",
        "_max_pending",
        "_stamp",
        "_target",
        "_wake",
        "_writer",
        "dropped",
        "failed",
        "written",
    )

    def __init__(
        self,
        target: str,
        *,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not target:
            raise ValueError("the audit log needs a file path, or '-' for standard output")
        self._target = target
        self._max_pending = max_pending
        self._clock = clock
        self._stamp = Timestamps()
        self._buffer: list[bytes] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._fd: int | None = None
        self._closing = False
        self.dropped = 0  # records refused because the buffer was full or the log closed
        self.failed = 0  # records lost because the file refused a write
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def open(self, background: Background) -> None:
        """Open the target for appending (created 0600 if absent) and start the writer."""
        if self._target == STDOUT:
            self._fd = _STDOUT_FD
        else:
            self._fd = await asyncio.to_thread(
                os.open,
                self._target,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                _CREATE_MODE,
            )
        self._writer = background.service("audit-log", self._write_batches())

    def record(
        self,
        request_id: str,
        key_id: str | None,
        rule: str,
        action: str,
        **fields: str | int | float | bool | None,
    ) -> None:
        """Queue one decision; never waits. Only names in `FIELDS` are taken (see above)."""
        ts = self._stamp(self._clock())
        line = audit_line(ts, request_id, key_id, rule, action, fields=fields)
        if self._closing or len(self._buffer) >= self._max_pending:
            self.dropped += 1
            return
        self._buffer.append(line)
        self._wake.set()

    async def close(self) -> None:
        """Write everything buffered, stop the writer and close the file. A batch being written
        is finished even if this wait is cancelled: the file closes only after it."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await asyncio.shield(self._writer)
            self._writer = None
        self.dropped += len(self._buffer)  # only when the log was never opened
        self._buffer = []
        fd, self._fd = self._fd, None
        if fd is not None and fd != _STDOUT_FD:
            await asyncio.to_thread(os.close, fd)

    async def _write_batches(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                batch, self._buffer = self._buffer, []
                await self._write(batch)
            if self._closing:
                return

    async def _write(self, batch: list[bytes]) -> None:
        fd = self._fd
        assert fd is not None
        writes = _pipe_sized(batch) if fd == _STDOUT_FD else [b"".join(batch)]
        try:
            await asyncio.to_thread(_write_all, fd, writes)
        except OSError as exc:
            self.failed += len(batch)
            log.error("audit log %s: %d records lost: %s", self._target, len(batch), exc)
            return
        self.written += len(batch)


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
