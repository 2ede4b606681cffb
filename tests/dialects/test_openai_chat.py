"""OpenAI Chat Completions as a translation dialect: requests parsed from an OpenAI SDK and
built for OpenAI-compatible servers, answers read and rendered, errors mapped, embeddings."""

from __future__ import annotations

import base64
import dataclasses
import struct
from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import pytest
from multidict import CIMultiDict
from openai.types.chat import ChatCompletion

from edgeproxy.dialects import openai_chat
from edgeproxy.dialects.neutral import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
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

DATA = Path(__file__).parent.parent / "data" / "openai"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def load(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet", "messages": [{"role": "user", "content": "Hi"}], **fields}


def build(neutral: ChatRequest, **options: Any) -> tuple[dict[str, Any], list[str]]:
    policy = ParamPolicy("openai")
    body = openai_chat.build_chat(neutral, "gpt-4o", policy, **options)
    return orjson.loads(body), policy.dropped


# --- parsing an OpenAI client's request -------------------------------------------------------


def test_a_full_openai_request_parses_to_the_golden_neutral_form() -> None:
    parsed = openai_chat.parse_chat_request(load("chat_request.json"))
    assert plain(parsed) == load("chat_request.neutral.json")


def test_a_full_openai_request_builds_back_to_the_golden_upstream_body() -> None:
    parsed = openai_chat.parse_chat_request(load("chat_request.json"))
    body, dropped = build(parsed)
    assert body == load("chat_request.upstream.json")
    assert dropped == ["metadata"]  # OpenAI rejects metadata unless store is true


def test_tool_messages_and_the_user_text_after_them_form_one_user_turn() -> None:
    parsed = openai_chat.parse_chat_request(
        request(
            messages=[
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "", "tool_calls": [call("c1"), call("c2")]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": ""},
                {"role": "user", "content": "Thanks. Tomorrow?"},
            ]
        )
    )
    assert parsed.messages == [
        Message("user", [Text("Weather?")]),
        Message(
            "assistant", [ToolCall("c1", "get_weather", "{}"), ToolCall("c2", "get_weather", "{}")]
        ),
        Message(
            "user",
            [ToolResult("c1", (Text("sunny"),)), ToolResult("c2", ()), Text("Thanks. Tomorrow?")],
        ),
    ]


def call(call_id: str, arguments: str = "") -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }


def test_legacy_functions_and_function_call_map_onto_tools() -> None:
    parsed = openai_chat.parse_chat_request(
        request(
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {"role": "function", "name": "get_weather", "content": "sunny"},
            ],
            functions=[{"name": "get_weather", "parameters": WEATHER}],
            function_call={"name": "get_weather"},
        )
    )
    assert parsed.tools == [Tool("get_weather", None, WEATHER)]
    assert parsed.tool_choice == ToolChoice("tool", "get_weather")
    assert parsed.messages[1:] == [
        Message("assistant", [ToolCall("call_0", "get_weather", '{"city":"Paris"}')]),
        Message("user", [ToolResult("call_0", (Text("sunny"),))]),
    ]


