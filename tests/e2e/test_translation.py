"""Cross-dialect routes seen through the official SDKs: an OpenAI client reaching Anthropic,
Gemini and Bedrock upstreams, and an Anthropic client reaching an OpenAI upstream.

The fake upstream speaks each provider's own wire format (Gemini's CRLF-framed SSE, Bedrock's
binary event stream and SigV4 check), so every answer here went through both codecs.
"""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.support.fake_upstream import Fail, Reply, ToolCall
from tests.support.stack import CLIENT_KEY, GEMINI_KEY, Stack

MESSAGES = [{"role": "user", "content": "Say hello"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TWO_CALLS = [
    ToolCall("toolu_01", "get_weather", '{"city": "Paris"}'),
    ToolCall("toolu_02", "get_weather", '{"city": "Oslo"}'),
]

# public model → (fake route for a complete answer, fake route for a stream)
OPENAI_CLIENT_UPSTREAMS = {
    "claude-sonnet": ("messages", "messages"),
    "gemini-flash": ("gemini_generate", "gemini_stream"),
    "bedrock-claude": ("bedrock_converse", "bedrock_converse_stream"),
}
upstreams = pytest.mark.parametrize("model", list(OPENAI_CLIENT_UPSTREAMS))


def openai_client(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0)


def anthropic_client(stack: Stack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stack.anthropic_url, api_key=CLIENT_KEY, max_retries=0)


def script(stack: Stack, model: str, reply: Reply | Fail) -> None:
    for route in set(OPENAI_CLIENT_UPSTREAMS[model]):
        stack.fake.default[route] = reply


@upstreams
async def test_openai_client_gets_text_usage_and_finish_from_any_provider(
    stack: Stack, model: str
) -> None:
    script(stack, model, Reply(text="Hello from afar.", prompt_tokens=12, completion_tokens=4))
    async with openai_client(stack) as sdk:
        reply = await sdk.chat.completions.create(model=model, messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello from afar."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 4)
    assert stack.fake.calls[OPENAI_CLIENT_UPSTREAMS[model][0]] == 1


@upstreams
async def test_openai_stream_carries_the_same_answer_as_the_complete_call(
    stack: Stack, model: str
) -> None:
    script(stack, model, Reply(text="One, two, three, four, five.", chunks=7, split="odd"))
    async with openai_client(stack) as sdk:
        plain = await sdk.chat.completions.create(model=model, messages=MESSAGES)
        stream = await sdk.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage


@upstreams
async def test_openai_tool_calls_arrive_whole_streamed_or_not(stack: Stack, model: str) -> None:
    script(stack, model, Reply(text="", tool_calls=TWO_CALLS, chunks=4))
    async with openai_client(stack) as sdk:
        plain = await sdk.chat.completions.create(
            model=model, messages=MESSAGES, tools=[WEATHER_TOOL]
        )
        async with sdk.chat.completions.stream(
            model=model, messages=MESSAGES, tools=[WEATHER_TOOL]
        ) as stream:
            final = await stream.get_final_completion()
    for answer in (plain, final):
        calls = answer.choices[0].message.tool_calls or []
        assert [(c.function.name, c.function.arguments.replace(" ", "")) for c in calls] == [  # type: ignore[union-attr]
            ("get_weather", '{"city":"Paris"}'),
            ("get_weather", '{"city":"Oslo"}'),
        ]
        assert answer.choices[0].finish_reason == "tool_calls"
    plain_ids = [c.id for c in plain.choices[0].message.tool_calls or []]
    streamed_ids = [c.id for c in final.choices[0].message.tool_calls or []]
    assert all(plain_ids) and len(set(plain_ids)) == 2
    if model != "gemini-flash":  # Gemini gives no ids: each answer derives its own
        assert streamed_ids == plain_ids == ["toolu_01", "toolu_02"]


@upstreams
async def test_tool_results_go_back_in_the_providers_own_shape(stack: Stack, model: str) -> None:
    script(stack, model, Reply(text="It is sunny in Paris."))
    history = [
        {"role": "system", "content": "Be brief."},
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    async with openai_client(stack) as sdk:
        reply = await sdk.chat.completions.create(
            model=model,
            messages=history,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
        )
    assert reply.choices[0].message.content == "It is sunny in Paris."
    sent = stack.fake.requests[-1].json
    if model == "claude-sonnet":
        assert sent["system"] == [{"type": "text", "text": "Be brief."}]
        assert sent["messages"][-1]["content"][0]["type"] == "tool_result"
    elif model == "gemini-flash":
        assert sent["systemInstruction"]["parts"] == [{"text": "Be brief."}]
        response = sent["contents"][-1]["parts"][0]["functionResponse"]
        assert response["name"] == "get_weather"
    else:
        assert sent["system"] == [{"text": "Be brief."}]
        assert sent["messages"][-1]["content"][0]["toolResult"]["toolUseId"] == "call_1"


ANTHROPIC_CLIENT_UPSTREAMS = {
    "gpt-4o": ("chat", "chat"),
    "gemini-flash": ("gemini_generate", "gemini_stream"),
    "bedrock-claude": ("bedrock_converse", "bedrock_converse_stream"),
}


@pytest.mark.parametrize("model", list(ANTHROPIC_CLIENT_UPSTREAMS))
async def test_anthropic_client_reaches_other_providers(stack: Stack, model: str) -> None:
    for route in ANTHROPIC_CLIENT_UPSTREAMS[model]:
        stack.fake.default[route] = Reply(
            text="Bonjour!", prompt_tokens=7, completion_tokens=2, chunks=5
        )
    async with anthropic_client(stack) as sdk:
        plain = await sdk.messages.create(model=model, max_tokens=64, messages=MESSAGES)  # type: ignore[arg-type]
        async with sdk.messages.stream(
            model=model,
            max_tokens=64,
            messages=MESSAGES,  # type: ignore[arg-type]
        ) as stream:
            final = await stream.get_final_message()
    assert plain.content[0].type == "text" and plain.content[0].text == "Bonjour!"
    assert plain.stop_reason == "end_turn"
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (7, 2)
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in plain.content]
    assert final.stop_reason == plain.stop_reason
    assert final.usage.output_tokens == plain.usage.output_tokens


async def test_openai_upstream_is_asked_for_stream_usage_and_the_mapped_model(
    stack: Stack,
) -> None:
    async with anthropic_client(stack) as sdk:
        async with sdk.messages.stream(
            model="gpt-4o",
            max_tokens=64,
            messages=MESSAGES,  # type: ignore[arg-type]
        ) as stream:
            await stream.get_final_message()
    sent = stack.fake.requests[-1].json
    assert sent["model"] == "gpt-4o-2024-08-06"
    assert sent["stream_options"] == {"include_usage": True}


async def test_anthropic_client_gets_tool_use_blocks_from_an_openai_upstream(stack: Stack) -> None:
    stack.fake.default["chat"] = Reply(text="Let me check.", tool_calls=TWO_CALLS, chunks=3)
    tools = [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    async with anthropic_client(stack) as sdk:
        plain = await sdk.messages.create(
            model="gpt-4o",
            max_tokens=64,
            messages=MESSAGES,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
        )
        async with sdk.messages.stream(
            model="gpt-4o",
            max_tokens=64,
            messages=MESSAGES,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
        ) as stream:
            final = await stream.get_final_message()
    for message in (plain, final):
        assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
        uses = [b for b in message.content if b.type == "tool_use"]
        assert [(u.name, u.input) for u in uses] == [  # type: ignore[union-attr]
            ("get_weather", {"city": "Paris"}),
            ("get_weather", {"city": "Oslo"}),
        ]
        assert message.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("model", "fail", "exception", "status"),
    [
        ("claude-sonnet", Fail(529), openai.InternalServerError, 503),
        ("claude-sonnet", Fail(429, headers={"retry-after": "4"}), openai.RateLimitError, 429),
        ("claude-sonnet", Fail(401), openai.AuthenticationError, 401),
        ("gemini-flash", Fail(429), openai.RateLimitError, 429),
        ("gemini-flash", Fail(404), openai.NotFoundError, 404),
        ("gemini-flash", Fail(503), openai.InternalServerError, 503),
        ("bedrock-claude", Fail(429), openai.RateLimitError, 429),
        ("bedrock-claude", Fail(400), openai.BadRequestError, 400),
        ("bedrock-claude", Fail(500), openai.InternalServerError, 500),
    ],
)
async def test_provider_errors_reach_an_openai_client_as_its_own_exceptions(
    stack: Stack, model: str, fail: Fail, exception: type[openai.APIStatusError], status: int
) -> None:
    script(stack, model, fail)
    async with openai_client(stack) as sdk:
        with pytest.raises(exception) as caught:
            await sdk.chat.completions.create(model=model, messages=MESSAGES)
    assert caught.value.status_code == status
    assert caught.value.response.headers["x-edgeproxy-provider"]
    if "retry-after" in fail.headers or (model, status) == ("gemini-flash", 429):  # RetryInfo
        assert float(caught.value.response.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("fail", "exception", "status"),
    [
        (Fail(429, headers={"retry-after": "2"}), anthropic.RateLimitError, 429),
        (Fail(503), anthropic.InternalServerError, 529),
        (Fail(400), anthropic.BadRequestError, 400),
    ],
)
async def test_openai_errors_reach_an_anthropic_client_as_its_own_exceptions(
    stack: Stack, fail: Fail, exception: type[anthropic.APIStatusError], status: int
) -> None:
    stack.fake.script("chat", fail)
    async with anthropic_client(stack) as sdk:
        with pytest.raises(exception) as caught:
            await sdk.messages.create(model="gpt-4o", max_tokens=64, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "error"  # type: ignore[index]


@upstreams
async def test_a_provider_failure_mid_stream_raises_in_the_openai_sdk(
    stack: Stack, model: str
) -> None:
    script(stack, model, Reply(text="This will not finish well.", chunks=6, error_event_after=2))
    async with openai_client(stack) as sdk:
        stream = await sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass


async def test_a_field_the_provider_cannot_take_is_dropped_and_named(stack: Stack) -> None:
    async with openai_client(stack) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="claude-sonnet", messages=MESSAGES, seed=7
        )
    assert raw.headers["x-edgeproxy-dropped-params"] == "seed"
    assert "seed" not in stack.fake.requests[-1].json


async def test_a_model_that_rejects_unsupported_fields_says_which(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack(unsupported_params="reject")
    async with openai_client(stack) as sdk:
        with pytest.raises(openai.BadRequestError, match="seed"):
            await sdk.chat.completions.create(model="claude-sonnet", messages=MESSAGES, seed=7)
    assert stack.fake.calls["messages"] == 0


async def test_gemini_key_travels_in_a_header_never_in_the_url(stack: Stack) -> None:
    async with openai_client(stack) as sdk:
        await sdk.chat.completions.create(model="gemini-flash", messages=MESSAGES)
    sent = stack.fake.requests[-1]
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert "key=" not in sent.query
    assert CLIENT_KEY not in str(dict(sent.headers))


async def test_bedrock_requests_are_signed_for_the_encoded_model_id(stack: Stack) -> None:
    async with openai_client(stack) as sdk:
        await sdk.chat.completions.create(model="bedrock-claude", messages=MESSAGES)
    sent = stack.fake.requests[-1]
    assert sent.route == "bedrock_converse"  # the fake verified the SigV4 signature with botocore
    assert "%3A" in sent.raw_path
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID")


@pytest.mark.parametrize(
    ("model", "route", "calls"),
    [("gemini-embed", "gemini_batch_embed", 1), ("titan-embed", "bedrock_invoke", 3)],
)
async def test_embeddings_come_back_in_openais_shape(
    stack: Stack, model: str, route: str, calls: int
) -> None:
    async with openai_client(stack) as sdk:
        floats = await sdk.embeddings.create(
            model=model, input=["a", "b", "c"], encoding_format="float"
        )
        packed = await sdk.embeddings.create(model=model, input=["a", "b", "c"])
    assert [e.index for e in floats.data] == [0, 1, 2]
    for packed_one, float_one in zip(packed.data, floats.data, strict=True):
        assert packed_one.embedding == pytest.approx(float_one.embedding, rel=1e-6)
    assert stack.fake.calls[route] == 2 * calls


@upstreams
async def test_asking_for_several_choices_is_refused_clearly_where_only_one_comes(
    stack: Stack, model: str
) -> None:
    async with openai_client(stack) as sdk:
        with pytest.raises(openai.BadRequestError, match="n: not supported"):
            await sdk.chat.completions.create(model=model, messages=MESSAGES, n=3)
    assert not any(stack.fake.calls[route] for route in OPENAI_CLIENT_UPSTREAMS[model])
