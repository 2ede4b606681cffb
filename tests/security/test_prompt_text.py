"""Where each API keeps its text: requests, whole answers and stream events, read and rewritten
in place, on the recorded payloads of tests/data."""

from __future__ import annotations

import copy
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from edgeproxy.operations import Operation
from edgeproxy.security.prompt_text import (
    Channel,
    TextSlot,
    answer_texts,
    finished_indexes,
    request_texts,
    stream_texts,
)
from edgeproxy.sse import SSEDecoder

DATA = Path(__file__).parent.parent / "data"


def load(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


def events(name: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(event.data)
        for event in SSEDecoder().feed((DATA / name).read_bytes())
        if event.data != b"[DONE]"
    ]


def read(slots: list[TextSlot]) -> list[tuple[str, str, bool]]:
    return [(slot.role, slot.get(), slot.json) for slot in slots]


def test_operation_labels_are_the_ones_the_proxy_uses() -> None:
    for operation in Operation:
        assert list(request_texts(operation.label, {})) == []
        assert list(answer_texts(operation.label, {})) == []
        assert stream_texts(operation.label, {}) == []


# --- requests ----------------------------------------------------------------------------


def test_openai_chat_request_texts() -> None:
    payload = load("openai/chat_request.json")
    assert read(list(request_texts("chat", payload))) == [
        ("system", "You are a travel assistant.", False),
        ("system", "Answer in JSON.", False),  # the developer role
        ("user", "What is the weather where these photos were taken?", False),
        ("assistant", "Two cities: Paris and Oslo. Call the weather tool for each.", False),
        ("assistant", '{"city":"Paris"}', True),
        ("assistant", '{"city":"Oslo"}', True),
        ("tool", "18 C, sunny", False),
        ("tool", "4 C, rain", False),
        ("assistant", "Paris is sunny; Oslo is rainy.", False),
        ("user", "And tomorrow?", False),
    ]


def test_openai_legacy_shapes() -> None:
    payload = {
        "messages": [
            {"role": "function", "name": "f", "content": "result"},
            {"role": "assistant", "content": None, "function_call": {"arguments": "{}"}},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            "not a message",
        ]
    }
    assert read(list(request_texts("chat", payload))) == [
        ("tool", "result", False),
        ("assistant", "{}", True),
        ("assistant", "no", False),
    ]


@pytest.mark.parametrize(
    ("operation", "payload", "texts"),
    [
        ("completions", {"prompt": "Say hi", "suffix": "bye"}, ["Say hi", "bye"]),
        ("completions", {"prompt": ["one", "two"]}, ["one", "two"]),
        ("completions", {"prompt": [1, 2, 3]}, []),  # token ids are not text
        ("embeddings", {"input": "embed me"}, ["embed me"]),
        ("embeddings", {"input": ["a", "b", [1, 2]]}, ["a", "b"]),
    ],
)
def test_prompt_and_input_texts(operation: str, payload: dict[str, Any], texts: list[str]) -> None:
    assert [slot.get() for slot in request_texts(operation, payload)] == texts
    assert all(slot.role == "user" for slot in request_texts(operation, payload))


@pytest.mark.parametrize("operation", ["messages", "count_tokens"])
def test_anthropic_request_texts(operation: str) -> None:
    payload = load("anthropic/request_client.json")
    assert read(list(request_texts(operation, payload))) == [
        ("system", "You are a weather assistant.", False),
        ("system", "Answer in one sentence.", False),
        ("user", "What is the weather where these photos were taken?", False),
        # thinking and redacted_thinking are signed: never read, never rewritten
        ("assistant", "Let me check both cities.", False),
        ("assistant", "Paris", False),  # tool_use input values
        ("assistant", "Oslo", False),
        ("assistant", "metric", False),
        ("tool", "18°C, sunny", False),
        ("tool", "Weather service timed out; last radar image attached.", False),
        ("user", "And what about tomorrow?", False),
    ]


def test_anthropic_system_string_and_documents() -> None:
    payload = {
        "system": "Be brief.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                        "context": "from the wiki",
                    },
                    {
                        "type": "document",
                        "source": {"type": "content", "content": [{"type": "text", "text": "p1"}]},
                    },
                    {"type": "document", "source": {"type": "base64", "data": "JVBERi0="}},
                    {"type": "tool_result", "tool_use_id": "t", "content": "plain result"},
                ],
            }
        ],
    }
    assert read(list(request_texts("messages", payload))) == [
        ("system", "Be brief.", False),
        ("document", "doc", False),
        ("document", "from the wiki", False),
        ("document", "p1", False),
        ("tool", "plain result", False),
    ]


@pytest.mark.parametrize(
    ("operation", "name"),
    [("chat", "openai/chat_request.json"), ("messages", "anthropic/request_client.json")],
)
def test_rewriting_a_request_changes_its_texts_and_nothing_else(operation: str, name: str) -> None:
    payload = load(name)
    original = copy.deepcopy(payload)
    for slot in request_texts(operation, payload):
        slot.set(f"<{slot.get()}>")
    assert [slot.get() for slot in request_texts(operation, payload)] == [
        f"<{slot.get()}>" for slot in request_texts(operation, original)
    ]
    for slot in request_texts(operation, payload):
        slot.set(slot.get()[1:-1])
    assert payload == original


