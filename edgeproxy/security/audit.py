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
bounded buffer, and one writer task hands whole batches to `edgeproxy.jsonl.AppendFile`, which
appends each batch in one write from a thread, so lines of several processes appending to one
file do not interleave (rotation and standard output are described there). When the buffer is
full a record is dropped and counted (`dropped`); a batch the file refused (disk full) is
counted in `failed`. `close` writes what is buffered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator

import orjson

from edgeproxy.background import Background
from edgeproxy.jsonl import AppendFile, Timestamps

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
        "_file",
        "_max_pending",
        "_stamp",
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
        self._file = AppendFile(target)
        self._max_pending = max_pending
        self._clock = clock
        self._stamp = Timestamps()
        self._buffer: list[bytes] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0  # records refused because the buffer was full or the log closed
        self.failed = 0  # records lost because the file refused a write
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def open(self, background: Background) -> None:
        """Open the target for appending (created 0600 if absent) and start the writer."""
        await self._file.open()
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
        await self._file.close()

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
        try:
            await self._file.append(batch)
        except OSError as exc:
            self.failed += len(batch)
            log.error("audit log %s: %d records lost: %s", self._file.target, len(batch), exc)
            return
        self.written += len(batch)
