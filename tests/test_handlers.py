"""Behaviour of the HTTP edge against a fake upstream, over real sockets."""

from __future__ import annotations

import gzip
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from multidict import CIMultiDict

from edgeproxy.sse import SSEDecoder, SSEEvent
from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail, Reply
from tests.support.stack import ANTHROPIC_KEY, CLIENT_KEY, OPENAI_KEY, Stack

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
MESSAGES = {
    "model": "claude-sonnet",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Hi"}],
}
ROUTES = {
    "openai": ("/v1/chat/completions", CHAT, "chat"),
    "anthropic": ("/v1/messages", MESSAGES, "messages"),
}


async def post(
    stack: Stack, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDict[str], bytes]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.proxy.url + path, data=data, headers=headers) as response,
    ):
        return response.status, response.headers.copy(), await response.read()


async def stream_events(
    stack: Stack, path: str, body: dict[str, Any]
) -> tuple[int, CIMultiDict[str], list[SSEEvent]]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.proxy.url + path, json={**body, "stream": True}) as response,
    ):
        async for chunk in response.content.iter_any():
            events.extend(decoder.feed(chunk))
        return response.status, response.headers.copy(), events


def openai_error(body: bytes) -> dict[str, Any]:
    error = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def anthropic_error(body: bytes) -> dict[str, Any]:
    payload = orjson.loads(body)
    assert payload["type"] == "error"
    assert set(payload["error"]) == {"type", "message"}
    return payload["error"]


# --- credentials and headers -------------------------------------------------------------


async def test_provider_key_is_injected_and_the_client_key_never_sent_upstream(
    stack: Stack,
) -> None:
    await post(stack, "/v1/chat/completions", CHAT, {"authorization": f"Bearer {CLIENT_KEY}"})
    await post(stack, "/v1/messages", MESSAGES, {"x-api-key": CLIENT_KEY})
    await post(stack, "/v1/messages", MESSAGES, {"authorization": f"Bearer {CLIENT_KEY}"})
    openai_call, *anthropic_calls = stack.fake.requests
    assert openai_call.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    for call in anthropic_calls:
        assert call.headers["x-api-key"] == ANTHROPIC_KEY
        assert "authorization" not in call.headers
    for call in stack.fake.requests:
        assert all(CLIENT_KEY not in value for value in call.headers.values())


async def test_hop_by_hop_headers_are_stripped_and_provider_headers_pass_through(
    stack: Stack,
) -> None:
    await post(
        stack,
        "/v1/messages",
        MESSAGES,
        {
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "prompt-caching-2024-07-31",
            "proxy-authorization": "Basic secret",
            "x-custom-hop": "1",
            "connection": "keep-alive, x-custom-hop",
        },
    )
    await post(
        stack,
        "/v1/chat/completions",
        CHAT,
        {"openai-organization": "org-1", "openai-project": "proj-1", "te": "trailers"},
    )
    anthropic_call, openai_call = stack.fake.requests
    assert anthropic_call.headers["anthropic-version"] == "2023-06-01"
    assert anthropic_call.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    for hop in ("proxy-authorization", "x-custom-hop", "te"):
        assert hop not in anthropic_call.headers and hop not in openai_call.headers
    assert (openai_call.headers["openai-organization"], openai_call.headers["openai-project"]) == (
        "org-1",
        "proj-1",
    )


async def test_anthropic_version_is_supplied_when_the_client_sends_none(stack: Stack) -> None:
    await post(stack, "/v1/messages", MESSAGES)
    assert stack.fake.requests[0].headers["anthropic-version"] == "2023-06-01"


async def test_request_id_is_the_clients_or_a_new_one_and_travels_upstream(stack: Stack) -> None:
    _, given, _ = await post(stack, "/v1/chat/completions", CHAT, {"x-request-id": "trace-42"})
    _, fresh, _ = await post(stack, "/v1/chat/completions", CHAT)
    assert given["x-request-id"] == "trace-42"
    assert len(fresh["x-request-id"]) == 32
    assert [r.headers["x-request-id"] for r in stack.fake.requests] == [
        "trace-42",
        fresh["x-request-id"],
    ]
    assert given["x-edgeproxy-upstream-request-id"] != "trace-42"


# --- the body ----------------------------------------------------------------------------


async def test_public_model_name_is_mapped_and_nothing_else_changes(stack: Stack) -> None:
    body = {**CHAT, "temperature": 0.25, "tools": [{"type": "function", "function": {"name": "f"}}]}
    status, _, reply = await post(stack, "/v1/chat/completions", body)
    assert status == 200
    sent = stack.fake.requests[0].json
    assert sent == {**body, "model": "gpt-4o-2024-08-06"}
    assert orjson.loads(reply)["model"] == "gpt-4o-2024-08-06"


