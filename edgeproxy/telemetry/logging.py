"""Log setup: JSON or text lines on stderr, with every configured secret masked.

Nothing in edgeproxy logs a header or a body, but a redacting formatter is a second wall: any
configured credential that still reached a message (say, inside an exception from a library)
is masked (edgeproxy.redact) before the line is written. One record is one line in either
format: text lines escape line breaks and other control characters, so a value a client chose
(a model name, a path) cannot forge a line of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

import orjson

from edgeproxy.redact import Redactor

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Control characters as a text line shows them: \n, \r, \t, else \xNN.
_ESCAPED = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_ESCAPED |= {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_HOLD = 0.1  # seconds an added line may wait for others to be written with
_BATCH = 256  # lines written together at most
_HEAD_FIELDS = frozenset({"ts", "level", "logger", "msg"})


class RedactingFormatter(logging.Formatter):
    """Formats a record as JSON or text and masks every known secret in the result."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__()
        self._json = fmt == "json"
        self._redact = Redactor(secrets)
        self._stamp = (-1, "")  # (second, formatted)
        self._head: tuple[tuple[str, str, str, str], str] | None = None  # (of what, head)

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            extra["exception"] = self.formatException(record.exc_info)
        return self.render(
            record.created, record.levelname.lower(), record.name, record.getMessage(), extra
        )

    def render(
        self, created: float, level: str, logger: str, message: str, extra: dict[str, Any]
    ) -> str:
        """One line, for a record or for a line written without one (`LineHandler.add`)."""
        return self._redact.text(self.unmasked(created, level, logger, message, extra))

    def unmasked(
        self, created: float, level: str, logger: str, message: str, extra: dict[str, Any]
    ) -> str:
        """The line before secrets are masked: `LineHandler` masks a batch of them at once."""
        if self._json:
            if extra.keys() & _HEAD_FIELDS:  # the record's own field wins, as a dict merge does
                ts = self._timestamp(created)
                whole = {"ts": ts, "level": level, "logger": logger, "msg": message} | extra
                return orjson.dumps(whole, default=str).decode()
            head = self._json_head(created, level, logger, message)
            if not extra:
                return head + "}"
            return head + "," + orjson.dumps(extra, default=str).decode()[1:]
        fields = " ".join(f"{k}={v}" for k, v in extra.items())
        line = f"{level:7} {logger}: {message} {fields}".rstrip()
        return line.translate(_ESCAPED)

    def masked(self, text: str) -> str:
        return self._redact.text(text)

    def _json_head(self, created: float, level: str, logger: str, message: str) -> str:
        """`{"ts":…,"level":…,"logger":…,"msg":…` without its closing brace; the last one is
        kept, as the access log writes the same head for every line of a second."""
        key = (self._timestamp(created), level, logger, message)
        kept = self._head  # one tuple, read and replaced whole: records come from any thread
        if kept is None or kept[0] != key:
            head = orjson.dumps(
                {"ts": key[0], "level": level, "logger": logger, "msg": message}, default=str
            ).decode()[:-1]
            kept = self._head = (key, head)
        return kept[1]

    def _timestamp(self, created: float) -> str:
        """Local time to the second, formatted once a second."""
        second = int(created)
        kept = self._stamp  # one tuple, read and replaced whole: records come from any thread
        if kept[0] != second:
            kept = self._stamp = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second)),
            )
        return kept[1]


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The log's one stream: records are written at once, as any handler writes them; lines
    added with `add` (the access log, one a request) are held and written together, at most
    `_HOLD` seconds later or `_BATCH` lines at a time, in one write, their secrets masked in
    one pass over the batch. Every record first writes the held lines, so the log keeps its
    order; `flush`, which logging calls at exit, too."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        assert self.lock is not None, "Handler.__init__ creates it"
        self._guard = self.lock  # records are emitted under it, from any thread
        self._held: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(
        self,
        level: str,
        logger: str,
        message: str,
        extra: dict[str, Any],
        created: float | None = None,
    ) -> None:
        """Hold a line (`created`: its epoch time, by default now) for the next write."""
        formatter = self.formatter
        assert isinstance(formatter, RedactingFormatter), "configure() sets it"
        when = time.time() if created is None else created
        line = formatter.unmasked(when, level, logger, message, extra)
        with self._guard:
            self._held.append(line)
            held = len(self._held)
        if held >= _BATCH:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(_HOLD, self._written)
            except RuntimeError:  # no loop: nothing would come back for them
                self.flush()

    def _written(self) -> None:
        self._timer = None
        self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        if self._held:
            self.flush()
        super().emit(record)

    def flush(self) -> None:
        """Write the held lines. A stream that can no longer be written (closed under it)
        loses them, as a record's emit would, instead of failing its caller."""
        with self._guard, contextlib.suppress(OSError, ValueError):
            held, self._held = self._held, []
            if held:
                formatter = self.formatter
                assert isinstance(formatter, RedactingFormatter), "configure() sets it"
                # No secret spans two lines: each line escapes its line breaks.
                self.stream.write(formatter.masked("\n".join(held)) + "\n")
            super().flush()


def line_handler() -> LineHandler | None:
    """The handler `configure` installed, when it did (a library or a test may log through
    handlers of its own)."""
    return next((h for h in logging.getLogger().handlers if isinstance(h, LineHandler)), None)


def configure(level: str, fmt: str, secrets: Iterable[str], stream: TextIO | None = None) -> None:
    """Route every logger to `stream` (stderr) through the redacting formatter."""
    handler = LineHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True
