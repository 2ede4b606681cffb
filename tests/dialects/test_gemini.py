"""Gemini as an upstream dialect: neutral requests become the generateContent bodies Gemini
accepts (merged turns, function responses named after their calls, thought signatures back in
place, JSON Schema kept whole, settings only where the model generation takes them), and
Gemini's answers, errors and embeddings come back in neutral terms."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from edgeproxy.dialects import gemini
from edgeproxy.dialects.gemini_stream import call_id
from edgeproxy.dialects.neutral import (
    ChatRequest,
    ChatResponse,
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

DATA = Path(__file__).parent.parent / "data" / "gemini"
FLASH_3 = "gemini-3-flash-preview"
PRO_3 = "gemini-3-pro-preview"
FLASH_25 = "gemini-2.5-flash"
PRO_25 = "gemini-2.5-pro"
FLASH_20 = "gemini-2.0-flash"
SIG_PARIS = (
    "CrG9W8uw8de9puyHB9d3xvE/pg3mKBxfeN4/YYsakj8DuzdoRy7q3sRjKMPMEiOennEgIQD43wE1xjf1"
    "+yrfKkpQ9jKK4K2gNC7w97Ay9/fkYkwFXGoq7yVDEFRN0ZqW"
)
SIG_THOUGHT = (
    "CrittVYQT1rRTnuyUC97eLQtDkH58AXzv1vYZwSMyWtdYJTXAnMLtS6f9PQyHsE+7dHxdliDWuSGQMZ2G5a/"
    "x8xe3EsJbvL6FzVXg5xc6yVXRuyzixdPr1FOLcwUoCa4sE//eym4DBT8mYjsZwg8vZhY00B0pmsl"
)
SIG_RADAR = (
    "CrjrowjNflXWNSH7u5DzIaHlyWkbK29fJg/Ya0skdOz/ntor+YV09XywulF6Rkp4Z+YlHGDS/"
    "Yj1LaDvf95WLhZ9RYPIjN6A"
)
SIG_TEXT = (
    "CrDJy8ZbsZapCMJOXY+0q0fVfEPF+7C3S/TyV6YtlNoCeYzGQFOrRnZJ0YClrMxbWUakWLzw1GhZ7Ncs3t2wc/"
    "ld9FWEJIf6KjLWXO/aekixFLir"
)
PARIS, OSLO = "call_3f9c1e0b7a2d4c5e8f6a1b2c", "call_9a8b7c6d5e4f3a2b1c0d9e8f"
RADAR, LOG = "toolu_01Q8mZ2c4rT0yVb6nXw1LpKa", "toolu_017RkLq2Wm0Z3xY5vB8nC1dE"
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        "days": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 7}, {"type": "null"}]},
    },
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = Tool(
    "get_weather",
    "Current weather for a city.",
    {"$schema": "http://json-schema.org/draft-07/schema#", **WEATHER_SCHEMA},
)
TIME = Tool("get_time", None, {})


def recorded(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


def build(
    request: ChatRequest, model: str = FLASH_3, mode: UnsupportedParams = "drop"
) -> tuple[dict[str, Any], list[str]]:
    policy = ParamPolicy("gemini", mode)
    return orjson.loads(gemini.build_chat(request, model, policy)), policy.dropped


def rejected(request: ChatRequest, model: str = FLASH_3) -> ProxyError:
    with pytest.raises(ProxyError) as raised:
        build(request, model, "reject")
    return raised.value


def tool_history() -> list[Message]:
    return [
        Message("user", [Text("Weather in Paris and Oslo?")]),
        Message(
            "assistant",
            [
                Thinking("", SIG_PARIS),
                ToolCall(PARIS, "get_weather", '{"city": "Paris"}'),
                ToolCall(OSLO, "get_weather", '{"city":"Oslo","unit":"celsius"}'),
            ],
        ),
        Message("user", [ToolResult(PARIS, (Text("18°C, sunny"),))]),
        Message("user", [Text("Here is what I got.")]),
        Message("user", [ToolResult(OSLO, (Text("Weather service unavailable"),), is_error=True)]),
        Message(
            "assistant",
            [
                Thinking("Checking the radar too."),
                Thinking("", SIG_RADAR),
                ToolCall(RADAR, "get_radar", ""),
            ],
        ),
        Message(
            "user",
            [ToolResult(RADAR, (Text("Radar image:"), Image(data=JPEG, media_type="image/jpeg")))],
        ),
        Message(
            "assistant",
            [
                Thinking("", redacted=REDACTED),
                Thinking("Unsigned reasoning from another provider."),
                ToolCall(LOG, "log_query", "{}"),
            ],
        ),
        Message("user", [ToolResult(LOG, (Text(""),))]),
        Message(
            "assistant",
            [
                Thinking("The radar shows rain heading for Oslo.", SIG_THOUGHT),
                Thinking("", SIG_TEXT),
                Text("Paris: 18°C and sunny. Oslo: no data, rain on the radar."),
            ],
        ),
        Message("user", [Text("Thanks!")]),
    ]


# --- requests ---------------------------------------------------------------------------------


def test_system_text_turns_images_and_sampling_become_contents_and_generation_config() -> None:
    request = ChatRequest(
        model="public",
        system=[Text("You are terse."), Text(""), Text("Answer in English.")],
        messages=[
            Message("user", [Text("What is in these pictures?")]),
            Message(
                "user",
                [
                    Image(data=PNG, media_type="image/png"),
                    Text(""),
                    Image(url="https://images.example.com/cats/sofa.webp?w=800#top"),
                ],
            ),
            Message("assistant", [Thinking("unsigned musing"), Text("A cat on a sofa.")]),
            Message("assistant", [Text("Anything else?")]),
            Message("user", [Text("No, thanks.")]),
        ],
        max_tokens=512,
        temperature=0.7,
        top_p=0.95,
        top_k=40,
        seed=7,
        stop=["END", "", "\n\nUser:"],
    )
    assert build(request, FLASH_25) == (recorded("request_turns.json"), [])


@pytest.mark.parametrize(
    ("url", "media_type"),
    [
        ("https://example.com/a.PNG", "image/png"),
        ("https://example.com/photo.jpg?sig=abc.def", "image/jpeg"),
        ("https://cdn.example.com/images/42", "image/jpeg"),
        ("https://example.com/anim.gif", "image/gif"),
    ],
)
def test_an_image_url_is_fetched_by_gemini_with_a_type_read_from_its_extension(
    url: str, media_type: str
) -> None:
    body, _ = build(ChatRequest(model="public", messages=[Message("user", [Image(url=url)])]))
    assert body["contents"][0]["parts"] == [{"fileData": {"mimeType": media_type, "fileUri": url}}]


@pytest.mark.parametrize(
    ("url", "model"),
    [("http://example.com/cat.png", FLASH_3), ("https://example.com/cat.png", FLASH_20)],
    ids=["plain http", "gemini 2.0"],
)
def test_an_image_url_gemini_cannot_fetch_is_refused_with_a_hint(url: str, model: str) -> None:
    request = ChatRequest(model="public", messages=[Message("user", [Image(url=url)])])
    err = rejected(request, model)
    assert (err.status, err.code, err.param) == (400, "invalid_request", "messages")
    assert "Gemini cannot fetch image URLs" in err.message
    assert "send the image as base64 data" in err.message


def test_tools_are_declared_with_their_whole_json_schema_but_no_schema_marker() -> None:
    request = ask(
        "What is the weather in Paris, and what time is it there?",
        max_tokens=1024,
        tools=[WEATHER, TIME],
        tool_choice=ToolChoice("auto"),
        parallel_tool_calls=True,
    )
    assert build(request) == (recorded("request_tools.json"), [])


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        (ToolChoice("auto"), {"mode": "AUTO"}),
        (ToolChoice("none"), {"mode": "NONE"}),
        (ToolChoice("required"), {"mode": "ANY"}),
        (ToolChoice("tool", "get_time"), {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
    ],
)
def test_every_tool_choice_is_a_function_calling_mode(
    choice: ToolChoice, config: dict[str, Any]
) -> None:
    body, dropped = build(ask("Hi", tools=[WEATHER, TIME], tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": config}
    assert len(body["tools"][0]["functionDeclarations"]) == 2
    assert dropped == []


def test_no_tool_config_without_a_choice_or_without_tools() -> None:
    assert "toolConfig" not in build(ask("Hi", tools=[WEATHER]))[0]
    assert "toolConfig" not in build(ask("Hi", tool_choice=ToolChoice("none")))[0]


def test_tool_history_names_each_response_after_its_call_and_keeps_signatures_in_place() -> None:
    request = ChatRequest(model="public", messages=tool_history(), tools=[WEATHER])
    assert build(request) == (recorded("request_tool_history.json"), [])


@pytest.mark.parametrize("model", [FLASH_25, FLASH_20])
def test_only_gemini_3_gets_a_stand_in_signature_for_a_call_that_lost_its_own(model: str) -> None:
    body, _ = build(ChatRequest(model="public", messages=tool_history()), model)
    calls = [p for turn in body["contents"] for p in turn["parts"] if "functionCall" in p]
    assert [call.get("thoughtSignature") for call in calls] == [SIG_PARIS, None, SIG_RADAR, None]


def test_a_tool_result_for_an_unknown_call_names_the_field() -> None:
    request = ChatRequest(
        model="public",
        messages=[
            Message("user", [Text("Hi")]),
            Message("user", [ToolResult("call_unknown", (Text("42"),))]),
        ],
    )
    err = rejected(request)
    assert (err.status, err.code, err.param) == (400, "invalid_request", "messages")
    assert "'call_unknown'" in err.message
    assert "tool_call_id" in err.message


def test_tool_call_arguments_that_are_not_an_object_are_refused() -> None:
    request = ChatRequest(
        model="public",
        messages=[Message("assistant", [ToolCall("call_1", "f", "[1, 2]")])],
    )
    assert "'call_1'" in rejected(request).message


def test_a_conversation_without_content_is_refused_before_gemini_sees_it() -> None:
    err = rejected(ChatRequest(model="public", messages=[Message("user", [Text("")])]))
    assert (err.status, err.param) == (400, "messages")


def test_json_schema_output_and_a_thinking_effort_on_gemini_3() -> None:
    schema = recorded("request_structured.json")["generationConfig"]["responseJsonSchema"]
    spec = ResponseFormat(
        "json_schema",
        schema={"$schema": "https://json-schema.org/draft/2020-12/schema", **schema},
        name="reply",
        strict=True,
    )
    request = ask("Who wrote Dune? Cite sources.", response_format=spec, reasoning=Reasoning("low"))
    assert build(request) == (recorded("request_structured.json"), [])


def test_a_thinking_budget_on_gemini_2_5_stays_within_the_models_ceiling() -> None:
    request = ask(
        "Is 1009 prime? Answer in JSON.",
        max_tokens=40000,
        temperature=1.0,
        response_format=ResponseFormat("json_object"),
        reasoning=Reasoning(budget_tokens=40000),
    )
    assert build(request, PRO_25) == (recorded("request_thinking_budget.json"), [])


@pytest.mark.parametrize(
    ("model", "reasoning", "thinking"),
    [
        (FLASH_25, Reasoning("minimal"), {"thinkingBudget": 512}),
        (FLASH_25, Reasoning("low"), {"thinkingBudget": 1024}),
        (FLASH_25, Reasoning("medium"), {"thinkingBudget": 8192}),
        (FLASH_25, Reasoning("high"), {"thinkingBudget": 24576}),
        (FLASH_25, Reasoning(budget_tokens=100), {"thinkingBudget": 512}),
        (FLASH_25, Reasoning(budget_tokens=30000), {"thinkingBudget": 24576}),
        (PRO_25, Reasoning(budget_tokens=30000), {"thinkingBudget": 30000}),
        (FLASH_25, Reasoning(), {"thinkingBudget": -1}),
        (FLASH_3, Reasoning("minimal"), {"thinkingLevel": "MINIMAL"}),
        (FLASH_3, Reasoning("medium"), {"thinkingLevel": "MEDIUM"}),
        (FLASH_3, Reasoning(budget_tokens=4096), {"thinkingLevel": "LOW"}),
        (FLASH_3, Reasoning(budget_tokens=32000), {"thinkingLevel": "HIGH"}),
        (FLASH_3, Reasoning(), {}),
        (PRO_3, Reasoning("minimal"), {"thinkingLevel": "LOW"}),
        (PRO_3, Reasoning("medium"), {"thinkingLevel": "HIGH"}),
        ("gemini-3.1-pro-preview", Reasoning("medium"), {"thinkingLevel": "MEDIUM"}),
    ],
)
def test_reasoning_is_a_budget_on_gemini_2_5_and_a_level_on_gemini_3(
    model: str, reasoning: Reasoning, thinking: dict[str, Any]
) -> None:
    body, dropped = build(ask("Hi", reasoning=reasoning), model)
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, **thinking}
    assert dropped == []


@pytest.mark.parametrize(
    ("model", "fields", "dropped"),
    [
        (FLASH_20, {"reasoning": Reasoning("high")}, ["reasoning"]),
        (
            FLASH_3,
            {"presence_penalty": 0.5, "frequency_penalty": 0.2},
            ["presence_penalty", "frequency_penalty"],
        ),
        (FLASH_25, {"frequency_penalty": 0.2}, ["frequency_penalty"]),
        (FLASH_3, {"stop": ["a", "b", "c", "d", "e", "f"]}, ["stop"]),
        (FLASH_3, {"user": "u-42"}, ["user"]),
        (FLASH_3, {"metadata": {"team": "search"}}, ["metadata"]),
        (FLASH_3, {"parallel_tool_calls": False, "tools": [WEATHER]}, ["parallel_tool_calls"]),
        (
            FLASH_3,
            {"extra": {"logprobs": True, "service_tier": "flex"}},
            ["logprobs", "service_tier"],
        ),
        (
            FLASH_20,
            {"response_format": ResponseFormat("json_schema", {"type": "object"})},
            ["response_format"],
        ),
        (
            FLASH_25,
            {"response_format": ResponseFormat("json_object"), "tools": [WEATHER]},
            ["response_format"],
        ),
    ],
)
def test_fields_the_model_cannot_take_go_through_the_policy(
    model: str, fields: dict[str, Any], dropped: list[str]
) -> None:
    body, left_out = build(ask("Hi", **fields), model)
    assert left_out == dropped
    config = body.get("generationConfig", {})
    assert not {"thinkingConfig", "presencePenalty", "frequencyPenalty", "stopSequences"} & set(
        config
    )
    assert "responseMimeType" not in config
    err = rejected(ask("Hi", **fields), model)
    assert (err.status, err.code, err.param) == (400, "unsupported_parameter", dropped[0])


@pytest.mark.parametrize(
    ("fields", "config"),
    [
        (
            {"presence_penalty": 0.5, "frequency_penalty": -0.25},
            {"presencePenalty": 0.5, "frequencyPenalty": -0.25},
        ),
        ({"presence_penalty": 0.0, "frequency_penalty": 0.0}, {}),
        (
            {"response_format": ResponseFormat("json_object")},
            {"responseMimeType": "application/json"},
        ),
        ({"n": 1}, {}),
    ],
)
def test_what_gemini_2_0_takes_is_sent_and_zero_penalties_are_no_change(
    fields: dict[str, Any], config: dict[str, Any]
) -> None:
    body, dropped = build(ask("Hi", **fields), FLASH_20)
    assert body.get("generationConfig", {}) == config
    assert dropped == []


def test_json_output_with_tools_is_sent_to_gemini_3() -> None:
    body, dropped = build(
        ask("Hi", tools=[WEATHER], response_format=ResponseFormat("json_object")), FLASH_3
    )
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    assert dropped == []


# --- answers ----------------------------------------------------------------------------------


def parse(name: str, **patch: Any) -> ChatResponse:
    """A recorded answer with fields of its candidate replaced."""
    answer = recorded(name)
    answer["candidates"][0].update(patch)
    return gemini.parse_chat(
        orjson.dumps(answer), "gemini", make_id=lambda: "gen", clock=lambda: 1.7e9
    )


def test_a_text_answer_with_cached_prompt_tokens_and_hidden_thoughts() -> None:
    answer = gemini.parse_chat(
        (DATA / "response_text.json").read_bytes(), "gemini", clock=lambda: 1.7e9
    )
    assert (answer.id, answer.model, answer.created) == (
        "Xr9LaPq0Bo-ekdUPw9CB8Ao",
        "gemini-2.5-flash",
        1700000000,
    )
    assert answer.parts == [Text("Bonjour ! Paris ✓ est la capitale 🇫🇷.")]
    assert answer.finish == "stop"
    assert answer.usage == Usage(
        input_tokens=2060, output_tokens=41, cached_tokens=2048, reasoning_tokens=30
    )


def test_thought_parts_are_thinking_and_a_text_signature_precedes_its_text() -> None:
    answer = gemini.parse_chat((DATA / "response_thoughts.json").read_bytes(), "gemini")
    assert answer.parts == [
        Thinking(
            "**Testing divisibility**\n\nA number below 1024 is prime when no prime up to 31 "
            "divides it; none does."
        ),
        Thinking("", SIG_TEXT),
        Text("Yes, 1009 is prime: no prime up to 31 divides it."),
    ]
    assert answer.usage == Usage(input_tokens=9, output_tokens=377, reasoning_tokens=363)


def test_parallel_function_calls_get_stable_ids_and_finish_with_tool_calls() -> None:
    body = (DATA / "response_parallel_calls.json").read_bytes()
    answer = gemini.parse_chat(body, "gemini")
    response_id = "b3mLaJ2cLp-xz7IPk5KZ8Qk"
    assert answer.parts == [
        Thinking("", SIG_PARIS),
        ToolCall(call_id(response_id, 0, "get_weather"), "get_weather", '{"city":"Paris"}'),
        ToolCall(
            call_id(response_id, 1, "get_weather"),
            "get_weather",
            '{"city":"Oslo","unit":"celsius"}',
        ),
    ]
    assert answer.finish == "tool_calls"
    assert gemini.parse_chat(body, "gemini").parts == answer.parts
    ids = {part.id for part in answer.parts if isinstance(part, ToolCall)}
    assert len(ids) == 2
    assert all(i.startswith("call_") and len(i) == 29 for i in ids)


def test_a_function_call_id_given_by_gemini_is_kept_and_missing_args_are_an_empty_object() -> None:
    call = {"id": "fc_7d2e", "name": "get_time"}
    answer = parse("response_parallel_calls.json", content={"parts": [{"functionCall": call}]})
    assert answer.parts == [ToolCall("fc_7d2e", "get_time", "{}")]


def test_a_function_response_round_trips_the_id_of_the_call_parsed_from_gemini() -> None:
    answer = gemini.parse_chat((DATA / "response_parallel_calls.json").read_bytes(), "gemini")
    call = next(part for part in answer.parts if isinstance(part, ToolCall))
    history = [
        Message("user", [Text("Weather in Paris?")]),
        Message("assistant", list(answer.parts)),
        Message("user", [ToolResult(call.id, (Text("18°C"),))]),
    ]
    body, _ = build(ChatRequest(model="public", messages=history))
    assert body["contents"][1]["parts"][0]["thoughtSignature"] == SIG_PARIS
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"id": call.id, "name": "get_weather", "response": {"output": "18°C"}}}
    ]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("LANGUAGE", "stop"),
        ("OTHER", "stop"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_every_finish_reason_maps_to_a_neutral_finish(reason: str, finish: str) -> None:
    assert parse("response_text.json", finishReason=reason).finish == finish


def test_max_tokens_wins_over_tool_calls_and_stop_becomes_tool_calls() -> None:
    assert parse("response_parallel_calls.json", finishReason="MAX_TOKENS").finish == "length"
    assert parse("response_parallel_calls.json", finishReason="STOP").finish == "tool_calls"


def test_a_safety_stop_with_no_content_is_an_empty_filtered_answer() -> None:
    answer = gemini.parse_chat((DATA / "response_safety.json").read_bytes(), "gemini")
    assert (answer.parts, answer.finish) == ([], "content_filter")


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"])
def test_a_malformed_function_call_is_a_retryable_upstream_error(reason: str) -> None:
    answer = recorded("response_malformed_call.json")
    answer["candidates"][0]["finishReason"] = reason
    with pytest.raises(ProxyError) as raised:
        gemini.parse_chat(orjson.dumps(answer), "gemini")
    err = raised.value
    assert (err.status, err.code, err.retryable) == (502, "upstream_error", True)
    assert reason in err.message


def test_a_blocked_prompt_is_a_clear_error_not_an_empty_answer() -> None:
    with pytest.raises(ProxyError) as raised:
        gemini.parse_chat((DATA / "response_blocked.json").read_bytes(), "gemini")
    err = raised.value
    assert (err.status, err.code, err.retryable) == (400, "invalid_request", False)
    assert "blocked the prompt (blockReason SAFETY)" in err.message


@pytest.mark.parametrize(
    "body",
    [b"<html>502</html>", b"[]", b'{"candidates": []}', b'{"modelVersion": "gemini-2.5-flash"}'],
)
def test_a_body_that_is_no_answer_is_a_broken_upstream(body: bytes) -> None:
    with pytest.raises(ProxyError) as raised:
        gemini.parse_chat(body, "gemini")
    assert (raised.value.status, raised.value.code) == (502, "upstream_protocol_error")


def test_an_answer_without_response_id_or_model_gets_a_made_up_id() -> None:
    body = b'{"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP"}]}'
    answer = gemini.parse_chat(body, "gemini", make_id=lambda: "gemini-abc")
    assert (answer.id, answer.model, answer.usage) == ("gemini-abc", "", Usage())


# --- errors -----------------------------------------------------------------------------------


def error(status: int, body: bytes, headers: dict[str, str] | None = None) -> ProxyError:
    return gemini.parse_error(status, CIMultiDict(headers or {}), body, "gemini")


def google_error(code: int, status: str, message: str = "Something happened.") -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "status": status}})


@pytest.mark.parametrize(
    ("http", "status", "client_status", "code"),
    [
        (400, "INVALID_ARGUMENT", 400, "invalid_request"),
        (400, "FAILED_PRECONDITION", 400, "invalid_request"),
        (401, "UNAUTHENTICATED", 401, "authentication_error"),
        (403, "PERMISSION_DENIED", 403, "permission_denied"),
        (404, "NOT_FOUND", 404, "not_found"),
        (429, "RESOURCE_EXHAUSTED", 429, "rate_limited"),
        (500, "INTERNAL", 500, "upstream_error"),
        (503, "UNAVAILABLE", 503, "overloaded"),
        (504, "DEADLINE_EXCEEDED", 504, "upstream_timeout"),
        (501, "UNIMPLEMENTED", 400, "invalid_request"),
        (499, "CANCELLED", 502, "upstream_error"),
        (418, "SOMETHING_NEW", 418, "invalid_request"),
        (502, "SOMETHING_NEW", 502, "upstream_error"),
    ],
)
def test_every_google_status_maps_to_a_neutral_error(
    http: int, status: str, client_status: int, code: str
) -> None:
    err = error(http, google_error(http, status))
    assert (err.status, err.code, err.message) == (client_status, code, "Something happened.")
    assert err.retryable == (client_status in (429,) or client_status >= 500)


def test_an_invalid_api_key_is_an_authentication_error_despite_its_400() -> None:
    err = error(400, (DATA / "error_api_key_invalid.json").read_bytes())
    assert (err.status, err.code) == (401, "authentication_error")
    assert err.message == "API key not valid. Please pass a valid API key."


def test_a_quota_error_waits_as_long_as_its_retry_info_says() -> None:
    err = error(429, (DATA / "error_rate_limited.json").read_bytes())
    assert (err.status, err.code, err.retry_after, err.retryable) == (
        429,
        "rate_limited",
        28.0,
        True,
    )
    assert err.message.startswith("You exceeded your current quota")


@pytest.mark.parametrize(
    ("delay", "seconds"), [("30s", 30.0), ("1.5s", 1.5), ("0s", 0.0), ("soon", None), ("2m", None)]
)
def test_retry_delay_is_a_json_duration_in_seconds(delay: str, seconds: float | None) -> None:
    detail = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
    body = {
        "error": {
            "code": 429,
            "message": "Slow down.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [detail],
        }
    }
    assert error(429, orjson.dumps(body)).retry_after == seconds


def test_without_retry_info_the_retry_after_header_counts() -> None:
    err = error(429, google_error(429, "RESOURCE_EXHAUSTED"), {"Retry-After": "7"})
    assert err.retry_after == 7.0


def test_too_many_input_tokens_is_a_context_length_error() -> None:
    err = error(400, (DATA / "error_context_length.json").read_bytes())
    assert (err.status, err.code) == (400, "context_length_exceeded")


def test_a_payload_over_googles_limit_is_a_request_too_large_error() -> None:
    message = "Request payload size exceeds the limit: 20971520 bytes."
    err = error(400, google_error(400, "INVALID_ARGUMENT", message))
    assert (err.status, err.code) == (413, "request_too_large")


def test_an_error_in_a_one_element_array_is_read_too() -> None:
    body = b"[" + google_error(503, "UNAVAILABLE", "The model is overloaded.") + b"]"
    err = error(503, body)
    assert (err.status, err.code, err.message) == (503, "overloaded", "The model is overloaded.")


@pytest.mark.parametrize(
    ("http", "client_status", "code"),
    [(413, 413, "request_too_large"), (502, 502, "upstream_error"), (404, 404, "not_found")],
)
def test_a_body_that_is_not_json_maps_by_http_status_and_stays_in_the_log(
    http: int, client_status: int, code: str
) -> None:
    body = b"<html><title>Error</title>key=AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW</html>"
    err = error(http, body)
    assert (err.status, err.code) == (client_status, code)
    assert "<html>" not in err.message
    assert "<html>" in err.detail
    assert "AIza" not in err.detail


def test_a_message_never_carries_an_api_key() -> None:
    message = "API key AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW was reported as leaked."
    err = error(403, google_error(403, "PERMISSION_DENIED", message))
    assert err.message == "API key [redacted] was reported as leaked."


# --- embeddings -------------------------------------------------------------------------------


def embed(
    request: EmbeddingRequest, model: str = "gemini-embedding-001"
) -> tuple[str, Any, list[str]]:
    policy = ParamPolicy("gemini", "drop")
    method, body = gemini.build_embed(request, model, policy)
    return method, orjson.loads(body), policy.dropped


def test_one_text_is_embedded_with_embed_content() -> None:
    request = EmbeddingRequest(model="public", inputs=["The quick brown fox"], dimensions=768)
    assert embed(request) == (
        ":embedContent",
        {"content": {"parts": [{"text": "The quick brown fox"}]}, "outputDimensionality": 768},
        [],
    )


def test_several_texts_are_one_batch_whose_items_name_the_model() -> None:
    request = EmbeddingRequest(model="public", inputs=["first", "second"], user="u-1")
    method, body, dropped = embed(request, "models/gemini-embedding-001")
    assert method == ":batchEmbedContents"
    assert body == {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "first"}]}},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "second"}]}},
        ]
    }
    assert dropped == ["user"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([[15339, 1917]], "input: Gemini embeddings take text, not token arrays"),
        (["x"] * 101, "input: Gemini embeds at most 100 texts per request"),
    ],
)
def test_inputs_gemini_cannot_embed_are_refused(inputs: Any, message: str) -> None:
    with pytest.raises(ProxyError) as raised:
        embed(EmbeddingRequest(model="public", inputs=inputs))
    assert (raised.value.status, raised.value.param, raised.value.message) == (
        400,
        "input",
        message,
    )


@pytest.mark.parametrize(
    ("name", "batch", "count"), [("embed_single.json", False, 1), ("embed_batch.json", True, 2)]
)
def test_embeddings_come_back_as_unit_vectors_with_no_usage(
    name: str, batch: bool, count: int
) -> None:
    body = (DATA / name).read_bytes()
    answer = gemini.parse_embed(body, batch, "gemini-embedding-001")
    assert (answer.model, len(answer.vectors), answer.usage) == (
        "gemini-embedding-001",
        count,
        Usage(),
    )
    for vector, raw in zip(answer.vectors, _raw_vectors(body, batch), strict=True):
        norm = math.sqrt(math.fsum(r * r for r in raw))
        assert math.isclose(math.fsum(v * v for v in vector), 1.0)
        assert all(math.isclose(v * norm, r) for v, r in zip(vector, raw, strict=True))


def _raw_vectors(body: bytes, batch: bool) -> list[list[float]]:
    answer = orjson.loads(body)
    return [e["values"] for e in answer["embeddings"]] if batch else [answer["embedding"]["values"]]


@pytest.mark.parametrize(
    ("body", "batch"),
    [
        (b'{"embeddings": [{"values": [1.0]}, {}]}', True),
        (b'{"embedding": {}}', False),
        (b"[]", False),
    ],
)
def test_an_embedding_answer_without_vectors_is_a_broken_upstream(body: bytes, batch: bool) -> None:
    with pytest.raises(ProxyError) as raised:
        gemini.parse_embed(body, batch, "gemini-embedding-001")
    assert raised.value.code == "upstream_protocol_error"
