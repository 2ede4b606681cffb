"""What a request needs: capabilities and a token estimate read from either dialect's shape."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.operations import Operation
from edgeproxy.routing.needs import (
    IMAGE_TOKENS,
    Needs,
    exceeds_context,
    fits,
    missing,
    needs_of,
    why_unfit,
)

CHAT, MESSAGES = Operation.CHAT, Operation.MESSAGES
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo" * 1000}
ANTHROPIC_IMAGE = {"type": "image", "source": PNG}
OPENAI_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo"}}
TOOL = {"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}
ANTHROPIC_TOOL = {"name": "get", "input_schema": {"type": "object"}}


def chat(*content: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": c} for c in content], **fields}


def messages(*content: Any, **fields: Any) -> dict[str, Any]:
    turns = [{"role": "user", "content": c} for c in content]
    return {"model": "m", "max_tokens": 10, "messages": turns, **fields}


@pytest.mark.parametrize(
    ("operation", "payload", "stream", "capabilities"),
    [
        (CHAT, chat("hi"), False, set()),
        (CHAT, chat("hi"), True, {"streaming"}),
        (CHAT, chat([{"type": "text", "text": "look"}, OPENAI_IMAGE]), False, {"vision"}),
        (CHAT, chat("hi", tools=[TOOL]), False, {"tools"}),
        (CHAT, chat("hi", functions=[TOOL["function"]]), False, {"tools"}),
        (CHAT, chat("hi", tools=[]), False, set()),
        (CHAT, chat("hi", response_format={"type": "json_object"}), False, {"json"}),
        (CHAT, chat("hi", response_format={"type": "json_schema"}), False, {"json"}),
        (CHAT, chat("hi", response_format={"type": "text"}), False, set()),
        (
            CHAT,
            chat([OPENAI_IMAGE], tools=[TOOL], response_format={"type": "json_object"}),
            True,
            {"vision", "tools", "json", "streaming"},
        ),
        (MESSAGES, messages("hi"), False, set()),
        (MESSAGES, messages("hi"), True, {"streaming"}),
        (MESSAGES, messages([ANTHROPIC_IMAGE]), False, {"vision"}),
        (
            MESSAGES,
            messages([{"type": "tool_result", "tool_use_id": "t", "content": [ANTHROPIC_IMAGE]}]),
            False,
            {"vision"},
        ),
        (MESSAGES, messages("hi", tools=[ANTHROPIC_TOOL]), False, {"tools"}),
        (MESSAGES, messages("hi", tools=[]), False, set()),
        (MESSAGES, messages("hi", output_format={"type": "json_schema"}), False, {"json"}),
        (
            MESSAGES,
            messages("hi", output_config={"format": {"type": "json_schema"}}),
            False,
            {"json"},
        ),
        (MESSAGES, messages("hi", output_config={"effort": "low"}), False, set()),
        (Operation.COUNT_TOKENS, messages([ANTHROPIC_IMAGE]), False, {"vision"}),
        (Operation.COMPLETIONS, {"prompt": "hi"}, True, {"streaming"}),
        (Operation.EMBEDDINGS, {"input": ["hi"]}, False, set()),
    ],
)
def test_capabilities_are_detected_in_both_dialects(
    operation: Operation, payload: dict[str, Any], stream: bool, capabilities: set[str]
) -> None:
    assert needs_of(operation, payload, stream).capabilities == capabilities


@pytest.mark.parametrize(
    ("operation", "payload", "tokens"),
    [
        (CHAT, chat("a" * 400), 100),
        (CHAT, chat("a" * 401), 101),
        (CHAT, chat([{"type": "text", "text": "a" * 40}, OPENAI_IMAGE]), 10 + IMAGE_TOKENS),
        (CHAT, {"messages": [{"role": "system", "content": "a" * 8}]}, 2),
        (MESSAGES, messages("a" * 40, system="b" * 40), 20),
        (MESSAGES, messages("a", system=[{"type": "text", "text": "b" * 7}]), 2),
        (MESSAGES, messages([ANTHROPIC_IMAGE, ANTHROPIC_IMAGE]), 2 * IMAGE_TOKENS),
        (Operation.COMPLETIONS, {"prompt": ["a" * 8, "b" * 8]}, 4),
        (Operation.EMBEDDINGS, {"input": "a" * 12}, 3),
        (Operation.EMBEDDINGS, {"input": [1, 2, 3]}, 3),
        (Operation.EMBEDDINGS, {"input": [[1, 2], [3, 4, 5]]}, 5),
    ],
)
def test_prompt_tokens_are_a_quarter_of_the_characters_plus_images(
    operation: Operation, payload: dict[str, Any], tokens: int
) -> None:
    assert needs_of(operation, payload, False).prompt_tokens == tokens


def test_base64_image_data_is_not_counted_as_text() -> None:
    small = dict(PNG, data="x")
    one = needs_of(MESSAGES, messages([{"type": "image", "source": small}]), False)
    big = needs_of(MESSAGES, messages([ANTHROPIC_IMAGE]), False)
    assert one.prompt_tokens == big.prompt_tokens == IMAGE_TOKENS


@pytest.mark.parametrize(
    ("operation", "bare", "with_more"),
    [
        (CHAT, chat("hi"), chat("hi", tools=[TOOL])),
        (CHAT, chat("hi"), chat("hi", functions=[TOOL["function"]])),
        (MESSAGES, messages("hi"), messages("hi", tools=[ANTHROPIC_TOOL])),
        (
            CHAT,
            chat("hi"),
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "function": {"name": "get", "arguments": '{"q": 1}'}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c", "content": "a long answer " * 10},
                ]
            },
        ),
        (
            CHAT,
            chat("hi"),
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "function_call": {"name": "get", "arguments": "{}"}},
                ]
            },
        ),
        (
            MESSAGES,
            messages("hi"),
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "get", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t", "content": "x" * 40}
                        ],
                    },
                ]
            },
        ),
        (
            MESSAGES,
            messages("hi"),
            messages(
                "hi",
                [{"type": "document", "source": {"type": "text", "data": "d" * 80}}],
            ),
        ),
        (
            MESSAGES,
            messages("hi"),
            messages("hi", [{"type": "thinking", "thinking": "t" * 80, "signature": "s"}]),
        ),
        (
            MESSAGES,
            messages("hi"),
            messages(
                "hi",
                [
                    {
                        "type": "document",
                        "source": {
                            "type": "content",
                            "content": [{"type": "text", "text": "d" * 80}],
                        },
                    }
                ],
            ),
        ),
    ],
)
def test_tools_calls_results_and_documents_add_tokens(
    operation: Operation, bare: dict[str, Any], with_more: dict[str, Any]
) -> None:
    assert (
        needs_of(operation, with_more, False).prompt_tokens
        > needs_of(operation, bare, False).prompt_tokens
    )


def test_estimate_grows_with_text_and_images() -> None:
    sizes = [
        needs_of(CHAT, chat("a" * n, [OPENAI_IMAGE] * k), False).prompt_tokens
        for n, k in ((10, 0), (1000, 0), (1000, 1), (1000, 3))
    ]
    assert sizes == sorted(sizes)
    assert len(set(sizes)) == len(sizes)


@pytest.mark.parametrize(
    ("operation", "payload", "output"),
    [
        (CHAT, chat("hi"), None),
        (CHAT, chat("hi", max_tokens=50), 50),
        (CHAT, chat("hi", max_completion_tokens=70), 70),
        (CHAT, chat("hi", max_tokens=50, max_completion_tokens=70), 70),
        (CHAT, chat("hi", max_tokens="50"), None),
        (CHAT, chat("hi", max_tokens=True), None),
        (MESSAGES, messages("hi"), 10),
        (Operation.COMPLETIONS, {"prompt": "hi", "max_tokens": 5}, 5),
        (Operation.EMBEDDINGS, {"input": "hi", "max_tokens": 5}, None),
    ],
)
def test_output_tokens_are_the_requested_maximum(
    operation: Operation, payload: dict[str, Any], output: int | None
) -> None:
    assert needs_of(operation, payload, False).output_tokens == output


@pytest.mark.parametrize("operation", list(Operation))
@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"messages": "hi", "prompt": 3, "input": {"a": 1}, "system": 5},
        {"messages": [None, 3, "x", {"content": 5}, {"content": [None, {"type": ["x"]}]}]},
        {"messages": [{"role": "assistant", "tool_calls": "x", "function_call": [1]}]},
        {"messages": [{"role": "assistant", "tool_calls": [{"function": "x"}, 3]}]},
        {"messages": [{"content": [{"type": "text", "text": 3}, {"type": "image_url"}]}]},
        {"messages": [{"content": [{"type": "tool_result", "content": {"type": "image"}}]}]},
        {"messages": [{"content": [{"type": "document", "source": "x"}]}]},
        {"messages": [{"content": [{"type": "document", "source": {"content": 3}}]}]},
        {"tools": "x", "functions": {"a": 1}, "response_format": "json", "output_format": 1},
        {"tools": [{"huge": 10**30}], "output_config": "x", "max_tokens": -1},
        {"prompt": [None, {"a": 1}, 1.5], "input": [[None], "x", {}]},
    ],
)
def test_malformed_payloads_never_raise(operation: Operation, payload: dict[str, Any]) -> None:
    assert isinstance(needs_of(operation, payload, False), Needs)


def test_nested_tool_results_are_read_one_level_deep_only() -> None:
    inner = {"type": "tool_result", "content": [ANTHROPIC_IMAGE]}
    outer = {"type": "tool_result", "content": [inner]}
    assert needs_of(MESSAGES, messages([outer]), False).capabilities == set()


def needs(*capabilities: str, prompt: int = 100, output: int | None = None) -> Needs:
    return Needs(frozenset(capabilities), prompt, output)


ALL = frozenset({"vision", "tools", "json", "streaming"})


@pytest.mark.parametrize(
    ("request_needs", "declared", "window", "context", "reason"),
    [
        (needs("vision"), None, None, False, ""),
        (needs("vision", "tools"), ALL, 1000, False, ""),
        (needs("vision"), frozenset({"tools"}), None, False, "needs vision"),
        (needs("tools", "vision"), frozenset(), None, False, "needs vision and tools"),
        (needs(prompt=1000), None, 1000, False, ""),
        (
            needs(prompt=1000, output=1),
            None,
            1000,
            True,
            "about 1000 prompt and up to 1 output tokens exceed a 1000-token context window",
        ),
        (
            needs(prompt=210000),
            None,
            128000,
            True,
            "about 210000 prompt tokens exceed a 128000-token context window",
        ),
        (
            needs(prompt=100000, output=40000),
            ALL,
            128000,
            True,
            "about 100000 prompt and up to 40000 output tokens exceed "
            "a 128000-token context window",
        ),
        (
            needs("json", prompt=200),
            frozenset(),
            100,
            True,
            "needs json; about 200 prompt tokens exceed a 100-token context window",
        ),
    ],
)
def test_fits_why_unfit_and_exceeds_context(
    request_needs: Needs,
    declared: frozenset[str] | None,
    window: int | None,
    context: bool,
    reason: str,
) -> None:
    assert fits(request_needs, declared, window) is (reason == "")
    assert exceeds_context(request_needs, window) is context
    assert why_unfit(request_needs, declared, window) == reason


@pytest.mark.parametrize(
    ("declared", "lacking"),
    [(None, set()), (ALL, set()), (frozenset({"tools"}), {"vision"}), (frozenset(), {"vision"})],
)
def test_missing_names_the_undeclared_capabilities(
    declared: frozenset[str] | None, lacking: set[str]
) -> None:
    assert missing(needs("vision"), declared) == lacking


def test_only_the_context_window_stops_a_capable_deployment() -> None:
    big = needs("vision", prompt=300000)
    assert not missing(big, ALL) and exceeds_context(big, 200000)
    assert not fits(big, ALL, 200000) and fits(big, ALL, 400000)
