"""The event-stream decoder yields the same messages however the bytes are split, agrees with
AWS's published test vectors, and refuses corrupt frames; the encoder round-trips every type."""

from __future__ import annotations

import random
import struct
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import orjson
import pytest

from edgeproxy.eventstream import (
    EventMessage,
    EventStreamDecoder,
    EventStreamError,
    HeaderValue,
    Int8,
    Int16,
    Int64,
    encode_message,
)

VECTORS = Path(__file__).parent / "data" / "eventstream"
FOO_BAR = b"{'foo':'bar'}"


def vector(name: str) -> bytes:
    return bytes.fromhex((VECTORS / f"{name}.hex").read_text())


def decode_all(chunks: list[bytes]) -> list[EventMessage]:
    decoder = EventStreamDecoder()
    messages = [message for chunk in chunks for message in decoder.feed(chunk)]
    decoder.finish()
    return messages


def with_raw_headers(head: bytes, payload: bytes = b"") -> bytes:
    """A frame with correct lengths and CRCs around header bytes the encoder would refuse."""
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return frame + struct.pack(">I", zlib.crc32(frame))


def event(event_type: str, body: dict[str, object]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json"}
    return encode_message({**headers, ":message-type": "event"}, orjson.dumps(body))


THROTTLED = encode_message(
    {
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
        ":message-type": "exception",
    },
    b'{"message":"Too many requests, please wait before trying again."}',
)
CONVERSE_STREAM = [
    event("messageStart", {"p": "abcdefghijkl", "role": "assistant"}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "H\u00e9llo"}}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " \u2713 \U0001f642"}}),
    event("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefghijklmnopqrstuvwxyzABCD"}),
    event("messageStop", {"p": "abcdefg", "stopReason": "end_turn"}),
    event(
        "metadata",
        {"metrics": {"latencyMs": 212}, "usage": {"inputTokens": 9, "outputTokens": 4}},
    ),
    THROTTLED,
]
STREAM = b"".join(CONVERSE_STREAM)


# ── AWS's published vectors ──────────────────────────────────────────────────────────────────

PUBLISHED = [
    ("empty_message", {}, b""),
    ("payload_no_headers", {}, FOO_BAR),
    ("int32_header", {"event-type": 40972}, FOO_BAR),
    ("payload_one_str_header", {"content-type": "application/json"}, FOO_BAR),
    (
        "all_headers",
        {
            "event-type": 40972,
            "content-type": "application/json",
            "bool false": False,
            "bool true": True,
            "byte": Int8(-49),
            "byte buf": b"I'm a little teapot!",
            "timestamp": datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=8675309),
            "int16": Int16(42),
            "int64": Int64(42424242),
            "uuid": UUID("01020304-0506-0708-090a-0b0c0d0e0f10"),
        },
        FOO_BAR,
    ),
]


@pytest.mark.parametrize(("name", "headers", "payload"), PUBLISHED)
def test_published_vectors_decode_to_their_documented_headers_and_payload(
    name: str, headers: dict[str, HeaderValue], payload: bytes
) -> None:
    [message] = decode_all([vector(name)])
    assert message == EventMessage(headers, payload)
    assert list(message.headers) == list(headers)
    assert [type(value) for value in message.headers.values()] == [
        type(value) for value in headers.values()
    ]


@pytest.mark.parametrize("name", [name for name, _, _ in PUBLISHED])
def test_published_vectors_encode_back_to_the_same_bytes(name: str) -> None:
    [message] = decode_all([vector(name)])
    assert encode_message(message.headers, message.payload) == vector(name)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("corrupted_length", "prelude CRC mismatch"),
        ("corrupted_header_len", "prelude CRC mismatch"),
        ("corrupted_headers", "message CRC mismatch"),
        ("corrupted_payload", "message CRC mismatch"),
        ("duplicate_header", "header 'test' appears twice"),
        ("invalid_headers_length", "headers length 4278190338 does not fit"),
        ("invalid_payload_length_prelude", "message length 25165857 outside 16..16777216"),
    ],
)
def test_published_negative_vectors_are_refused(name: str, problem: str) -> None:
    with pytest.raises(EventStreamError, match=problem):
        EventStreamDecoder().feed(vector(name))


# ── any chunk boundary ───────────────────────────────────────────────────────────────────────