@pytest.mark.parametrize(
    ("fields", "attribute", "expected"),
    [
        ({"max_tokens": 50}, "max_tokens", 50),
        ({"max_tokens": 50, "max_completion_tokens": 70}, "max_tokens", 70),
        ({"stop": ["a", "b"]}, "stop", ["a", "b"]),
        ({"stop": None}, "stop", []),
        ({"top_k": 40}, "top_k", 40),
        ({"reasoning_effort": "low"}, "reasoning", Reasoning(effort="low")),
        ({"reasoning_effort": "xhigh"}, "reasoning", Reasoning(effort="high")),
        ({"reasoning_effort": "none"}, "reasoning", None),
        ({"tool_choice": "required"}, "tool_choice", ToolChoice("required")),
        (
            {"tool_choice": {"type": "function", "function": {"name": "f"}}},
            "tool_choice",
            ToolChoice("tool", "f"),
        ),
        ({"response_format": {"type": "text"}}, "response_format", None),
        (
            {"response_format": {"type": "json_object"}},
            "response_format",
            ResponseFormat("json_object"),
        ),
        ({"stream": True}, "include_usage", False),
        ({"stream": True, "stream_options": {"include_usage": True}}, "include_usage", True),
        (
            {"logit_bias": {"50256": -100}, "modalities": ["text"]},
            "extra",
            {"logit_bias": {"50256": -100}, "modalities": ["text"]},
        ),
    ],
)
def test_request_options_map_to_neutral_fields(
    fields: dict[str, Any], attribute: str, expected: Any
) -> None:
    assert getattr(openai_chat.parse_chat_request(request(**fields)), attribute) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            'messages[0].content[0].type: "input_audio" cannot be translated'
            " for this model's provider",
        ),
        (
            {
                "messages": [
                    {"role": "system", "content": "S"},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "Hi"}, {"type": "file", "file": {}}],
                    },
                ]
            },
            'messages[1].content[1].type: "file" cannot be translated for this model\'s provider',
        ),
        (
            {"tools": [{"type": "custom", "custom": {"name": "grammar"}}]},
            'tools[0].type: "custom" cannot be translated for this model\'s provider',
        ),
        ({"messages": [{"role": "critic", "content": "Hi"}]}, "messages[0].role: expected"),
        (
            {"messages": [{"role": "user"}]},
            "messages[0].content: expected a string or an array of content parts",
        ),
        ({"messages": "Hi"}, "messages: expected an array"),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id: expected a string",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"type": "function", "function": {}}]}
                ]
            },
            "messages[0].tool_calls[0]: expected an id and a function name",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url: expected an http(s) URL or a base64 data URL",
        ),
        ({"temperature": "hot"}, "temperature: expected a number"),
        ({"max_tokens": True}, "max_tokens: expected an integer"),
        ({"stop": [1]}, "stop: expected a string or an array of strings"),
        ({"tool_choice": "sometimes"}, "tool_choice: expected"),
        (
            {"response_format": {"type": "grammar"}},
            'response_format.type: "grammar" cannot be translated',
        ),
        ({"reasoning_effort": "extreme"}, "reasoning_effort: expected"),
        ({"reasoning_effort": ["high"]}, "reasoning_effort: expected"),
        (
            {"tools": [{"type": "function", "function": {"name": ""}}]},
            "tools[0].function.name: expected a non-empty string",
        ),
        ({"metadata": {"n": 1}}, "metadata: expected an object of strings"),
    ],
)
def test_untranslatable_or_malformed_requests_are_400s_naming_the_field(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProxyError) as caught:
        openai_chat.parse_chat_request(request(**fields))
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    assert caught.value.message.startswith(message)
    assert caught.value.param == message.partition(".")[0].partition("[")[0].partition(":")[0]


# --- building for an OpenAI-compatible upstream -----------------------------------------------

ANTHROPIC_SHAPED = ChatRequest(
    model="claude-sonnet",
    system=[Text("You are a coding agent."), Text("Be brief.")],
    messages=[
        Message(
            "user",
            [Text("<reminder>tests pass</reminder>"), Text("Fix the bug in the screenshot.")],
        ),
        Message(
            "assistant",
            [
                Thinking("I need to see the screenshot.", signature="EqQBCgIYAhIM"),
                Text("Opening it."),
                ToolCall("toolu_01", "read_file", '{"path":"shot.png"}'),
            ],
        ),
        Message(
            "user",
            [
                ToolResult(
                    "toolu_01", (Text("Read shot.png"), Image(data=PNG, media_type="image/png"))
                ),
                Text("Go on."),
            ],
        ),
        Message("assistant", [Thinking("", redacted="EmwKAhgBEgy3va")]),
        Message("user", [Image(url="https://example.com/diagram.png"), Text("And this one?")]),
    ],
    max_tokens=32000,
    temperature=1.0,
    top_k=40,
    stop=["\n\nHuman:"],
    metadata={"user_id": "session-9"},
    tools=[
        Tool(
            "read_file",
            "Reads a file.",
            {"type": "object", "properties": {"path": {"type": "string"}}},
        )
    ],
    tool_choice=ToolChoice("tool", "read_file"),
    parallel_tool_calls=False,
    reasoning=Reasoning(budget_tokens=10000),
    stream=True,
    extra={"container": "cntr_1"},
)


def test_an_anthropic_shaped_request_builds_the_golden_upstream_body() -> None:
    body, dropped = build(ANTHROPIC_SHAPED)
    assert body == load("anthropic_shaped.upstream.json")
    assert dropped == ["top_k", "metadata", "container"]


def test_servers_without_max_completion_tokens_get_max_tokens() -> None:
    body, _ = build(ANTHROPIC_SHAPED, max_tokens_field="max_tokens")
    assert body["max_tokens"] == 32000 and "max_completion_tokens" not in body


