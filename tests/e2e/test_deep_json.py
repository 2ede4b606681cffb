"""Deeply nested request bodies through the running proxy: served up to the nesting limit, a
400 in the client's dialect beyond it, never the framework's plain-text 500."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest

from edgeproxy.inbound import MAX_JSON_DEPTH
from tests.support.stack import CLIENT_KEY, Stack

MESSAGES = [{"role": "user", "content": "Say hello"}]
# Public names the proxy maps to another upstream name, so it encodes the body again (the
# step that failed on a body nested 255 levels deep).
BODIES = {
    "openai": ("/v1/chat/completions", {"model": "gpt-4o", "messages": MESSAGES}),
    "anthropic": (
        "/v1/messages",
        {"model": "claude-sonnet", "max_tokens": 64, "messages": MESSAGES},
    ),
}
ROUTE = {"openai": "chat", "anthropic": "messages"}
# The body that used to get a 500: orjson parses 1024 levels but encodes only 254.
USED_TO_FAIL = 255


def depth(value: Any) -> int:
    """Levels of objects and arrays, as the proxy counts them (a scalar is 0)."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def nest(levels: int, kind: str) -> Any:
    """`levels` arrays in arrays, or objects in objects."""
    value: Any = [] if kind == "arrays" else {}
    for _ in range(levels - 1):
        value = [value] if kind == "arrays" else {"a": value}
    return value


def nested_body(dialect: str, total: int, kind: str) -> dict[str, Any]:
    """The dialect's body with an extra field nested so the body is `total` levels deep."""
    body = {**BODIES[dialect][1], "nest": nest(total - 1, kind)}
    assert depth(body) == total
    return body


async def post(stack: Stack, path: str, body: dict[str, Any]) -> tuple[int, str, Any]:
    """A raw POST (the stdlib encoder: orjson cannot encode 255 levels): status, content
    type and JSON body."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            stack.proxy.url + path,
            json=body,
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        ) as response,
    ):
        return response.status, response.content_type, await response.json()


def error_in_dialect(dialect: str, answer: Any) -> dict[str, Any]:
    """The error object, checked to have exactly the dialect's shape."""
    if dialect == "openai":
        error = answer["error"]
        assert set(error) == {"message", "type", "param", "code"}
        return error  # type: ignore[no-any-return]
    assert answer["type"] == "error" and set(answer["error"]) == {"type", "message"}
    return answer["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["arrays", "objects"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_a_body_nested_to_the_limit_is_served(stack: Stack, dialect: str, kind: str) -> None:
    body = nested_body(dialect, MAX_JSON_DEPTH, kind)

    status, _, _ = await post(stack, BODIES[dialect][0], body)

    assert status == 200
    assert stack.fake.requests[-1].json["nest"] == body["nest"], "forwarded intact"


@pytest.mark.parametrize("total", [MAX_JSON_DEPTH + 1, USED_TO_FAIL])
@pytest.mark.parametrize("kind", ["arrays", "objects"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_a_body_nested_deeper_is_a_400_in_the_clients_dialect(
    stack: Stack, dialect: str, kind: str, total: int
) -> None:
    status, content_type, answer = await post(
        stack, BODIES[dialect][0], nested_body(dialect, total, kind)
    )

    assert (status, content_type) == (400, "application/json")
    error = error_in_dialect(dialect, answer)
    assert error["type"] == "invalid_request_error"
    assert f"more than {MAX_JSON_DEPTH} levels deep" in error["message"]
    assert stack.fake.calls[ROUTE[dialect]] == 0


async def test_a_tool_schema_nested_to_the_limit_is_translated_for_another_provider(
    stack: Stack,
) -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    while depth({"tools": [{"function": {"parameters": schema}}]}) < MAX_JSON_DEPTH:
        schema = {"type": "object", "properties": {"a": schema}}
    tool = {"type": "function", "function": {"name": "lookup", "parameters": schema}}
    body = {"model": "claude-sonnet", "messages": MESSAGES, "tools": [tool]}
    assert depth(body) == MAX_JSON_DEPTH

    status, _, answer = await post(stack, "/v1/chat/completions", body)

    assert status == 200, answer
    sent = stack.fake.requests[-1]
    assert sent.route == "messages" and sent.json["tools"][0]["input_schema"] == schema


async def test_the_openai_sdk_raises_bad_request_for_the_body_that_used_to_fail(
    stack: Stack,
) -> None:
    async with openai.AsyncOpenAI(
        base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0
    ) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,  # type: ignore[arg-type]
                extra_body={"nest": nest(USED_TO_FAIL - 1, "arrays")},
            )

    assert caught.value.status_code == 400 and caught.value.code == "json_too_deep"
    assert f"more than {MAX_JSON_DEPTH} levels deep" in caught.value.message


async def test_the_anthropic_sdk_raises_bad_request_for_the_body_that_used_to_fail(
    stack: Stack,
) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=stack.anthropic_url, api_key=CLIENT_KEY, max_retries=0
    ) as sdk:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await sdk.messages.create(
                model="claude-sonnet",
                max_tokens=64,
                messages=MESSAGES,  # type: ignore[arg-type]
                extra_body={"nest": nest(USED_TO_FAIL - 1, "objects")},
            )

    error = orjson.loads(caught.value.response.content)["error"]
    assert (caught.value.status_code, error["type"]) == (400, "invalid_request_error")
