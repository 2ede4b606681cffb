"""The SSE decoder gives the same events however the bytes are split; the aligner never
releases half an event."""

from __future__ import annotations

import random

import pytest

from edgeproxy.sse import EventAligner, SSEDecoder, SSEEvent, encode_event

ANTHROPIC_STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta",'
    b'"delta":{"text":"h\xc3\xa9llo \xe2\x9c\x93"}}\n\n'
    b": a comment line\n\n"
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
OPENAI_STREAM = (
    b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"\xf0\x9f\x99\x82"}}]}\n\n'
    b"data: [DONE]\n\n"
)


def decode_all(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def splits(data: bytes, rng: random.Random, count: int) -> list[list[bytes]]:
    """Every two-way split, plus `count` random many-way splits."""
    ways = [[data[:i], data[i:]] for i in range(len(data) + 1)]
    for _ in range(count):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 20)))
        ways.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    ways.append([bytes([b]) for b in data])
    return ways


@pytest.mark.parametrize(
    "stream", [ANTHROPIC_STREAM, OPENAI_STREAM, OPENAI_STREAM.replace(b"\n", b"\r\n")]
)
def test_every_split_of_a_stream_decodes_to_the_same_events(stream: bytes) -> None:
    expected = decode_all([stream])
    assert expected
    for chunks in splits(stream, random.Random(7), 200):
        assert decode_all(chunks) == expected


def test_events_carry_name_data_and_id() -> None:
    events = decode_all([b"id: 7\nevent: delta\ndata: a\ndata: b\n\ndata:no-space\n\n"])
    assert events == [SSEEvent("delta", b"a\nb", "7"), SSEEvent("message", b"no-space", "7")]


def test_comments_and_empty_events_dispatch_nothing() -> None:
    assert decode_all([b": keep-alive\n\n\n\nevent: x\n\n"]) == []


def test_lone_carriage_returns_end_lines() -> None:
    assert decode_all([b"data: a\r\r", b"data: b\r", b"\r"]) == [
        SSEEvent("message", b"a"),
        SSEEvent("message", b"b"),
    ]


def test_encoder_round_trips_through_the_decoder() -> None:
    frame = encode_event(b"line one\nline two", "note")
    assert decode_all([frame]) == [SSEEvent("note", b"line one\nline two")]


@pytest.mark.parametrize(
    "stream", [ANTHROPIC_STREAM, OPENAI_STREAM, OPENAI_STREAM.replace(b"\n", b"\r\n")]
)
def test_aligner_releases_only_whole_events_and_loses_nothing(stream: bytes) -> None:
    for chunks in splits(stream, random.Random(3), 100):
        aligner = EventAligner()
        released = [aligner.whole_events(chunk) for chunk in chunks]
        assert b"".join(released) + aligner.rest() == stream
        for piece in released:
            assert piece == b"" or piece.endswith((b"\n\n", b"\r\n\r\n"))


def test_aligner_hands_back_a_truncated_tail_only_at_the_end() -> None:
    aligner = EventAligner()
    assert aligner.whole_events(b'data: {"a":1}\n\ndata: {"tr') == b'data: {"a":1}\n\n'
    assert aligner.rest() == b'data: {"tr'


def test_aligner_lets_an_oversized_event_through_unbuffered() -> None:
    aligner = EventAligner(max_held=8)
    assert aligner.whole_events(b"data: 0123456789") == b"data: 0123456789"