def splits(data: bytes, rng: random.Random, count: int) -> list[list[bytes]]:
    """Every two-way split, `count` random many-way splits, and one byte at a time."""
    ways = [[data[:i], data[i:]] for i in range(len(data) + 1)]
    for _ in range(count):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(2, 40)))
        ways.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    ways.append([bytes([byte]) for byte in data])
    return ways


def test_the_whole_stream_decodes_to_one_message_per_frame() -> None:
    messages = decode_all([STREAM])
    assert [m.event_type for m in messages] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
        None,
    ]
    assert orjson.loads(messages[1].payload)["delta"]["text"] == "H\u00e9llo"
    assert [m.message_type for m in messages] == ["event"] * 6 + ["exception"]


def test_every_split_of_a_stream_decodes_to_the_same_messages() -> None:
    expected = decode_all([STREAM])
    for chunks in splits(STREAM, random.Random(7), 300):
        assert decode_all(chunks) == expected


def test_a_message_is_returned_by_the_feed_that_completes_it() -> None:
    decoder = EventStreamDecoder()
    for frame in CONVERSE_STREAM:
        *early, last = [frame[:5], frame[5:13], frame[13:-1], frame[-1:]]
        assert [decoder.feed(part) for part in early] == [[], [], []]
        assert decoder.feed(last) == decode_all([frame])
        assert decoder.pending == 0


def test_a_prelude_split_in_two_waits_for_its_second_half() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(THROTTLED[:7]) == []
    assert decoder.pending == 7
    [message] = decoder.feed(THROTTLED[7:])
    assert message.exception_type == "throttlingException"


def test_many_messages_in_one_chunk_come_out_in_order() -> None:
    doubled = STREAM + STREAM
    assert decode_all([doubled]) == decode_all([STREAM]) * 2


def test_a_stream_that_ends_inside_a_message_is_reported_at_finish() -> None:
    decoder = EventStreamDecoder()
    decoder.feed(STREAM[:-3])
    with pytest.raises(EventStreamError, match="stream ended inside a message"):
        decoder.finish()


# ── corruption ───────────────────────────────────────────────────────────────────────────────


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def prelude(total: int, headers: int = 0) -> bytes:
    head = struct.pack(">II", total, headers)
    return head + struct.pack(">I", zlib.crc32(head))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (flip(THROTTLED, 2), "prelude CRC mismatch"),
        (flip(THROTTLED, 6), "prelude CRC mismatch"),
        (flip(THROTTLED, 9), "prelude CRC mismatch"),
        (flip(THROTTLED, 20), "message CRC mismatch"),
        (flip(THROTTLED, len(THROTTLED) - 10), "message CRC mismatch"),
        (flip(THROTTLED, len(THROTTLED) - 1), "message CRC mismatch"),
        (prelude(0xFFFFFFFF), "message length 4294967295 outside"),
        (prelude(1 << 30), "message length 1073741824 outside"),
        (prelude(15), "message length 15 outside"),
        (prelude(0), "message length 0 outside"),
        (prelude(40, headers=25), "headers length 25 does not fit in a 40-byte message"),
        (with_raw_headers(b"\x01a\x0a"), "header 'a' has unknown value type 10"),
        (with_raw_headers(b"\x01a\x07\x00\x05abc"), "header 'a' runs past the headers section"),
        (with_raw_headers(b"\x01a\x04\x00\x00"), "header 'a' runs past the headers section"),
        (with_raw_headers(b"\x01a\x06\x00"), "header 'a' runs past the headers section"),
        (with_raw_headers(b"\x05ab"), "a header name runs past the headers section"),
        (with_raw_headers(b"\x01a\x07\x00\x01\xff"), "header text is not UTF-8"),
        (with_raw_headers(b"\x02\xc3\x28\x00"), "header text is not UTF-8"),
    ],
)
def test_corrupt_frames_raise_an_event_stream_error(data: bytes, problem: str) -> None:
    with pytest.raises(EventStreamError, match=problem):
        EventStreamDecoder().feed(data)


def test_an_absurd_length_is_refused_as_soon_as_the_prelude_arrives() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(prelude(1 << 30)[:11]) == []
    with pytest.raises(EventStreamError):
        decoder.feed(prelude(1 << 30)[11:])


@pytest.mark.parametrize(("size", "accepted"), [(99, True), (100, True), (101, False)])
def test_the_maximum_message_size_is_configurable(size: int, accepted: bool) -> None:
    frame = encode_message({}, b"x" * (size - 16))
    decoder = EventStreamDecoder(max_message_size=100)
    if accepted:
        assert decoder.feed(frame) == [EventMessage({}, b"x" * (size - 16))]
    else:
        with pytest.raises(EventStreamError, match=r"message length 101 outside 16\.\.100"):
            decoder.feed(frame)


