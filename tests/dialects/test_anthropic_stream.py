"""Anthropic Messages streams on cross-dialect routes: recorded streams decode to the same
neutral events however they are cut, and the encoder writes events the official SDK (and its
`messages.stream()` helper) accepts and reassembles into the message `render_chat` gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pydantic
import pytest
from anthropic.types import RawMessageStreamEvent

from edgeproxy import errors
from edgeproxy.dialects import anthropic_messages
from edgeproxy.dialects.anthropic_stream import MessageStreamEncoder
from edgeproxy.dialects.neutral import (
    ChatRequest,
    ChatResponse,
    Finish,
    Start,
    Stop,
    StreamEvent,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
    events_of,
)
from edgeproxy.sse import SSEDecoder
from tests.dialects.support import Decoded, assert_decodes_at_every_split, relay_decode, splits

DATA = Path(__file__).parent.parent / "data" / "anthropic"
MODEL = "claude-sonnet-4-5-20250929"
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds7lbRzW6y2tWNcbgCbP4ztNP7xDSR8k7UcALu5THdAgPXHe6zGJk"  # noqa: E501
EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


def recorded(name: str) -> bytes:
    return (DATA / name).read_bytes()


def decode(chunks: list[bytes]) -> Decoded:
    return relay_decode(anthropic_messages.chat_stream_decoder("anthropic"), chunks)


TEXT = [
    Start(
        "msg_01Wn4Ts8RgYuBh3xnDj4VdhA",
        MODEL,
        Usage(input_tokens=2057, output_tokens=1, cached_tokens=2048),
    ),
    TextDelta("Hel"),
    TextDelta("lo, wörld ✓"),
    TextDelta("!"),
    Stop("stop"),
    UsageReport(Usage(input_tokens=2057, output_tokens=6, cached_tokens=2048)),
]
TOOLS = [
    Start("msg_014p7gG3wDgGV9EUtLvnow3U", MODEL, Usage(input_tokens=472, output_tokens=2)),
    TextDelta("Checking both."),
    ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
    ToolCallDelta(0, '{"city": "P'),
    ToolCallDelta(0, 'aris", "unit": "c'),
    ToolCallDelta(0, 'elsius"}'),
    ToolCallStart(1, "toolu_01B5bHh1kNh7Ygv3T1bd8sQh", "get_time"),
    ToolCallDelta(1, '{"tz": "Europe/'),
    ToolCallDelta(1, 'Oslo"}'),
    Stop("tool_calls"),
    UsageReport(Usage(input_tokens=472, output_tokens=89)),
]
THINKING = [
    Start("msg_01Nh5Es2N3J8Xy4dBcJ9kVxq", MODEL, Usage(input_tokens=85, output_tokens=4)),
    ThinkingDelta("Let me solve this step by step:\n\n1. First break down 27 * 453"),
    ThinkingDelta("\n2. 453 = 400 + 50 + 3"),
    ThinkingDelta("", SIGNATURE),
    TextDelta("27 * 453 = 12,231"),
    Stop("stop"),
    UsageReport(Usage(input_tokens=85, output_tokens=178)),
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("stream_text.sse", TEXT), ("stream_tools.sse", TOOLS), ("stream_thinking.sse", THINKING)],
)
def test_a_recorded_stream_decodes_the_same_however_it_is_cut(
    name: str, expected: list[StreamEvent]
) -> None:
    assert_decodes_at_every_split(decode, recorded(name), expected)


def test_an_error_event_mid_stream_is_raised_after_the_answer_so_far() -> None:
    for chunks in splits(recorded("stream_error.sse")):
        events, err = decode(chunks)
        assert events == [
            Start("msg_01Kp2VxWfC8mQeR7t3N9bZyH", MODEL, Usage(input_tokens=25, output_tokens=1)),
            TextDelta("Partial"),
        ]
        assert err is not None
        assert (err.status, err.code, err.message, err.retryable) == (
            529,
            "overloaded",
            "Overloaded",
            True,
        )


def frames(*payloads: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + p["type"].encode() + b"\ndata: " + orjson.dumps(p) + b"\n\n" for p in payloads
    )


START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1},
    },
}
STOP = {"type": "message_stop"}


def delta(reason: str | None, sequence: str | None = None, **usage: int) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": sequence},
        "usage": {"output_tokens": 7, **usage},
    }


def text_block(index: int, text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": ""},
        },
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        },
        {"type": "content_block_stop", "index": index},
    ]


def test_a_stop_sequence_and_the_final_input_counts_reach_the_neutral_events() -> None:
    body = frames(
        START, *text_block(0, "1, 2"), delta("stop_sequence", ", 3", input_tokens=12), STOP
    )
    events, err = decode([body])
    assert err is None and events[-2:] == [
        Stop("stop", ", 3"),
        UsageReport(Usage(input_tokens=17, output_tokens=7, cached_tokens=5)),
    ]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("a_future_reason", "stop"),
    ],
)
def test_stop_reasons_map_to_neutral_finishes(reason: str, finish: Finish) -> None:
    events, _ = decode([frames(START, delta(reason), STOP)])
    assert Stop(finish) in events


def test_a_stream_that_stops_without_message_delta_still_stops_once() -> None:
    events, err = decode([frames(START, *text_block(0, "Hi"), STOP)])
    assert err is None and [e for e in events if isinstance(e, Stop)] == [Stop("stop")]


def test_unknown_events_blocks_and_deltas_are_skipped() -> None:
    body = frames(
        START,
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"query": "x"}'},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "a_future_event", "index": 1},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "citations_delta", "citation": {"type": "char_location"}},
        },
        delta("end_turn"),
        STOP,
    )
    events, err = decode([body])
    assert err is None and [type(e) for e in events] == [Start, Stop, UsageReport]


def test_a_compatible_servers_whole_tool_input_at_block_start_becomes_one_delta() -> None:
    block = {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}
    body = frames(
        START,
        {"type": "content_block_start", "index": 0, "content_block": block},
        {"type": "content_block_stop", "index": 0},
        delta("end_turn"),
        STOP,
    )
    events, _ = decode([body])
    assert events[1:4] == [
        ToolCallStart(0, "call_1", "f"),
        ToolCallDelta(0, '{"a":1}'),
        Stop("tool_calls"),
    ]


START_EVENT = Start("msg_1", MODEL, Usage(input_tokens=15, output_tokens=1, cached_tokens=5))


@pytest.mark.parametrize(
    ("body", "before", "detail"),
    [
        (frames(START, *text_block(0, "Hi")), [START_EVENT, TextDelta("Hi")], "stream ended"),
        (frames(*text_block(0, "Hi"), STOP), [], "content_block_start before message_start"),
        (
            frames(START) + b"event: content_block_delta\ndata: {not json\n\n",
            [START_EVENT],
            "event is not JSON",
        ),
        (frames(START) + b"event: message_delta\ndata: [1]\n\n", [START_EVENT], "event is not an"),
        (b"", [], "stream ended before message_stop"),
    ],
)
def test_a_broken_or_truncated_stream_is_a_protocol_error_after_the_answer_so_far(
    body: bytes, before: list[StreamEvent], detail: str
) -> None:
    for chunks in splits(body, count=5):
        events, err = decode(chunks)
        assert err is not None and events == before
        assert (err.status, err.code) == (502, "upstream_protocol_error")
        assert err.detail.startswith(detail)


def test_a_repeated_message_start_and_a_malformed_block_index_do_not_break_the_stream() -> None:
    block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    body = frames(
        START,
        START,
        {"type": "content_block_start", "index": [1], "content_block": block},
        {
            "type": "content_block_delta",
            "index": [1],
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        delta("tool_use"),
        STOP,
    )
    events, err = decode([body])
    assert err is None and [type(e) for e in events] == [
        Start,
        ToolCallStart,
        ToolCallDelta,
        Stop,
        UsageReport,
    ]


def test_events_after_message_stop_are_ignored() -> None:
    events, err = decode([frames(START, delta("end_turn"), STOP, *text_block(0, "late"))])
    assert err is None and not any(isinstance(e, TextDelta) for e in events)


# --- encoding for an Anthropic SDK client -----------------------------------------------------


def encode(events: list[StreamEvent]) -> bytes:
    encoder = anthropic_messages.chat_stream_encoder(ChatRequest(MODEL, []))
    return b"".join(encoder.encode(event) for event in events) + encoder.finish()


def sse_events(body: bytes) -> list[dict[str, Any]]:
    """Each encoded event, checked against the SDK's own event types."""
    payloads = []
    for event in SSEDecoder().feed(body):
        payload = orjson.loads(event.data)
        assert payload["type"] == event.event
        EVENT.validate_python(payload)
        payloads.append(payload)
    return payloads


