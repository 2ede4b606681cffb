"""Bedrock Converse as an upstream dialect: neutral requests become the Converse bodies Bedrock
accepts (strictly alternating turns, tools declared whenever the history holds tool calls,
model-family fields only where the family takes them), Converse answers and errors come back in
neutral terms, and embeddings go out as Titan and Cohere InvokeModel bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from edgeproxy.dialects import bedrock
from edgeproxy.dialects.neutral import (
    ChatRequest,
    EmbeddingRequest,
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
from edgeproxy.dialects.params import ParamPolicy, UnsupportedParams
from edgeproxy.errors import ProxyError
from tests.dialects.support import JPEG, PNG, REDACTED, ask

DATA = Path(__file__).parent.parent / "data" / "bedrock"
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CLAUDE_35 = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CLAUDE_ARN = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0"
NOVA = "us.amazon.nova-pro-v1:0"
LLAMA = "meta.llama3-3-70b-instruct-v1:0"
WEBP = "UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA"
SIGNATURE = (
    "EqoBCkgIBxABGAIiQGl0ZW1zIGFyZSBzaWduZWQgYnkgdGhlIG1vZGVsIHByb3ZpZGVyEgxrZXlfaWRfMDAwMRoM"
)
PARIS, OSLO = "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "tooluse_3vY0cQ2xTbWq1Lh8aPz9Xg"
RADAR, LOG = "tooluse_Q8mZ2c4rT0yVb6nXw1LpKa", "tooluse_7RkLq2Wm0Z3xY5vB8nC1dE"
WEATHER = Tool(
    "get_weather",
    "Current weather for a city.",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
)
TIME = Tool("get_time", "  ", {"type": "object", "properties": {"timezone": {"type": "string"}}})
NO_TOOLS = {
    "toolSpec": {
        "name": "no_tool_available",
        "description": "No tool can be called now. Do not call this; answer in text.",
        "inputSchema": {"json": {"type": "object", "properties": {}}},
    }
}


def recorded(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


def build(
    request: ChatRequest, model: str = CLAUDE, mode: UnsupportedParams = "drop"
) -> tuple[dict[str, Any], list[str]]:
    policy = ParamPolicy("bedrock", mode)
    return orjson.loads(bedrock.build_chat(request, model, policy)), policy.dropped


def tool_history() -> list[Message]:
    return [
        Message("user", [Text("Weather in Paris and Oslo?")]),
        Message(
            "assistant",
            [
                Thinking("Two cities: call the tool twice.", SIGNATURE),
                Thinking("", redacted=REDACTED),
                Thinking("Unsigned reasoning from another provider."),
                Text("Checking both."),
                ToolCall(PARIS, "get_weather", '{"city": "Paris"}'),
                ToolCall(OSLO, "get_weather", '{"city":"Oslo","unit":"celsius"}'),
            ],
        ),
        Message("user", [Text("Here is what I got.")]),
        Message(
            "user",
            [
                ToolResult(PARIS, (Text("18°C, sunny"),)),
                ToolResult(OSLO, (Text("Weather service unavailable"),), is_error=True),
            ],
        ),
        Message("assistant", [ToolCall(RADAR, "get_radar", "")]),
        Message(
            "user",
            [ToolResult(RADAR, (Text("Radar image:"), Image(data=JPEG, media_type="image/jpeg")))],
        ),
        Message("assistant", [ToolCall(LOG, "log_query", "{}")]),
        Message("user", [ToolResult(LOG, (Text(""),))]),
    ]


# --- requests ---------------------------------------------------------------------------------


def test_turns_alternate_open_with_the_user_and_carry_system_text_and_images() -> None:
    request = ChatRequest(
        model="public",
        system=[Text("You are terse."), Text("  "), Text("Answer in English.")],
        messages=[
            Message("assistant", [Text("Hi! How can I help?")]),
            Message("user", [Text("What is in this picture?")]),
            Message(
                "user",
                [
                    Image(data=PNG, media_type="image/png"),
                    Text(""),
                    Image(data=WEBP, media_type="image/webp"),
                ],
            ),
            Message("assistant", [Thinking("unsigned musing"), Text("A cat on a sofa.")]),
            Message("assistant", [Text("Anything else?")]),
            Message("user", [Text("No, thanks.")]),
        ],
        max_tokens=512,
    )
    assert build(request) == (recorded("request_turns.json"), [])


def test_a_conversation_with_no_turns_gets_an_opening_user_turn() -> None:
    body, _ = build(ChatRequest(model="public", messages=[], system=[Text("Say hi.")]))
    assert body["messages"] == [{"role": "user", "content": [{"text": "(conversation start)"}]}]


def test_sampling_stop_sequences_top_k_and_metadata_for_claude() -> None:
    request = ask(
        "Count to ten, then say END.",
        max_tokens=1024,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop=["\n\nHuman:", "END", ""],
        metadata={"team": "search", "ticket": "ABC-123"},
    )
    assert build(request) == (recorded("request_sampling.json"), [])


@pytest.mark.parametrize(
    ("model", "fields", "dropped"),
    [
        (CLAUDE, {"top_k": 40}, []),
        (CLAUDE_ARN, {"top_k": 40}, []),
        (NOVA, {"inferenceConfig": {"topK": 40}}, []),
        (LLAMA, None, ["top_k"]),
        (
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/x1y2",
            None,
            ["top_k"],
        ),
    ],
)
def test_top_k_goes_where_the_model_family_takes_it(
    model: str, fields: dict[str, Any] | None, dropped: list[str]
) -> None:
    body, left_out = build(ask("Hi", top_k=40), model)
    assert body.get("additionalModelRequestFields") == fields
    assert left_out == dropped


def test_tools_are_declared_as_tool_specs_and_auto_is_left_to_the_default() -> None:
    request = ask(
        "What is the weather in Paris, and what time is it there?",
        max_tokens=1024,
        tools=[WEATHER, TIME],
        tool_choice=ToolChoice("auto"),
        parallel_tool_calls=True,
    )
    assert build(request) == (recorded("request_tools.json"), [])


@pytest.mark.parametrize(
    ("model", "choice", "expected", "dropped"),
    [
        (CLAUDE, ToolChoice("required"), {"any": {}}, []),
        (CLAUDE, ToolChoice("tool", "get_time"), {"tool": {"name": "get_time"}}, []),
        (NOVA, ToolChoice("tool", "get_time"), {"tool": {"name": "get_time"}}, []),
        (NOVA, ToolChoice("required"), None, ["tool_choice"]),
        (LLAMA, ToolChoice("tool", "get_time"), None, ["tool_choice"]),
        (LLAMA, ToolChoice("auto"), None, []),
    ],
)
def test_every_tool_choice_maps_to_what_the_model_family_accepts(
    model: str, choice: ToolChoice, expected: dict[str, Any] | None, dropped: list[str]
) -> None:
    body, left_out = build(ask("Hi", tools=[WEATHER, TIME], tool_choice=choice), model)
    assert body["toolConfig"].get("toolChoice") == expected
    assert len(body["toolConfig"]["tools"]) == 2
    assert left_out == dropped


def test_tool_choice_none_withholds_the_tools_when_no_turn_holds_tool_calls() -> None:
    body, dropped = build(ask("Hi", tools=[WEATHER], tool_choice=ToolChoice("none")))
    assert "toolConfig" not in body
    assert dropped == []


def test_tool_history_keeps_the_declared_tools_with_results_first_and_reasoning_signed() -> None:
    request = ChatRequest(model="public", messages=tool_history(), tools=[WEATHER])
    assert build(request) == (recorded("request_tool_history.json"), [])


@pytest.mark.parametrize(
    ("tools", "choice"),
    [([], None), ([WEATHER], ToolChoice("none"))],
    ids=["no tools declared", "tool_choice none"],
)
def test_tool_history_without_allowed_tools_declares_a_tool_that_must_not_be_called(
    tools: list[Tool], choice: ToolChoice | None
) -> None:
    request = ChatRequest(model="public", messages=tool_history(), tools=tools, tool_choice=choice)
    body, dropped = build(request)
    assert body["toolConfig"] == {"tools": [NO_TOOLS]}
    assert body["messages"] == recorded("request_tool_history.json")["messages"]
    assert dropped == []


def test_other_families_get_no_tool_result_status_and_no_claude_reasoning() -> None:
    body, _ = build(ChatRequest(model="public", messages=tool_history()), LLAMA)
    blocks = [block for message in body["messages"] for block in message["content"]]
    results = [block["toolResult"] for block in blocks if "toolResult" in block]
    assert len(results) == 4
    assert all("status" not in result for result in results)
    assert not any("reasoningContent" in block for block in blocks)


def test_thinking_for_claude_drops_what_claude_refuses_while_thinking() -> None:
    request = ask(
        "Is 1009 prime?",
        max_tokens=8000,
        temperature=0.5,
        top_p=0.99,
        reasoning=Reasoning(budget_tokens=2048),
    )
    assert build(request) == (recorded("request_thinking.json"), ["temperature"])


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "budget"),
    [
        (Reasoning(effort="minimal"), None, 1024),
        (Reasoning(effort="low"), None, 4096),
        (Reasoning(effort="medium"), None, 16384),
        (Reasoning(effort="high"), 10000, 9999),
        (Reasoning(budget_tokens=500), 4000, 1024),
        (Reasoning(effort="high", budget_tokens=6000), None, 6000),
    ],
)
def test_thinking_budget_comes_from_the_budget_or_the_effort_and_stays_below_max_tokens(
    reasoning: Reasoning, max_tokens: int | None, budget: int
) -> None:
    body, _ = build(ask("Hi", reasoning=reasoning, max_tokens=max_tokens))
    thinking = {"type": "enabled", "budget_tokens": budget}
    assert body["additionalModelRequestFields"] == {"thinking": thinking}


@pytest.mark.parametrize("model", [LLAMA, NOVA, CLAUDE_35])
def test_thinking_for_a_model_that_cannot_think_goes_through_the_policy(model: str) -> None:
    body, dropped = build(ask("Hi", reasoning=Reasoning(effort="high")), model)
    assert "additionalModelRequestFields" not in body
    assert dropped == ["reasoning"]
    with pytest.raises(ProxyError) as raised:
        build(ask("Hi", reasoning=Reasoning(effort="high")), model, "reject")
    assert (raised.value.status, raised.value.code, raised.value.param) == (
        400,
        "unsupported_parameter",
        "reasoning",
    )


def test_thinking_with_no_room_below_max_tokens_goes_through_the_policy() -> None:
    body, dropped = build(ask("Hi", reasoning=Reasoning(effort="low"), max_tokens=1000))
    assert "additionalModelRequestFields" not in body
    assert dropped == ["reasoning"]


def test_a_thinking_claude_is_not_forced_to_call_tools_nor_given_top_k() -> None:
    request = ask(
        "Hi",
        tools=[WEATHER],
        tool_choice=ToolChoice("required"),
        top_k=5,
        top_p=0.5,
        reasoning=Reasoning(budget_tokens=2048),
    )
    body, dropped = build(request)
    assert "toolChoice" not in body["toolConfig"]
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }
    assert sorted(dropped) == ["tool_choice", "top_k", "top_p"]


def test_json_schema_response_format_uses_native_structured_output() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    spec = ResponseFormat("json_schema", schema=schema, name="reply", strict=True)
    body, dropped = build(ask("Hi", response_format=spec))
    assert body["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": orjson.dumps(schema).decode(), "name": "reply"}},
        }
    }
    assert dropped == []


@pytest.mark.parametrize(
    ("model", "spec"),
    [
        (CLAUDE, ResponseFormat("json_object")),
        (CLAUDE_35, ResponseFormat("json_schema", schema={"type": "object"})),
        (LLAMA, ResponseFormat("json_schema", schema={"type": "object"})),
    ],
)
def test_response_formats_bedrock_cannot_enforce_go_through_the_policy(
    model: str, spec: ResponseFormat
) -> None:
    body, dropped = build(ask("Hi", response_format=spec), model)
    assert "outputConfig" not in body
    assert dropped == ["response_format"]


@pytest.mark.parametrize(
    ("fields", "dropped"),
    [
        ({"seed": 7}, ["seed"]),
        ({"frequency_penalty": 0.5}, ["frequency_penalty"]),
        ({"presence_penalty": 0.5}, ["presence_penalty"]),
        ({"user": "user-1234"}, ["user"]),
        ({"n": 1}, []),
        ({"temperature": 1.5}, ["temperature"]),
        ({"extra": {"logit_bias": {"50256": -100}, "store": True}}, ["logit_bias", "store"]),
        ({"tools": [WEATHER], "parallel_tool_calls": False}, ["parallel_tool_calls"]),
        ({"metadata": {"note": "naïve"}}, ["metadata"]),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, ["metadata"]),
    ],
)
def test_fields_converse_cannot_carry_go_through_the_policy(
    fields: dict[str, Any], dropped: list[str]
) -> None:
    body, left_out = build(ask("Hi", **fields))
    assert left_out == dropped
    assert not {"seed", "n", "user", "metadata", "logit_bias"} & body.keys()
    assert "requestMetadata" not in body
    assert "temperature" not in body.get("inferenceConfig", {})


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (
            Image(url="https://example.com/cat.png"),
            "Bedrock cannot fetch image URLs; send base64 data",
        ),
        (
            Image(data="Qk0=", media_type="image/bmp"),
            "messages: image type 'image/bmp' cannot be sent to Bedrock "
            "(png, jpeg, gif or webp only)",
        ),
    ],
)
def test_images_bedrock_cannot_take_are_refused_with_a_400(part: Image, message: str) -> None:
    request = ChatRequest(model="public", messages=[Message("user", [Text("Look"), part])])
    with pytest.raises(ProxyError) as raised:
        build(request)
    assert (raised.value.status, raised.value.message) == (400, message)


def test_tool_call_arguments_that_are_not_an_object_are_refused_with_a_400() -> None:
    messages = [
        Message("user", [Text("Go")]),
        Message("assistant", [ToolCall("tooluse_1", "run", "[1, 2]")]),
        Message("user", [ToolResult("tooluse_1", (Text("ok"),))]),
    ]
    with pytest.raises(ProxyError) as raised:
        build(ChatRequest(model="public", messages=messages))
    assert raised.value.status == 400
    assert "tooluse_1" in raised.value.message


# --- answers ----------------------------------------------------------------------------------


def parse(name: str, **changes: Any) -> Any:
    answer = {**recorded(name), **changes}
    return bedrock.parse_chat(
        orjson.dumps(answer),
        "bedrock",
        model=CLAUDE,
        make_id=lambda: "msg_bdrk_1",
        clock=lambda: 1750000000.5,
    )


def test_a_text_answer_with_cache_reads_counts_them_in_the_input() -> None:
    answer = parse("response_text.json")
    assert (answer.id, answer.model, answer.created) == ("msg_bdrk_1", CLAUDE, 1750000000)
    assert answer.parts == [Text("Bonjour ! Paris is the capital of France.")]
    assert (answer.finish, answer.stop_sequence) == ("stop", None)
    assert answer.usage == Usage(input_tokens=2060, output_tokens=11, cached_tokens=2048)


def test_two_tool_uses_become_tool_calls_with_compact_json_arguments() -> None:
    answer = parse("response_two_tools.json")
    assert answer.parts == [
        Text("I'll check both cities."),
        ToolCall(PARIS, "get_weather", '{"city":"Paris","unit":"celsius"}'),
        ToolCall(OSLO, "get_weather", '{"city":"Oslo"}'),
    ]
    assert answer.finish == "tool_calls"
    assert answer.usage == Usage(input_tokens=1938, output_tokens=96, cache_write_tokens=1536)


def test_reasoning_comes_back_signed_or_redacted() -> None:
    answer = parse("response_reasoning.json")
    assert answer.parts == [
        Thinking(
            "1009 is not divisible by 2, 3, 5, 7, 11, 13, 17, 19, 23, 29 or 31, and 31² > 1009.",
            SIGNATURE,
        ),
        Thinking("", redacted=REDACTED),
        Text("Yes, 1009 is prime."),
    ]
    assert answer.usage == Usage(input_tokens=44, output_tokens=312)


def test_a_stop_sequence_answer_names_the_sequence_when_the_model_reports_it() -> None:
    answer = parse("response_stop_sequence.json")
    assert (answer.finish, answer.stop_sequence) == ("stop", "END")


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "stop"),
        ("a_reason_added_later", "stop"),
    ],
)
def test_every_stop_reason_maps_to_a_neutral_finish(reason: str, finish: str) -> None:
    assert parse("response_text.json", stopReason=reason).finish == finish


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b"[]", b'{"output": {}}', b'{"output": {"message": {}}}'],
)
def test_a_body_that_is_no_converse_answer_is_a_broken_upstream(body: bytes) -> None:
    with pytest.raises(ProxyError) as raised:
        bedrock.parse_chat(body, "bedrock")
    assert (raised.value.status, raised.value.code) == (502, "upstream_protocol_error")


def test_made_up_ids_differ_between_answers() -> None:
    body = (DATA / "response_text.json").read_bytes()
    first, second = bedrock.parse_chat(body, "bedrock"), bedrock.parse_chat(body, "bedrock")
    assert first.id.startswith("msg_bdrk_")
    assert first.id != second.id


# --- errors -----------------------------------------------------------------------------------

CORAL = "http://internal.amazon.com/coral/com.amazon.bedrock/"
AUTH = "http://internal.amazon.com/coral/com.amazon.coral.service/"


def error_answer(
    kind: str, message: str, *, status: int, key: str = "message", **headers: str
) -> ProxyError:
    fields = CIMultiDict({"x-amzn-errortype": kind, "x-amzn-requestid": "a1b2", **headers})
    return bedrock.parse_error(status, fields, orjson.dumps({key: message}), "bedrock")


# Bedrock's type, the status it comes with, and what the client gets.
ERROR_TYPES = [
    ("ValidationException", 400, 400, "invalid_request"),
    ("AccessDeniedException", 403, 403, "permission_denied"),
    ("UnrecognizedClientException", 403, 401, "authentication_error"),
    ("InvalidSignatureException", 403, 401, "authentication_error"),
    ("ExpiredTokenException", 403, 401, "authentication_error"),
    ("ResourceNotFoundException", 404, 404, "not_found"),
    ("ThrottlingException", 429, 429, "rate_limited"),
    ("ServiceQuotaExceededException", 400, 429, "rate_limited"),
    ("ModelNotReadyException", 429, 503, "overloaded"),
    ("ModelTimeoutException", 408, 504, "upstream_timeout"),
    ("ServiceUnavailableException", 503, 503, "overloaded"),
    ("InternalServerException", 500, 500, "upstream_error"),
    ("ModelErrorException", 424, 502, "upstream_error"),
]


@pytest.mark.parametrize(("kind", "status", "client_status", "code"), ERROR_TYPES)
def test_error_types_map_to_neutral_statuses_and_codes(
    kind: str, status: int, client_status: int, code: str
) -> None:
    namespace = AUTH if code == "authentication_error" else CORAL
    err = error_answer(f"{kind}:{namespace}", "Bedrock says no.", status=status)
    assert (err.status, err.code, err.message) == (client_status, code, "Bedrock says no.")
    assert err.retryable == (client_status in (408, 429) or client_status >= 500)
    assert f"HTTP {status}: {kind}" in err.detail


@pytest.mark.parametrize(
    "message",
    [
        "Input is too long for requested model.",
        "The model returned the following errors: prompt is too long: 212345 tokens > 200000 max",
        "Too many input tokens. Max input tokens: 8192, request input token count: 9001",
        "This model's maximum context length is 128000 tokens.",
        "input length and `max_tokens` exceed context limit: 187254 + 20000 > 204658",
    ],
)
def test_validation_errors_about_the_input_size_are_context_length_errors(message: str) -> None:
    err = error_answer(f"ValidationException:{CORAL}", message, status=400)
    assert (err.status, err.code, err.message) == (400, "context_length_exceeded", message)


def test_the_type_may_come_without_namespace_and_the_message_capitalised() -> None:
    err = error_answer(
        "ThrottlingException", "Rate exceeded", status=429, key="Message", **{"retry-after": "3"}
    )
    assert (err.status, err.code, err.message, err.retry_after) == (
        429,
        "rate_limited",
        "Rate exceeded",
        3.0,
    )


def test_the_type_may_come_in_the_body_instead_of_the_header() -> None:
    body = orjson.dumps(
        {"__type": "com.amazon.coral.service#ExpiredTokenException", "message": "expired"}
    )
    err = bedrock.parse_error(403, CIMultiDict(), body, "bedrock")
    assert (err.status, err.code) == (401, "authentication_error")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, (400, "invalid_request")),
        (413, (413, "request_too_large")),
        (502, (502, "upstream_error")),
    ],
)
def test_an_untyped_error_falls_back_to_its_status(status: int, expected: tuple[int, str]) -> None:
    err = bedrock.parse_error(status, CIMultiDict(), b"<html>error</html>", "bedrock")
    assert (err.status, err.code) == expected
    assert err.message == f"Provider 'bedrock' answered with HTTP status {status}."
    assert "<html>error</html>" in err.detail


# --- embeddings -------------------------------------------------------------------------------

TITAN_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V1 = "amazon.titan-embed-text-v1"
COHERE_V3 = "cohere.embed-english-v3"
COHERE_V4 = "us.cohere.embed-v4:0"


def embed(
    model: str, inputs: list[str] | list[list[int]], **fields: Any
) -> tuple[list[Any], list[str]]:
    policy = ParamPolicy("bedrock")
    request = EmbeddingRequest(model="public", inputs=inputs, **fields)
    return [orjson.loads(b) for b in bedrock.build_embed(request, model, policy)], policy.dropped


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        (TITAN_V2, "titan"),
        (TITAN_V1, "titan"),
        ("amazon.titan-embed-g1-text-02", "titan"),
        (COHERE_V3, "cohere"),
        ("cohere.embed-multilingual-v3", "cohere"),
        (COHERE_V4, "cohere"),
        ("amazon.titan-embed-image-v1", None),
        (CLAUDE, None),
    ],
)
def test_embedding_models_are_told_apart_by_id(model: str, kind: str | None) -> None:
    assert bedrock.embed_kind(model) == kind


def test_titan_v2_takes_one_text_per_body_normalised_at_the_size_asked_for() -> None:
    bodies, dropped = embed(TITAN_V2, ["first text", "second text"], dimensions=256)
    assert bodies == [
        {"inputText": "first text", "normalize": True, "dimensions": 256},
        {"inputText": "second text", "normalize": True, "dimensions": 256},
    ]
    assert dropped == []


def test_titan_v2_refuses_a_size_it_does_not_make() -> None:
    with pytest.raises(ProxyError) as raised:
        embed(TITAN_V2, ["text"], dimensions=768)
    assert (raised.value.status, raised.value.param) == (400, "dimensions")
    assert (
        raised.value.message
        == "dimensions: this model makes embeddings of 256, 512, 1024 dimensions only"
    )


def test_titan_v1_has_no_settings_and_drops_dimensions_through_the_policy() -> None:
    assert embed(TITAN_V1, ["text"], dimensions=512) == ([{"inputText": "text"}], ["dimensions"])


def test_cohere_takes_up_to_96_texts_per_body_as_search_documents() -> None:
    texts = [f"text {i}" for i in range(100)]
    bodies, dropped = embed(COHERE_V3, texts)
    assert bodies == [
        {"texts": texts[:96], "input_type": "search_document"},
        {"texts": texts[96:], "input_type": "search_document"},
    ]
    assert dropped == []


def test_cohere_input_type_may_be_chosen_by_the_client() -> None:
    bodies, _ = embed(COHERE_V3, ["query"], extra={"input_type": "search_query"})
    assert bodies == [{"texts": ["query"], "input_type": "search_query"}]
    with pytest.raises(ProxyError) as raised:
        embed(COHERE_V3, ["query"], extra={"input_type": "question"})
    assert (raised.value.status, raised.value.param) == (400, "input_type")


@pytest.mark.parametrize(
    ("model", "body", "dropped"),
    [
        (COHERE_V4, {"texts": ["a"], "input_type": "search_document", "output_dimension": 512}, []),
        (COHERE_V3, {"texts": ["a"], "input_type": "search_document"}, ["dimensions"]),
    ],
)
def test_cohere_dimensions_go_to_v4_only(
    model: str, body: dict[str, Any], dropped: list[str]
) -> None:
    assert embed(model, ["a"], dimensions=512) == ([body], dropped)


def test_embedding_fields_bedrock_cannot_carry_go_through_the_policy() -> None:
    bodies, dropped = embed(TITAN_V2, ["a"], user="user-1", extra={"input_type": "search_query"})
    assert bodies == [{"inputText": "a", "normalize": True}]
    assert dropped == ["user", "input_type"]


@pytest.mark.parametrize(("model", "inputs"), [(TITAN_V2, [[1, 2, 3]]), (CLAUDE, ["a"])])
def test_token_arrays_and_chat_models_are_refused_with_a_400(model: str, inputs: Any) -> None:
    with pytest.raises(ProxyError) as raised:
        embed(model, inputs)
    assert raised.value.status == 400


def test_titan_answers_are_joined_in_order_with_their_token_counts_summed() -> None:
    bodies = [
        orjson.dumps(
            {
                "embedding": [0.1, 0.2],
                "embeddingsByType": {"float": [0.1, 0.2]},
                "inputTextTokenCount": 3,
            }
        ),
        orjson.dumps(
            {
                "embedding": [0.3, 0.4],
                "embeddingsByType": {"float": [0.3, 0.4]},
                "inputTextTokenCount": 5,
            }
        ),
    ]
    answer = bedrock.parse_embed(bodies, TITAN_V2)
    assert (answer.model, answer.vectors) == (TITAN_V2, [[0.1, 0.2], [0.3, 0.4]])
    assert answer.usage == Usage(input_tokens=8)


@pytest.mark.parametrize(
    "embeddings",
    [
        [[0.5, -0.5], [0.25, 0.75]],
        {"float": [[0.5, -0.5], [0.25, 0.75]], "int8": [[64, -64], [32, 96]]},
    ],
    ids=["embeddings_floats", "embeddings_by_type"],
)
def test_cohere_answers_give_float_vectors_in_either_shape(embeddings: Any) -> None:
    body = {"embeddings": embeddings, "id": "3f1c", "response_type": "x", "texts": ["a", "b"]}
    answer = bedrock.parse_embed([orjson.dumps(body)], COHERE_V3)
    assert answer.vectors == [[0.5, -0.5], [0.25, 0.75]]
    assert answer.usage == Usage()


@pytest.mark.parametrize(
    "body", [b"not json", b'{"embeddings": "nope"}', b'{"embeddings": {"int8": []}}']
)
def test_an_embedding_answer_without_vectors_is_a_broken_upstream(body: bytes) -> None:
    with pytest.raises(ProxyError) as raised:
        bedrock.parse_embed([body], COHERE_V3)
    assert raised.value.code == "upstream_protocol_error"