def test_a_maximum_below_the_smallest_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        EventStreamDecoder(max_message_size=15)


def test_after_an_error_the_decoder_keeps_refusing() -> None:
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamError, match="message CRC"):
        decoder.feed(flip(THROTTLED, 20))
    with pytest.raises(EventStreamError, match="message CRC"):
        decoder.feed(STREAM)
    with pytest.raises(EventStreamError, match="message CRC"):
        decoder.finish()


def test_event_stream_errors_are_value_errors() -> None:
    assert issubclass(EventStreamError, ValueError)


# ── encoding ─────────────────────────────────────────────────────────────────────────────────

WHEN = datetime(2024, 6, 20, 12, 30, 15, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "wire_type"),
    [
        (True, 0),
        (False, 1),
        (Int8(-128), 2),
        (Int8(127), 2),
        (Int16(-32768), 3),
        (Int16(32767), 3),
        (0, 4),
        (-(1 << 31), 4),
        ((1 << 31) - 1, 4),
        (1 << 31, 5),
        (-(1 << 31) - 1, 5),
        (-(1 << 63), 5),
        ((1 << 63) - 1, 5),
        (Int64(7), 5),
        (b"", 6),
        (b"\x00\xff binary", 6),
        ("", 7),
        ("h\u00e9llo \u2713 \U0001f642", 7),
        (WHEN, 8),
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), 8),
        (UUID("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"), 9),
    ],
)
def test_every_header_type_round_trips(value: HeaderValue, wire_type: int) -> None:
    frame = encode_message({"h": value}, b"payload")
    assert frame[12 + 2] == wire_type  # after the prelude, the name length and the name
    [message] = decode_all([frame])
    assert message == EventMessage({"h": value}, b"payload")
    widths: dict[int, type] = {2: Int8, 3: Int16, 4: int, 5: Int64}
    assert type(message.headers["h"]) is widths.get(wire_type, type(value))


def test_timestamps_keep_milliseconds_and_decode_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    sent = datetime(2024, 6, 20, 14, 30, 15, 123987, tzinfo=paris)
    [message] = decode_all([encode_message({"at": sent}, b"")])
    assert message.headers["at"] == WHEN
    assert message.headers["at"].tzinfo is UTC  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "error", "problem"),
    [
        ({"": "x"}, ValueError, "must be 1 to 255 bytes"),
        ({"n" * 256: "x"}, ValueError, "must be 1 to 255 bytes"),
        ({"s": "x" * 65536}, ValueError, "longer than 65535 bytes"),
        ({"b": b"x" * 65536}, ValueError, "longer than 65535 bytes"),
        ({"i": 1 << 63}, ValueError, "does not fit in a 64-bit header"),
        ({"t": datetime(2024, 1, 1)}, ValueError, "timezone-aware"),
        ({"f": 1.5}, TypeError, "cannot encode a float"),
    ],
)
def test_headers_that_cannot_be_encoded_are_refused(
    headers: dict[str, HeaderValue], error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match=problem):
        encode_message(headers, b"")


@pytest.mark.parametrize(
    ("width", "value"), [(Int8, 128), (Int8, -129), (Int16, 1 << 15), (Int64, 1 << 63)]
)
def test_sized_integers_refuse_values_that_do_not_fit(width: type[int], value: int) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        width(value)


def test_sized_integers_compare_equal_to_plain_ints() -> None:
    assert Int8(5) == 5 and Int16(5) == 5 and Int64(5) == 5
    assert {Int64(5): "x"}[5] == "x"


# ── what a message says it is ────────────────────────────────────────────────────────────────


def test_message_properties_read_the_aws_headers() -> None:
    [start, *_, exception] = decode_all([STREAM])
    assert (start.message_type, start.event_type, start.exception_type) == (
        "event",
        "messageStart",
        None,
    )
    assert (exception.message_type, exception.exception_type) == (
        "exception",
        "throttlingException",
    )
    error = EventMessage(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"},
        b"",
    )
    assert (error.message_type, error.error_code, error.error_message) == (
        "error",
        "InternalFailure",
        "boom",
    )


def test_properties_ignore_headers_of_the_wrong_type() -> None:
    assert EventMessage({":event-type": 5}, b"").event_type is None