async def test_pass_through_routes_forward_the_body_byte_for_byte(stack: Stack) -> None:
    raw = b'{ "model" : "gpt-4o-mini",\n  "messages": [{"role":"user","content":"caf\\u00e9"}] }'
    status, _, _ = await post(stack, "/v1/chat/completions", raw)
    assert status == 200
    assert stack.fake.requests[0].body == raw


# --- client errors, in the client's dialect -----------------------------------------------


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_malformed_json_is_a_400_in_the_clients_dialect(stack: Stack, dialect: str) -> None:
    path, _, _ = ROUTES[dialect]
    status, headers, body = await post(stack, path, b'{"model": "gpt-4o", ')
    assert status == 400
    assert "x-request-id" in headers
    if dialect == "openai":
        assert openai_error(body)["type"] == "invalid_request_error"
    else:
        assert anthropic_error(body)["type"] == "invalid_request_error"
    assert stack.fake.requests == []


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_an_unconfigured_model_is_a_404_naming_it(
    make_stack: StackFactory, dialect: str
) -> None:
    stack = await make_stack(catch_all=False)
    path, body, _ = ROUTES[dialect]
    status, _, reply = await post(stack, path, {**body, "model": "no-such-model"})
    assert status == 404
    if dialect == "openai":
        error = openai_error(reply)
        assert (error["code"], error["param"]) == ("model_not_found", "model")
    else:
        error = anthropic_error(reply)
        assert error["type"] == "not_found_error"
    assert "no-such-model" in error["message"]


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_a_body_over_the_limit_is_a_413(make_stack: StackFactory, dialect: str) -> None:
    stack = await make_stack(server={"max_body": "4KiB"})
    path, body, _ = ROUTES[dialect]
    big = {**body, "messages": [{"role": "user", "content": "x" * 8000}]}
    status, _, reply = await post(stack, path, big)
    assert status == 413
    if dialect == "anthropic":
        assert anthropic_error(reply)["type"] == "request_too_large"
    else:
        assert "4096 bytes" in openai_error(reply)["message"]
    assert stack.fake.requests == []


async def test_a_chunked_body_over_the_limit_is_also_a_413(make_stack: StackFactory) -> None:
    stack = await make_stack(server={"max_body": "4KiB"})

    async def chunks() -> Any:
        yield b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.proxy.url + "/v1/chat/completions", data=chunks()) as response,
    ):
        assert response.status == 413


