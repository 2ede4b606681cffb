"""Logs carry what a request did and never a credential."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from edgeproxy.redact import MASK
from edgeproxy.telemetry.logging import RedactingFormatter, configure, line_handler
from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail, Reply
from tests.support.poll import eventually
from tests.support.stack import ANTHROPIC_KEY, CLIENT_KEY, OPENAI_KEY

SECRETS = (OPENAI_KEY, ANTHROPIC_KEY, CLIENT_KEY)


def test_the_formatter_masks_configured_secrets_in_json_and_text() -> None:
    record = logging.makeLogRecord(
        {"msg": "upstream said %s", "args": (f"bad key {OPENAI_KEY}",), "levelname": "ERROR"}
    )
    record.__dict__["detail"] = f"Bearer {OPENAI_KEY}"
    for fmt in ("json", "text"):
        line = RedactingFormatter(fmt, [OPENAI_KEY]).format(record)
        assert OPENAI_KEY not in line
        assert MASK in line
    assert orjson.loads(RedactingFormatter("json", []).format(record))["level"] == "error"


def test_a_records_own_field_named_like_the_heads_replaces_it_in_one_json_object() -> None:
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "edgeproxy"})
    record.__dict__["level"] = "custom"
    record.__dict__["detail"] = 1
    line = RedactingFormatter("json", []).format(record)
    assert line.count('"level"') == 1
    assert orjson.loads(line) | {"ts": "-"} == {
        "ts": "-",
        "level": "custom",
        "logger": "edgeproxy",
        "msg": "hello",
        "detail": 1,
    }


def test_json_lines_of_one_second_share_a_head_and_keep_their_own_fields() -> None:
    formatter = RedactingFormatter("json", [])
    first = orjson.loads(formatter.render(100.2, "info", "edgeproxy.access", "request", {"a": 1}))
    again = orjson.loads(formatter.render(100.7, "info", "edgeproxy.access", "request", {}))
    other = orjson.loads(formatter.render(100.9, "warning", "edgeproxy", "else", {"b": 2}))
    assert first == {
        "ts": first["ts"],
        "level": "info",
        "logger": "edgeproxy.access",
        "msg": "request",
        "a": 1,
    }
    assert again == {
        "ts": first["ts"],
        "level": "info",
        "logger": "edgeproxy.access",
        "msg": "request",
    }
    assert other == {
        "ts": first["ts"],
        "level": "warning",
        "logger": "edgeproxy",
        "msg": "else",
        "b": 2,
    }


def test_a_text_line_is_one_line_whatever_a_client_put_in_it() -> None:
    record = logging.makeLogRecord(
        {
            "msg": "model %s",
            "args": ("x\ninfo    forged\r\x1b[2J",),
            "levelname": "INFO",
            "name": "edgeproxy",
        }
    )
    record.__dict__["path"] = "/v1/\nfake"
    line = RedactingFormatter("text", []).format(record)
    assert line == "info    edgeproxy: model x\\ninfo    forged\\r\\x1b[2J path=/v1/\\nfake"


def test_configure_routes_every_logger_through_the_redacting_formatter() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    try:
        configure("debug", "json", [OPENAI_KEY], stream=buffer)
        logging.getLogger("edgeproxy.test").debug("key %s", OPENAI_KEY)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert orjson.loads(buffer.getvalue())["msg"] == f"key {MASK}"


async def test_no_credential_reaches_any_log_record_even_on_failures(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = await make_stack(
        timeouts={"first_byte": "200ms", "idle": "200ms"}, server={"access_log": True}
    )
    stack.fake.script("chat", Fail(401), Reply(stall_after=0), Reply(chunks=4, drop_after=2))
    stack.fake.script("messages", Fail(500), Reply(chunks=4, stall_after=2))
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY}
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    messages = {**chat, "model": "claude-sonnet", "max_tokens": 5}
    async with aiohttp.ClientSession(headers=headers) as session:
        for path, body in [
            ("/v1/chat/completions", chat),
            ("/v1/chat/completions", chat),
            ("/v1/chat/completions", {**chat, "stream": True}),
            ("/v1/messages", messages),
            ("/v1/messages", {**messages, "stream": True}),
        ]:
            async with session.post(stack.proxy.url + path, json=body) as response:
                await response.read()
    await stack.fake.close()
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(stack.proxy.url + "/v1/chat/completions", json=chat) as response:
            assert response.status == 502
    assert len(caplog.records) >= 6
    for record in caplog.records:
        rendered = record.getMessage() + repr(record.__dict__)
        assert not any(secret in rendered for secret in SECRETS), rendered


async def test_access_log_records_usage_watched_on_streams(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgeproxy.access")
    stack = await make_stack(server={"access_log": True})
    stack.fake.default["messages"] = Reply(prompt_tokens=21, completion_tokens=4, chunks=4)
    stack.fake.default["chat"] = Reply(prompt_tokens=13, completion_tokens=2, chunks=2)
    async with aiohttp.ClientSession() as session:
        for path, body in [
            (
                "/v1/messages",
                {"model": "claude-sonnet", "max_tokens": 5, "stream": True, "messages": []},
            ),
            (
                "/v1/chat/completions",
                {
                    "model": "gpt-4o",
                    "messages": [],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            ),
            ("/v1/chat/completions", {"model": "gpt-4o", "messages": []}),
        ]:
            async with session.post(stack.proxy.url + path, json=body) as response:
                await response.read()

    def access() -> list[dict[str, Any]]:
        return [r.__dict__ for r in caplog.records if r.name == "edgeproxy.access"]

    await eventually(lambda: len(access()) == 3, "a line per request, written in a batch")
    lines = access()
    assert [(x["provider"], x["stream"], x["status"]) for x in lines] == [
        ("anthropic-up", True, 200),
        ("openai-up", True, 200),
        ("openai-up", False, 200),
    ]
    assert [(x["deployment"], x["attempts"]) for x in lines] == [
        ("anthropic-up/claude-sonnet-4-5", 1),
        ("openai-up/gpt-4o-2024-08-06", 1),
        ("openai-up/gpt-4o-2024-08-06", 1),
    ]
    assert [(x["input_tokens"], x["output_tokens"]) for x in lines] == [(21, 4), (13, 2), (13, 2)]
    assert [x["model_group"] for x in lines] == ["claude-sonnet", "gpt-4o", "gpt-4o"]
    for line in lines:
        assert line["cost_usd"] > 0
        assert 0 <= line["overhead_ms"] <= line["duration_ms"]
        assert 0 < line["upstream_ttfb_ms"] <= line["upstream_ms"] <= line["duration_ms"]
        assert line["queue_ms"] >= 0
        assert line["cache"] is None and line["cache_ms"] is None  # the cache is off


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """The proxy's own log setup, writing into a buffer; the test's handlers restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("aiohttp.access")
    disabled = access.disabled
    buffer = io.StringIO()
    configure("info", "json", [OPENAI_KEY], stream=buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    access.disabled = disabled


def written(buffer: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


async def test_access_lines_are_held_and_written_together_then_in_order_with_records(
    configured: io.StringIO,
) -> None:
    handler = line_handler()
    assert handler is not None
    handler.add("info", "edgeproxy.access", "request", {"request_id": "a"})
    handler.add("info", "edgeproxy.access", "request", {"request_id": "b"})
    assert configured.getvalue() == ""  # held for the next write
    logging.getLogger("edgeproxy.test").warning("after them")
    lines = written(configured)
    assert [line.get("request_id", line["msg"]) for line in lines] == ["a", "b", "after them"]
    handler.add("info", "edgeproxy.access", "request", {"request_id": "c"})
    await eventually(lambda: "c" in configured.getvalue(), "the held line written by its timer")


async def test_every_held_line_has_its_secrets_masked_when_the_batch_is_written(
    configured: io.StringIO,
) -> None:
    handler = line_handler()
    assert handler is not None
    asked = [OPENAI_KEY, f"x{OPENAI_KEY}y", f"{OPENAI_KEY}{OPENAI_KEY}", "clean"]
    for model in asked:
        handler.add("info", "edgeproxy.access", "request", {"model": model})
    handler.flush()
    lines = written(configured)
    assert [line["model"] for line in lines] == [MASK, f"x{MASK}y", MASK * 2, "clean"]


async def test_the_access_log_writes_through_the_proxys_handler_with_every_field(
    make_stack: StackFactory, configured: io.StringIO
) -> None:
    stack = await make_stack(server={"access_log": True})
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(stack.proxy.url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200
    handler = line_handler()
    assert handler is not None

    def access() -> list[dict[str, Any]]:
        handler.flush()
        return [line for line in written(configured) if line["logger"] == "edgeproxy.access"]

    await eventually(lambda: len(access()) == 3, "a line per request, written in a batch")
    lines = access()
    assert {line["msg"] for line in lines} == {"request"}
    assert {line["model_group"] for line in lines} == {"gpt-4o"}
    assert all(line["duration_ms"] > 0 and line["status"] == 200 for line in lines)
    assert len({line["request_id"] for line in lines}) == 3


def test_without_a_loop_an_added_line_is_written_at_once(configured: io.StringIO) -> None:
    handler = line_handler()
    assert handler is not None
    handler.add("info", "edgeproxy.access", "request", {"key": OPENAI_KEY})
    (line,) = written(configured)
    assert line["key"] == MASK
