"""OpenAI's Responses API (`client.responses`) through the proxy, with the official openai SDK:
passed through to OpenAI-dialect providers with the model mapped, streamed event by event,
its usage costed and counted; answered by the mock; refused in OpenAI's dialect where no
deployment of the group speaks it; never cached."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from edgeproxy.dialects.neutral import ChatResponse, Text, Usage
from edgeproxy.dialects.openai_responses import (
    StreamUsage,
    answer_id_of_body,
    response_stream,
    usage_of_body,
)
from edgeproxy.security.prompt_text import request_texts
from edgeproxy.sse import SSEEvent
from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail, Reply, ToolCall
from tests.support.stack import CLIENT_KEY, Stack
from tests.telemetry.test_metrics import scrape
from tests.telemetry.test_request_metrics import requests_total

GPT_4O = (2.50e-6, 10.00e-6)  # USD per input and output token (edgeproxy/pricing.yaml)


def async_client(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0)


def tokens_counted(metrics: dict[Any, float]) -> tuple[float, float]:
    """edgeproxy_tokens_total for model group gpt-4o: input and output."""
    tokens = {
        dict(series)["type"]: value
        for (name, series), value in metrics.items()
        if name == "edgeproxy_tokens_total" and dict(series)["model_group"] == "gpt-4o"
    }
    return tokens["input"], tokens["output"]


async def test_a_response_passes_through_with_the_model_mapped_and_its_usage_costed(
    stack: Stack,
) -> None:
    stack.fake.default["responses"] = Reply(text="Hi there.", prompt_tokens=9, completion_tokens=4)
    async with async_client(stack) as sdk:
        raw = await sdk.responses.with_raw_response.create(
            model="gpt-4o", input="Say hi", instructions="Be brief."
        )
    response = raw.parse()
    assert response.output_text == "Hi there."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (9, 4)
    sent = stack.fake.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.json["model"] == "gpt-4o-2024-08-06"
    assert (sent.json["input"], sent.json["instructions"]) == ("Say hi", "Be brief.")
    expected = 9 * GPT_4O[0] + 4 * GPT_4O[1]
    assert float(raw.headers["x-edgeproxy-cost-usd"]) == pytest.approx(expected, abs=1e-8)


async def test_a_streamed_response_arrives_event_by_event_and_its_usage_is_counted(
    stack: Stack,
) -> None:
    stack.fake.default["responses"] = Reply(
        text="One, two, three.", chunks=4, prompt_tokens=7, completion_tokens=5, split="odd"
    )
    async with (
        async_client(stack) as sdk,
        sdk.responses.stream(model="gpt-4o", input=[{"role": "user", "content": "Count"}]) as s,
    ):
        kinds = [event.type async for event in s]
        final = await s.get_final_response()
    assert final.output_text == "One, two, three."
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 4
    assert stack.fake.requests[-1].json["stream"] is True
    metrics = await scrape(stack.proxy.admin_url)
    assert tokens_counted(metrics) == (7, 5)
    assert requests_total(metrics, route="responses", model_group="gpt-4o", status="200") == 1


async def test_gzipped_answers_pass_through_with_their_usage_read(stack: Stack) -> None:
    stack.fake.compress = stack.fake.compress_streams = True
    stack.fake.default["responses"] = Reply(
        text="Packed. " * 400, prompt_tokens=5, completion_tokens=800
    )
    async with async_client(stack) as sdk:
        whole = await sdk.responses.with_raw_response.create(model="gpt-4o", input="Hi")
        async with sdk.responses.stream(model="gpt-4o", input="Hi") as s:
            streamed = await s.get_final_response()
    assert whole.http_response.headers["content-encoding"] == "gzip"
    assert whole.parse().output_text == streamed.output_text == "Packed. " * 400
    assert tokens_counted(await scrape(stack.proxy.admin_url)) == (10, 1600)


async def test_the_mock_answers_the_responses_api_whole_and_streamed(stack: Stack) -> None:
    async with async_client(stack) as sdk:
        whole = await sdk.responses.create(model="edgeproxy-mock", input="Hello")
        async with sdk.responses.stream(model="edgeproxy-mock", input="Hello") as s:
            streamed = await s.get_final_response()
    assert whole.output_text == streamed.output_text
    assert whole.output_text.startswith("Hello from edgeproxy's mock provider")
    assert whole.usage is not None and whole.usage.output_tokens > 0
    assert whole.id.startswith("resp_") and whole.output[0].id.startswith("msg_")
    assert "chatcmpl" not in whole.id


async def test_a_group_without_an_openai_deployment_refuses_it_in_openais_dialect(
    stack: Stack,
) -> None:
    async with async_client(stack) as sdk:
        with pytest.raises(openai.BadRequestError) as raised:
            await sdk.responses.create(model="claude-sonnet", input="Hello")
    assert raised.value.status_code == 400
    assert isinstance(raised.value.body, dict) and "responses" in str(raised.value.body)
    assert stack.fake.calls["messages"] == 0


async def test_a_provider_error_reaches_the_sdk_as_its_own_exception(stack: Stack) -> None:
    stack.fake.script("responses", Fail(429, headers={"retry-after": "3"}))
    async with async_client(stack) as sdk:
        with pytest.raises(openai.RateLimitError) as raised:
            await sdk.responses.create(model="gpt-4o", input="Hello")
    assert raised.value.response.headers["retry-after"] == "3"


async def test_responses_are_never_served_from_the_cache(make_stack: StackFactory) -> None:
    stack = await make_stack(cache={"enabled": True})
    async with async_client(stack) as sdk:
        first = await sdk.responses.create(model="gpt-4o", input="Same question")
        second = await sdk.responses.create(model="gpt-4o", input="Same question")
    assert stack.fake.calls["responses"] == 2
    assert first.id != second.id


async def test_a_failed_stream_is_relayed_as_the_provider_sent_it(stack: Stack) -> None:
    stack.fake.default["responses"] = Reply(text="Partial answer here.", error_event_after=3)
    async with async_client(stack) as sdk:
        stream = await sdk.responses.create(model="gpt-4o", input="Hello", stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass


async def test_a_stream_cut_short_upstream_ends_with_the_responses_error_event(
    stack: Stack,
) -> None:
    stack.fake.default["responses"] = Reply(text="a b c d e f", chunks=6, drop_after=3)
    async with async_client(stack) as sdk:
        stream = await sdk.responses.create(model="gpt-4o", input="Hello", stream=True)
        with pytest.raises(openai.APIError, match="ended the response abnormally"):
            async for _ in stream:
                pass
        raw = await sdk.responses.with_raw_response.create(model="gpt-4o", input="x", stream=True)
        body = await raw.http_response.aread()
    head, data = body.rstrip(b"\n").rsplit(b"\n\n", 1)[1].split(b"\n")
    event = orjson.loads(data.removeprefix(b"data: "))
    assert head == b"event: error"
    assert (event["type"], event["code"]) == ("error", "upstream_protocol_error")
    assert event["error"]["type"] == "api_error"


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": "9", "output_tokens": None, "input_tokens_details": [1]},
        {"input_tokens": True, "output_tokens_details": "none"},
        "not an object",
    ],
)
def test_a_malformed_usage_counts_nothing_rather_than_failing(usage: object) -> None:
    body = orjson.dumps({"id": "resp_1", "object": "response", "usage": usage})
    found = usage_of_body(body)
    assert found is None or (found.input_tokens, found.output_tokens) == (0, 0)


@pytest.mark.parametrize(
    ("answer_id", "remembered"),
    [("resp_abc-1_Z", "resp_abc-1_Z"), ("resp_" + "x" * 201, None), ("msg_1", None), (7, None)],
)
def test_only_an_answer_id_of_the_apis_shape_is_remembered(
    answer_id: object, remembered: str | None
) -> None:
    """Ids an upstream sends are bounded before they are kept (routing/affinity.py)."""
    watcher = StreamUsage()
    created = {"type": "response.created", "response": {"id": answer_id, "usage": None}}
    watcher.observe(SSEEvent(data=orjson.dumps(created), event="response.created"))
    assert watcher.answer_id == remembered
    body = orjson.dumps({"id": answer_id, "object": "response"})
    assert answer_id_of_body(body) == remembered


def test_the_responses_stream_frames_name_their_event_types() -> None:
    """The mock's frames carry `event:` lines matching each payload's type, as OpenAI's do."""
    reply = ChatResponse("abc", "m", [Text("hi there")], "stop", Usage(3, 2), 0)
    for number, frame in enumerate(response_stream(reply, {}, 2)):
        head, data = frame.decode().removesuffix("\n\n").split("\n")
        payload = orjson.loads(data.removeprefix("data: "))
        assert head == f"event: {payload['type']}"
        assert payload["sequence_number"] == number