async def test_unknown_paths_and_wrong_methods(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(stack.proxy.url + "/v1/nothing-here") as response:
            assert response.status == 404
            assert openai_error(await response.read())["code"] == "not_found"
        async with session.get(stack.proxy.url + "/v1/chat/completions") as response:
            assert response.status == 405
            assert response.headers["allow"] == "POST"
        async with session.get(stack.proxy.url + "/v1/messages") as response:
            assert response.status == 405
            anthropic_error(await response.read())


async def test_an_endpoint_the_provider_cannot_serve_is_a_clear_400(stack: Stack) -> None:
    legacy = {"model": "claude-sonnet", "prompt": "Say hello"}
    status, _, body = await post(stack, "/v1/completions", legacy)
    assert status == 400
    assert "cannot answer /completions" in openai_error(body)["message"]
    assert stack.fake.calls["messages"] == 0


# --- upstream failures ---------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_upstream_429_is_relayed_with_its_retry_hints(stack: Stack, dialect: str) -> None:
    path, body, route = ROUTES[dialect]
    stack.fake.script(route, Fail(429, headers={"retry-after": "7", "retry-after-ms": "7000"}))
    status, headers, reply = await post(stack, path, body)
    assert status == 429
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("7", "7000")
    if dialect == "openai":
        assert openai_error(reply)["code"] == "rate_limit_exceeded"
    else:
        assert orjson.loads(reply)["error"]["type"] == "rate_limit_error"


async def test_upstream_5xx_status_and_body_are_relayed(stack: Stack) -> None:
    stack.fake.script("messages", Fail(529))
    status, _, reply = await post(stack, "/v1/messages", MESSAGES)
    assert status == 529
    assert orjson.loads(reply)["error"]["type"] == "overloaded_error"


async def test_an_unreachable_upstream_is_a_502(make_stack: StackFactory) -> None:
    stack = await make_stack()
    await stack.fake.close()
    status, _, body = await post(stack, "/v1/chat/completions", CHAT)
    assert status == 502
    error = openai_error(body)
    assert error["code"] == "upstream_unreachable"
    assert "127.0.0.1" not in error["message"]


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_no_first_byte_in_time_is_a_504(make_stack: StackFactory, dialect: str) -> None:
    stack = await make_stack(timeouts={"first_byte": "200ms"})
    path, body, route = ROUTES[dialect]
    stack.fake.script(route, Reply(stall_after=0))
    status, _, reply = await post(stack, path, body)
    assert status == 504
    if dialect == "openai":
        assert openai_error(reply)["code"] == "upstream_timeout"
    else:
        assert anthropic_error(reply)["type"] == "timeout_error"
    await stack.fake.wait_for_disconnects(1)


# --- streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["odd", "frames", "bytes:3"])
async def test_streams_arrive_intact_whatever_the_upstream_chunking(
    stack: Stack, split: str
) -> None:
    stack.fake.default["chat"] = Reply(text="Streaming é ✓ 🙂 works.", chunks=6, split=split)
    status, headers, events = await stream_events(stack, "/v1/chat/completions", CHAT)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in {k.lower() for k in headers}
    assert headers["cache-control"] == "no-cache"
    assert events[-1].data == b"[DONE]"
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Streaming é ✓ 🙂 works."


async def test_events_reach_the_client_before_the_upstream_finishes(stack: Stack) -> None:
    stack.fake.script("messages", Reply(chunks=4, stall_after=3))
    decoder = SSEDecoder()
    seen: list[str] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            stack.proxy.url + "/v1/messages", json={**MESSAGES, "stream": True}
        ) as response,
    ):
        async for chunk in response.content.iter_any():
            seen.extend(e.event for e in decoder.feed(chunk))
            if len(seen) >= 3:
                break
    assert seen[:3] == ["message_start", "content_block_start", "ping"]
    await stack.fake.wait_for_disconnects(1)


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_idle_upstream_mid_stream_ends_with_an_error_event(
    make_stack: StackFactory, dialect: str
) -> None:
    stack = await make_stack(timeouts={"idle": "200ms"})
    path, body, route = ROUTES[dialect]
    stack.fake.script(route, Reply(chunks=4, stall_after=2, split="odd"))
    status, _, events = await stream_events(stack, path, body)
    assert status == 200
    final = events[-1]
    if dialect == "openai":
        assert orjson.loads(final.data)["error"]["code"] == "upstream_timeout"
    else:
        assert final.event == "error"
        assert orjson.loads(final.data)["error"]["type"] == "timeout_error"
    assert all(orjson.loads(e.data) for e in events)  # every event before it is whole JSON
    await stack.fake.wait_for_disconnects(1)


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_upstream_dropping_mid_stream_ends_with_an_error_event(
    stack: Stack, dialect: str
) -> None:
    path, body, route = ROUTES[dialect]
    stack.fake.script(route, Reply(chunks=6, drop_after=3, split="odd"))
    status, _, events = await stream_events(stack, path, body)
    assert status == 200
    payload = orjson.loads(events[-1].data)
    if dialect == "openai":
        assert payload["error"]["code"] == "upstream_protocol_error"
    else:
        assert (events[-1].event, payload["error"]["type"]) == ("error", "api_error")
    assert len(events) == 4


async def test_upstream_error_events_are_relayed_as_sent(stack: Stack) -> None:
    stack.fake.script("messages", Reply(chunks=4, error_event_after=2))
    _, _, events = await stream_events(stack, "/v1/messages", MESSAGES)
    assert events[-1].event == "error"
    assert orjson.loads(events[-1].data)["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("route", "path", "body", "deployment"),
    [
        ("messages", "/v1/messages", MESSAGES, "anthropic-up/claude-sonnet-4-5"),
        ("chat", "/v1/chat/completions", CHAT, "openai-up/gpt-4o-2024-08-06"),
    ],
)
async def test_a_relayed_provider_error_event_counts_against_the_deployment(
    stack: Stack, route: str, path: str, body: dict[str, Any], deployment: str
) -> None:
    stack.fake.script(route, Reply(chunks=4, error_event_after=2))
    await stream_events(stack, path, {**body, "stream": True})
    health = stack.proxy.state.table.health[deployment]
    assert (health.requests, health.failures, health.in_flight) == (1, 1, 0)


async def test_client_disconnect_mid_stream_cancels_the_upstream_request(stack: Stack) -> None:
    stack.fake.script("chat", Reply(chunks=50, chunk_delay=0.05))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            stack.proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True}
        ) as response,
    ):
        await response.content.readany()
    await stack.fake.wait_for_disconnects(1)


async def test_upstream_error_status_on_a_stream_request_is_a_json_error(stack: Stack) -> None:
    stack.fake.script("chat", Fail(400, message="bad things"))
    status, headers, body = await post(stack, "/v1/chat/completions", {**CHAT, "stream": True})
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert openai_error(body)["message"] == "bad things"


# --- compressed request bodies -----------------------------------------------------------


