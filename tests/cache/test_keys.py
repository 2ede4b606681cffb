"""Cache keys: a hit never answers a different question, equivalent encodings always hit."""

from __future__ import annotations

import copy
import dataclasses
import random
import string
from typing import Any, get_args

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from edgeproxy.cache.keys import EXCLUDED_FIELDS, cache_key, key_scope
from edgeproxy.config import CacheKeySettings
from edgeproxy.dialects.neutral import Part
from edgeproxy.operations import Operation

CHAT, MESSAGES = Operation.CHAT, Operation.MESSAGES
DEFAULT = CacheKeySettings()
SHARED = CacheKeySettings(share_across_dialects=True)
FOLDED = CacheKeySettings(case_insensitive=True)
FOLDED_SHARED = CacheKeySettings(case_insensitive=True, share_across_dialects=True)
ALL_SETTINGS = [DEFAULT, SHARED, FOLDED, FOLDED_SHARED]
SETTINGS_IDS = ["default", "shared", "folded", "folded-shared"]

OPENAI_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ANTHROPIC_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


def key(
    operation: Operation,
    payload: Any,
    settings: CacheKeySettings = DEFAULT,
    group: str = "smart",
    namespace: str = "team-a",
) -> str:
    return cache_key(operation, payload, group, namespace, settings)


def chat(*turns: Any, **fields: Any) -> dict[str, Any]:
    """An OpenAI chat request: turns alternate user, assistant, user..."""
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": turn} for i, turn in enumerate(turns)]
    return {"model": "gpt-4o", "messages": messages, **fields}


def messages(*turns: Any, **fields: Any) -> dict[str, Any]:
    """An Anthropic messages request: turns alternate user, assistant, user..."""
    roles = ("user", "assistant")
    turns_ = [{"role": roles[i % 2], "content": turn} for i, turn in enumerate(turns)]
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": turns_, **fields}


def with_system(payload: dict[str, Any], system: Any) -> dict[str, Any]:
    return {**payload, "messages": [{"role": "system", "content": system}, *payload["messages"]]}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


# --- the key itself ---------------------------------------------------------------------------


def test_key_is_a_hex_sha256_that_depends_only_on_the_request() -> None:
    payload = chat("hi", temperature=0.2)
    first = key(CHAT, payload)
    assert len(first) == 64
    assert set(first) <= set(string.hexdigits.lower())
    assert key(CHAT, copy.deepcopy(payload)) == first


@pytest.mark.parametrize("settings", ALL_SETTINGS, ids=SETTINGS_IDS)
@pytest.mark.parametrize(
    ("operation", "payload"),
    [
        (
            CHAT,
            with_system(
                chat([text("Hi"), {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]),
                "Be Brief",
            ),
        ),
        (MESSAGES, messages([text("Hi", cache_control={"type": "ephemeral"})], system="Be Brief")),
        (Operation.EMBEDDINGS, {"model": "e", "input": ["a", "b"], "dimensions": 8.0}),
    ],
)
def test_keying_leaves_the_payload_untouched(
    operation: Operation, payload: dict[str, Any], settings: CacheKeySettings
) -> None:
    before = copy.deepcopy(payload)
    key(operation, payload, settings)
    assert payload == before


# --- what changes the answer changes the key --------------------------------------------------

BASE_CHAT = with_system(chat("What is the capital of France?"), "You are terse.")
BASE_MESSAGES = messages("What is the capital of France?", system="You are terse.")


@pytest.mark.parametrize("settings", [DEFAULT, SHARED], ids=["default", "shared"])
@pytest.mark.parametrize(
    ("operation", "base", "changed"),
    [
        (CHAT, BASE_CHAT, with_system(chat("What is the capital of Spain?"), "You are terse.")),
        (CHAT, BASE_CHAT, with_system(chat("What is the capital of France? "), "You are terse.")),
        (CHAT, BASE_CHAT, with_system(chat("What is the capital of France?"), "You are kind.")),
        (CHAT, BASE_CHAT, chat("What is the capital of France?")),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "tools": [OPENAI_TOOL]}),
        (CHAT, {**BASE_CHAT, "tools": [OPENAI_TOOL]}, {**BASE_CHAT, "tools": [OPENAI_TOOL] * 2}),
        (CHAT, {**BASE_CHAT, "tools": [OPENAI_TOOL]}, {**BASE_CHAT, "tool_choice": "required"}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "tool_choice": "none"}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "response_format": {"type": "json_object"}}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "temperature": 0}),
        (CHAT, {**BASE_CHAT, "temperature": 0.7}, {**BASE_CHAT, "temperature": 0.70001}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "top_p": 0.9}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "top_k": 40}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "seed": 7}),
        (CHAT, {**BASE_CHAT, "seed": 7}, {**BASE_CHAT, "seed": 8}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "stop": "\n"}),
        (CHAT, {**BASE_CHAT, "stop": ["a"]}, {**BASE_CHAT, "stop": ["a", "b"]}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "max_tokens": 10}),
        (
            CHAT,
            {**BASE_CHAT, "max_completion_tokens": 10},
            {**BASE_CHAT, "max_completion_tokens": 10, "max_tokens": 20},
        ),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "reasoning_effort": "low"}),
        (
            CHAT,
            {**BASE_CHAT, "reasoning_effort": "high"},
            {**BASE_CHAT, "reasoning_effort": "xhigh"},
        ),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "reasoning_effort": "none"}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "n": 2}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "logprobs": True}),
        (CHAT, {**BASE_CHAT, "logprobs": True}, {**BASE_CHAT, "logprobs": 1}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "top_logprobs": 3}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "parallel_tool_calls": False}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "frequency_penalty": 0.5}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "presence_penalty": 0.5}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "logit_bias": {"50256": -100}}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "verbosity": "low"}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "modalities": ["text", "audio"]}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "prediction": {"type": "content", "content": "Paris"}}),
        (CHAT, BASE_CHAT, {**BASE_CHAT, "web_search_options": {}}),
        (
            MESSAGES,
            BASE_MESSAGES,
            messages("What is the capital of Spain?", system="You are terse."),
        ),
        (MESSAGES, BASE_MESSAGES, messages("What is the capital of France?", system="Be kind.")),
        (MESSAGES, BASE_MESSAGES, messages("What is the capital of France?")),
        (MESSAGES, BASE_MESSAGES, {**BASE_MESSAGES, "max_tokens": 1025}),
        (MESSAGES, BASE_MESSAGES, {**BASE_MESSAGES, "temperature": 0.2}),
        (MESSAGES, BASE_MESSAGES, {**BASE_MESSAGES, "top_p": 0.9}),
        (MESSAGES, BASE_MESSAGES, {**BASE_MESSAGES, "top_k": 5}),
        (MESSAGES, BASE_MESSAGES, {**BASE_MESSAGES, "stop_sequences": ["END"]}),
        (MESSAGES, BASE_MESSAGES, {**BASE_MESSAGES, "tools": [ANTHROPIC_TOOL]}),
        (
            MESSAGES,
            {**BASE_MESSAGES, "tools": [ANTHROPIC_TOOL]},
            {**BASE_MESSAGES, "tools": [ANTHROPIC_TOOL], "tool_choice": {"type": "any"}},
        ),
        (
            MESSAGES,
            {**BASE_MESSAGES, "tools": [ANTHROPIC_TOOL], "tool_choice": {"type": "auto"}},
            {
                **BASE_MESSAGES,
                "tools": [ANTHROPIC_TOOL],
                "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
            },
        ),
        (
            MESSAGES,
            BASE_MESSAGES,
            {**BASE_MESSAGES, "thinking": {"type": "enabled", "budget_tokens": 2048}},
        ),
        (
            MESSAGES,
            {**BASE_MESSAGES, "thinking": {"type": "enabled", "budget_tokens": 2048}},
            {**BASE_MESSAGES, "thinking": {"type": "enabled", "budget_tokens": 4096}},
        ),
        (
            MESSAGES,
            {**BASE_MESSAGES, "thinking": {"type": "adaptive"}},
            {**BASE_MESSAGES, "thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}},
        ),
        (
            MESSAGES,
            BASE_MESSAGES,
            {
                **BASE_MESSAGES,
                "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
            },
        ),
        (MESSAGES, BASE_MESSAGES, {**BASE_MESSAGES, "container": "container_1"}),
        (Operation.EMBEDDINGS, {"input": "a"}, {"input": "b"}),
        (Operation.EMBEDDINGS, {"input": "a"}, {"input": "a", "dimensions": 256}),
        (Operation.EMBEDDINGS, {"input": "a"}, {"input": "a", "encoding_format": "base64"}),
        (Operation.COMPLETIONS, {"prompt": "a"}, {"prompt": "a", "suffix": "b"}),
        (Operation.COMPLETIONS, {"prompt": "a"}, {"prompt": "a", "echo": True}),
        (Operation.COUNT_TOKENS, BASE_MESSAGES, {**BASE_MESSAGES, "tools": [ANTHROPIC_TOOL]}),
    ],
)
def test_a_field_that_can_change_the_answer_changes_the_key(
    operation: Operation,
    base: dict[str, Any],
    changed: dict[str, Any],
    settings: CacheKeySettings,
) -> None:
    assert key(operation, base, settings) != key(operation, changed, settings)


