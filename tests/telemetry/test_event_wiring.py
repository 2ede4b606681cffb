"""Telemetry events from a running proxy: every answered request, breaker changes and
guardrail decisions reach the configured sinks, in the background."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail, Reply
from tests.support.stack import Stack

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


async def post(stack: Stack, body: dict[str, object]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.openai_url + "/chat/completions", json=body) as answer,
    ):
        await answer.read()
        return answer.status


def events_in(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_requests_breakers_and_guard_decisions_become_events(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    log = tmp_path / "events.jsonl"
    stack = await make_stack(
        routing={"retry": {"max_attempts": 1}, "breaker": {"failure_threshold": 1}},
        sections={
            "telemetry": {"events": {"file": str(log), "interval": "50ms"}},
            "guardrails": {
                "policies": {"p": {"pii": {"mode": "redact"}}},
                "default_policy": "p",
            },
        },
    )
    stack.fake.default["chat"] = Reply(text="Hello!")
    assert (
        await post(stack, {**CHAT, "messages": [{"role": "user", "content": "a@b.example"}]}) == 200
    )
    stack.fake.script("chat", Fail(500))
    assert await post(stack, CHAT) == 500
    await stack.proxy.stop()  # sends what is queued
    events = events_in(log)
    kinds = [event["type"] for event in events]
    assert kinds.count("request.completed") == 2
    assert "breaker.opened" in kinds
    assert "guard.decision" in kinds
    assert all(event["schema"] == "edgeproxy.event/1" for event in events)
    assert "a@b.example" not in log.read_text()
    failed = [e for e in events if e["type"] == "request.completed" and e["status"] == 500]
    assert failed and failed[0]["error"] is True
