"""The API paths the proxy does not serve itself, passed through to the configured provider of
the client's dialect (`passthrough`), with the official SDKs: moderations, file uploads,
speech and message batches arrive as sent, with the provider's credential in place of the
client's, and come back byte for byte; paths that could climb out of the API root, and keys
not allowed, never reach the provider."""

from __future__ import annotations

import gzip
import logging
import posixpath
from typing import Any
from urllib.parse import unquote

import aiohttp
import anthropic
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from edgeproxy.config import parse
from edgeproxy.config_reader import ConfigError
from edgeproxy.passthrough import sendable
from edgeproxy.security.auth import hash_key
from tests.conftest import StackFactory
from tests.support.fake_other_apis import speech
from tests.support.fake_upstream import Fail, FakeUpstream, Reply
from tests.support.stack import ANTHROPIC_KEY, CLIENT_KEY, OPENAI_KEY, Stack
from tests.telemetry.test_metrics import scrape

PASSTHROUGH = {"passthrough": {"openai": "openai-up", "anthropic": "anthropic-up"}}
ANN_KEY, BOB_KEY = "sk-ann-0123456789", "sk-bob-0123456789"


def client(stack: Stack, key: str = CLIENT_KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.openai_url, api_key=key, max_retries=0)


@pytest.fixture
async def passing(make_stack: StackFactory) -> Stack:
    return await make_stack(sections=PASSTHROUGH)


async def test_a_moderation_goes_to_the_provider_with_its_credential(passing: Stack) -> None:
    async with client(passing) as sdk:
        raw = await sdk.moderations.with_raw_response.create(input=["fine", "also fine"])
    moderation = raw.parse()
    assert [r.flagged for r in moderation.results] == [False, False]
    sent = passing.fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/moderations")
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert CLIENT_KEY not in str(sent.headers)
    assert raw.headers["x-request-id"] == sent.headers["x-request-id"]


async def test_a_file_upload_arrives_as_the_sdk_sent_it(passing: Stack) -> None:
    content = b'{"custom_id": "1"}\n' * 5000  # about 95 KB of multipart body
    async with client(passing) as sdk:
        created = await sdk.files.create(file=("batch.jsonl", content), purpose="batch")
    (upload,) = passing.fake.other.uploads
    assert (upload.filename, upload.purpose, upload.content) == ("batch.jsonl", "batch", content)
    assert created.bytes == len(content)
    assert passing.fake.requests[-1].headers["content-type"].startswith("multipart/form-data")


async def test_a_compressed_body_goes_on_as_sent_with_its_coding(passing: Stack) -> None:
    packed = gzip.compress(b'{"input": "compressed"}')
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            passing.openai_url + "/moderations",
            data=packed,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        ) as answer,
    ):
        assert answer.status == 200
    sent = passing.fake.requests[-1]
    assert sent.headers["content-encoding"] == "gzip"
    assert sent.json == {"input": "compressed"}  # the fake decoded it, as OpenAI's would


async def test_speech_streams_back_byte_for_byte(passing: Stack) -> None:
    async with (
        client(passing) as sdk,
        sdk.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input="Hello there"
        ) as answer,
    ):
        assert answer.headers["content-type"] == "audio/mpeg"
        audio = b"".join([chunk async for chunk in answer.iter_bytes()])
    assert audio == b"".join(speech("Hello there"))


async def test_a_compressed_answer_passes_untouched_to_a_client_that_accepts_it(
    passing: Stack,
) -> None:
    passing.fake.compress_streams = True
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.post(
            passing.openai_url + "/audio/speech",
            json={"model": "tts-1", "voice": "alloy", "input": "Hi"},
            headers={"accept-encoding": "gzip"},
        ) as answer,
    ):
        body = await answer.read()
        assert answer.headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == b"".join(speech("Hi"))


async def test_an_anthropic_message_batch_goes_to_anthropic(passing: Stack) -> None:
    request: Any = {
        "custom_id": "first",
        "params": {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": []},
    }
    async with anthropic.AsyncAnthropic(
        base_url=passing.anthropic_url,
        api_key=CLIENT_KEY,
        max_retries=0,
        default_headers={"anthropic-version": "2023-06-01"},
    ) as claude:
        batch = await claude.messages.batches.create(requests=[request])
    assert (batch.id, batch.request_counts.processing) == ("msgbatch_fake", 1)
    sent = passing.fake.requests[-1]
    assert sent.path == "/v1/messages/batches"
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"  # the client's, as it sent it


async def test_an_error_answer_quoting_the_credential_is_masked(passing: Stack) -> None:
    passing.fake.script("moderations", Fail(500, message=f"Bad key {OPENAI_KEY}"))
    async with client(passing) as sdk:
        with pytest.raises(openai.InternalServerError) as failed:
            await sdk.moderations.create(input="x")
    assert OPENAI_KEY not in failed.value.response.text


async def test_not_modified_comes_back_without_a_body(passing: Stack) -> None:
    passing.fake.script("speech", Fail(304, headers={"etag": '"v1"'}))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            passing.openai_url + "/audio/speech",
            json={"model": "tts-1", "input": "Hi"},
            headers={"if-none-match": '"v1"'},
        ) as answer,
    ):
        assert (answer.status, answer.headers["etag"]) == (304, '"v1"')
        assert await answer.read() == b""
    assert passing.fake.requests[-1].headers["if-none-match"] == '"v1"'