@pytest.mark.parametrize("settings", ALL_SETTINGS, ids=SETTINGS_IDS)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", True),
        ("stream_options", {"include_usage": True}),
        ("user", "user-123"),
        ("metadata", {"user_id": "u-1", "tag": "x"}),
        ("store", True),
        ("service_tier", "flex"),
        ("safety_identifier", "hash-of-user"),
        ("prompt_cache_key", "conversation-7"),
        ("prompt_cache_retention", "24h"),
        ("cache_control", {"type": "ephemeral"}),
        ("model", "another-alias-of-the-group"),
    ],
)
@pytest.mark.parametrize(("operation", "base"), [(CHAT, BASE_CHAT), (MESSAGES, BASE_MESSAGES)])
def test_a_field_that_cannot_change_the_answer_leaves_the_key_alone(
    operation: Operation,
    base: dict[str, Any],
    field: str,
    value: Any,
    settings: CacheKeySettings,
) -> None:
    assert field in EXCLUDED_FIELDS
    assert key(operation, base, settings) == key(operation, {**base, field: value}, settings)


def test_only_delivery_billing_and_logging_fields_are_left_out_by_default() -> None:
    assert {
        "model",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
    } <= EXCLUDED_FIELDS
    answer_changing = {
        "messages",
        "system",
        "n",
        "logprobs",
        "top_logprobs",
        "parallel_tool_calls",
        "seed",
        "temperature",
        "top_p",
        "top_k",
        "reasoning_effort",
        "thinking",
        "output_config",
        "tools",
        "tool_choice",
        "response_format",
        "stop",
        "stop_sequences",
        "max_tokens",
        "max_completion_tokens",
    }
    assert not answer_changing & EXCLUDED_FIELDS


# --- equivalent encodings share ---------------------------------------------------------------