async def test_a_gzipped_body_is_read_decoded_and_forwarded_decoded_without_its_coding(
    stack: Stack,
) -> None:
    body = gzip.compress(orjson.dumps(CHAT))
    status, _, _ = await post(stack, "/v1/chat/completions", body, {"content-encoding": "gzip"})
    assert status == 200
    (call,) = stack.fake.requests
    assert "content-encoding" not in call.headers
    assert call.json["model"] == "gpt-4o-2024-08-06", "the decoded body was read for routing"


async def test_a_body_in_an_unknown_coding_is_a_415_in_the_clients_dialect(stack: Stack) -> None:
    status, _, body = await post(
        stack, "/v1/messages", orjson.dumps(MESSAGES), {"content-encoding": "zstd"}
    )
    assert status == 415
    assert "zstd" in anthropic_error(body)["message"]
    assert stack.fake.requests == []


# --- other endpoints -------------------------------------------------------------------------


async def test_models_lists_the_configured_public_names_in_each_dialect(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(stack.proxy.url + "/v1/models") as response:
            listing = orjson.loads(await response.read())
        async with session.get(
            stack.proxy.url + "/v1/models", headers={"anthropic-version": "2023-06-01"}
        ) as response:
            anthropic_listing = orjson.loads(await response.read())
    names = [
        "gpt-4o",
        "claude-sonnet",
        "edgeproxy-mock",
        "gemini-flash",
        "bedrock-claude",
        "gemini-embed",
        "titan-embed",
    ]
    assert [m["id"] for m in listing["data"]] == names
    assert [m["id"] for m in anthropic_listing["data"]] == names
    assert anthropic_listing["data"][0]["type"] == "model"


async def test_a_model_is_retrieved_in_each_sdks_dialect(make_stack: StackFactory) -> None:
    """A public name, or one a pattern group takes (`claude-*`), is a model; any other name
    is the SDK's own not-found error."""
    stack = await make_stack(catch_all=False, model_settings={"gpt-4o": {"aliases": ["4o"]}})
    async with openai.AsyncOpenAI(base_url=stack.openai_url, api_key="k") as sdk:
        model = await sdk.models.retrieve("4o")
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.models.retrieve("gpt-nonexistent")
    assert (model.id, model.object) == ("4o", "model")
    assert missing.value.code == "model_not_found"
    async with anthropic.AsyncAnthropic(base_url=stack.anthropic_url, api_key="k") as claude:
        info = await claude.models.retrieve("claude-sonnet")
        with pytest.raises(anthropic.NotFoundError) as absent:
            await claude.models.retrieve("claude/../gpt-4o")
    assert (info.id, info.type) == ("claude-sonnet", "model")
    assert absent.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert stack.fake.requests == []


async def test_a_model_name_with_a_slash_is_found_by_a_pattern(make_stack: StackFactory) -> None:
    stack = await make_stack()  # with the catch-all `*`
    async with openai.AsyncOpenAI(base_url=stack.openai_url, api_key="k") as sdk:
        model = await sdk.models.retrieve("meta-llama/Llama-3.3-70B")
    assert model.id == "meta-llama/Llama-3.3-70B"


@pytest.mark.parametrize(
    ("path", "body", "route"),
    [
        ("/v1/completions", {"model": "gpt-4o", "prompt": "Say hi"}, "completions"),
        ("/v1/embeddings", {"model": "gpt-4o", "input": ["a", "b"]}, "embeddings"),
        ("/v1/messages/count_tokens", {"model": "claude-sonnet", "messages": []}, "count_tokens"),
    ],
)
async def test_other_endpoints_are_forwarded(
    stack: Stack, path: str, body: dict[str, Any], route: str
) -> None:
    status, _, _ = await post(stack, path, body)
    assert status == 200
    assert stack.fake.calls[route] == 1


async def test_probes_report_liveness_and_readiness(make_stack: StackFactory) -> None:
    stack = await make_stack()
    async with aiohttp.ClientSession() as session:
        async with session.get(stack.proxy.admin_url + "/healthz") as response:
            assert response.status == 200
        async with session.get(stack.proxy.admin_url + "/readyz") as response:
            assert response.status == 200
        stack.proxy.state.draining = True
        async with session.get(stack.proxy.admin_url + "/readyz") as response:
            assert response.status == 503
        stack.proxy.state.draining = False


async def test_an_answer_larger_than_the_proxy_reads_is_a_502(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole answer is read before it is relayed: one that never ends must not take all of
    the sidecar's memory. Past the limit, the client gets a 502 in its dialect."""
    monkeypatch.setattr("edgeproxy.providers.http.MAX_ANSWER", 2048)
    stack.fake.default["chat"] = Reply(text="word " * 1000)
    async with openai.AsyncOpenAI(
        base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0
    ) as sdk:
        with pytest.raises(openai.APIStatusError) as failed:
            await sdk.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Talk"}]
            )
    assert failed.value.status_code == 502
    assert failed.value.type == "api_error"
