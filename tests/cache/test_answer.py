"""Stored answers: captured from what a client was sent, replayed in either dialect, stream or
not, and kept in Redis as versioned bytes that never decode into a wrong answer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from edgeproxy.cache.answer import (
    FORMAT,
    StoredAnswer,
    decode,
    encode,
    from_body,
    from_stream,
    replayable,
)
from edgeproxy.dialects import anthropic_messages, openai_chat
from edgeproxy.dialects.neutral import (
    ChatResponse,
    Start,
    Stop,
    Text,
    TextDelta,
    Thinking,
    ToolCall,
    Usage,
    UsageReport,
    assemble,
    events_of,
)
from edgeproxy.operations import Operation

CHAT, MESSAGES = Operation.CHAT, Operation.MESSAGES

ANSWER = ChatResponse(
    id="msg_1",
    model="claude-sonnet-4-5",
    parts=[
        Thinking("Let me think.", "sig-1"),
        Text("The weather is fine."),
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
    ],
    finish="tool_calls",
    usage=Usage(input_tokens=12, output_tokens=34, cached_tokens=2, reasoning_tokens=5),
    created=1_700_000_000,
)


def decoded(operation: Operation, stream: bytes) -> ChatResponse:
    """What an SDK would make of a replayed stream: decoded with the dialect's own codec."""
    codec = openai_chat if operation is CHAT else anthropic_messages
    decoder = codec.chat_stream_decoder("test")
    return assemble(decoder.feed(stream) + decoder.close())


def test_assembling_the_events_of_an_answer_gives_the_answer_back() -> None:
    for pieces in (1, 3, 50):
        again = assemble(events_of(ANSWER, pieces))
        assert (again.parts, again.finish, again.usage) == (
            ANSWER.parts,
            ANSWER.finish,
            ANSWER.usage,
        )
        assert (again.id, again.model) == (ANSWER.id, ANSWER.model)


@pytest.mark.parametrize("stored_from", [CHAT, MESSAGES])
@pytest.mark.parametrize("asked_by", [CHAT, MESSAGES])
def test_a_complete_answer_is_replayed_in_either_dialect_stream_or_not(
    stored_from: Operation, asked_by: Operation
) -> None:
    codec = openai_chat if stored_from is CHAT else anthropic_messages
    stored = from_body(stored_from, codec.render_chat(ANSWER), ())
    assert stored is not None
    reader = openai_chat if asked_by is CHAT else anthropic_messages
    whole = reader.parse_chat(stored.render(asked_by, False, True), "test")
    assert whole.text == ANSWER.text and whole.usage.output_tokens == 34
    assert [type(p) for p in whole.parts if not isinstance(p, Thinking)] == [Text, ToolCall]
    streamed = decoded(asked_by, stored.render(asked_by, True, True))
    assert streamed.text == ANSWER.text
    call, original = streamed.parts[-1], ANSWER.parts[-1]
    assert isinstance(call, ToolCall) and isinstance(original, ToolCall)
    assert (call.id, call.name) == (original.id, original.name)
    assert orjson.loads(call.arguments) == orjson.loads(original.arguments)


def test_a_stream_replay_keeps_the_original_deltas() -> None:
    sent = anthropic_messages.chat_stream_encoder(_request())
    stream = b"".join(sent.encode(e) for e in events_of(ANSWER, 5)) + sent.finish()
    stored = from_stream(MESSAGES, stream, ())
    assert stored is not None
    replay = stored.render(MESSAGES, True, False)
    assert replay.count(b"text_delta") == 5, "five deltas, not one aggregated blob"
    assert decoded(MESSAGES, replay).text == ANSWER.text


def _request() -> Any:
    from edgeproxy.dialects.neutral import ChatRequest

    return ChatRequest("m", [], stream=True, include_usage=True)


@pytest.mark.parametrize("operation", [CHAT, MESSAGES])
def test_a_stream_cut_short_or_ended_by_an_error_is_not_stored(operation: Operation) -> None:
    codec = openai_chat if operation is CHAT else anthropic_messages
    encoder = codec.chat_stream_encoder(_request())
    frames = [encoder.encode(e) for e in events_of(ANSWER, 4)]
    whole = b"".join(frames) + encoder.finish()
    assert from_stream(operation, whole, ()) is not None
    assert from_stream(operation, b"".join(frames[:3]), ()) is None
    failed = b"".join(frames[:3]) + encoder.error(_overloaded())
    assert from_stream(operation, failed, ()) is None


def _overloaded() -> Any:
    from edgeproxy.errors import ProxyError

    return ProxyError(529, "overloaded", "Overloaded")