async def test_an_answer_cut_upstream_is_cut_for_the_client(passing: Stack) -> None:
    """A truncated body must never look whole: the connection is dropped, not ended."""
    passing.fake.script("speech", Reply(drop_after=3, split="frames"))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            passing.openai_url + "/audio/speech", json={"model": "tts-1", "input": "Hi"}
        ) as answer,
    ):
        assert answer.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await answer.read()


async def test_a_client_that_leaves_stops_the_upstream_answer(passing: Stack) -> None:
    passing.fake.script("speech", Reply(chunk_delay=0.05, split="frames"))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            passing.openai_url + "/audio/speech", json={"model": "tts-1", "input": "Hi"}
        ) as answer,
    ):
        await answer.content.readany()
    await passing.fake.wait_for_disconnects(1)


async def test_a_path_the_provider_does_not_know_gets_its_own_answer(passing: Stack) -> None:
    async with client(passing) as sdk:
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.files.retrieve("file-abc")
    assert "Unknown path" in missing.value.message  # the provider's own words
    assert passing.fake.unrouted == ["/v1/files/file-abc"]


async def test_a_head_is_answered_with_the_providers_head(passing: Stack) -> None:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.head(passing.openai_url + "/files/file-abc") as answer,
    ):
        assert answer.status == 404
    assert passing.fake.unrouted == ["/v1/files/file-abc"]


async def test_the_clients_query_goes_along(passing: Stack) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            passing.openai_url + "/moderations?trace=1&order=asc", json={"input": "x"}
        ) as answer,
    ):
        assert answer.status == 200
    assert passing.fake.requests[-1].query == "trace=1&order=asc"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/%2e%2e/admin",
        "/v1/files/..",
        "/v1/files/a%2Fb",
        "/v1/files/a%5Cb",
        "/v1/x/%252e%252e",
        "/v1//files",
        "/v2/moderations",
    ],
)
async def test_a_path_that_could_leave_the_api_root_is_never_sent(
    passing: Stack, path: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(URL(passing.proxy.url + path, encoded=True), json={}) as answer,
    ):
        assert answer.status == 404
        assert (await answer.json())["error"]["type"] == "invalid_request_error"
    assert passing.fake.requests == []
    assert passing.fake.unrouted == []