def normalised(events: list[StreamEvent]) -> list[StreamEvent]:
    """Events as Anthropic's format carries them: a thinking delta with text and a signature
    is the two deltas Anthropic sends."""
    out: list[StreamEvent] = []
    for event in events:
        if isinstance(event, ThinkingDelta) and event.text and event.signature:
            out += [ThinkingDelta(event.text), ThinkingDelta("", event.signature)]
        else:
            out.append(event)
    return out


@pytest.mark.parametrize("expected", [TEXT, TOOLS, THINKING], ids=["text", "tools", "thinking"])
def test_encoded_events_decode_back_to_the_same_neutral_events(expected: list[StreamEvent]) -> None:
    body = encode(expected)
    sse_events(body)
    assert_decodes_at_every_split(decode, body, normalised(expected))


def test_blocks_are_indexed_from_zero_and_each_is_stopped_before_the_next_starts() -> None:
    payloads = sse_events(encode(THINKING[:4] + TOOLS[1:10] + THINKING[-2:]))
    kinds = [(p["type"], p.get("index")) for p in payloads]
    assert kinds == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_delta", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("content_block_start", 3),
        ("content_block_delta", 3),
        ("content_block_delta", 3),
        ("content_block_stop", 3),
        ("message_delta", None),
        ("message_stop", None),
    ]


