"""OpenAI chat streams on cross-dialect routes: recorded streams of OpenAI and compatible
servers decode to the same neutral events however they are cut, and the encoder writes the
chunks the official SDK (and its `.stream()` helper) reassembles."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionChunk

from edgeproxy import errors
from edgeproxy.dialects import openai_chat
from edgeproxy.dialects.neutral import (
    ChatRequest,
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
from edgeproxy.sse import SSEDecoder
from tests.dialects.support import Decoded, assert_decodes_at_every_split, relay_decode, splits

DATA = Path(__file__).parent.parent / "data" / "openai"
CREATED = 1750000000


def recorded(name: str) -> bytes:
    return (DATA / name).read_bytes()


def decode(chunks: list[bytes]) -> Decoded:
    return relay_decode(openai_chat.chat_stream_decoder("openai"), chunks)


TEXT_USAGE = [
    Start("chatcmpl-BkXq3sT2n1vGQ0eR7mZyA9pLwU4cD", "gpt-4o-mini-2024-07-18"),
    TextDelta("Hel"),
    TextDelta("lo, wörld ✓"),
    TextDelta("!"),
    Stop("stop"),
    UsageReport(Usage(input_tokens=12, output_tokens=4)),
]
PARALLEL_TOOLS = [
    Start("chatcmpl-BkY0parallel7Tools2Calls0000", "gpt-4o-2024-08-06"),
    ToolCallStart(0, "call_Paris1", "get_weather"),
    ToolCallDelta(0, '{"ci'),
    ToolCallDelta(0, 'ty": "P'),
    ToolCallDelta(0, 'aris"}'),
    ToolCallStart(1, "call_Oslo2", "get_weather"),
    ToolCallDelta(1, '{"ci'),
    ToolCallDelta(1, 'ty": "O'),
    ToolCallDelta(1, 'slo"}'),
    Stop("tool_calls"),
]
AZURE = [
    Start("chatcmpl-BkY1azure5Deploy8ment0000", "gpt-4o-2024-11-20"),
    TextDelta("Hi"),
    TextDelta(" there."),
    Stop("stop"),
]
DEEPSEEK_REASONING = [
    Start("8d2f3e6c-3c7b-4f3e-9f0e-2a1b3c4d5e6f", "deepseek-reasoner"),
    ThinkingDelta("0.11 < 0.80"),
    ThinkingDelta(", so 9.11 is smaller."),
    TextDelta("9.11"),
    TextDelta(" is smaller."),
    Stop("stop"),
    UsageReport(Usage(input_tokens=17, output_tokens=120, reasoning_tokens=98)),
]
OLLAMA_TOOLS = [
    Start("chatcmpl-417", "qwen3:8b"),
    ThinkingDelta("Both cities at once."),
    TextDelta("Checking both."),
    ToolCallStart(0, "call_a1b2c3d4", "get_weather"),
    ToolCallDelta(0, '{"city":"Paris"}'),
    ToolCallStart(1, "call_e5f6g7h8", "get_weather"),
    ToolCallDelta(1, '{"city":"Oslo"}'),
    Stop("tool_calls"),
    UsageReport(Usage(input_tokens=150, output_tokens=42)),
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("stream_text_usage.sse", TEXT_USAGE),
        ("stream_parallel_tools.sse", PARALLEL_TOOLS),
        ("stream_azure.sse", AZURE),
        ("stream_deepseek_reasoning.sse", DEEPSEEK_REASONING),
        ("stream_ollama_tools.sse", OLLAMA_TOOLS),
    ],
)
def test_recorded_streams_decode_to_the_same_events_at_every_split_point(
    name: str, expected: list[StreamEvent]
) -> None:
    assert_decodes_at_every_split(decode, recorded(name), expected)


def test_an_error_frame_mid_stream_raises_the_mapped_error_after_the_text_before_it() -> None:
    stream = recorded("stream_error.sse")
    for chunks in splits(stream, count=20):
        events, err = decode(chunks)
        assert events == [
            Start("chatcmpl-BkXq3sT2n1vGQ0eR7mZyA9pLwU4cD", "gpt-4o-mini-2024-07-18"),
            TextDelta("Partial"),
        ]
        assert err is not None
        assert (err.status, err.code, err.retryable) == (500, "upstream_error", True)
        assert err.message.startswith("The server had an error while processing your request.")


def test_an_error_frame_is_raised_by_every_later_feed() -> None:
    decoder = openai_chat.chat_stream_decoder("openai")
    events = decoder.feed(recorded("stream_error.sse"))
    assert events[-1] == TextDelta("Partial")
    with pytest.raises(ProxyError, match="Sorry about that"):
        decoder.feed(b"data: [DONE]\n\n")
    with pytest.raises(ProxyError, match="Sorry about that"):
        decoder.close()


@pytest.mark.parametrize(
    ("frame", "status", "code"),
    [
        # vLLM before 0.10: a flat error object whose `code` is the HTTP status
        (
            b'{"object":"error","message":"This model\'s maximum context length is 4096 tokens.",'
            b'"type":"BadRequestError","param":null,"code":400}',
            400,
            "context_length_exceeded",
        ),
        # vLLM since 0.10 and Ollama: OpenAI's shape
        (
            b'{"error":{"message":"Request was aborted.","type":"InternalServerError",'
            b'"param":null,"code":500}}',
            500,
            "upstream_error",
        ),
        (
            b'{"error":{"message":"Rate limit reached for tokens.","type":"tokens","param":null,'
            b'"code":"rate_limit_exceeded"}}',
            429,
            "rate_limited",
        ),
        (b'{"error":"model \\"llama3\\" not found"}', 500, "upstream_error"),
    ],
)
def test_error_frames_of_compatible_servers_map_to_neutral_codes(
    frame: bytes, status: int, code: str
) -> None:
    events, err = decode([b"data: " + frame + b"\n\ndata: [DONE]\n\n"])
    assert events == []
    assert err is not None and (err.status, err.code) == (status, code)


def test_a_stream_cut_before_its_finish_is_an_upstream_protocol_error() -> None:
    stream = recorded("stream_text_usage.sse")
    cut = stream[: stream.index(b'"finish_reason":"stop"')]
    events, err = decode([cut])
    assert events == TEXT_USAGE[:4]
    assert err is not None and (err.status, err.code) == (502, "upstream_protocol_error")


def test_a_stream_that_finished_without_done_closes_cleanly() -> None:
    stream = recorded("stream_parallel_tools.sse").replace(b"data: [DONE]\n\n", b"")
    assert decode([stream]) == (PARALLEL_TOOLS, None)


def test_a_last_event_without_its_blank_line_is_still_read() -> None:
    stream = recorded("stream_azure.sse")
    assert decode([stream.removesuffix(b"\n\n")]) == (AZURE, None)
    cut = stream[: stream.rindex(b"data: [DONE]")]
    last_finish = cut[: cut.rindex(b"data: {")].rstrip(b"\n")  # ends on the finish chunk
    assert decode([last_finish]) == (AZURE, None)


def test_servers_that_number_every_tool_call_zero_still_get_distinct_calls() -> None:
    def frame(call: dict[str, object], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": finish}
        return b"data: " + orjson.dumps({"id": "x", "model": "m", "choices": [choice]}) + b"\n\n"

    stream = (
        frame({"id": "a", "function": {"name": "f", "arguments": '{"n":1}'}})
        + frame({"index": 0, "id": "b", "function": {"name": "g", "arguments": "{"}})
        + frame({"index": 0, "function": {"arguments": "}"}}, "stop")
    )
    events, err = decode([stream])
    assert err is None
    assert events[1:] == [
        ToolCallStart(0, "a", "f"),
        ToolCallDelta(0, '{"n":1}'),
        ToolCallStart(1, "b", "g"),
        ToolCallDelta(1, "{"),
        ToolCallDelta(1, "}"),
        Stop("tool_calls"),  # the server said "stop" after calling tools
    ]


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        # Groq reports a stream's usage under x_groq
        (
            {
                "choices": [],
                "x_groq": {"id": "req_1", "usage": {"prompt_tokens": 9, "completion_tokens": 3}},
            },
            [UsageReport(Usage(input_tokens=9, output_tokens=3))],
        ),
        ({"choices": [], "usage": None}, []),
        # vLLM names the stop string that ended the answer
        (
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]},
            [Stop("stop", "END")],
        ),
        (
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "function_call"}]},
            [Stop("tool_calls")],
        ),
        ({"choices": [{"index": 0, "delta": {}, "finish_reason": "abort"}]}, [Stop("stop")]),
        # a second choice (n > 1) is not part of a neutral answer
        ({"choices": [{"index": 1, "delta": {"content": "other"}}]}, []),
        (
            {"choices": [{"index": 0, "delta": {"refusal": "I can't help."}}]},
            [TextDelta("I can't help.")],
        ),
    ],
)
def test_chunk_details_of_compatible_servers(
    chunk: dict[str, object], expected: list[StreamEvent]
) -> None:
    first = (
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    )
    decoder = openai_chat.chat_stream_decoder("groq")
    assert decoder.feed(first) == [Start("c1", "m")]
    assert decoder.feed(b"data: " + orjson.dumps(chunk) + b"\n\n") == expected


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'"text"'])
def test_a_chunk_that_is_not_a_json_object_is_an_upstream_protocol_error(data: bytes) -> None:
    events, err = decode([b"data: " + data + b"\n\n"])
    assert events == []
    assert err is not None and err.code == "upstream_protocol_error"
    assert data.decode() not in err.message


# --- encoder ----------------------------------------------------------------------------------

ANSWER: list[StreamEvent] = [
    Start("msg_01XFDUDYJgAACzvnptvVoYEL", "claude-sonnet-4-5", Usage(input_tokens=21)),
    ThinkingDelta("Two cities."),
    ThinkingDelta("", signature="EqQBCgIYAhIM"),
    TextDelta("Checking "),
    TextDelta("both."),
    ToolCallStart(0, "toolu_01A", "get_weather"),
    ToolCallDelta(0, ""),
    ToolCallDelta(0, '{"city":'),
    ToolCallDelta(0, '"Paris"}'),
    ToolCallStart(1, "toolu_01B", "get_weather"),
    ToolCallDelta(1, '{"city":"Oslo"}'),
    UsageReport(Usage(input_tokens=21, output_tokens=5)),
    Stop("tool_calls"),
    UsageReport(Usage(input_tokens=21, output_tokens=48, cached_tokens=16)),
]


def encode(events: list[StreamEvent], include_usage: bool) -> bytes:
    request = ChatRequest(
        model="claude-sonnet", messages=[], stream=True, include_usage=include_usage
    )
    encoder = openai_chat.chat_stream_encoder(request, clock=lambda: CREATED + 0.9)
    return b"".join(encoder.encode(event) for event in events) + encoder.finish()


def test_encoder_writes_openais_exact_chunk_sequence() -> None:
    assert encode(ANSWER, include_usage=True) == recorded("encoded_tool_calls.sse")


def test_without_include_usage_chunks_have_no_usage_and_the_stream_ends_with_done() -> None:
    stream = encode(ANSWER, include_usage=False)
    frames = [event.data for event in SSEDecoder().feed(stream)]
    assert frames[-1] == b"[DONE]"
    chunks = [orjson.loads(frame) for frame in frames[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("include_usage", [True, False])
def test_every_encoded_chunk_is_a_valid_sdk_chunk(include_usage: bool) -> None:
    frames = SSEDecoder().feed(encode(ANSWER, include_usage))
    chunks = [ChatCompletionChunk.model_validate_json(f.data) for f in frames[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.id == "msg_01XFDUDYJgAACzvnptvVoYEL" and c.created == CREATED for c in chunks)
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.prompt_tokens_details is not None
        assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 16


def test_encoded_stream_decodes_back_to_the_same_answer() -> None:
    events, err = decode([encode(ANSWER, include_usage=True)])
    assert err is None
    assert events == [
        Start("msg_01XFDUDYJgAACzvnptvVoYEL", "claude-sonnet-4-5"),
        ThinkingDelta("Two cities."),
        TextDelta("Checking "),
        TextDelta("both."),
        ToolCallStart(0, "toolu_01A", "get_weather"),
        ToolCallDelta(0, '{"city":'),
        ToolCallDelta(0, '"Paris"}'),
        ToolCallStart(1, "toolu_01B", "get_weather"),
        ToolCallDelta(1, '{"city":"Oslo"}'),
        Stop("tool_calls"),
        UsageReport(Usage(input_tokens=21, output_tokens=48, cached_tokens=16)),
    ]


def sdk(body: bytes) -> openai.OpenAI:
    """The official client, answered by `body` without a socket."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    transport = httpx2.MockTransport(answer)
    return openai.OpenAI(
        api_key="k", base_url="http://proxy/v1", http_client=httpx2.Client(transport=transport)
    )