REDACTING = {"policies": {"strict": {"pii": {"mode": "redact"}}}, "default_policy": "strict"}


@pytest.mark.parametrize("split", ["odd", "bytes:3", "frames"])
async def test_personal_data_is_redacted_upstream_and_restored_in_the_stream(
    make_stack: StackFactory, split: str
) -> None:
    """The provider sees a placeholder; the client gets its own address back in every event
    that carries the text: the deltas (a placeholder cut between them included), the text and
    the item done, and the final response the SDK's helper returns."""
    stack = await make_stack(sections={"guardrails": REDACTING})
    stack.fake.default["responses"] = Reply(
        text="I will write to [EMAIL_1] today.", chunks=9, split=split
    )
    async with (
        async_client(stack) as sdk,
        sdk.responses.stream(model="gpt-4o", input="Mail me at ann@example.com") as s,
    ):
        deltas = [event.delta async for event in s if event.type == "response.output_text.delta"]
        final = await s.get_final_response()
    assert "ann@example.com" not in str(stack.fake.requests[-1].json)
    assert "[EMAIL_1]" in stack.fake.requests[-1].json["input"]
    assert "".join(deltas) == "I will write to ann@example.com today."
    assert final.output_text == "I will write to ann@example.com today."


async def test_personal_data_is_restored_in_a_whole_response(make_stack: StackFactory) -> None:
    stack = await make_stack(sections={"guardrails": REDACTING})
    stack.fake.default["responses"] = Reply(text="Noted: [EMAIL_1].")
    async with async_client(stack) as sdk:
        answer = await sdk.responses.create(
            model="gpt-4o",
            input=[
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "I am ann@example.com"}],
                }
            ],
        )
    assert stack.fake.requests[-1].json["input"][0]["content"][0]["text"] == "I am [EMAIL_1]"
    assert answer.output_text == "Noted: ann@example.com."