@pytest.mark.parametrize("settings", ALL_SETTINGS, ids=SETTINGS_IDS)
@pytest.mark.parametrize(
    ("operation", "one", "other"),
    [
        (CHAT, chat("hi", temperature=1), chat("hi", temperature=1.0)),
        (CHAT, chat("hi", temperature=0), chat("hi", temperature=-0.0)),
        (CHAT, chat("hi", max_tokens=100), chat("hi", max_tokens=100.0)),
        (CHAT, chat("hi", seed=2**53), chat("hi", seed=float(2**53))),
        (CHAT, chat("hi"), chat([text("hi")])),
        (CHAT, with_system(chat("hi"), "S"), with_system(chat("hi"), [text("S")])),
        (CHAT, chat("hi", "hello", "bye"), chat("hi", [text("hello")], "bye")),
        (CHAT, chat("hi", stop="END"), chat("hi", stop=["END"])),
        (
            CHAT,
            chat("hi", tools=[OPENAI_TOOL], temperature=0.5),
            {"temperature": 0.5, "tools": [OPENAI_TOOL], "messages": chat("hi")["messages"]},
        ),
        (
            CHAT,
            chat("hi", response_format={"type": "json_schema", "json_schema": {"schema": SCHEMA}}),
            chat("hi", response_format={"json_schema": {"schema": SCHEMA}, "type": "json_schema"}),
        ),
        (
            CHAT,
            chat("hi", extra_field={"a": 1.0, "b": [2.0]}),
            chat("hi", extra_field={"b": [2], "a": 1}),
        ),
        (MESSAGES, messages("hi"), messages([text("hi")])),
        (MESSAGES, messages("hi", system="S"), messages("hi", system=[text("S")])),
        (MESSAGES, messages("hi", max_tokens=10), messages("hi", max_tokens=10.0)),
        (
            MESSAGES,
            messages("hi", thinking={"type": "enabled", "budget_tokens": 2048}),
            messages("hi", thinking={"budget_tokens": 2048.0, "type": "enabled"}),
        ),
        (Operation.COMPLETIONS, {"prompt": "a", "stop": "x"}, {"prompt": "a", "stop": ["x"]}),
        (Operation.EMBEDDINGS, {"input": "a", "dimensions": 8}, {"dimensions": 8.0, "input": "a"}),
        (
            Operation.COUNT_TOKENS,
            messages("hi", system="S"),
            messages([text("hi")], system=[text("S")]),
        ),
    ],
)
def test_equivalent_encodings_share_a_key(
    operation: Operation, one: dict[str, Any], other: dict[str, Any], settings: CacheKeySettings
) -> None:
    assert key(operation, one, settings) == key(operation, other, settings)


@pytest.mark.parametrize(
    ("operation", "one", "other"),
    [
        (MESSAGES, messages("hi"), messages([text("hi", cache_control={"type": "ephemeral"})])),
        (MESSAGES, messages("hi", system="S"), messages("hi", system=[text("S", citations=[{}])])),
        (MESSAGES, messages("hi"), messages([text("h"), text("i")])),
        (CHAT, chat("hi"), chat([text("hi", detail="x")])),
        (CHAT, chat("hi"), chat([text("hi"), text("")])),
        (CHAT, chat("hi", stop="a"), chat("hi", stop=["a", "a"])),
        (CHAT, chat("hi", logprobs=True), chat("hi", logprobs=1)),
        (CHAT, chat("hi", logprobs=False), chat("hi", logprobs=0)),
        (CHAT, chat("hi", seed=1), chat("hi", seed="1")),
        (CHAT, chat("hi", temperature=0.5), chat("hi", temperature="0.5")),
        (CHAT, chat("hi", stop=None), chat("hi", stop=[])),
        (CHAT, chat("hi"), chat(" hi")),
        (CHAT, chat("hi"), chat("hi\n")),
        (CHAT, chat("a  b"), chat("a b")),
        (CHAT, chat("def f():\n    return 1"), chat("def f():\n  return 1")),
        (CHAT, chat("caf\u00e9"), chat("cafe\u0301")),  # NFC and NFD: not normalised
    ],
)
def test_encodings_that_say_more_or_differ_in_text_do_not_share(
    operation: Operation, one: dict[str, Any], other: dict[str, Any]
) -> None:
    assert key(operation, one) != key(operation, other)


def test_a_text_that_looks_like_a_float_is_still_keyed_as_text() -> None:
    tricky = chat('x":1.0,"y', temperature=1.0, extra={"v": "[2.0]"})
    assert key(CHAT, tricky) == key(CHAT, {**tricky, "temperature": 1})
    assert key(CHAT, tricky) != key(CHAT, chat('x":1,"y', temperature=1, extra={"v": "[2]"}))


# --- group, tenant and dialect ----------------------------------------------------------------


def test_the_group_not_the_model_alias_is_keyed() -> None:
    assert key(CHAT, chat("hi", model="fast")) == key(CHAT, chat("hi", model="gpt-4o-mini"))
    assert key(CHAT, chat("hi"), group="fast") != key(CHAT, chat("hi"), group="smart")


@pytest.mark.parametrize("settings", ALL_SETTINGS, ids=SETTINGS_IDS)
@pytest.mark.parametrize(("operation", "payload"), [(CHAT, BASE_CHAT), (MESSAGES, BASE_MESSAGES)])
def test_tenants_never_share(
    operation: Operation, payload: dict[str, Any], settings: CacheKeySettings
) -> None:
    keys = {key(operation, payload, settings, namespace=n) for n in ("default", "team-a", "b")}
    assert len(keys) == 3


def tool_turns(result: Any, name: str = "get_weather") -> list[dict[str, Any]]:
    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": '{"A":1}'}}
    return [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": result},
    ]


SAME_CONVERSATION = [
    (
        with_system(chat("Name a colour.", max_tokens=1024), "Answer in one word."),
        messages("Name a colour.", system="Answer in one word.", max_tokens=1024),
    ),
    (
        with_system(chat("Name a colour.", max_tokens=64, temperature=0.2), "Be brief."),
        messages("Name a colour.", system=[text("Be brief.")], max_tokens=64, temperature=0.2),
    ),
    (
        chat("Hi", "Hello!", "How are you?", max_completion_tokens=32, stop="\n"),
        messages("Hi", "Hello!", [text("How are you?")], max_tokens=32, stop_sequences=["\n"]),
    ),
    (
        chat("Weather in Paris?", tools=[OPENAI_TOOL], tool_choice="required", max_tokens=99),
        messages(
            "Weather in Paris?", tools=[ANTHROPIC_TOOL], tool_choice={"type": "any"}, max_tokens=99
        ),
    ),
    (
        chat(
            [
                text("What is this?"),
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo"}},
            ],
            max_tokens=50,
        ),
        messages(
            [
                text("What is this?"),
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo"},
                },
            ],
            max_tokens=50,
        ),
    ),
    (
        {"messages": tool_turns("Sunny"), "tools": [OPENAI_TOOL], "max_tokens": 70},
        messages(
            "weather?",
            [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"A": 1}}],
            [{"type": "tool_result", "tool_use_id": "c1", "content": "Sunny"}],
            tools=[ANTHROPIC_TOOL],
            max_tokens=70,
        ),
    ),
    (
        chat("Think.", reasoning_effort="medium", max_tokens=5000),
        messages(
            "Think.",
            thinking={"type": "adaptive"},
            output_config={"effort": "medium"},
            max_tokens=5000,
        ),
    ),
]