def test_the_sdk_stream_helper_reassembles_text_and_parallel_tool_calls() -> None:
    with sdk(encode(ANSWER, include_usage=True)) as client:
        with client.chat.completions.stream(
            model="claude-sonnet", messages=[{"role": "user", "content": "Weather?"}]
        ) as stream:
            arguments_done = [
                e.arguments for e in stream if e.type == "tool_calls.function.arguments.done"
            ]
            final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Checking both."
    assert message.tool_calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("toolu_01A", "get_weather", '{"city":"Paris"}'),
        ("toolu_01B", "get_weather", '{"city":"Oslo"}'),
    ]
    assert arguments_done == ['{"city":"Paris"}', '{"city":"Oslo"}']
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.total_tokens == 69


def test_an_error_after_the_stream_started_makes_the_sdk_raise_it() -> None:
    request = ChatRequest(model="claude-sonnet", messages=[], stream=True)
    encoder = openai_chat.chat_stream_encoder(request)
    body = encoder.encode(Start("msg_1", "claude")) + encoder.encode(TextDelta("Hi"))
    body += encoder.error(errors.from_upstream(529, "overloaded", "Overloaded"))
    with sdk(body) as client:
        stream = client.chat.completions.create(
            model="claude-sonnet", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="Overloaded") as caught:
            list(stream)
    assert caught.value.type == "server_error"
