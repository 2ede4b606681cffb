"""Bedrock ConverseStream on cross-dialect routes: recorded event streams (binary AWS event
stream frames) decode to the same neutral events however the bytes are cut; exception frames
raise the mapped error after the events before them; broken framing is a broken upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from edgeproxy.dialects import bedrock
from edgeproxy.dialects.bedrock_stream import ConverseStreamDecoder
from edgeproxy.dialects.neutral import (
    Start,
    Stop,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)
from edgeproxy.errors import ProxyError
from edgeproxy.eventstream import encode_message
from tests.dialects.support import Decoded, assert_decodes_at_every_split, relay_decode, splits

DATA = Path(__file__).parent.parent / "data" / "bedrock"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ID = "msg_bdrk_0123456789abcdef01234567"
PARIS, OSLO = "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "tooluse_3vY0cQ2xTbWq1Lh8aPz9Xg"
SIGNATURE = (
    "EqoBCkgIBxABGAIiQGl0ZW1zIGFyZSBzaWduZWQgYnkgdGhlIG1vZGVsIHByb3ZpZGVyEgxrZXlfaWRfMDAwMRoM"
)


def frames(name: str) -> list[bytes]:
    """A recorded stream: one JSON line per frame (its headers and payload), framed as AWS
    frames it on the wire."""
    lines = (DATA / name).read_bytes().splitlines()
    return [
        encode_message(frame["headers"], orjson.dumps(frame["payload"]))
        for frame in map(orjson.loads, lines)
    ]


def recorded(name: str) -> bytes:
    return b"".join(frames(name))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, orjson.dumps(payload))


def exception(kind: str, message: str) -> bytes:
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, orjson.dumps({"message": message}))


def decoder() -> ConverseStreamDecoder:
    return bedrock.chat_stream_decoder("bedrock", model=MODEL, make_id=lambda: ID)


def decode(chunks: list[bytes]) -> Decoded:
    return relay_decode(decoder(), chunks)


def translate(*pairs: tuple[str, dict[str, Any]]) -> list[StreamEvent]:
    stream = decoder()
    out: list[StreamEvent] = []
    for kind, payload in pairs:
        stream.translate(kind, payload, out)
    return out


TEXT = [
    Start(ID, MODEL),
    TextDelta("Bonjour"),
    TextDelta(" ! Paris ✓ est "),
    TextDelta("la capitale 🇫🇷."),
    Stop("stop"),
    UsageReport(Usage(input_tokens=2060, output_tokens=11, cached_tokens=2048)),
]
TOOLS = [
    Start(ID, MODEL),
    TextDelta("I'll check"),
    TextDelta(" both cities."),
    ToolCallStart(0, PARIS, "get_weather"),
    ToolCallDelta(0, '{"city": "Pa'),
    ToolCallDelta(0, 'ris", "unit": "celsius"}'),
    ToolCallStart(1, OSLO, "get_weather"),
    ToolCallDelta(1, '{"ci'),
    ToolCallDelta(1, 'ty": "Oslo"}'),
    Stop("tool_calls"),
    UsageReport(Usage(input_tokens=1938, output_tokens=96, cache_write_tokens=1536)),
]
REASONING = [
    Start(ID, MODEL),
    ThinkingDelta("1009 is odd; "),
    ThinkingDelta("no prime up to 31 divides it."),
    ThinkingDelta("", SIGNATURE),
    TextDelta("Yes, 1009 is prime."),
    Stop("stop"),
    UsageReport(Usage(input_tokens=44, output_tokens=312)),
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("stream_text.jsonl", TEXT),
        ("stream_tools.jsonl", TOOLS),
        ("stream_reasoning.jsonl", REASONING),
    ],
)
def test_recorded_streams_decode_to_the_same_events_at_every_split_point(
    name: str, expected: list[StreamEvent]
) -> None:
    assert_decodes_at_every_split(decode, recorded(name), expected)


def test_streamed_tool_input_fragments_join_into_each_calls_arguments() -> None:
    events, _ = decode([recorded("stream_tools.jsonl")])
    arguments = ["", ""]
    for e in events:
        if isinstance(e, ToolCallDelta):
            arguments[e.index] += e.arguments
    assert [orjson.loads(a) for a in arguments] == [
        {"city": "Paris", "unit": "celsius"},
        {"city": "Oslo"},
    ]


def test_an_exception_frame_mid_stream_raises_the_mapped_error_after_the_text_before_it() -> None:
    for chunks in splits(recorded("stream_exception.jsonl"), count=20):
        events, err = decode(chunks)
        assert events == [Start(ID, MODEL), TextDelta("Partial")]
        assert err is not None
        assert (err.status, err.code, err.retryable) == (502, "upstream_error", True)
        assert err.message.startswith("Model stream error: the model's output could not be")


def test_an_exception_frame_is_raised_by_every_later_feed_and_by_close() -> None:
    stream = decoder()
    assert stream.feed(recorded("stream_exception.jsonl")) == [
        Start(ID, MODEL),
        TextDelta("Partial"),
    ]
    with pytest.raises(ProxyError) as fed:
        stream.feed(b"")
    with pytest.raises(ProxyError) as closed:
        stream.close()
    assert fed.value is closed.value
    assert fed.value.code == "upstream_error"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("internalServerException", 500, "upstream_error"),
        ("modelStreamErrorException", 502, "upstream_error"),
        ("validationException", 400, "invalid_request"),
        ("throttlingException", 429, "rate_limited"),
        ("serviceUnavailableException", 503, "overloaded"),
        ("someNewException", 502, "upstream_error"),
    ],
)
def test_every_stream_exception_type_maps_to_a_neutral_error(
    kind: str, status: int, code: str
) -> None:
    stream = event("messageStart", {"p": "abc", "role": "assistant"}) + exception(kind, "Sorry.")
    events, err = decode([stream])
    assert events == [Start(ID, MODEL)]
    assert err is not None
    assert (err.status, err.code, err.message) == (status, code, "Sorry.")


def test_a_service_error_frame_raises_with_its_code_and_message() -> None:
    headers = {
        ":error-code": "ThrottlingException",
        ":error-message": "Rate exceeded",
        ":message-type": "error",
    }
    events, err = decode([encode_message(headers, b"")])
    assert events == []
    assert err is not None
    assert (err.status, err.code, err.message) == (429, "rate_limited", "Rate exceeded")


@pytest.mark.parametrize(
    ("where", "offset"), [("payload", -8), ("message CRC", -2), ("prelude CRC", 9)]
)
def test_a_corrupted_frame_is_a_broken_upstream_at_every_split_point(
    where: str, offset: int
) -> None:
    parts = frames("stream_text.jsonl")
    bad = bytearray(parts[2])
    bad[offset] ^= 0x20
    stream = b"".join([*parts[:2], bytes(bad), *parts[3:]])
    for chunks in splits(stream, count=20):
        events, err = decode(chunks)
        assert err is not None, where
        assert (err.status, err.code) == (502, "upstream_protocol_error")
        assert "CRC" in err.detail
        assert events == TEXT[: len(events)]
        assert len(events) <= 2


def test_a_stream_cut_inside_a_frame_is_a_broken_upstream() -> None:
    stream = recorded("stream_text.jsonl")
    events, err = decode([stream[:-5]])
    assert events == TEXT[:-1]
    assert err is not None
    assert err.code == "upstream_protocol_error"


def test_a_stream_that_ends_before_message_stop_is_a_broken_upstream() -> None:
    parts = frames("stream_text.jsonl")
    events, err = decode([b"".join(parts[:4])])
    assert events == TEXT[:4]
    assert err is not None
    assert (err.code, err.detail) == ("upstream_protocol_error", "stream ended before messageStop")


def test_a_stream_is_complete_without_its_metadata() -> None:
    parts = frames("stream_text.jsonl")
    assert decode([b"".join(parts[:-1])]) == (TEXT[:-1], None)


def test_an_event_whose_payload_is_not_a_json_object_is_a_broken_upstream() -> None:
    headers = {":event-type": "contentBlockDelta", ":message-type": "event"}
    stream = event("messageStart", {"role": "assistant"}) + encode_message(headers, b"[1]")
    events, err = decode([stream])
    assert events == [Start(ID, MODEL)]
    assert err is not None
    assert err.code == "upstream_protocol_error"


# --- the translation of single events ---------------------------------------------------------


def test_a_tool_call_with_no_input_gets_empty_object_arguments() -> None:
    start = {"toolUse": {"toolUseId": "tooluse_a", "name": "list_files"}}
    assert translate(
        ("messageStart", {"role": "assistant"}),
        ("contentBlockStart", {"contentBlockIndex": 0, "start": start}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": ""}}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "tool_use"}),
    ) == [
        Start(ID, MODEL),
        ToolCallStart(0, "tooluse_a", "list_files"),
        ToolCallDelta(0, "{}"),
        Stop("tool_calls"),
    ]


def test_a_turn_that_called_tools_finishes_with_tool_calls_whatever_the_stop_reason() -> None:
    start = {"toolUse": {"toolUseId": "tooluse_a", "name": "ping"}}
    events = translate(
        ("contentBlockStart", {"contentBlockIndex": 3, "start": start}),
        ("contentBlockDelta", {"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{}"}}}),
        ("messageStop", {"stopReason": "end_turn"}),
    )
    assert events[-1] == Stop("tool_calls")


def test_the_stop_sequence_comes_from_the_additional_response_fields() -> None:
    stop = {
        "stopReason": "stop_sequence",
        "additionalModelResponseFields": {"stop_sequence": "END"},
    }
    assert translate(("messageStop", stop)) == [Start(ID, MODEL), Stop("stop", "END")]


def test_only_the_usage_may_follow_message_stop() -> None:
    usage = {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}
    assert translate(
        ("messageStop", {"stopReason": "max_tokens"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "late"}}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": usage, "metrics": {"latencyMs": 20}}),
    ) == [
        Start(ID, MODEL),
        Stop("length"),
        UsageReport(Usage(input_tokens=3, output_tokens=1)),
    ]


def test_unknown_events_padding_and_blank_deltas_stand_for_nothing() -> None:
    assert translate(
        ("messageStart", {"p": "abcdefghij", "role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": ""}, "p": "ab"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"citation": {"title": "x"}}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("someFutureEvent", {"anything": True}),
    ) == [Start(ID, MODEL)]


def test_redacted_reasoning_has_no_stream_form_and_is_left_out() -> None:
    delta = {"reasoningContent": {"redactedContent": "EmwKAhgBEgy3va3pzix"}}
    assert translate(("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta})) == [
        Start(ID, MODEL)
    ]


def test_tool_input_for_a_block_that_never_started_is_a_broken_upstream() -> None:
    delta = {"contentBlockIndex": 4, "delta": {"toolUse": {"input": '{"a": 1}'}}}
    with pytest.raises(ProxyError) as raised:
        translate(("contentBlockDelta", delta))
    assert raised.value.code == "upstream_protocol_error"