@pytest.mark.parametrize(("openai", "anthropic"), SAME_CONVERSATION)
def test_dialects_share_only_when_configured_to(
    openai: dict[str, Any], anthropic: dict[str, Any]
) -> None:
    assert key(CHAT, openai) != key(MESSAGES, anthropic)
    assert key(CHAT, openai, SHARED) == key(MESSAGES, anthropic, SHARED)
    assert key(CHAT, openai, FOLDED_SHARED) == key(MESSAGES, anthropic, FOLDED_SHARED)


def test_openai_max_token_fields_are_one_setting_only_in_the_shared_form() -> None:
    """Both name the output limit; the neutral form, like Anthropic, has one."""
    old_name, new_name = chat("hi", max_tokens=10), chat("hi", max_completion_tokens=10)
    assert key(CHAT, old_name) != key(CHAT, new_name)
    assert key(CHAT, old_name, SHARED) == key(CHAT, new_name, SHARED)
    assert key(CHAT, new_name, SHARED) == key(MESSAGES, messages("hi", max_tokens=10), SHARED)


def test_neutral_message_parts_differ_in_their_field_names() -> None:
    """The neutral form is keyed as orjson writes it, with no class names: a Text and a
    Thinking with the same text must still differ (Thinking has more fields)."""
    names = [frozenset(f.name for f in dataclasses.fields(part)) for part in get_args(Part)]
    assert len(set(names)) == len(names)


def test_shared_dialects_still_need_the_same_question() -> None:
    openai = with_system(chat("Name a colour.", max_tokens=64, temperature=0.2), "Be brief.")
    anthropic = messages("Name a colour.", system="Be brief.", max_tokens=64, temperature=0.2)
    assert key(CHAT, openai, SHARED) == key(MESSAGES, anthropic, SHARED)
    for changed in (
        {**anthropic, "temperature": 0.3},
        {**anthropic, "max_tokens": 65},
        {**anthropic, "system": "Be kind."},
        {**anthropic, "top_k": 3},
        messages("Name a color.", system="Be brief.", max_tokens=64, temperature=0.2),
    ):
        assert key(CHAT, openai, SHARED) != key(MESSAGES, changed, SHARED)
    assert key(CHAT, openai, SHARED) != key(CHAT, openai, SHARED, group="other")
    assert key(CHAT, openai, SHARED) != key(MESSAGES, anthropic, SHARED, namespace="team-b")


def test_other_operations_never_share_even_when_dialects_do() -> None:
    payload = messages("hi", system="S")
    assert key(MESSAGES, payload, SHARED) != key(Operation.COUNT_TOKENS, payload, SHARED)
    both = {"input": "hi", "prompt": "hi"}
    assert key(Operation.EMBEDDINGS, both, SHARED) != key(Operation.COMPLETIONS, both, SHARED)


# Requests whose neutral form would say less than they do: with sharing on, each must still be
# told apart from the request the parse would turn it into.
LOSSY_IN_NEUTRAL_FORM = [
    (CHAT, chat("hi"), {"messages": [{"role": "user", "content": "hi", "name": "bob"}]}),
    (
        CHAT,
        chat([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]),
        chat([{"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]),
    ),
    (
        CHAT,
        chat("hi", tools=[OPENAI_TOOL]),
        chat(
            "hi", tools=[{**OPENAI_TOOL, "function": {**OPENAI_TOOL["function"], "strict": True}}]
        ),
    ),
    (CHAT, chat("hi", reasoning_effort="high"), chat("hi", reasoning_effort="xhigh")),
    (CHAT, chat("hi", reasoning_effort="high"), chat("hi", reasoning_effort="max")),
    (CHAT, chat("hi"), chat("hi", reasoning_effort="none")),
    (
        CHAT,
        with_system(chat("hi"), "S"),
        {"messages": [{"role": "developer", "content": "S"}, {"role": "user", "content": "hi"}]},
    ),
    (CHAT, chat("hi"), with_system(chat("hi"), "")),
    (
        CHAT,
        chat([text("a"), text("b")]),
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
    ),
    (
        CHAT,
        with_system(chat("a", "b", "c"), "S"),
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "system", "content": "S"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ]
        },
    ),
    (
        CHAT,
        chat("a", "b"),
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": None, "refusal": "b"},
            ]
        },
    ),
    (
        CHAT,
        chat([text("a"), text("c")]),
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": None},
                {"role": "user", "content": "c"},
            ]
        },
    ),
    (
        CHAT,
        chat("hi", response_format={"type": "json_schema", "json_schema": {"schema": SCHEMA}}),
        chat(
            "hi",
            response_format={
                "type": "json_schema",
                "json_schema": {"schema": SCHEMA, "description": "An answer"},
            },
        ),
    ),
    (CHAT, chat("hi", max_tokens=10), chat("hi", max_tokens=10, max_completion_tokens=10)),
    (
        MESSAGES,
        messages("hi", tools=[ANTHROPIC_TOOL]),
        messages("hi", tools=[{**ANTHROPIC_TOOL, "strict": True}]),
    ),
    (MESSAGES, messages("hi", "a"), messages("hi", [text("a", citations=[{"cited_text": "x"}])])),
    (
        MESSAGES,
        messages("hi", thinking={"type": "adaptive"}, output_config={"effort": "low"}),
        messages("hi", output_config={"effort": "low"}),
    ),
    (
        MESSAGES,
        messages("hi"),
        messages("hi", thinking={"type": "disabled"}, output_config={"effort": "low"}),
    ),
    (MESSAGES, messages("hi"), messages("hi", thinking={"type": "disabled"})),
    (
        MESSAGES,
        messages("hi", thinking={"type": "adaptive"}),
        messages("hi", thinking={"type": "adaptive"}, output_config={"effort": "max"}),
    ),
    (MESSAGES, messages("hi"), messages("hi", system="")),
    (MESSAGES, messages("hi"), messages([{"type": "document", "source": {"type": "text"}}])),
]