def openai_body(message: dict[str, Any], finish: str = "stop") -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    return orjson.dumps(
        {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
         "choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    )  # fmt: skip


def test_a_refusal_or_a_filtered_answer_is_never_stored() -> None:
    refused = openai_body({"content": None, "refusal": "I can't help with that."})
    assert from_body(CHAT, refused, ()) is None
    assert from_body(CHAT, openai_body({"content": "Hi", "refusal": None}), ()) is not None
    assert from_body(CHAT, openai_body({"content": "Hi"}, "content_filter"), ()) is None
    filtered = ChatResponse("m1", "claude", [Text("Hi")], "content_filter", Usage(1, 1), 1)
    assert from_body(MESSAGES, anthropic_messages.render_chat(filtered), ()) is None
    sent = openai_chat.chat_stream_encoder(_request())
    stream = b"".join(sent.encode(e) for e in events_of(filtered, 2)) + sent.finish()
    assert from_stream(CHAT, stream, ()) is None


def test_a_refusal_delta_in_a_stream_is_never_stored() -> None:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    frames = [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "refusal": "I can't"}}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    stream = b"".join(b"data: " + orjson.dumps(f) + b"\n\n" for f in frames) + b"data: [DONE]\n\n"
    assert from_stream(CHAT, stream, ()) is None
    plain = stream.replace(b'"refusal":"I can\'t"', b'"content":"Sure: \\"refusal\\": \\"x\\""')
    assert from_stream(CHAT, plain, ()) is not None, "text that quotes the word is no refusal"


def test_a_body_that_is_not_an_answer_is_not_stored() -> None:
    assert from_body(CHAT, b'{"error": {"message": "no"}}', ()) is None
    assert from_body(MESSAGES, b"not json", ()) is None


def test_embeddings_are_stored_as_the_body_that_was_sent() -> None:
    body = b'{"object":"list","data":[{"embedding":[0.1,0.2]}]}'
    stored = from_body(Operation.EMBEDDINGS, body, ("t",))
    assert stored is not None and stored.render(Operation.EMBEDDINGS, False, False) == body
    assert stored.rendered == {}, "a body is not kept a second time as its form"


def test_encoding_round_trips_every_event_kind() -> None:
    events = tuple(events_of(ANSWER, 2))
    stored = StoredAnswer.of_events(events, 123.5, ("a", "b"))
    assert stored.events == events
    again = decode(encode(stored))
    assert again is not None
    assert (again.events, again.created, again.tags) == (events, 123.5, ("a", "b"))
    assert isinstance(again.events[0], Start) and isinstance(again.events[-1], UsageReport)
    assert any(isinstance(e, Stop) for e in again.events)


def test_a_body_round_trips_as_the_bytes_it_was() -> None:
    body = b'{"object":"list","data":[{"embedding":[0.5]}]}\n'
    again = decode(encode(StoredAnswer(body=body, created=2.0)))
    assert again is not None and (again.body, again.rows, again.events) == (body, b"", ())


def entry(rows: Any, **head: Any) -> bytes:
    """Bytes as kept in Redis: a header line, then the event rows."""
    fields = {"v": FORMAT, "created": 1, "tags": [], "chat": True, **head}
    return orjson.dumps(fields) + b"\n" + orjson.dumps(rows)


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        b"[]",
        orjson.dumps({"v": FORMAT, "created": 1, "tags": [], "chat": False}),  # no payload line
        entry([["t", "a"]], v=FORMAT - 1),
        entry([["t", "a"]], created="yesterday"),
        entry([["t", "a"]], tags=[1]),
        entry([]),
        entry({"t": "a"}),
        entry([["?", 1]]),
        entry([["t"]]),
        entry([["t", "a", "b"]]),
        entry([["u", [1, 2]]]),
        entry([["u", "12345"]]),
        entry([["t", "a"]])[:-3],
    ],
)
def test_anything_unreadable_decodes_as_a_miss(data: bytes) -> None:
    assert decode(data) is None


@pytest.mark.parametrize(
    ("operation", "payload", "expected"),
    [
        (CHAT, {"messages": []}, True),
        (CHAT, {"n": 1}, True),
        (CHAT, {"n": 2}, False),
        (CHAT, {"logprobs": True}, False),
        (CHAT, {"logprobs": False}, True),
        (CHAT, {"modalities": ["text", "audio"]}, False),
        (MESSAGES, {"tools": [{"name": "f", "input_schema": {}}]}, True),
        (MESSAGES, {"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, False),
        (MESSAGES, {"mcp_servers": []}, False),
        (Operation.EMBEDDINGS, {"input": "x"}, True),
    ],
)
def test_requests_whose_answers_the_neutral_form_cannot_hold_are_not_cached(
    operation: Operation, payload: dict[str, Any], expected: bool
) -> None:
    assert replayable(operation, payload) is expected


def test_renderings_are_made_once_per_shape() -> None:
    stored = from_body(CHAT, openai_chat.render_chat(ANSWER), ())
    assert stored is not None
    first = stored.render(CHAT, False, False)
    assert stored.render(CHAT, False, False) is first


def test_the_size_counts_the_rendered_forms_kept() -> None:
    deltas = (TextDelta(f" wörd {i}") for i in range(300))
    events = (Start("id-1", "gpt-4o"), *deltas, Stop("stop"), UsageReport(Usage(10, 300)))
    stored = StoredAnswer.of_events(events, 1.0)
    bare = stored.size
    assert bare > len(stored.rows)
    forms = [stored.render(CHAT, True, True), stored.render(MESSAGES, False, False)]
    both = stored.size
    assert both >= bare + sum(map(len, forms))
    stored.forget((CHAT, True, True))
    assert list(stored.rendered) == [(MESSAGES, False, False)]
    assert both - stored.size >= len(forms[0]) and stored.size >= bare + len(forms[1])
