"""Server-Sent Events: an incremental decoder that copes with any chunk boundary, and an encoder.

The decoder works on bytes so a frame split inside a multi-byte UTF-8 character is harmless;
it follows the WHATWG rules for line endings (CRLF, LF or CR), comments and field parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(slots=True, frozen=True)
class SSEEvent:
    """One dispatched event. `data` keeps the raw bytes so JSON can be parsed without decoding."""

    event: str
    data: bytes
    id: str | None = None


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed by each feed."""

    __slots__ = ("_after_cr", "_buf", "_data", "_event", "_has_data", "_id")

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[bytes] = []
        self._has_data = False
        self._id: str | None = None
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the second half of a CRLF whose CR ended the previous chunk
        self._after_cr = chunk[-1:] == b"\r"
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
        start = 0
        for match in _LINE_END.finditer(buf):
            self._line(buf[start : match.start()], events)
            start = match.end()
        self._buf = buf[start:]
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line[0] == 0x3A:  # ':' starts a comment
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._has_data = True
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._has_data:
            events.append(SSEEvent(self._event or "message", b"\n".join(self._data), self._id))
        self._event = ""
        self._data = []
        self._has_data = False


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame; multi-line data becomes several `data:` lines as the format requires."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    if b"\n" in data:
        body = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    else:
        body = b"data: " + data + b"\n"
    return head + body + b"\n"


class EventAligner:
    """Cuts a relayed byte stream at event boundaries, holding back a partial trailing event.

    A client cannot act on half an event, so holding it costs nothing, and it means an error
    event appended after an upstream failure is never glued onto a truncated one. A single
    event larger than `max_held` is let through unaligned rather than buffered without bound.
    """

    __slots__ = ("_held", "max_held")

    def __init__(self, max_held: int = 1 << 20) -> None:
        self._held = b""
        self.max_held = max_held

    def whole_events(self, chunk: bytes) -> bytes:
        data = self._held + chunk if self._held else chunk
        if b"\r" in data:
            end = max(_end_of(data, sep) for sep in (b"\n\n", b"\r\n\r\n", b"\r\r"))
        else:
            end = _end_of(data, b"\n\n")
        if end == 0 and len(data) > self.max_held:
            end = len(data)
        self._held = data[end:]
        return data[:end]

    def rest(self) -> bytes:
        """Whatever is held when the stream ends (an upstream that omits the final blank line)."""
        held, self._held = self._held, b""
        return held


def _end_of(data: bytes, separator: bytes) -> int:
    """Offset just past the last `separator` in `data`, or 0."""
    position = data.rfind(separator)
    return position + len(separator) if position >= 0 else 0
