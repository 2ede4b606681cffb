"""Log setup: JSON or text lines on stderr, with every configured secret masked.

Nothing in edgeproxy logs a header or a body, but a redacting formatter is a second wall: any
configured credential that still reached a message (say, inside an exception from a library)
is masked (edgeproxy.redact) before the line is written. One record is one line in either
format: text lines escape line breaks and other control characters, so a value a client chose
(a model name, a path) cannot forge a line of its own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

import orjson

from edgeproxy.redact import Redactor

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Control characters as a text line shows them: \n, \r, \t, else \xNN.
_ESCAPED = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_ESCAPED |= {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


class RedactingFormatter(logging.Formatter):
    """Formats a record as JSON or text and masks every known secret in the result."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__()
        self._json = fmt == "json"
        self._redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            extra["exception"] = self.formatException(record.exc_info)
        if self._json:
            line = orjson.dumps(
                {
                    "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "msg": message,
                    **extra,
                },
                default=str,
            ).decode()
        else:
            fields = " ".join(f"{k}={v}" for k, v in extra.items())
            line = f"{record.levelname.lower():7} {record.name}: {message} {fields}".rstrip()
            line = line.translate(_ESCAPED)
        return self._redact.text(line)


def configure(level: str, fmt: str, secrets: Iterable[str], stream: TextIO | None = None) -> None:
    """Route every logger to `stream` (stderr) through the redacting formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True