@pytest.mark.parametrize(
    ("reasoning", "effort"),
    [
        (Reasoning(budget_tokens=1024), "low"),
        (Reasoning(budget_tokens=4000), "low"),
        (Reasoning(budget_tokens=8192), "medium"),
        (Reasoning(budget_tokens=10000), "medium"),
        (Reasoning(budget_tokens=24576), "high"),
        (Reasoning(budget_tokens=31999), "high"),
        (Reasoning(effort="minimal", budget_tokens=30000), "minimal"),
    ],
)
def test_a_thinking_budget_asks_for_the_nearest_effort(reasoning: Reasoning, effort: str) -> None:
    body, _ = build(ChatRequest(model="m", messages=[], reasoning=reasoning))
    assert body["reasoning_effort"] == effort


def test_tool_choice_and_parallel_calls_are_left_out_without_tools() -> None:
    neutral = ChatRequest(
        model="m", messages=[], tool_choice=ToolChoice("none"), parallel_tool_calls=True
    )
    body, dropped = build(neutral)
    assert body == {"model": "gpt-4o", "messages": []} and dropped == []


def test_metadata_is_sent_when_the_client_asked_to_store_the_completion() -> None:
    body, dropped = build(
        ChatRequest(model="m", messages=[], metadata={"a": "b"}, extra={"store": True})
    )
    assert (body["metadata"], body["store"], dropped) == ({"a": "b"}, True, [])


def test_a_model_that_rejects_unsupported_fields_gets_a_400_naming_top_k() -> None:
    with pytest.raises(ProxyError, match="top_k: not supported by provider 'openai'"):
        openai_chat.build_chat(ANTHROPIC_SHAPED, "gpt-4o", ParamPolicy("openai", "reject"))


def test_a_json_schema_without_a_name_gets_one() -> None:
    neutral = ChatRequest(
        model="m", messages=[], response_format=ResponseFormat("json_schema", schema=WEATHER)
    )
    body, _ = build(neutral)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": WEATHER},
    }


# --- reading answers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parts", "finish", "usage", "stop_sequence"),
    [
        (
            "response_tool_calls.json",
            [
                ToolCall("call_Paris1", "get_weather", '{"city":"Paris"}'),
                ToolCall("call_Oslo2", "get_weather", '{"city":"Oslo"}'),
            ],
            "tool_calls",
            Usage(input_tokens=82, output_tokens=46, cached_tokens=64),
            None,
        ),
        (
            "response_deepseek_reasoning.json",
            [
                Thinking("Compare the decimals: 0.11 < 0.80, so 9.11 < 9.8."),
                Text("9.11 is smaller than 9.8."),
            ],
            "stop",
            Usage(input_tokens=17, output_tokens=120, reasoning_tokens=98),
            None,
        ),
        (
            "response_refusal.json",
            [Text("I'm sorry, I cannot assist with that request.")],
            "stop",
            Usage(input_tokens=40, output_tokens=11),
            None,
        ),
        (
            "response_vllm_stop.json",
            [Thinking("The user wants only the first step."), Text("Step one done.")],
            "stop",
            Usage(input_tokens=21, output_tokens=20),
            "END",
        ),
    ],
)
def test_recorded_answers_parse_to_neutral_responses(
    name: str, parts: list[Any], finish: str, usage: Usage, stop_sequence: str | None
) -> None:
    body = (DATA / name).read_bytes()
    answer = openai_chat.parse_chat(body, "openai")
    assert (answer.parts, answer.finish, answer.usage, answer.stop_sequence) == (
        parts,
        finish,
        usage,
        stop_sequence,
    )
    assert (answer.id, answer.model, answer.created) == (
        load(name)["id"],
        load(name)["model"],
        load(name)["created"],
    )


def test_an_answer_without_usage_counts_zero_tokens_and_legacy_calls_are_tool_calls() -> None:
    body = orjson.dumps(
        {
            "id": "x",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "function_call": {"name": "f", "arguments": ""},
                    },
                    "finish_reason": "function_call",
                }
            ],
        }
    )
    answer = openai_chat.parse_chat(body, "ollama")
    assert (answer.parts, answer.finish, answer.usage) == (
        [ToolCall("call_0", "f", "{}")],
        "tool_calls",
        Usage(),
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"<html>502 Bad Gateway</html>", 502, "upstream_protocol_error"),
        (b'{"id":"x","choices":[]}', 502, "upstream_protocol_error"),
        (
            b'{"object":"error","message":"boom","type":"InternalServerError","code":500}',
            500,
            "upstream_error",
        ),
        (
            b'{"error":{"message":"Too many requests","type":"requests",'
            b'"code":"rate_limit_exceeded"}}',
            429,
            "rate_limited",
        ),
    ],
)
def test_an_answer_that_is_not_a_completion_raises(body: bytes, status: int, code: str) -> None:
    with pytest.raises(ProxyError) as caught:
        openai_chat.parse_chat(body, "vllm")
    assert (caught.value.status, caught.value.code) == (status, code)
    assert b"html" not in caught.value.message.encode()