_SEGMENT_PIECES = st.sampled_from(
    ["a", "files", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%25", "%252e", "%", "~", ":"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_SEGMENT_PIECES, min_size=1, max_size=4).map("".join), max_size=5))
def test_a_sendable_path_stays_under_the_api_root_however_often_it_is_decoded(
    segments: list[str],
) -> None:
    """Whatever a server does with it (decode once or twice, then resolve dot segments), a
    path the pass-through sends stays under /v1/ with as many segments as it was sent with."""
    path = "/v1/" + "/".join(segments)
    if not sendable(path):
        return
    for decoded in (path, unquote(path), unquote(unquote(path))):
        resolved = posixpath.normpath(decoded.replace("\\", "/"))
        assert resolved.startswith("/v1/"), (path, decoded)
        assert resolved.count("/") == path.count("/"), (path, decoded)


def test_only_plain_paths_under_the_api_root_are_sendable() -> None:
    assert sendable("/v1/files/file-abc/content")
    assert sendable("/v1/fine_tuning/jobs/ftjob-1:cancel")
    assert not sendable("/v1/")
    assert not sendable("/v1/a/./b")
    assert not sendable("/v1/a b")


async def test_known_paths_keep_their_own_answers(passing: Stack) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(passing.openai_url + "/chat/completions") as answer,
    ):
        assert answer.status == 405
    assert passing.fake.requests == []


async def test_without_passthrough_other_paths_are_not_found(stack: Stack) -> None:
    async with client(stack) as sdk:
        with pytest.raises(openai.NotFoundError):
            await sdk.moderations.create(input="x")
    assert stack.fake.requests == []


async def test_with_keys_only_the_listed_keys_pass_through(make_stack: StackFactory) -> None:
    sections = {
        "auth": {
            "mode": "keys",
            "keys": [
                {"id": "ann", "hash": hash_key(ANN_KEY)},
                {"id": "bob", "hash": hash_key(BOB_KEY)},
            ],
        },
        "passthrough": {"openai": "openai-up", "keys": ["ann"]},
    }
    stack = await make_stack(sections=sections)
    async with client(stack, ANN_KEY) as ann, client(stack, BOB_KEY) as bob:
        assert (await ann.moderations.create(input="x")).results
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await bob.moderations.create(input="x")
    async with client(stack, "sk-unknown") as stranger:
        with pytest.raises(openai.AuthenticationError):
            await stranger.moderations.create(input="x")
    assert "passthrough.keys" in refused.value.message
    assert stack.fake.calls["moderations"] == 1


@pytest.mark.parametrize(
    ("passthrough", "problem"),
    [
        ({"openai": "nowhere"}, "passthrough.openai: no provider named 'nowhere'"),
        ({"anthropic": "oa"}, "passthrough.anthropic: provider 'oa' is of kind openai, not"),
        ({"openai": "an"}, "passthrough.openai: provider 'an' is of kind anthropic, not openai"),
        ({"gemini": "oa"}, "passthrough.gemini"),
    ],
)
def test_the_providers_named_are_checked_at_load(passthrough: dict[str, Any], problem: str) -> None:
    raw = {
        "providers": {
            "oa": {"kind": "openai", "api_key": "k"},
            "an": {"kind": "anthropic", "api_key": "k"},
        },
        "models": {"m": {"deployments": [{"provider": "oa"}]}},
        "passthrough": passthrough,
    }
    with pytest.raises(ConfigError) as refused:
        parse(raw, {})
    assert problem in str(refused.value)


def test_a_provider_switched_off_turns_its_dialect_off() -> None:
    raw = {
        "providers": {
            "oa": {"kind": "openai", "api_key": "k"},
            "an": {"kind": "anthropic", "api_key": "${UNSET_KEY:-}", "enabled": "auto"},
        },
        "models": {"m": {"deployments": [{"provider": "oa"}]}},
        "passthrough": {"openai": "oa", "anthropic": "an"},
    }
    settings = parse(raw, {}).passthrough
    assert (settings.openai, settings.anthropic) == ("oa", None)


async def test_azure_answers_the_openai_paths_under_its_resource(
    make_stack: StackFactory,
) -> None:
    """Its configured api-version, never the client's, under the resource's /openai."""
    resource = FakeUpstream()
    await resource.start()
    try:
        azure = {
            "kind": "azure",
            "base_url": resource.url,
            "api_key": "az-key-0123456789",
            "api_version": "2025-04-01-preview",
        }
        stack = await make_stack(
            more_providers={"az": azure}, sections={"passthrough": {"openai": "az"}}
        )
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                stack.openai_url + "/moderations?api-version=1999-01-01", json={"input": "x"}
            ) as answer,
        ):
            assert answer.status == 404  # the fake has no Azure paths: its own answer
    finally:
        await resource.close()
    assert resource.unrouted == ["/openai/moderations?api-version=2025-04-01-preview"]


async def test_each_forwarded_call_has_an_access_line(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing is read of these calls, but who made them, where they went and how they ended is
    logged: pass-through, a stored answer's retrieval, and refusals."""
    caplog.set_level(logging.INFO, logger="edgeproxy.access")
    stack = await make_stack(server={"access_log": True}, sections=PASSTHROUGH)
    async with client(stack) as sdk:
        await sdk.moderations.create(input="x")
        created = await sdk.responses.create(model="gpt-4o", input="Hi")
        await sdk.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve("resp_unknown")
    async with (
        aiohttp.ClientSession() as http,
        http.post(URL(stack.proxy.url + "/v1/%2e%2e/x", encoded=True), json={}) as refused,
    ):
        assert refused.status == 404
    lines = [r.__dict__ for r in caplog.records if r.msg == "forwarded"]
    assert [(x["endpoint"], x["method"], x["provider"], x["status"]) for x in lines] == [
        ("passthrough", "POST", "openai-up", 200),
        ("responses.retrieve", "GET", "openai-up", 200),
        ("responses.retrieve", "GET", "mock", 404),  # the last of those asked in turn
        ("passthrough", "POST", None, 404),
    ]
    assert lines[1]["path"] == f"/v1/responses/{created.id}"
    assert all(x["duration_ms"] >= 0 and x["request_id"] for x in lines)


async def test_forwarded_calls_are_counted_by_endpoint_provider_and_status(
    passing: Stack,
) -> None:
    async with client(passing) as sdk:
        await sdk.moderations.create(input="x")
        await sdk.moderations.create(input="y")
        created = await sdk.responses.create(model="gpt-4o", input="Hi")
        await sdk.responses.retrieve(created.id)
    async with (
        aiohttp.ClientSession() as http,
        http.post(URL(passing.proxy.url + "/v1/a/%2e%2e/b", encoded=True), json={}) as refused,
    ):
        assert refused.status == 404
    forwarded = {
        tuple(dict(labels)[n] for n in ("endpoint", "provider", "status")): value
        for (name, labels), value in (await scrape(passing.proxy.admin_url)).items()
        if name == "edgeproxy_forwarded_requests_total"
    }
    assert forwarded == {
        ("passthrough", "openai-up", "200"): 2,
        ("responses.retrieve", "openai-up", "200"): 1,
        ("passthrough", "none", "404"): 1,
    }
    requests = [
        n
        for (n, labels), _ in (await scrape(passing.proxy.admin_url)).items()
        if n == "edgeproxy_requests_total"
    ]
    assert len(requests) == 1  # the create only: forwarded calls are not API requests