@pytest.mark.parametrize("stream", [False, True])
async def test_personal_data_is_restored_in_function_call_arguments(
    make_stack: StackFactory, stream: bool
) -> None:
    """A placeholder in a tool call's JSON arguments comes back as the client's own value, in
    the deltas and in every event that repeats the arguments whole."""
    stack = await make_stack(sections={"guardrails": REDACTING})
    call = ToolCall("call_1", "send_mail", '{"to": "[EMAIL_1]", "body": "hi"}')
    stack.fake.default["responses"] = Reply(text="Sending.", tool_calls=[call], chunks=5)
    async with async_client(stack) as sdk:
        prompt = "Mail ann@example.com"
        if stream:
            async with sdk.responses.stream(model="gpt-4o", input=prompt) as s:
                deltas = [
                    e.delta async for e in s if e.type == "response.function_call_arguments.delta"
                ]
                answer = await s.get_final_response()
            assert orjson.loads("".join(deltas))["to"] == "ann@example.com"
        else:
            answer = await sdk.responses.create(model="gpt-4o", input=prompt)
    sent = stack.fake.requests[-1].json["input"]
    assert "example.com" not in sent
    (function_call,) = [item for item in answer.output if item.type == "function_call"]
    assert orjson.loads(function_call.arguments) == {"to": "ann@example.com", "body": "hi"}