# --- rendering for an OpenAI client -----------------------------------------------------------

TOOL_ANSWER = ChatResponse(
    id="msg_01XFDUDYJgAACzvnptvVoYEL",
    model="claude-sonnet-4-5",
    parts=[
        Thinking("Two cities.", signature="EqQBCgIYAhIM"),
        ToolCall("toolu_01A", "get_weather", '{"city":"Paris"}'),
        ToolCall("toolu_01B", "get_weather", '{"city":"Oslo"}'),
    ],
    finish="tool_calls",
    usage=Usage(input_tokens=420, output_tokens=96, cached_tokens=400, reasoning_tokens=12),
    created=1750000000,
)


def test_an_answer_renders_as_the_golden_chat_completion() -> None:
    rendered = openai_chat.render_chat(TOOL_ANSWER)
    assert orjson.loads(rendered) == load("rendered_tool_calls.json")
    completion = ChatCompletion.model_validate_json(rendered)
    message = completion.choices[0].message
    assert message.content is None and message.tool_calls is not None
    assert [c.id for c in message.tool_calls] == ["toolu_01A", "toolu_01B"]
    assert completion.usage is not None and completion.usage.total_tokens == 516


def test_a_text_answer_renders_its_text_and_no_tool_calls() -> None:
    answer = dataclasses.replace(
        TOOL_ANSWER, parts=[Text("Hello "), Text("there.")], finish="length"
    )
    completion = ChatCompletion.model_validate_json(openai_chat.render_chat(answer))
    message = completion.choices[0].message
    assert (message.content, message.tool_calls, completion.choices[0].finish_reason) == (
        "Hello there.",
        None,
        "length",
    )
    assert (
        "reasoning_content"
        not in orjson.loads(openai_chat.render_chat(answer))["choices"][0]["message"]
    )


# --- errors -----------------------------------------------------------------------------------


def error_body(
    message: str, kind: str | None, code: str | None = None, param: str | None = None
) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


CONTEXT = (
    "This model's maximum context length is 128000 tokens. "
    "However, your messages resulted in 130000 tokens."
)
RATE = "Rate limit reached for gpt-4o on tokens per min (TPM)."
NOT_FOUND = "The model `gpt-9` does not exist or you do not have access to it."
OVERLOADED = "That model is currently overloaded with other requests."
SERVER = "The server had an error while processing your request."
MISTRAL_422 = {"detail": [{"loc": ["body", "n"], "msg": "bad"}]}
RETRY_AT = {"retry-after": "Wed, 21 Oct 2026 07:28:30 GMT", "date": "Wed, 21 Oct 2026 07:28:00 GMT"}


def vllm_body(message: object, kind: str, code: int | None = None) -> bytes:
    """vLLM before 0.10 (and Mistral): a flat error object."""
    return orjson.dumps({"object": "error", "message": message, "type": kind, "code": code})


def fallback(status: int) -> str:
    return f"Provider 'openai' answered with HTTP status {status}."


# status, body, headers -> neutral code, retry_after, client message
ERROR_TABLE = [
    (
        400,
        error_body(CONTEXT, "invalid_request_error", "context_length_exceeded", "messages"),
        {},
        ("context_length_exceeded", None, CONTEXT),
    ),
    (
        400,
        vllm_body(CONTEXT, "BadRequestError", 400),
        {},
        ("context_length_exceeded", None, CONTEXT),
    ),
    (
        400,
        error_body("Invalid 'temperature'.", "invalid_request_error"),
        {},
        ("invalid_request", None, "Invalid 'temperature'."),
    ),
    (
        400,
        orjson.dumps({"detail": "Unknown field: top_k"}),
        {},
        ("invalid_request", None, "Unknown field: top_k"),
    ),
    (
        401,
        error_body(
            "Incorrect API key provided: sk-ab***yz.", "invalid_request_error", "invalid_api_key"
        ),
        {},
        ("authentication_error", None, "Incorrect API key provided: sk-ab***yz."),
    ),
    (
        403,
        error_body(
            "Country not supported", "request_forbidden", "unsupported_country_region_territory"
        ),
        {},
        ("permission_denied", None, "Country not supported"),
    ),
    (
        404,
        error_body(NOT_FOUND, "invalid_request_error", "model_not_found"),
        {},
        ("not_found", None, NOT_FOUND),
    ),
    (413, b"", {}, ("request_too_large", None, fallback(413))),
    (
        422,
        vllm_body(MISTRAL_422, "invalid_request_error"),
        {},
        ("invalid_request", None, '{"detail":[{"loc":["body","n"],"msg":"bad"}]}'),
    ),
    (
        429,
        error_body(RATE, "tokens", "rate_limit_exceeded"),
        {"Retry-After-Ms": "494", "Retry-After": "1"},
        ("rate_limited", 0.494, RATE),
    ),
    (
        429,
        error_body("Quota exceeded.", "insufficient_quota", "insufficient_quota"),
        {"retry-after": "20"},
        ("rate_limited", 20.0, "Quota exceeded."),
    ),
    (
        429,
        error_body("Slow down", "rate_limit_error"),
        RETRY_AT,
        ("rate_limited", 30.0, "Slow down"),
    ),
    (500, error_body(SERVER, "server_error"), {}, ("upstream_error", None, SERVER)),
    (
        502,
        b"<html><body>502 Bad Gateway</body></html>",
        {},
        ("upstream_error", None, fallback(502)),
    ),
    (
        503,
        error_body(OVERLOADED, "server_error"),
        {"retry-after": "2"},
        ("overloaded", 2.0, OVERLOADED),
    ),
    (529, b'{"error":"overloaded"}', {}, ("overloaded", None, "overloaded")),
    (504, b"upstream request timeout", {}, ("upstream_timeout", None, fallback(504))),
]


