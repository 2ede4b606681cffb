"""How answers reach clients, end to end: what the relay adds, masks and keeps."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.redact import MASK
from tests.support.fake_upstream import Fail
from tests.support.stack import ANTHROPIC_KEY, OPENAI_KEY, Stack
from tests.test_handlers import CHAT, MESSAGES, anthropic_error, openai_error, post


@pytest.mark.parametrize(
    ("route", "path", "body", "error_of"),
    [
        ("chat", "/v1/chat/completions", CHAT, openai_error),
        ("chat", "/v1/chat/completions", {**CHAT, "stream": True}, openai_error),
        ("messages", "/v1/messages", MESSAGES, anthropic_error),
        # translated: the Anthropic provider's error, rendered for an OpenAI client
        ("messages", "/v1/chat/completions", {**CHAT, "model": "claude-sonnet"}, openai_error),
    ],
)
async def test_an_upstream_error_quoting_the_provider_key_reaches_the_client_masked(
    stack: Stack, route: str, path: str, body: dict[str, Any], error_of: Any
) -> None:
    key = OPENAI_KEY if route == "chat" else ANTHROPIC_KEY
    stack.fake.script(route, Fail(401, message=f"Incorrect API key provided: {key}."))
    status, _, answer = await post(stack, path, body)
    assert status == 401
    assert key.encode() not in answer
    assert error_of(answer)["message"] == f"Incorrect API key provided: {MASK}."
