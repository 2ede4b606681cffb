"""Anthropic Messages as a translation dialect: requests parsed from an Anthropic SDK and built
for Anthropic, answers read and rendered, errors mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import Message as SDKMessage
from multidict import CIMultiDict

from edgeproxy.dialects import anthropic_messages
from edgeproxy.dialects.neutral import (
    ChatRequest,
    ChatResponse,
    Finish,
    Image,
    Message,
    Reasoning,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Usage,
)
from edgeproxy.dialects.params import ParamPolicy
from edgeproxy.errors import ProxyError
from tests.dialects.support import PNG, plain

DATA = Path(__file__).parent.parent / "data" / "anthropic"
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds7lbRzW6y2tWNcbgCbP4ztNP7xDSR8k7"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
FORECAST = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
SONNET_45 = "claude-sonnet-4-5-20250929"


def load(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


def request(**fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
        **fields,
    }


def parse(**fields: Any) -> ChatRequest:
    return anthropic_messages.parse_chat_request(request(**fields))


def neutral(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(
        model="claude", messages=list(messages) or [Message("user", [Text("Hi")])], **fields
    )


def build(
    request: ChatRequest, model: str = SONNET_45, **options: Any
) -> tuple[dict[str, Any], list[str]]:
    policy = ParamPolicy("anthropic")
    body = anthropic_messages.build_chat(request, model, policy, **options)
    return orjson.loads(body), policy.dropped


# --- parsing an Anthropic client's request ----------------------------------------------------


def test_a_full_anthropic_request_parses_to_the_golden_neutral_form() -> None:
    parsed = anthropic_messages.parse_chat_request(load("request_client.json"))
    assert plain(parsed) == load("request_client.neutral.json")


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, ToolChoice("auto"), None),
        ({"type": "any"}, ToolChoice("required"), None),
        ({"type": "tool", "name": "get_weather"}, ToolChoice("tool", "get_weather"), None),
        ({"type": "none"}, ToolChoice("none"), None),
        ({"type": "any", "disable_parallel_tool_use": True}, ToolChoice("required"), False),
        ({"type": "auto", "disable_parallel_tool_use": False}, ToolChoice("auto"), None),
    ],
)
def test_tool_choice_maps_to_neutral_choice_and_parallel_limit(
    choice: dict[str, Any], expected: ToolChoice, parallel: bool | None
) -> None:
    parsed = parse(tool_choice=choice)
    assert (parsed.tool_choice, parsed.parallel_tool_calls) == (expected, parallel)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, Reasoning(budget_tokens=2048)),
        ({"thinking": {"type": "disabled"}}, None),
        ({"thinking": {"type": "adaptive"}}, Reasoning(effort="high")),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}},
            Reasoning(effort="medium"),
        ),
        (
            {
                "thinking": {"type": "enabled", "budget_tokens": 4096, "display": "omitted"},
                "output_config": {"effort": "low"},
            },
            Reasoning(effort="low", budget_tokens=4096),
        ),
        ({"output_config": {"effort": "max"}}, Reasoning(effort="high")),
        ({"output_config": {"effort": "xhigh"}}, Reasoning(effort="high")),
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "low"}}, None),
        ({}, None),
    ],
)
def test_thinking_and_effort_map_to_neutral_reasoning(
    fields: dict[str, Any], expected: Reasoning | None
) -> None:
    assert parse(**fields).reasoning == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"output_config": {"format": {"type": "json_schema", "schema": FORECAST}}},
        {"output_format": {"type": "json_schema", "schema": FORECAST}},
    ],
)
def test_structured_output_maps_to_a_json_schema_response_format(fields: dict[str, Any]) -> None:
    assert parse(**fields).response_format == ResponseFormat("json_schema", schema=FORECAST)


def test_fields_without_a_neutral_form_are_kept_as_extras_but_caching_hints_are_not() -> None:
    parsed = parse(
        service_tier="standard_only",
        container="container_011CZ",
        mcp_servers=[{"type": "url", "url": "https://mcp.example.com", "name": "x"}],
        context_management={"edits": []},
        cache_control={"type": "ephemeral"},
        output_config={"effort": "low", "task_budget": {"tokens": 50000}},
    )
    assert parsed.extra == {
        "service_tier": "standard_only",
        "container": "container_011CZ",
        "mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "x"}],
        "context_management": {"edits": []},
        "output_config": {"task_budget": {"tokens": 50000}},
    }


def test_string_content_and_consecutive_turns_of_one_role_form_one_turn() -> None:
    parsed = parse(
        system="Be brief.",
        messages=[
            {"role": "user", "content": "One."},
            {"role": "user", "content": [{"type": "text", "text": "Two."}]},
            {"role": "assistant", "content": "Three."},
        ],
    )
    assert parsed.system == [Text("Be brief.")]
    assert parsed.messages == [
        Message("user", [Text("One."), Text("Two.")]),
        Message("assistant", [Text("Three.")]),
    ]


def test_an_unsigned_thinking_block_and_a_bare_tool_result_parse() -> None:
    parsed = parse(
        messages=[
            {"role": "user", "content": "Go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": ""},
                    {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
        ]
    )
    assert parsed.messages[1:] == [
        Message("assistant", [Thinking("hm"), ToolCall("toolu_1", "now", "{}")]),
        Message("user", [ToolResult("toolu_1", ())]),
    ]


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": list(blocks)}]}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": list(blocks)},
        ]
    }


UNTRANSLATABLE = "cannot be translated for this model's provider"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {
                "messages": [
                    {"role": "user", "content": "Read this"},
                    {"role": "assistant", "content": "OK"},
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "url", "url": "https://x/a.pdf"},
                            }
                        ],
                    },
                ]
            },
            f'messages[2].content[0].type: "document" {UNTRANSLATABLE}',
        ),
        (
            user({"type": "search_result", "source": "s", "title": "t", "content": []}),
            f'messages[0].content[0].type: "search_result" {UNTRANSLATABLE}',
        ),
        (
            user({"type": "container_upload", "file_id": "file_011"}),
            f'messages[0].content[0].type: "container_upload" {UNTRANSLATABLE}',
        ),
        (
            user({"type": "image", "source": {"type": "file", "file_id": "file_011"}}),
            f'messages[0].content[0].source.type: "file" {UNTRANSLATABLE}',
        ),
        (
            user(
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "document", "source": {}}],
                }
            ),
            f'messages[0].content[0].content[0].type: "document" {UNTRANSLATABLE}',
        ),
        (
            assistant(
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
            ),
            f'messages[1].content[0].type: "server_tool_use" {UNTRANSLATABLE}',
        ),
        (
            assistant(
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}
            ),
            f'messages[1].content[0].type: "web_search_tool_result" {UNTRANSLATABLE}',
        ),
        (user({"text": "no type"}), f"messages[0].content[0].type: null {UNTRANSLATABLE}"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]},
            f'tools[0].type: "web_search_20250305" {UNTRANSLATABLE}',
        ),
        (
            {"tools": [{"type": "bash_20250124", "name": "bash"}]},
            f'tools[0].type: "bash_20250124" {UNTRANSLATABLE}',
        ),
        (
            {"tools": [{"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}]},
            f'tools[0].type: "text_editor_20250728" {UNTRANSLATABLE}',
        ),
        (
            {"system": [{"type": "image", "source": {}}]},
            f'system[0].type: "image" {UNTRANSLATABLE}',
        ),
        (
            {"thinking": {"type": "between_tools"}},
            f'thinking.type: "between_tools" {UNTRANSLATABLE}',
        ),
        (
            {"output_config": {"format": {"type": "grammar", "grammar": "x"}}},
            f'output_config.format.type: "grammar" {UNTRANSLATABLE}',
        ),
        (
            user({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
            'messages[0].content[0].type: "tool_use" is not allowed in a user turn',
        ),
        (
            assistant({"type": "tool_result", "tool_use_id": "toolu_1"}),
            'messages[1].content[0].type: "tool_result" is not allowed in a assistant turn',
        ),
        ({"messages": "Hi"}, "messages: expected an array"),
        ({"messages": [{"role": "system", "content": "S"}]}, "messages[0].role: expected"),
        (
            {"messages": [{"role": "user", "content": 42}]},
            "messages[0].content: expected a string or an array of content blocks",
        ),
        (user({"type": "text", "text": None}), "messages[0].content[0].text: expected a string"),
        (
            user({"type": "image", "source": {"type": "base64", "data": PNG}}),
            "messages[0].content[0].source.media_type: expected a string",
        ),
        (
            assistant({"type": "tool_use", "id": "toolu_1", "name": "f", "input": ["x"]}),
            "messages[1].content[0].input: expected an object",
        ),
        (
            user({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": "yes"}),
            "messages[0].content[0].is_error: expected true or false",
        ),
        (
            assistant({"type": "thinking", "thinking": "x", "signature": 7}),
            "messages[1].content[0].signature: expected a string",
        ),
        ({"system": 7}, "system: expected a string or an array of text blocks"),
        ({"temperature": "hot"}, "temperature: expected a number"),
        ({"max_tokens": 1.5}, "max_tokens: expected an integer"),
        ({"top_k": True}, "top_k: expected an integer"),
        ({"stop_sequences": "END"}, "stop_sequences: expected an array of strings"),
        ({"stream": "yes"}, "stream: expected true or false"),
        ({"metadata": {"user_id": 7}}, "metadata.user_id: expected a string"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema: expected an object"),
        ({"tools": [{"name": "", "input_schema": {}}]}, "tools[0].name: expected a non-empty"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type: expected"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name: expected a string"),
        (
            {"tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}},
            "tool_choice.disable_parallel_tool_use: expected true or false",
        ),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens: expected an integer"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort: expected"),
        ({"output_config": {"effort": ["low"]}}, "output_config.effort: expected"),
        (
            {"output_config": {"format": {"type": "json_schema"}}},
            "output_config.format.schema: expected an object",
        ),
    ],
)
def test_untranslatable_or_malformed_requests_are_400s_naming_the_field(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProxyError) as caught:
        parse(**fields)
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    assert caught.value.message.startswith(message)
    assert caught.value.param == message.partition(".")[0].partition("[")[0].partition(":")[0]


# --- rendering an answer for an Anthropic client ----------------------------------------------

ANSWER = ChatResponse(
    id="chatcmpl-BkY0parallel7Tools2Calls0000",
    model="gpt-4o-2024-08-06",
    parts=[
        Thinking("Two cities; "),
        Thinking("call the tool twice.", signature=SIGNATURE),
        Thinking("", redacted="EmwKAhgBEgy3va3pzix"),
        Text("Checking "),
        Text("both."),
        ToolCall("call_Paris1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_Oslo2", "get_weather", ""),
        ToolCall("call_Broken3", "get_weather", '{"city": "Ber'),
    ],
    finish="tool_calls",
    usage=Usage(input_tokens=3560, output_tokens=161, cached_tokens=2048, cache_write_tokens=1500),
    created=1750000000,
)


def test_an_answer_renders_the_golden_message() -> None:
    rendered = orjson.loads(anthropic_messages.render_chat(ANSWER))
    assert rendered == load("rendered_tool_use.json")
    assert SDKMessage.model_validate(rendered).usage.input_tokens == 12


@pytest.mark.parametrize(
    ("finish", "stop_sequence", "stop_reason"),
    [
        ("stop", None, "end_turn"),
        ("stop", "END", "stop_sequence"),
        ("length", None, "max_tokens"),
        ("tool_calls", None, "tool_use"),
        ("content_filter", None, "refusal"),
    ],
)
def test_finish_reasons_render_as_anthropic_stop_reasons(
    finish: Finish, stop_sequence: str | None, stop_reason: str
) -> None:
    answer = ChatResponse("msg_1", "m", [Text("x")], finish, Usage(), 0, stop_sequence)
    rendered = orjson.loads(anthropic_messages.render_chat(answer))
    assert (rendered["stop_reason"], rendered["stop_sequence"]) == (stop_reason, stop_sequence)


def test_an_empty_answer_renders_an_empty_content_list() -> None:
    answer = ChatResponse("msg_1", "m", [Text(""), Thinking("")], "length", Usage(5, 0), 0)
    rendered = SDKMessage.model_validate(orjson.loads(anthropic_messages.render_chat(answer)))
    assert rendered.content == [] and rendered.stop_reason == "max_tokens"


# --- building the body for Anthropic ----------------------------------------------------------

GOLDEN = neutral(
    Message(
        "user",
        [
            Text("What is the weather where these photos were taken?"),
            Image(data=PNG, media_type="image/jpg"),
            Image(url="https://example.com/oslo.jpg"),
        ],
    ),
    Message(
        "assistant",
        [
            Thinking("Reasoning another provider showed, with no signature."),
            Text("Let me check both cities."),
            ToolCall("call_Paris1", "get_weather", '{"city": "Paris"}'),
            ToolCall("functions.get_weather:1", "get_weather", ""),
        ],
    ),
    Message(
        "user",
        [
            Text("Here are the results."),
            ToolResult("call_Paris1", (Text("18°C, sunny"),)),
            ToolResult("functions.get_weather:1", (Text(""),), is_error=True),
        ],
    ),
    Message("assistant", [Text(" ")]),
    Message("user", [Text("And what about tomorrow?")]),
    system=[Text("You are a weather assistant."), Text("  "), Text("Answer in JSON.")],
    tools=[
        Tool("get_weather", "The current weather in a city.", WEATHER),
        Tool("get_forecast", None, FORECAST),
    ],
    tool_choice=ToolChoice("tool", "get_forecast"),
    parallel_tool_calls=False,
    stop=["END", "\n"],
    user="user-1234",
    temperature=0.3,
    top_p=0.9,
    top_k=40,
    response_format=ResponseFormat("json_schema", schema=FORECAST, name="forecast", strict=True),
    seed=7,
    stream=True,
    include_usage=True,
    extra={"logprobs": True},
)


def test_a_neutral_request_builds_the_golden_upstream_body() -> None:
    body, dropped = build(GOLDEN)
    assert body == load("request_upstream.json")
    assert dropped == ["stop", "top_p", "seed", "logprobs"]


@pytest.mark.parametrize(
    ("model", "reasoning", "max_tokens", "expected", "dropped"),
    [
        (
            SONNET_45,
            Reasoning(effort="high"),
            None,
            {"max_tokens": 4096 + 24576, "thinking": {"type": "enabled", "budget_tokens": 24576}},
            [],
        ),
        (
            SONNET_45,
            Reasoning(effort="low"),
            2000,
            {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1999}},
            [],
        ),
        (SONNET_45, Reasoning(effort="low"), 1000, {"max_tokens": 1000}, ["reasoning"]),
        (
            "claude-3-7-sonnet-20250219",
            Reasoning(budget_tokens=500),
            None,
            {"max_tokens": 4096 + 1024, "thinking": {"type": "enabled", "budget_tokens": 1024}},
            [],
        ),
        (
            "claude-opus-4-1",
            Reasoning(effort="minimal"),
            8000,
            {"max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 1024}},
            [],
        ),
        (
            "claude-3-5-sonnet-20241022",
            Reasoning(effort="high"),
            None,
            {"max_tokens": 4096},
            ["reasoning"],
        ),
        (
            "claude-opus-4-6",
            Reasoning(effort="medium"),
            None,
            {
                "max_tokens": 4096 + 12288,
                "thinking": {"type": "adaptive"},
                "output_config": {"effort": "medium"},
            },
            [],
        ),
        (
            "claude-opus-4-7",
            Reasoning(effort="minimal"),
            3000,
            {
                "max_tokens": 3000,
                "thinking": {"type": "adaptive"},
                "output_config": {"effort": "low"},
            },
            [],
        ),
        (
            "claude-sonnet-5",
            Reasoning(budget_tokens=30000),
            64000,
            {
                "max_tokens": 64000,
                "thinking": {"type": "adaptive"},
                "output_config": {"effort": "high"},
            },
            [],
        ),
        (
            "claude-mythos-preview",
            Reasoning(effort="high"),
            None,
            {
                "max_tokens": 4096 + 24576,
                "thinking": {"type": "adaptive"},
                "output_config": {"effort": "high"},
            },
            [],
        ),
    ],
)
def test_reasoning_becomes_a_thinking_budget_or_adaptive_thinking_by_model(
    model: str,
    reasoning: Reasoning,
    max_tokens: int | None,
    expected: dict[str, Any],
    dropped: list[str],
) -> None:
    body, left_out = build(neutral(reasoning=reasoning, max_tokens=max_tokens), model)
    fields = {k: body[k] for k in ("max_tokens", "thinking", "output_config") if k in body}
    assert (fields, left_out) == (expected, dropped)


def test_max_tokens_is_the_clients_or_the_configured_default() -> None:
    assert build(neutral(max_tokens=321))[0]["max_tokens"] == 321
    assert build(neutral(), default_max_tokens=8192)[0]["max_tokens"] == 8192


TOOL_CALL = ToolCall("toolu_1", "get_weather", '{"city":"Paris"}')
TOOL_TURNS = (
    Message("user", [Text("Weather?")]),
    Message("assistant", [TOOL_CALL]),
    Message("user", [ToolResult("toolu_1", (Text("sunny"),))]),
)


@pytest.mark.parametrize(
    "request_",
    [
        neutral(tools=[Tool("f", None, WEATHER)], tool_choice=ToolChoice("required")),
        neutral(tools=[Tool("f", None, WEATHER)], tool_choice=ToolChoice("tool", "f")),
        neutral(Message("user", [Text("Count")]), Message("assistant", [Text("1, 2,")])),
        neutral(*TOOL_TURNS),
        neutral(
            Message("user", [Text("Weather?")]),
            Message("assistant", [Thinking("unsigned"), TOOL_CALL]),
            Message("user", [ToolResult("toolu_1", (Text("sunny"),))]),
        ),
    ],
    ids=["forced-any", "forced-tool", "prefill", "tool-loop-unsigned", "tool-loop-lost-signature"],
)
def test_claude_does_not_think_where_anthropic_forbids_it(request_: ChatRequest) -> None:
    request_.reasoning = Reasoning(effort="low")
    body, dropped = build(request_)
    assert "thinking" not in body and dropped == ["reasoning"]


def test_a_tool_loop_with_signed_thinking_keeps_thinking_on() -> None:
    signed = Thinking("I should call the tool.", signature=SIGNATURE)
    body, dropped = build(
        neutral(
            Message("user", [Text("Weather?")]),
            Message("assistant", [signed, TOOL_CALL]),
            Message("user", [ToolResult("toolu_1", (Text("sunny"),))]),
            reasoning=Reasoning(effort="low"),
        )
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096} and dropped == []
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "I should call the tool.",
        "signature": SIGNATURE,
    }


@pytest.mark.parametrize(
    ("model", "fields", "thinks", "sent", "dropped"),
    [
        (SONNET_45, {"temperature": 0.2, "top_k": 5}, False, {"temperature": 0.2, "top_k": 5}, []),
        (SONNET_45, {"temperature": 0.2, "top_p": 0.9}, False, {"temperature": 0.2}, ["top_p"]),
        (SONNET_45, {"top_p": 0.9}, False, {"top_p": 0.9}, []),
        (
            "claude-3-5-haiku-20241022",
            {"temperature": 0.2, "top_p": 0.9},
            False,
            {"temperature": 0.2, "top_p": 0.9},
            [],
        ),
        (SONNET_45, {"temperature": 1.5}, False, {}, ["temperature"]),
        (SONNET_45, {"temperature": 0.7, "top_k": 5}, True, {}, ["temperature", "top_k"]),
        (SONNET_45, {"temperature": 1, "top_p": 0.97}, True, {"temperature": 1}, ["top_p"]),
        (SONNET_45, {"top_p": 0.9}, True, {}, ["top_p"]),
        (SONNET_45, {"top_p": 0.97}, True, {"top_p": 0.97}, []),
        (
            "claude-opus-4-7",
            {"temperature": 0.5, "top_p": 0.9, "top_k": 5},
            False,
            {},
            ["temperature", "top_p", "top_k"],
        ),
        ("claude-opus-4-7", {"temperature": 1}, False, {}, []),
        ("claude-fable-5-1", {"temperature": 0}, False, {}, ["temperature"]),
        (
            "deepseek-chat",
            {"temperature": 0.2, "top_p": 0.9},
            False,
            {"temperature": 0.2, "top_p": 0.9},
            [],
        ),
    ],
)
def test_sampling_settings_go_only_where_the_model_takes_them(
    model: str,
    fields: dict[str, Any],
    thinks: bool,
    sent: dict[str, Any],
    dropped: list[str],
) -> None:
    thinking = Reasoning(effort="low") if thinks else None
    body, left_out = build(neutral(reasoning=thinking, **fields), model)
    assert {k: body[k] for k in ("temperature", "top_p", "top_k") if k in body} == sent
    assert left_out == dropped


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        (ToolChoice("auto"), None, {"type": "auto"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice("none"), False, {"type": "none"}),
        (ToolChoice("required"), None, {"type": "any"}),
        (ToolChoice("required"), True, {"type": "any"}),
        (
            ToolChoice("tool", "f"),
            False,
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_tool_choice_and_the_parallel_limit_map_to_anthropics_tool_choice(
    choice: ToolChoice | None, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    tools = [Tool("f", "Does f.", WEATHER)]
    body, _ = build(neutral(tools=tools, tool_choice=choice, parallel_tool_calls=parallel))
    assert body["tools"] == [{"name": "f", "description": "Does f.", "input_schema": WEATHER}]
    assert body.get("tool_choice") == expected


def test_a_tool_choice_without_tools_is_not_sent() -> None:
    body, dropped = build(neutral(tool_choice=ToolChoice("none"), parallel_tool_calls=False))
    assert "tools" not in body and "tool_choice" not in body and dropped == []


@pytest.mark.parametrize(
    ("model", "spec", "expected", "dropped"),
    [
        (
            "claude-haiku-4-5",
            ResponseFormat("json_schema", schema=FORECAST),
            {"format": {"type": "json_schema", "schema": FORECAST}},
            [],
        ),
        ("claude-haiku-4-5", ResponseFormat("json_object"), None, ["response_format"]),
        (
            "claude-opus-4-1",
            ResponseFormat("json_schema", schema=FORECAST),
            None,
            ["response_format"],
        ),
        ("kimi-k2", ResponseFormat("json_schema", schema=FORECAST), None, ["response_format"]),
    ],
)
def test_structured_output_uses_output_config_where_the_model_has_it(
    model: str, spec: ResponseFormat, expected: dict[str, Any] | None, dropped: list[str]
) -> None:
    body, left_out = build(neutral(response_format=spec), model)
    assert (body.get("output_config"), left_out) == (expected, dropped)


def test_effort_and_structured_output_share_output_config() -> None:
    body, _ = build(
        neutral(
            reasoning=Reasoning(effort="low"),
            response_format=ResponseFormat("json_schema", schema=FORECAST),
        ),
        "claude-sonnet-4-6",
    )
    assert body["output_config"] == {
        "effort": "low",
        "format": {"type": "json_schema", "schema": FORECAST},
    }


@pytest.mark.parametrize(
    ("fields", "dropped"),
    [
        (
            {"seed": 1, "frequency_penalty": 0.5, "presence_penalty": 0.1},
            ["seed", "frequency_penalty", "presence_penalty"],
        ),
        ({"metadata": {"team": "search"}}, ["metadata"]),
        ({"n": 1}, []),
        (
            {"extra": {"logit_bias": {"1": 2}, "service_tier": "flex"}},
            ["logit_bias", "service_tier"],
        ),
        ({"stop": ["\n\n", " ", "END"]}, ["stop"]),
    ],
)
def test_fields_the_messages_api_cannot_carry_go_through_the_policy(
    fields: dict[str, Any], dropped: list[str]
) -> None:
    body, left_out = build(neutral(**fields))
    assert left_out == dropped
    assert set(body) <= {"model", "max_tokens", "messages", "stop_sequences"}


def test_a_rejecting_policy_answers_400_naming_the_field() -> None:
    with pytest.raises(ProxyError) as caught:
        anthropic_messages.build_chat(
            neutral(seed=1), SONNET_45, ParamPolicy("anthropic", "reject")
        )
    assert (caught.value.status, caught.value.code, caught.value.param) == (
        400,
        "unsupported_parameter",
        "seed",
    )


def test_a_conversation_may_open_with_the_assistant_and_an_empty_one_gets_a_placeholder() -> None:
    body, _ = build(neutral(Message("assistant", [Text("Hello!")]), Message("user", [Text("Hi")])))
    assert [turn["role"] for turn in body["messages"]] == ["assistant", "user"]
    body, _ = build(neutral(Message("user", [Text("  ")]), system=[Text("Summarise.")]))
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "(conversation start)"}]}
    ]


def test_a_final_assistant_turn_is_trimmed_for_models_that_continue_it() -> None:
    body, _ = build(
        neutral(Message("user", [Text("Count")]), Message("assistant", [Text("1, 2, ")]))
    )
    assert body["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "1, 2,"}],
    }


def test_a_final_assistant_turn_is_a_400_for_models_that_cannot_continue_it() -> None:
    with pytest.raises(ProxyError) as caught:
        build(
            neutral(Message("user", [Text("Count")]), Message("assistant", [Text("1,")])),
            "claude-opus-4-6",
        )
    assert (caught.value.status, caught.value.param) == (400, "messages")
    assert "cannot continue an assistant turn" in caught.value.message


def test_reasoning_goes_back_signed_or_redacted_and_only_to_models_that_think() -> None:
    turns = (
        Message("user", [Text("Hi")]),
        Message(
            "assistant",
            [
                Thinking("signed", SIGNATURE),
                Thinking("", redacted="EmwK"),
                Thinking("bare"),
                Text("Hello"),
            ],
        ),
        Message("user", [Text("Bye")]),
    )
    body, _ = build(neutral(*turns))
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "signed", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": "EmwK"},
        {"type": "text", "text": "Hello"},
    ]
    body, _ = build(neutral(*turns), "claude-3-5-sonnet-20241022")
    assert body["messages"][1]["content"] == [{"type": "text", "text": "Hello"}]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            Message("user", [Image(data=PNG, media_type="image/tiff")]),
            "messages: image type 'image/tiff' cannot be sent to Anthropic",
        ),
        (
            Message("assistant", [ToolCall("c1", "f", "[1, 2]")]),
            "messages: the arguments of tool call 'c1' are not a JSON object",
        ),
        (
            Message("assistant", [ToolCall("c1", "f", '{"a": ')]),
            "messages: the arguments of tool call 'c1' are not a JSON object",
        ),
    ],
)
def test_content_anthropic_cannot_take_is_a_400(message: Message, error: str) -> None:
    with pytest.raises(ProxyError) as caught:
        build(neutral(Message("user", [Text("Hi")]), message, Message("user", [Text("Go")])))
    assert caught.value.status == 400 and caught.value.message.startswith(error)


# --- reading Anthropic's answers --------------------------------------------------------------


def test_a_text_answer_parses_with_usage_in_neutral_terms() -> None:
    answer = anthropic_messages.parse_chat(
        (DATA / "response_text.json").read_bytes(), "anthropic", clock=lambda: 1750000000.5
    )
    assert answer == ChatResponse(
        id="msg_01XFDUDYJgAACzvnptvVoYEL",
        model=SONNET_45,
        parts=[Text("Hello! It is 18°C and sunny in Paris.")],
        finish="stop",
        usage=Usage(
            input_tokens=12 + 1500 + 2048,
            output_tokens=14,
            cached_tokens=2048,
            cache_write_tokens=1500,
        ),
        created=1750000000,
    )


def test_a_tool_use_answer_parses_reasoning_text_and_calls_in_order() -> None:
    answer = anthropic_messages.parse_chat(
        (DATA / "response_tool_use.json").read_bytes(), "anthropic"
    )
    assert answer.parts == [
        Thinking(
            "The user wants the weather in two cities, so I call the tool twice.",
            load("response_tool_use.json")["content"][0]["signature"],
        ),
        Thinking("", redacted=load("response_tool_use.json")["content"][1]["data"]),
        Text("I'll check both cities."),
        ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", '{"city":"Paris"}'),
        ToolCall("toolu_01B5bHh1kNh7Ygv3T1bd8sQh", "get_time", "{}"),
    ]
    assert (answer.finish, answer.usage) == ("tool_calls", Usage(472, 161))


def test_a_stop_sequence_answer_names_the_sequence() -> None:
    answer = anthropic_messages.parse_chat(
        (DATA / "response_stop_sequence.json").read_bytes(), "anthropic"
    )
    assert (answer.finish, answer.stop_sequence, answer.text) == ("stop", ", 5", "1, 2, 3, 4")


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("a_future_reason", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reasons_map_to_neutral_finishes(stop_reason: str | None, finish: Finish) -> None:
    body = {"id": "msg_1", "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert anthropic_messages.parse_chat(orjson.dumps(body), "anthropic").finish == finish


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b'{"id": "msg_1"}', b"[]", b'{"content": "text"}'],
)
def test_an_answer_that_is_not_a_message_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProxyError) as caught:
        anthropic_messages.parse_chat(body, "anthropic")
    assert (caught.value.status, caught.value.code) == (502, "upstream_protocol_error")


def test_an_error_body_with_a_200_is_the_error_it_reports() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    with pytest.raises(ProxyError) as caught:
        anthropic_messages.parse_chat(body, "anthropic")
    assert (caught.value.status, caught.value.code) == (529, "overloaded")


# --- errors -----------------------------------------------------------------------------------


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CS"}
    )


def answered(
    status: int, kind: str, message: str, code: str, headers: dict[str, str] | None = None
) -> Any:
    """An Anthropic error answer, and the neutral code it must map to."""
    return pytest.param(status, headers or {}, error_body(kind, message), (code, message))


TOO_LONG = "prompt is too long: 208310 tokens > 200000 maximum"
OVER_LIMIT = (
    "input length and `max_tokens` exceed context limit: 197626 + 8192 > 200000, "
    "decrease input length or `max_tokens` and try again"
)
NO_MESSAGE = "Provider 'anthropic' answered with HTTP status {}."


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        answered(400, "invalid_request_error", "max_tokens: Field required", "invalid_request"),
        answered(400, "invalid_request_error", TOO_LONG, "context_length_exceeded"),
        answered(400, "invalid_request_error", OVER_LIMIT, "context_length_exceeded"),
        answered(401, "authentication_error", "invalid x-api-key", "authentication_error"),
        answered(402, "billing_error", "Your credit balance is too low.", "permission_denied"),
        answered(403, "permission_error", "Not allowed.", "permission_denied"),
        answered(404, "not_found_error", "model: claude-x", "not_found"),
        answered(413, "request_too_large", "Request exceeds the maximum size", "request_too_large"),
        answered(429, "rate_limit_error", "Slow down.", "rate_limited"),
        answered(500, "api_error", "Internal server error", "upstream_error"),
        answered(504, "timeout_error", "Request timed out", "upstream_timeout"),
        answered(529, "overloaded_error", "Overloaded", "overloaded"),
        answered(500, "overloaded_error", "Overloaded", "overloaded"),
        answered(409, "conflict_error", "Conflict", "invalid_request"),
        (502, {}, b"<html>502 Bad Gateway</html>", ("upstream_error", NO_MESSAGE.format(502))),
        (503, {}, b"upstream connect error", ("overloaded", NO_MESSAGE.format(503))),
        (
            400,
            {},
            b'{"error": {"message": "Invalid model", "type": "invalid_request_error"}}',
            ("invalid_request", "Invalid model"),
        ),
    ],
)
def test_anthropic_errors_map_to_neutral_codes_keeping_the_status(
    status: int, headers: dict[str, str], body: bytes, expected: tuple[str, str]
) -> None:
    err = anthropic_messages.parse_error(status, CIMultiDict(headers), body, "anthropic")
    assert (err.status, err.code, err.message) == (status, *expected)
    assert err.retryable == (status in (409, 429) or status >= 500)


@pytest.mark.parametrize(
    ("value", "retry_after"), [("17", 17.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), ("", None)]
)
def test_a_rate_limit_carries_anthropics_retry_after_seconds(
    value: str, retry_after: float | None
) -> None:
    headers = CIMultiDict({"Retry-After": value})
    err = anthropic_messages.parse_error(
        429, headers, error_body("rate_limit_error", "Slow down."), "anthropic"
    )
    assert err.retry_after == retry_after


def test_a_body_that_is_not_json_goes_to_the_log_only() -> None:
    err = anthropic_messages.parse_error(
        502, CIMultiDict(), b"<html>secret page</html>", "anthropic"
    )
    assert "secret page" in err.detail and "secret page" not in err.message