@pytest.mark.parametrize(("status", "body", "headers", "expected"), ERROR_TABLE)
def test_error_answers_map_to_neutral_errors(
    status: int, body: bytes, headers: dict[str, str], expected: tuple[str, float | None, str]
) -> None:
    err = openai_chat.parse_error(status, CIMultiDict(headers), body, "openai")
    assert (err.status, (err.code, err.retry_after, err.message)) == (status, expected)
    assert err.retryable == (status == 429 or status >= 500)


def test_an_http_date_retry_after_without_a_date_header_is_read_against_the_clock() -> None:
    headers = CIMultiDict({"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT"})
    now = 1792567700.0  # 2026-10-21 07:28:20 UTC
    err = openai_chat.parse_error(429, headers, b"{}", "groq", clock=lambda: now)
    assert err.retry_after == 10.0


def test_a_body_that_is_not_json_goes_to_the_log_not_to_the_client() -> None:
    err = openai_chat.parse_error(502, CIMultiDict(), b"<html>secret upstream page</html>", "azure")
    assert "secret" not in err.message and "secret" in err.detail


# --- embeddings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "inputs"),
    [
        ("hello", ["hello"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2, 3], [[1, 2, 3]]),
        ([[1, 2], [3]], [[1, 2], [3]]),
    ],
)
def test_the_four_embedding_input_shapes_parse(value: Any, inputs: Any) -> None:
    parsed = openai_chat.parse_embedding_request(
        {"model": "e", "input": value, "dimensions": 256, "user": "u", "x": 1}
    )
    assert (parsed.inputs, parsed.dimensions, parsed.user, parsed.extra) == (
        inputs,
        256,
        "u",
        {"x": 1},
    )
    assert parsed.encoding_format == "float"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"input": []}, "input: expected"),
        ({"input": ["a", 1]}, "input: expected"),
        ({"input": [True]}, "input: expected"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format: expected"),
        ({"input": "a", "dimensions": "256"}, "dimensions: expected an integer"),
    ],
)
def test_malformed_embedding_requests_are_400s(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ProxyError, match=message):
        openai_chat.parse_embedding_request({"model": "e", **payload})


@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_embeddings_render_as_the_sdk_reads_them(encoding: str | None) -> None:
    """Unless told otherwise the SDK asks for base64 and unpacks it as little-endian float32."""
    vectors = [[0.5, -1.25, 3.0], [0.0, 0.25, -0.5]]

    def answer(http: httpx2.Request) -> httpx2.Response:
        parsed = openai_chat.parse_embedding_request(orjson.loads(http.content))
        response = EmbeddingResponse(parsed.model, vectors, Usage(input_tokens=5))
        body = openai_chat.render_embeddings(response, parsed.encoding_format)
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    http_client = httpx2.Client(transport=httpx2.MockTransport(answer))
    with openai.OpenAI(api_key="k", base_url="http://proxy/v1", http_client=http_client) as sdk:
        options = {"encoding_format": encoding} if encoding else {}
        result = sdk.embeddings.create(model="e", input=["a", "b"], **options)  # type: ignore[arg-type]
    embeddings = [item.embedding for item in result.data]
    if encoding == "base64":  # asked for explicitly, the SDK hands the text over as it came
        embeddings = [list(struct.unpack("<3f", base64.b64decode(e))) for e in embeddings]  # type: ignore[arg-type]
    assert embeddings == vectors
    assert result.usage.prompt_tokens == 5