def test_the_final_message_delta_carries_the_stop_and_every_usage_count() -> None:
    usage = Usage(input_tokens=3560, output_tokens=161, cached_tokens=2048, cache_write_tokens=1500)
    payloads = sse_events(encode([Start("msg_1", MODEL), Stop("stop", "END"), UsageReport(usage)]))
    assert payloads[0]["message"]["usage"] == {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    assert payloads[1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END", "stop_details": None},
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 1500,
            "cache_read_input_tokens": 2048,
            "output_tokens": 161,
        },
    }


@pytest.mark.parametrize(
    ("events", "stop_reason"),
    [
        ([TextDelta("Hi")], "end_turn"),
        ([ToolCallStart(0, "call_1", "f")], "tool_use"),
        ([TextDelta("Hi"), Stop("length")], "max_tokens"),
        ([Stop("content_filter")], "refusal"),
    ],
)
def test_a_stream_without_stop_ends_as_its_content_says(
    events: list[StreamEvent], stop_reason: str
) -> None:
    payloads = sse_events(encode([Start("msg_1", MODEL), *events]))
    assert payloads[-2]["delta"]["stop_reason"] == stop_reason


def test_interleaved_tool_deltas_go_to_their_own_calls_block() -> None:
    payloads = sse_events(
        encode(
            [
                Start("msg_1", MODEL),
                ToolCallStart(0, "call_a", "f"),
                ToolCallStart(1, "call_b", "g"),
                ToolCallDelta(1, '{"b": 2}'),
                ToolCallDelta(0, '{"a": 1}'),
                ToolCallDelta(7, '{"lost": true}'),
            ]
        )
    )
    deltas = [
        (p["index"], p["delta"]["partial_json"])
        for p in payloads
        if p["type"] == "content_block_delta"
    ]
    assert deltas == [(1, '{"b": 2}'), (0, '{"a": 1}')]


def test_reasoning_after_a_signature_opens_a_new_thinking_block() -> None:
    payloads = sse_events(
        encode(
            [
                Start("msg_1", MODEL),
                ThinkingDelta("first"),
                ThinkingDelta("", "sig-1"),
                ThinkingDelta("", "sig-1b"),
                ThinkingDelta("second", "sig-2"),
                ThinkingDelta(""),
                TextDelta(""),
            ]
        )
    )
    starts = [p["index"] for p in payloads if p["type"] == "content_block_start"]
    signatures = [
        p["delta"]["signature"]
        for p in payloads
        if p["type"] == "content_block_delta" and p["delta"]["type"] == "signature_delta"
    ]
    assert starts == [0, 1] and signatures == ["sig-1", "sig-1b", "sig-2"]


def test_an_encoder_that_never_started_writes_no_trailer() -> None:
    encoder = MessageStreamEncoder()
    assert encoder.finish() == b""


# --- what the official SDK makes of it --------------------------------------------------------


def sdk(body: bytes, content_type: str) -> anthropic.Anthropic:
    """An Anthropic client whose every request is answered with `body`."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": content_type})

    transport = httpx2.MockTransport(answer)
    return anthropic.Anthropic(
        api_key="k",
        base_url="http://proxy",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )


ASK: dict[str, Any] = {
    "model": "claude-opus-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Hi"}],
}
ANSWERS = [
    ChatResponse(
        "msg_text", "gpt-4o", [Text("Hello, "), Text("wörld ✓")], "stop", Usage(9, 4, 5), 0
    ),
    ChatResponse(
        "msg_tools",
        "gemini-2.5-pro",
        [
            Thinking("Two calls.", SIGNATURE),
            Text("Checking."),
            ToolCall("call_1", "get_weather", '{"city": "Paris", "days": [1, 2]}'),
            ToolCall("call_2", "get_time", ""),
        ],
        "tool_calls",
        Usage(3560, 161, cached_tokens=2048, cache_write_tokens=1500),
        0,
    ),
    ChatResponse("msg_stop", "m", [Text("1, 2")], "stop", Usage(5, 3), 0, ", 3"),
    ChatResponse("msg_empty", "m", [], "length", Usage(5, 0), 0),
]


@pytest.mark.parametrize("answer", ANSWERS, ids=[a.id for a in ANSWERS])
def test_the_sdks_stream_helper_rebuilds_the_message_render_chat_gives(
    answer: ChatResponse,
) -> None:
    rendered = anthropic_messages.render_chat(answer)
    with sdk(rendered, "application/json") as client:
        created = client.messages.create(**ASK)
    with sdk(encode(events_of(answer)), "text/event-stream") as client:
        with client.messages.stream(**ASK) as stream:
            texts = "".join(stream.text_stream)
            streamed = stream.get_final_message()
    assert streamed.to_dict() == created.to_dict() == orjson.loads(rendered)
    assert texts == answer.text


def test_an_error_after_the_stream_started_makes_the_sdk_raise_it() -> None:
    encoder = MessageStreamEncoder()
    body = encoder.encode(Start("msg_1", MODEL)) + encoder.encode(TextDelta("Partial"))
    body += encoder.error(errors.from_upstream(529, "overloaded", "Overloaded"))
    with sdk(body, "text/event-stream") as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(**ASK) as stream:
                stream.get_final_message()
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
