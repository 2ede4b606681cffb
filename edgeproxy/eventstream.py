"""AWS event stream framing (`application/vnd.amazon.eventstream`): incremental decoder, encoder.

Bedrock's ConverseStream answers in binary frames rather than SSE. Each frame, big-endian:

    total length (u32) | headers length (u32) | CRC32 of those 8 bytes   ← the prelude
    headers | payload | CRC32 of everything before it                     ← the message CRC

A header is a 1-byte name length, the UTF-8 name, a 1-byte type and the value. Values map to
Python types so that decoding and re-encoding gives back the same bytes:

    0, 1  bool true, false      bool
    2     byte (int8)           Int8
    3     short (int16)         Int16
    4     integer (int32)       int (a plain int in int32 range)
    5     long (int64)          Int64 (a plain int outside int32 range also encodes as long)
    6     byte array            bytes
    7     string                str
    8     timestamp (ms, i64)   datetime, timezone-aware (decoded in UTC)
    9     uuid                  uuid.UUID

`Int8`, `Int16` and `Int64` are `int` subclasses: they compare equal to plain ints and only
remember the width. A header name may appear once per message: a repeat is an error, since
a dict could keep only one of the two values.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Self
from uuid import UUID

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
PRELUDE_SIZE = 12
MIN_MESSAGE_SIZE = PRELUDE_SIZE + 4

_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class EventStreamError(ValueError):
    """The byte stream is not a valid event stream; it cannot be resynchronised after this."""


class _Sized(int):
    """An int that remembers the header width it travels in, checked on construction."""

    __slots__ = ()
    bits: ClassVar[int]

    def __new__(cls, value: int) -> Self:
        limit = 1 << (cls.bits - 1)
        if not -limit <= value < limit:
            raise ValueError(f"{value} does not fit in {cls.__name__}")
        return super().__new__(cls, value)


class Int8(_Sized):
    bits = 8


class Int16(_Sized):
    bits = 16


class Int64(_Sized):
    bits = 64


HeaderValue = bool | int | bytes | str | datetime | UUID


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One decoded frame. The properties read the headers AWS uses to say what a frame is."""

    headers: dict[str, HeaderValue]
    payload: bytes

    @property
    def message_type(self) -> str | None:
        """`event`, `exception` (a modelled error) or `error` (a service-level one)."""
        return self._text(":message-type")

    @property
    def event_type(self) -> str | None:
        return self._text(":event-type")

    @property
    def exception_type(self) -> str | None:
        return self._text(":exception-type")

    @property
    def error_code(self) -> str | None:
        return self._text(":error-code")

    @property
    def error_message(self) -> str | None:
        return self._text(":error-message")

    def _text(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


class EventStreamDecoder:
    """Feed it bytes as they arrive; it returns the messages completed by each feed.

    Every byte is copied once into the buffer and a frame is sliced out only when it is
    complete, so a large frame arriving in many small chunks costs linear time. After an
    error the decoder keeps raising it: without a valid length there is no next frame to find.
    """

    __slots__ = ("_buffer", "_error", "_frame_size", "max_message_size")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < MIN_MESSAGE_SIZE:
            raise ValueError(f"max_message_size must be at least {MIN_MESSAGE_SIZE} bytes")
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._frame_size = 0  # total length of the frame being gathered, once its prelude is in
        self._error: EventStreamError | None = None

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[EventMessage]:
        """The messages this chunk completes. A corrupt frame raises, and the messages before
        it in the same chunk go with it: the stream has failed either way."""
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += chunk
        messages: list[EventMessage] = []
        start = 0
        try:
            while True:
                available = len(buffer) - start
                if not self._frame_size:
                    if available < PRELUDE_SIZE:
                        break
                    self._frame_size = self._read_prelude(start)
                if available < self._frame_size:
                    break
                end = start + self._frame_size
                with memoryview(buffer) as view:
                    frame = bytes(view[start:end])
                messages.append(_decode_frame(frame))
                start = end
                self._frame_size = 0
        except EventStreamError as error:
            self._error = error
            raise
        del buffer[:start]
        return messages

    def finish(self) -> None:
        """Call when the stream ends: a partial frame left over means it was cut short."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            raise EventStreamError(
                f"stream ended inside a message ({len(self._buffer)} bytes of it received)"
            )

    def _read_prelude(self, start: int) -> int:
        total, headers_size, crc = _PRELUDE.unpack_from(self._buffer, start)
        computed = zlib.crc32(self._buffer[start : start + 8])
        if computed != crc:
            raise EventStreamError(
                f"prelude CRC mismatch: frame says {crc:#010x}, bytes give {computed:#010x}"
            )
        if not MIN_MESSAGE_SIZE <= total <= self.max_message_size:
            raise EventStreamError(
                f"message length {total} outside {MIN_MESSAGE_SIZE}..{self.max_message_size}"
            )
        if headers_size > total - MIN_MESSAGE_SIZE:
            raise EventStreamError(
                f"headers length {headers_size} does not fit in a {total}-byte message"
            )
        return int(total)


def _decode_frame(frame: bytes) -> EventMessage:
    """A complete frame whose prelude was already checked: verify its CRC, read its parts."""
    (crc,) = _U32.unpack_from(frame, len(frame) - 4)
    computed = zlib.crc32(memoryview(frame)[:-4])
    if computed != crc:
        raise EventStreamError(
            f"message CRC mismatch: frame says {crc:#010x}, bytes give {computed:#010x}"
        )
    headers_end = PRELUDE_SIZE + _U32.unpack_from(frame, 4)[0]
    return EventMessage(_decode_headers(frame, headers_end), frame[headers_end:-4])


def _decode_headers(frame: bytes, end: int) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    at = PRELUDE_SIZE
    while at < end:
        name_end = at + 1 + frame[at]
        if name_end >= end:
            raise EventStreamError("a header name runs past the headers section")
        name = _text(frame[at + 1 : name_end])
        kind = frame[name_end]
        if name in headers:
            raise EventStreamError(f"header {name!r} appears twice in one message")
        headers[name], at = _decode_value(frame, kind, name_end + 1, end, name)
    return headers


def _decode_value(frame: bytes, kind: int, at: int, end: int, name: str) -> tuple[HeaderValue, int]:
    """The value of type `kind` starting at `at`, and the offset just past it."""
    if kind <= 1:
        return kind == 0, at
    if kind in (6, 7):
        if at + 2 > end:
            raise EventStreamError(f"header {name!r} runs past the headers section")
        at += 2
        size = _U16.unpack_from(frame, at - 2)[0]
    elif kind in _FIXED:
        size = _FIXED[kind][0].size
    else:
        raise EventStreamError(f"header {name!r} has unknown value type {kind}")
    stop = at + size
    if stop > end:
        raise EventStreamError(f"header {name!r} runs past the headers section")
    raw = frame[at:stop]
    if kind == 6:
        return raw, stop
    if kind == 7:
        return _text(raw), stop
    layout, convert = _FIXED[kind]
    return convert(layout.unpack(raw)[0]), stop


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as error:
        raise EventStreamError(f"header text is not UTF-8: {raw[:32]!r}") from error


def _timestamp(milliseconds: int) -> datetime:
    try:
        return _EPOCH + milliseconds * _MILLISECOND
    except OverflowError as error:
        raise EventStreamError(f"timestamp {milliseconds} ms is out of range") from error


_FIXED: dict[int, tuple[struct.Struct, Callable[..., HeaderValue]]] = {
    2: (struct.Struct(">b"), Int8),
    3: (struct.Struct(">h"), Int16),
    4: (struct.Struct(">i"), int),
    5: (struct.Struct(">q"), Int64),
    8: (struct.Struct(">q"), _timestamp),
    9: (struct.Struct(">16s"), lambda raw: UUID(bytes=raw)),
}
_INT_TYPES: dict[type, tuple[int, struct.Struct]] = {
    Int8: (2, _FIXED[2][0]),
    Int16: (3, _FIXED[3][0]),
    Int64: (5, _FIXED[5][0]),
}


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One frame with these headers (in order) and payload; the value types are in the table
    at the top of this module."""
    head = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = PRELUDE_SIZE + len(head) + len(payload) + 4
    if total > 0xFFFFFFFF:
        raise ValueError(f"a {total}-byte message does not fit the 32-bit length field")
    frame = bytearray(_PRELUDE.size)
    _U32.pack_into(frame, 0, total)
    _U32.pack_into(frame, 4, len(head))
    _U32.pack_into(frame, 8, zlib.crc32(frame[:8]))
    frame += head
    frame += payload
    frame += _U32.pack(zlib.crc32(frame))
    return bytes(frame)


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode()
    if not 0 < len(raw_name) <= 255:
        raise ValueError(f"header name {name!r} must be 1 to 255 bytes of UTF-8")
    return bytes((len(raw_name),)) + raw_name + _encode_value(name, value)


def _encode_value(name: str, value: HeaderValue) -> bytes:
    if isinstance(value, bool):
        return b"\x00" if value else b"\x01"
    if isinstance(value, int):
        kind, layout = _INT_TYPES.get(type(value)) or _plain_int(value)
        return bytes((kind,)) + layout.pack(value)
    if isinstance(value, str | bytes):
        raw = value.encode() if isinstance(value, str) else value
        if len(raw) > 0xFFFF:
            raise ValueError(f"header {name!r} is longer than 65535 bytes")
        return (b"\x07" if isinstance(value, str) else b"\x06") + _U16.pack(len(raw)) + raw
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"header {name!r}: timestamps must be timezone-aware")
        return b"\x08" + _FIXED[8][0].pack((value - _EPOCH) // _MILLISECOND)
    if isinstance(value, UUID):
        return b"\x09" + value.bytes
    raise TypeError(f"header {name!r}: cannot encode a {type(value).__name__}")


def _plain_int(value: int) -> tuple[int, struct.Struct]:
    """A plain int travels as an integer (int32) when it fits, else as a long (int64)."""
    if -(1 << 31) <= value < 1 << 31:
        return 4, _FIXED[4][0]
    if -(1 << 63) <= value < 1 << 63:
        return 5, _FIXED[5][0]
    raise ValueError(f"{value} does not fit in a 64-bit header")
