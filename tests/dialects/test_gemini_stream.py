"""Gemini `streamGenerateContent?alt=sse` on cross-dialect routes: recorded streams (CRLF
framed, usage on every event) decode to the same neutral events however the bytes are cut;
an error object mid-stream raises the mapped error after the events before it; a blocked
prompt raises before the answer starts; a stream without a finishReason is a broken one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from edgeproxy.dialects import gemini
from edgeproxy.dialects.gemini_stream import GenerateStreamDecoder, call_id
from edgeproxy.dialects.neutral import (
    Finish,
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
from tests.dialects.support import Decoded, assert_decodes_at_every_split, relay_decode, splits

DATA = Path(__file__).parent.parent / "data" / "gemini"
SIG_PARIS = (
    "CrG9W8uw8de9puyHB9d3xvE/pg3mKBxfeN4/YYsakj8DuzdoRy7q3sRjKMPMEiOennEgIQD43wE1xjf1"
    "+yrfKkpQ9jKK4K2gNC7w97Ay9/fkYkwFXGoq7yVDEFRN0ZqW"
)
SIG_TEXT = (
    "CrDJy8ZbsZapCMJOXY+0q0fVfEPF+7C3S/TyV6YtlNoCeYzGQFOrRnZJ0YClrMxbWUakWLzw1GhZ7Ncs3t2wc/"
    "ld9FWEJIf6KjLWXO/aekixFLir"
)
TOOLS_ID = "UnNLaKyXOIWlz7IPo6uWmAc"


def recorded(name: str) -> bytes:
    return (DATA / name).read_bytes()


def decoder() -> GenerateStreamDecoder:
    return gemini.chat_stream_decoder("gemini", make_id=lambda: "gemini-made-up")


def decode(chunks: list[bytes]) -> Decoded:
    return relay_decode(decoder(), chunks)


def usage(prompt: int, output: int, reasoning: int = 0) -> UsageReport:
    return UsageReport(Usage(input_tokens=prompt, output_tokens=output, reasoning_tokens=reasoning))


TEXT = [
    Start("AdVRaMmDCYekqtsPrb_-iAw", "gemini-2.5-flash"),
    TextDelta("Bonjour"),
    usage(8, 1),
    TextDelta(" ! Paris ✓ est "),
    usage(8, 6),
    TextDelta("la capitale 🇫🇷."),
    Stop("stop"),
    usage(8, 11),
]
THINKING = [
    Start("tnJLaMzdA8qAz7IPwqeX4Qw", "gemini-3-flash-preview"),
    ThinkingDelta(
        "**Checking divisibility**\n\nA number below 1024 is prime if no prime up to 31 divides it."
    ),
    usage(14, 106, 106),
    ThinkingDelta("1009 is odd; 3, 5, 7, 11, 13, 17, 19, 23, 29 and 31 all leave remainders."),
    usage(14, 248, 248),
    TextDelta("Yes, 1009 is prime"),
    usage(14, 253, 248),
    TextDelta(": no prime up to its square root divides it."),
    usage(14, 263, 248),
    ThinkingDelta("", SIG_TEXT),
    Stop("stop"),
    usage(14, 263, 248),
]
TOOLS = [
    Start(TOOLS_ID, "gemini-3-flash-preview"),
    TextDelta("I'll check both cities."),
    usage(96, 6),
    ThinkingDelta("", SIG_PARIS),
    ToolCallStart(0, call_id(TOOLS_ID, 0, "get_weather"), "get_weather"),
    ToolCallDelta(0, '{"city":"Paris"}'),
    usage(96, 163, 142),
    ToolCallStart(1, call_id(TOOLS_ID, 1, "get_weather"), "get_weather"),
    ToolCallDelta(1, '{"city":"Oslo","unit":"celsius"}'),
    Stop("tool_calls"),
    usage(96, 180, 142),
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("stream_text.sse", TEXT),
        ("stream_thinking.sse", THINKING),
        ("stream_tools.sse", TOOLS),
    ],
)
def test_recorded_streams_decode_to_the_same_events_at_every_split_point(
    name: str, expected: list[StreamEvent]
) -> None:
    stream = recorded(name)
    assert b"\r\n\r\n" in stream  # Google's CRLF framing survived in the recording
    assert_decodes_at_every_split(decode, stream, expected)


def test_lf_framing_and_a_last_event_without_its_blank_line_decode_the_same() -> None:
    stream = recorded("stream_text.sse").replace(b"\r\n", b"\n")
    assert decode([stream]) == (TEXT, None)
    assert decode([recorded("stream_text.sse").removesuffix(b"\r\n\r\n")]) == (TEXT, None)


def test_an_error_object_mid_stream_raises_the_mapped_error_after_the_text_before_it() -> None:
    for chunks in splits(recorded("stream_error.sse"), count=20):
        events, err = decode(chunks)
        assert events == [
            Start("RHRLaI_xKJKjz7IPyPjCqQQ", "gemini-2.5-pro"),
            TextDelta("Partial"),
            usage(31, 211, 210),
        ]
        assert err is not None
        assert (err.status, err.code, err.retryable) == (503, "overloaded", True)
        assert err.message == "The model is overloaded. Please try again later."


def test_an_error_is_raised_by_every_later_feed_and_by_close() -> None:
    stream = decoder()
    assert len(stream.feed(recorded("stream_error.sse"))) == 3
    with pytest.raises(ProxyError) as fed:
        stream.feed(b"")
    with pytest.raises(ProxyError) as closed:
        stream.close()
    assert fed.value is closed.value
    assert fed.value.code == "overloaded"


def test_a_blocked_prompt_raises_before_the_answer_starts() -> None:
    for chunks in splits(recorded("stream_blocked.sse"), count=5):
        events, err = decode(chunks)
        assert events == []
        assert err is not None
        assert (err.status, err.code) == (400, "invalid_request")
        assert "blockReason PROHIBITED_CONTENT" in err.message


@pytest.mark.parametrize(
    "cut",
    [
        lambda s: s[: s.rindex(b"data:")],  # the last event never came
        lambda s: s[: s.rindex(b"data:") + 40],  # the last event was cut inside its JSON
    ],
    ids=["missing finish", "truncated event"],
)
def test_a_stream_cut_short_is_a_broken_upstream(cut: Any) -> None:
    events, err = decode([cut(recorded("stream_tools.sse"))])
    assert events[: len(TOOLS) - 4] == TOOLS[:-4]
    assert err is not None
    assert (err.status, err.code, err.retryable) == (502, "upstream_protocol_error", True)


def translate(*answers: dict[str, Any]) -> list[StreamEvent]:
    stream = decoder()
    out: list[StreamEvent] = []
    for answer in answers:
        stream.translate(answer, out)
    return out


def candidate(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        data["finishReason"] = finish
    return {"candidates": [data]}


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_a_streamed_finish_reason_maps_like_a_complete_one(finish: str, stop: Finish) -> None:
    events = translate(candidate([{"text": "Hi"}]), candidate([], finish))
    assert events == [Start("gemini-made-up", ""), TextDelta("Hi"), Stop(stop)]


def test_a_malformed_function_call_in_a_stream_raises_a_retryable_error() -> None:
    stream = decoder()
    events = stream.feed(
        b"data: "
        + orjson.dumps(candidate([{"text": "Let me call it."}]))
        + b"\r\n\r\ndata: "
        + orjson.dumps(candidate([], "MALFORMED_FUNCTION_CALL"))
        + b"\r\n\r\n"
    )
    assert events == [Start("gemini-made-up", ""), TextDelta("Let me call it.")]
    with pytest.raises(ProxyError) as raised:
        stream.close()
    assert (raised.value.status, raised.value.code) == (502, "upstream_error")


def test_only_usage_is_read_after_the_finish_reason() -> None:
    events = translate(
        candidate([{"text": "Done."}], "STOP"),
        {**candidate([{"text": "late"}]), "usageMetadata": {"promptTokenCount": 3}},
    )
    assert events == [
        Start("gemini-made-up", ""),
        TextDelta("Done."),
        Stop("stop"),
        UsageReport(Usage(input_tokens=3)),
    ]


def test_a_function_call_id_given_in_a_stream_is_kept() -> None:
    call = {"id": "fc_1", "name": "get_time", "args": {"tz": "Europe/Oslo"}}
    events = translate(candidate([{"functionCall": call}], "STOP"))
    assert events[1:] == [
        ToolCallStart(0, "fc_1", "get_time"),
        ToolCallDelta(0, '{"tz":"Europe/Oslo"}'),
        Stop("tool_calls"),
    ]


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'"text"'])
def test_an_event_that_is_not_a_json_object_is_a_broken_upstream(data: bytes) -> None:
    events, err = decode([b"data: " + data + b"\r\n\r\n"])
    assert events == []
    assert err is not None
    assert err.code == "upstream_protocol_error"