def test_signed_thinking_is_left_as_it_is() -> None:
    payload = load("anthropic/request_client.json")
    for slot in request_texts("messages", payload):
        slot.set("changed")
    thinking = payload["messages"][1]["content"][0]
    assert thinking["thinking"] == "Two cities: Paris and Oslo. Call the weather tool for each."
    assert payload["messages"][1]["content"][1]["data"].startswith("EmwKAhgB")


# --- whole answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "name", "texts"),
    [
        (
            "chat",
            "openai/response_tool_calls.json",
            [("assistant", '{"city":"Paris"}', True), ("assistant", '{"city":"Oslo"}', True)],
        ),
        (
            "chat",
            "openai/response_refusal.json",
            [("assistant", "I'm sorry, I cannot assist with that request.", False)],
        ),
        (
            "chat",
            "openai/response_deepseek_reasoning.json",
            None,  # checked below: reasoning and content both
        ),
        (
            "messages",
            "anthropic/response_text.json",
            [("assistant", "Hello! It is 18°C and sunny in Paris.", False)],
        ),
        (
            "messages",
            "anthropic/response_tool_use.json",
            [("assistant", "I'll check both cities.", False), ("assistant", "Paris", False)],
        ),
    ],
)
def test_answer_texts(operation: str, name: str, texts: list[tuple[str, str, bool]] | None) -> None:
    body = load(name)
    found = read(list(answer_texts(operation, body)))
    if texts is None:
        message = body["choices"][0]["message"]
        texts = [
            ("assistant", message["content"], False),
            ("assistant", message["reasoning_content"], False),
        ]
    assert found == texts


def test_completions_answer_and_answers_without_text() -> None:
    body = {"choices": [{"index": 0, "text": "one"}, {"index": 1, "text": "two"}]}
    assert [slot.get() for slot in answer_texts("completions", body)] == ["one", "two"]
    assert list(answer_texts("embeddings", {"data": [{"embedding": [0.1]}]})) == []
    assert list(answer_texts("count_tokens", {"input_tokens": 3})) == []


def test_rewriting_an_answer_in_place() -> None:
    body = load("anthropic/response_tool_use.json")
    for slot in answer_texts("messages", body):
        slot.set(slot.get().upper())
    assert body["content"][2]["text"] == "I'LL CHECK BOTH CITIES."
    assert body["content"][3]["input"] == {"city": "PARIS"}
    assert body["content"][0]["thinking"].startswith("The user wants")


# --- streams -----------------------------------------------------------------------------


def channels(operation: str, name: str) -> dict[Channel, str]:
    """Each channel's text, the deltas of every event joined in order."""
    joined: dict[Channel, str] = defaultdict(str)
    for data in events(name):
        for slot in stream_texts(operation, data):
            joined[slot.channel] += slot.get()
    return dict(joined)


@pytest.mark.parametrize(
    ("operation", "name", "expected"),
    [
        ("chat", "openai/stream_text_usage.sse", {("content", 0, 0): "Hello, wörld ✓!"}),
        (
            "chat",
            "openai/stream_parallel_tools.sse",
            {
                ("arguments", 0, 0): '{"city": "Paris"}',
                ("arguments", 0, 1): '{"city": "Oslo"}',
            },
        ),
        (
            "messages",
            "anthropic/stream_text.sse",
            {("text", 0, 0): "Hello, wörld ✓!"},
        ),
        (
            "messages",
            "anthropic/stream_tools.sse",
            {
                ("text", 0, 0): "Checking both.",
                ("input_json", 1, 0): '{"city": "Paris", "unit": "celsius"}',
                ("input_json", 2, 0): '{"tz": "Europe/Oslo"}',
            },
        ),
    ],
)
def test_stream_channels_add_up_to_each_text(
    operation: str, name: str, expected: dict[Channel, str]
) -> None:
    assert {k: v for k, v in channels(operation, name).items() if v} == expected


def test_reasoning_streams_on_a_channel_of_its_own() -> None:
    joined = channels("chat", "openai/stream_deepseek_reasoning.sse")
    assert joined[("reasoning", 0, 0)].startswith("0.11 < 0.80, so 9.11 is smaller.")
    assert joined[("content", 0, 0)].startswith("9.11 is smaller.")


def test_json_channels_are_marked() -> None:
    for data in events("anthropic/stream_tools.sse"):
        for slot in stream_texts("messages", data):
            assert slot.json is (slot.channel[0] == "input_json")


def test_thinking_deltas_are_not_text_slots() -> None:
    assert channels("messages", "anthropic/stream_thinking.sse").keys() == {("text", 2, 0)}


def test_completions_stream_and_multiple_choices() -> None:
    data = {"choices": [{"index": 1, "text": "b"}, {"index": 0, "text": "a"}]}
    assert [(s.channel, s.get()) for s in stream_texts("completions", data)] == [
        (("text", 1, 0), "b"),
        (("text", 0, 0), "a"),
    ]


def test_stream_slots_rewrite_the_event_in_place() -> None:
    data = {"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "x"}}
    (slot,) = stream_texts("messages", data)
    slot.set("y")
    assert data["delta"]["text"] == "y"


@pytest.mark.parametrize(
    ("operation", "name", "finished"),
    [
        ("chat", "openai/stream_text_usage.sse", [0]),
        ("chat", "openai/stream_parallel_tools.sse", [0]),
        ("messages", "anthropic/stream_tools.sse", [0, 1, 2]),
    ],
)
def test_finished_indexes_name_the_channels_an_event_closes(
    operation: str, name: str, finished: list[int]
) -> None:
    assert [i for data in events(name) for i in finished_indexes(operation, data)] == finished