async def test_personal_data_an_answer_brings_is_redacted_in_every_event(
    make_stack: StackFactory,
) -> None:
    screening = {"policies": {"out": {"output": {"mode": "redact"}}}, "default_policy": "out"}
    stack = await make_stack(sections={"guardrails": screening})
    stack.fake.default["responses"] = Reply(text="Her mail is bob@example.net, ok?", chunks=7)
    async with async_client(stack) as sdk:
        raw = await sdk.responses.with_raw_response.create(model="gpt-4o", input="x", stream=True)
        body = (await raw.http_response.aread()).decode()
    assert "bob@example.net" not in body
    events = [orjson.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "Her mail is [REDACTED_EMAIL], ok?"
    assert body.count("[REDACTED_EMAIL]") == 4  # and in the text, the item and the response done


def test_the_texts_of_a_responses_request_are_found_for_limits_and_guards() -> None:
    payload = {
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Rules."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}, {"type": "x"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
        ],
    }
    found = [(s.role, s.get(), s.json) for s in request_texts("responses", payload)]
    assert found == [
        ("system", "Be brief.", False),
        ("system", "Rules.", False),
        ("user", "Hi", False),
        ("assistant", '{"a":1}', True),
        ("tool", "42", False),
    ]
    assert [s.get() for s in request_texts("responses", {"input": "Just text"})] == ["Just text"]


TWO_DEPLOYMENTS = {
    "gpt-4o": {
        "deployments": [
            {"provider": "openai-up", "model": "gpt-4o-east"},
            {"provider": "openai-up", "model": "gpt-4o-west"},
        ]
    }
}


async def test_a_follow_up_goes_to_the_deployment_that_holds_the_answer_it_continues(
    make_stack: StackFactory,
) -> None:
    """The provider keeps a response's state: `previous_response_id` is only known where it
    was given, so every follow-up of a chain, streamed or not, goes to that deployment."""
    stack = await make_stack(model_settings=TWO_DEPLOYMENTS)
    async with async_client(stack) as sdk:
        first = await sdk.responses.create(model="gpt-4o", input="Start")
        holder = stack.fake.requests[-1].json["model"]
        previous = first.id
        for turn in range(12):
            if turn % 2:
                async with sdk.responses.stream(
                    model="gpt-4o", input="Go on", previous_response_id=previous
                ) as s:
                    answer = await s.get_final_response()
            else:
                answer = await sdk.responses.create(
                    model="gpt-4o", input="Go on", previous_response_id=previous
                )
            assert stack.fake.requests[-1].json["model"] == holder, f"turn {turn}"
            assert stack.fake.requests[-1].json["previous_response_id"] == previous
            previous = answer.id
        fresh = {
            (await sdk.responses.create(model="gpt-4o", input="New"), stack.fake.requests[-1])[
                1
            ].json["model"]
            for _ in range(16)
        }
    assert fresh == {"gpt-4o-east", "gpt-4o-west"}  # requests that continue nothing spread


async def test_a_follow_up_of_an_answer_this_proxy_never_saw_is_routed_as_usual(
    stack: Stack,
) -> None:
    async with async_client(stack) as sdk:
        answer = await sdk.responses.create(
            model="gpt-4o", input="Go on", previous_response_id="resp_from_elsewhere"
        )
    assert answer.output_text
    assert stack.fake.requests[-1].json["previous_response_id"] == "resp_from_elsewhere"