@pytest.mark.parametrize(("operation", "plain", "lossy"), LOSSY_IN_NEUTRAL_FORM)
def test_a_request_the_neutral_form_cannot_hold_whole_is_keyed_in_its_own_dialect(
    operation: Operation, plain: dict[str, Any], lossy: dict[str, Any]
) -> None:
    assert key(operation, plain, SHARED) != key(operation, lossy, SHARED)
    assert key(operation, lossy, SHARED) == key(operation, lossy, DEFAULT)


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": "not a list"},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        {"messages": [], "reasoning_effort": ["high"]},
        {"messages": [], "temperature": "hot"},
        {"messages": [], "max_tokens": 1.5},
    ],
)
def test_a_malformed_request_is_keyed_in_its_own_dialect(payload: dict[str, Any]) -> None:
    assert key(CHAT, payload, SHARED) == key(CHAT, payload, DEFAULT)


# --- settings ---------------------------------------------------------------------------------


def test_exclude_leaves_a_field_out_and_include_puts_a_default_exclusion_back() -> None:
    settings = CacheKeySettings(exclude=frozenset({"temperature"}), include=frozenset({"user"}))
    for kept in (DEFAULT, settings):
        assert key(CHAT, chat("hi", top_p=0.1), kept) != key(CHAT, chat("hi", top_p=0.2), kept)
    cold, warm = chat("hi", temperature=0), chat("hi", temperature=1)
    assert key(CHAT, cold) != key(CHAT, warm)
    assert key(CHAT, cold, settings) == key(CHAT, warm, settings)
    alice, bob = chat("hi", user="alice"), chat("hi", user="bob")
    assert key(CHAT, alice) == key(CHAT, bob)
    assert key(CHAT, alice, settings) != key(CHAT, bob, settings)


def test_include_and_exclude_apply_to_the_shared_form_too() -> None:
    settings = CacheKeySettings(
        share_across_dialects=True,
        exclude=frozenset({"temperature"}),
        include=frozenset({"stream"}),
    )
    openai = chat("hi", max_tokens=9, temperature=0.1)
    anthropic = messages("hi", max_tokens=9, temperature=0.9)
    assert key(CHAT, openai, settings) == key(MESSAGES, anthropic, settings)
    streamed = {**anthropic, "stream": True}
    assert key(MESSAGES, streamed, settings) != key(MESSAGES, anthropic, settings)
    assert key(CHAT, {**openai, "stream": True}, settings) == key(MESSAGES, streamed, settings)


@pytest.mark.parametrize(
    "other",
    [
        CacheKeySettings(exclude=frozenset({"temperature"})),
        CacheKeySettings(include=frozenset({"user"})),
        CacheKeySettings(case_insensitive=True),
    ],
)
def test_an_entry_stored_under_other_settings_is_never_served(other: CacheKeySettings) -> None:
    payload = chat("hi")
    assert key(CHAT, payload, other) != key(CHAT, payload)


def test_settings_that_change_nothing_keep_the_keys() -> None:
    payload = chat("hi")
    no_op = CacheKeySettings(include=frozenset({"not-excluded"}), exclude=frozenset({"stream"}))
    assert key(CHAT, payload, no_op) == key(CHAT, payload)
    assert key(CHAT, payload, SHARED) != key(CHAT, payload)  # neutral form
    assert key(Operation.EMBEDDINGS, {"input": "a"}, SHARED) == key(
        Operation.EMBEDDINGS, {"input": "a"}
    )


def test_the_scope_is_the_group_alone_without_headers_that_change_answers() -> None:
    plain = CIMultiDict({"content-type": "application/json", "x-other": "1"})
    assert key_scope("smart", plain, DEFAULT) == "smart"
    assert key_scope("smart", {"anthropic-beta": "x"}, CacheKeySettings(headers=())) == "smart"


def test_every_value_of_a_header_that_changes_answers_is_in_the_scope() -> None:
    settings = CacheKeySettings(headers=("anthropic-beta", "x-adapter"))
    one = CIMultiDict([("Anthropic-Beta", "a"), ("X-Adapter", "legal")])
    two = CIMultiDict([("anthropic-beta", "a"), ("anthropic-beta", "b"), ("x-adapter", "legal")])
    scopes = {
        key_scope("smart", headers, settings)
        for headers in (one, two, {"x-adapter": "legal"}, {"x-adapter": "medical"}, {})
    }
    assert len(scopes) == 5
    assert key_scope("smart", one, settings) == key_scope(
        "smart", {"anthropic-beta": "a", "x-adapter": "legal"}, settings
    )


@pytest.mark.parametrize("settings", [FOLDED, FOLDED_SHARED], ids=["folded", "folded-shared"])
@pytest.mark.parametrize(
    ("operation", "one", "other"),
    [
        (CHAT, chat("What Is Python?"), chat("what is python?")),
        (CHAT, chat("STRASSE"), chat("straße")),
        (CHAT, chat("hi", "Hello THERE", "ok"), chat("hi", "hello there", "OK")),
        (CHAT, with_system(chat("hi"), "Be BRIEF"), with_system(chat("hi"), [text("be brief")])),
        (CHAT, chat([text("A"), text("B")]), chat([text("a"), text("b")])),
        (MESSAGES, messages("Hi", system="S"), messages([text("hI")], system=[text("s")])),
        (MESSAGES, messages([text("A"), text("B")]), messages([text("a"), text("b")])),
    ],
)
def test_case_insensitive_matching_folds_the_text_of_messages(
    operation: Operation, one: dict[str, Any], other: dict[str, Any], settings: CacheKeySettings
) -> None:
    assert key(operation, one) != key(operation, other)
    assert key(operation, one, settings) == key(operation, other, settings)


@pytest.mark.parametrize("settings", [FOLDED, FOLDED_SHARED], ids=["folded", "folded-shared"])
@pytest.mark.parametrize(
    ("operation", "one", "other"),
    [
        (CHAT, chat("hi", stop="END"), chat("hi", stop="end")),
        (
            CHAT,
            chat("hi", tools=[{**OPENAI_TOOL, "function": {"name": "GET_WEATHER"}}]),
            chat("hi", tools=[{**OPENAI_TOOL, "function": {"name": "get_weather"}}]),
        ),
        (
            CHAT,
            chat(
                "hi",
                response_format={"type": "json_schema", "json_schema": {"schema": {"enum": ["A"]}}},
            ),
            chat(
                "hi",
                response_format={"type": "json_schema", "json_schema": {"schema": {"enum": ["a"]}}},
            ),
        ),
        (CHAT, {"messages": tool_turns("SUNNY")}, {"messages": tool_turns("sunny")}),
        (CHAT, {"messages": tool_turns("x", "Get")}, {"messages": tool_turns("x", "get")}),
        (
            CHAT,
            chat([{"type": "image_url", "image_url": {"url": "https://x/A.png"}}]),
            chat([{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]),
        ),
        (
            MESSAGES,
            messages([{"type": "tool_result", "tool_use_id": "t", "content": "SUNNY"}]),
            messages([{"type": "tool_result", "tool_use_id": "t", "content": "sunny"}]),
        ),
        (MESSAGES, messages("hi", stop_sequences=["END"]), messages("hi", stop_sequences=["end"])),
    ],
)
def test_case_insensitive_matching_keeps_the_case_of_everything_else(
    operation: Operation, one: dict[str, Any], other: dict[str, Any], settings: CacheKeySettings
) -> None:
    assert key(operation, one, settings) != key(operation, other, settings)


# --- odd payloads -----------------------------------------------------------------------------


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("settings", ALL_SETTINGS, ids=SETTINGS_IDS)
@pytest.mark.parametrize("operation", list(Operation))
@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"messages": 2**70}, {"messages": 2**70 + 1}),
        ({"messages": -(2**70)}, {"messages": 2**70}),
        ({"messages": 10**5000}, {"messages": 10**5000 + 1}),
        ({"messages": "\ud800"}, {"messages": "\udc00"}),
        ({"messages": nested(120)}, {"messages": nested(121)}),
        ({"tools": {1: "a"}}, {"tools": {2: "a"}}),
        ({"tools": {1: "a"}}, {"tools": {"1": "a"}}),
        ({"messages": [{"role": "user", "content": [text("\ud800")]}]}, {"messages": []}),
        ({"messages": (1, 2)}, {"messages": (1, 3)}),
        (["not", "an", "object"], ["not", "an", "object", "!"]),
    ],
)
def test_odd_values_are_keyed_exactly_without_raising(
    operation: Operation, one: Any, other: Any, settings: CacheKeySettings
) -> None:
    assert key(operation, one, settings) == key(operation, copy.deepcopy(one), settings)
    assert key(operation, one, settings) != key(operation, other, settings)


@pytest.mark.parametrize("settings", ALL_SETTINGS, ids=SETTINGS_IDS)
@pytest.mark.parametrize("operation", list(Operation))
def test_nesting_of_any_depth_is_keyed_exactly(
    operation: Operation, settings: CacheKeySettings
) -> None:
    deep = key(operation, {"messages": nested(5000)}, settings)
    assert deep == key(operation, {"messages": nested(5000)}, settings)
    assert deep != key(operation, {"messages": nested(5001)}, settings)


@pytest.mark.parametrize("settings", ALL_SETTINGS, ids=SETTINGS_IDS)
@pytest.mark.parametrize("operation", list(Operation))
def test_a_value_that_contains_itself_is_keyed_without_raising(
    operation: Operation, settings: CacheKeySettings
) -> None:
    loop: list[Any] = [{"role": "user", "content": "hi"}]
    loop.append(loop)
    knot: dict[str, Any] = {"type": "tool_result", "tool_use_id": "t"}
    knot["content"] = [knot]
    for payload in ({"messages": loop}, {"messages": [{"role": "user", "content": [knot]}]}):
        assert key(operation, payload, settings) == key(operation, payload, settings)
    assert key(operation, {"messages": loop}, settings) != key(
        operation, {"messages": []}, settings
    )


def test_odd_objects_are_keyed_without_raising() -> None:
    class Odd:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    odd = (object(), Odd(), {Odd(): 1}, {"a": 1.0, "b": Odd()}, float("nan"), float("-inf"))
    for value in odd:
        for each in ALL_SETTINGS:
            assert len(key(CHAT, {"messages": [], "x": value}, each)) == 64


# --- properties -------------------------------------------------------------------------------

short_text = st.text(max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | short_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=12,
)
odd_values = st.recursive(
    json_scalars | st.floats() | st.integers(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=12,
)


def canonical(value: Any) -> bytes:
    """The test's own reading of "the same value": integral floats are integers."""

    def walk(item: Any) -> Any:
        if isinstance(item, float) and item.is_integer() and abs(item) <= 2**53:
            return int(item)
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return orjson.dumps(walk(value), option=orjson.OPT_SORT_KEYS)


def floats_for_integers(value: Any) -> Any:
    """Every integer that a float holds exactly, as that float."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53:
        return float(value)
    if isinstance(value, dict):
        return {k: floats_for_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [floats_for_integers(v) for v in value]
    return value


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON with every object's members in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def as_parts(payload: dict[str, Any]) -> dict[str, Any]:
    """String contents (and an Anthropic string system) as one plain text part each."""
    turns = [
        {**m, "content": [text(m["content"])]} if isinstance(m.get("content"), str) else m
        for m in payload["messages"]
    ]
    out = {**payload, "messages": turns}
    if isinstance(out.get("system"), str):
        out["system"] = [text(out["system"])]
    return out


# Strings only: a test of case or of dialects would otherwise depend on what hypothesis drew.
conversations = st.lists(short_text, min_size=1, max_size=4)
numbers_0_2 = st.floats(0, 2) | st.integers(0, 2)
schemas = st.fixed_dictionaries(
    {"type": st.just("object")},
    optional={"properties": st.dictionaries(short_text, st.just({"type": "string"}), max_size=2)},
)
openai_tools = st.lists(
    st.builds(
        lambda name, description, parameters: {
            "type": "function",
            "function": {"name": name, "description": description, "parameters": parameters},
        },
        st.text(string.ascii_letters, min_size=1, max_size=8),
        short_text,
        schemas,
    ),
    min_size=1,
    max_size=3,
)
anthropic_tools = st.lists(
    st.builds(
        lambda name, description, schema: {
            "name": name,
            "description": description,
            "input_schema": schema,
        },
        st.text(string.ascii_letters, min_size=1, max_size=8),
        short_text,
        schemas,
    ),
    min_size=1,
    max_size=3,
)
tool_names = st.text(string.ascii_letters, min_size=1, max_size=8)

OPENAI_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "temperature": numbers_0_2,
    "top_p": st.floats(0, 1),
    "top_k": st.integers(1, 100),
    "seed": st.integers(-(2**63), 2**63 - 1),
    "stop": short_text | st.lists(short_text, min_size=1, max_size=3),
    "max_tokens": st.integers(1, 10**6),
    "max_completion_tokens": st.integers(1, 10**6),
    "n": st.integers(1, 8),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(0, 20),
    "frequency_penalty": st.floats(-2, 2),
    "presence_penalty": st.floats(-2, 2),
    "parallel_tool_calls": st.booleans(),
    "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh"]),
    "response_format": st.just({"type": "json_object"})
    | st.builds(
        lambda name, schema, strict: {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": strict},
        },
        tool_names,
        schemas,
        st.booleans(),
    ),
    "tools": openai_tools,
    "tool_choice": st.sampled_from(["auto", "none", "required"])
    | tool_names.map(lambda n: {"type": "function", "function": {"name": n}}),
}
ANTHROPIC_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "system": short_text | st.lists(short_text.map(text), min_size=1, max_size=2),
    "max_tokens": st.integers(1, 10**6),
    "temperature": st.floats(0, 1) | st.integers(0, 1),
    "top_p": st.floats(0, 1),
    "top_k": st.integers(1, 100),
    "stop_sequences": st.lists(short_text, min_size=1, max_size=3),
    "tools": anthropic_tools,
    "tool_choice": st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"}])
    | tool_names.map(lambda n: {"type": "tool", "name": n})
    | st.just({"type": "auto", "disable_parallel_tool_use": True}),
    "thinking": st.integers(1024, 32000).map(lambda b: {"type": "enabled", "budget_tokens": b}),
    "output_config": st.sampled_from(["low", "medium", "high"]).map(lambda e: {"effort": e}),
}


@st.composite
def openai_requests(draw: st.DrawFn) -> dict[str, Any]:
    payload = chat(*draw(conversations), **draw(st.fixed_dictionaries({}, optional=OPENAI_FIELDS)))
    if draw(st.booleans()):
        payload = with_system(payload, draw(short_text))
    return payload


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    fields = draw(st.fixed_dictionaries({}, optional=ANTHROPIC_FIELDS))
    return messages(*draw(conversations), **fields)


def conversation_of(payload: dict[str, Any]) -> list[str]:
    return [m["content"] for m in payload["messages"] if m["role"] != "system"]


@st.composite
def changed_conversations(draw: st.DrawFn, turns: list[str]) -> list[str]:
    """Another list of turns: one turn edited, added or removed."""
    edit = draw(st.sampled_from(["edit", "add", "remove"] if len(turns) > 1 else ["edit", "add"]))
    index = draw(st.integers(0, len(turns) - 1))
    if edit == "add":
        return [*turns, draw(short_text)]
    if edit == "remove":
        return turns[:index] + turns[index + 1 :]
    changed = draw(short_text.filter(lambda t: t != turns[index]))
    return [*turns[:index], changed, *turns[index + 1 :]]


def mutated(
    data: st.DataObject, payload: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    """`payload` with one answer-changing field set to another value, or removed."""
    name = data.draw(st.sampled_from(["messages", *fields]))
    if name == "messages":
        system = [m for m in payload["messages"] if m["role"] == "system"]
        turns = data.draw(changed_conversations(conversation_of(payload)))
        return {**payload, "messages": system + chat(*turns)["messages"]}
    if name in payload and data.draw(st.booleans()):
        return {k: v for k, v in payload.items() if k != name}
    value = data.draw(fields[name])
    old = payload.get(name)
    if name in ("stop", "system"):  # "x" ≡ ["x"] and "x" ≡ [{"type": "text", "text": "x"}]
        assume(canonical(as_list(value)) != canonical(as_list(old)))
    assume(canonical(value) != canonical(old))
    return {**payload, name: value}


def as_list(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return [v["text"] for v in value]
    return value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), settings_=st.sampled_from([DEFAULT, SHARED]))
def test_openai_requests_that_differ_in_an_answer_changing_field_never_share(
    data: st.DataObject, settings_: CacheKeySettings
) -> None:
    base = data.draw(openai_requests())
    changed = mutated(data, base, OPENAI_FIELDS)
    assert key(CHAT, base, settings_) != key(CHAT, changed, settings_)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), settings_=st.sampled_from([DEFAULT, SHARED]))
def test_anthropic_requests_that_differ_in_an_answer_changing_field_never_share(
    data: st.DataObject, settings_: CacheKeySettings
) -> None:
    base = data.draw(anthropic_requests())
    changed = mutated(data, base, ANTHROPIC_FIELDS)
    assert key(MESSAGES, base, settings_) != key(MESSAGES, changed, settings_)


@given(
    one=json_values,
    other=json_values,
    operation=st.sampled_from(list(Operation)),
    settings_=st.sampled_from([DEFAULT, SHARED]),
)
def test_any_two_different_values_of_a_field_never_share(
    one: Any, other: Any, operation: Operation, settings_: CacheKeySettings
) -> None:
    assume(canonical(one) != canonical(other))
    base = {"messages": [{"role": "user", "content": "hi"}], "input": "hi", "prompt": "hi"}
    one_key = key(operation, {**base, "logit_bias": one}, settings_)
    assert one_key != key(operation, {**base, "logit_bias": other}, settings_)


EXCLUDED_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "model": short_text,
        "stream": st.booleans(),
        "stream_options": st.just({"include_usage": True}),
        "user": short_text,
        "metadata": st.dictionaries(short_text, short_text, max_size=2),
        "store": st.booleans(),
        "service_tier": st.sampled_from(["auto", "default", "flex", "priority"]),
        "safety_identifier": short_text,
        "prompt_cache_key": short_text,
        "prompt_cache_retention": st.just("24h"),
        "cache_control": st.just({"type": "ephemeral"}),
    },
)


def equivalent(data: st.DataObject, payload: dict[str, Any]) -> dict[str, Any]:
    """The same request, encoded another way."""
    other = {**payload, **data.draw(EXCLUDED_VALUES)}
    if data.draw(st.booleans()):
        other = as_parts(other)
    if isinstance(other.get("stop"), str) and data.draw(st.booleans()):
        other["stop"] = [other["stop"]]
    if data.draw(st.booleans()):
        other = floats_for_integers(other)
    return shuffled(other, data.draw(st.randoms()))  # type: ignore[no-any-return]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), settings_=st.sampled_from(ALL_SETTINGS))
def test_equivalent_openai_encodings_always_share(
    data: st.DataObject, settings_: CacheKeySettings
) -> None:
    payload = data.draw(openai_requests())
    assert key(CHAT, payload, settings_) == key(CHAT, equivalent(data, payload), settings_)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), settings_=st.sampled_from(ALL_SETTINGS))
def test_equivalent_anthropic_encodings_always_share(
    data: st.DataObject, settings_: CacheKeySettings
) -> None:
    payload = data.draw(anthropic_requests())
    assert key(MESSAGES, payload, settings_) == key(MESSAGES, equivalent(data, payload), settings_)


@given(value=json_values, operation=st.sampled_from(list(Operation)), rng=st.randoms())
def test_any_value_keys_the_same_with_floats_for_integers_and_members_reordered(
    value: Any, operation: Operation, rng: random.Random
) -> None:
    payload = {"messages": value, "stop": value, "system": value, "extra": value}
    other = shuffled(floats_for_integers(payload), rng)
    assert key(operation, payload) == key(operation, other)


@given(
    openai=st.builds(
        lambda system, user, max_tokens, temperature: (system, user, max_tokens, temperature),
        st.text(min_size=1, max_size=12),
        short_text,
        st.integers(1, 10**5),
        st.floats(0, 1),
    ),
    edit=st.sampled_from([None, "system", "user", "max_tokens", "temperature"]),
)
def test_shared_dialects_share_the_same_conversation_and_only_it(
    openai: tuple[str, str, int, float], edit: str | None
) -> None:
    system, user, max_tokens, temperature = openai
    openai_payload = with_system(chat(user, max_tokens=max_tokens, temperature=temperature), system)
    fields = {"system": system, "max_tokens": max_tokens, "temperature": temperature}
    anthropic_user = user
    if edit == "user":
        anthropic_user = user + "."
    elif edit is not None:
        fields[edit] = fields[edit] + ("." if edit == "system" else 1)  # type: ignore[operator]
    anthropic_payload = messages(anthropic_user, **fields)
    same = key(CHAT, openai_payload, SHARED) == key(MESSAGES, anthropic_payload, SHARED)
    assert same == (edit is None)
    assert key(CHAT, openai_payload) != key(MESSAGES, anthropic_payload)


ODD_FIELDS = [
    "messages",
    "system",
    "stop",
    "stop_sequences",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "reasoning_effort",
    "thinking",
    "output_config",
    "output_format",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "n",
    "input",
    "prompt",
]
odd_parts = st.dictionaries(
    st.sampled_from(["type", "text", "image_url", "source", "content", "cache_control", "x"]),
    st.sampled_from(["text", "image_url", "image", "tool_result", "tool_use"]) | odd_values,
    max_size=4,
)
odd_messages = st.lists(
    st.dictionaries(
        st.sampled_from(["role", "content", "name", "tool_calls", "refusal", "function_call"]),
        st.sampled_from(["system", "user", "assistant", "tool", "developer"])
        | st.lists(odd_parts, max_size=3)
        | odd_values,
        max_size=4,
    )
    | odd_values,
    max_size=4,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.dictionaries(st.sampled_from(ODD_FIELDS), odd_values, max_size=6),
    turns=odd_messages,
    operation=st.sampled_from(list(Operation)),
    settings_=st.sampled_from(ALL_SETTINGS),
)
def test_odd_payloads_never_raise(
    payload: dict[str, Any],
    turns: list[Any],
    operation: Operation,
    settings_: CacheKeySettings,
) -> None:
    for candidate in (payload, {**payload, "messages": turns}, {**payload, "system": turns}):
        first = key(operation, candidate, settings_)
        assert len(first) == 64
        assert key(operation, copy.deepcopy(candidate), settings_) == first
