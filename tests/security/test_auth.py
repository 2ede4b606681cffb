"""Virtual keys: how a request presents one, how it is found, and what a caller without a good
key gets (401/403 in its dialect, before any cache work or upstream call)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
import redis

from edgeproxy.config import parse
from edgeproxy.config_reader import ConfigError
from edgeproxy.security.auth import Keyring, hash_key, new_key, presented_key
from edgeproxy.security.settings import KeySettings
from tests.conftest import StackFactory
from tests.support.fake_upstream import Reply
from tests.support.poll import eventually
from tests.support.redis_servers import RedisServer
from tests.support.stack import Stack, background_done

WEB_KEY = "sk-ep-web-0123456789abcdefghij"
BATCH_KEY = "sk-ep-batch-0123456789abcdefghij"
OTHER_TEAM_KEY = "sk-ep-other-0123456789abcdefghij"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def keys_section(**web: Any) -> dict[str, Any]:
    return {
        "auth": {
            "mode": "keys",
            "keys": [
                {"id": "web", "hash": f"sha256:{hash_key(WEB_KEY)}", "team": "shop", **web},
                {"id": "batch", "hash": hash_key(BATCH_KEY), "team": "shop"},
                {"id": "other", "hash": hash_key(OTHER_TEAM_KEY), "team": "research"},
            ],
        }
    }


# --- presenting and finding a key ------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer sk-1"}, "sk-1"),
        ({"authorization": "bearer   sk-1  "}, "sk-1"),
        ({"x-api-key": "sk-2"}, "sk-2"),
        ({"api-key": "sk-3"}, "sk-3"),
        ({"authorization": "Bearer sk-1", "x-api-key": "sk-2"}, "sk-1"),
        ({"authorization": "Basic dXNlcjpwdw=="}, None),
        ({"authorization": "Bearer "}, None),
        ({"x-api-key": "   "}, None),
        ({}, None),
    ],
)
def test_the_key_is_read_where_each_sdk_sends_it(
    headers: dict[str, str], expected: str | None
) -> None:
    assert presented_key(headers) == expected


def test_keyring_finds_a_key_by_its_digest_only() -> None:
    web = KeySettings(id="web", digest=hash_key(WEB_KEY))
    ring = Keyring([web, KeySettings(id="batch", digest=hash_key(BATCH_KEY))])
    assert ring.find(hash_key(WEB_KEY)) is web
    assert ring.find(hash_key("sk-ep-unknown")) is None
    assert ring.find(hash_key(WEB_KEY)[:16] + "0" * 48) is None  # same bucket, other digest


def test_new_keys_are_random_and_marked() -> None:
    first, second = new_key(), new_key()
    assert first != second
    assert first.startswith("sk-ep-")
    assert len(first) > 40


def test_hash_key_command_reads_the_key_from_stdin_and_prints_its_digest() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgeproxy", "hash-key"],
        input=WEB_KEY + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == f"sha256:{hash_key(WEB_KEY)}"
    assert WEB_KEY not in done.stdout


def test_hash_key_command_makes_a_new_key_and_prints_both() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgeproxy", "hash-key", "--new"],
        capture_output=True,
        text=True,
        check=True,
    )
    key, digest = done.stdout.split()
    assert digest == f"sha256:{hash_key(key)}"


# --- configuration ---------------------------------------------------------------------------


def config_with(auth: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "providers": {"mock": {"kind": "mock"}},
        "models": {"m": {"deployments": [{"provider": "mock"}]}},
        "auth": auth,
        **more,
    }


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        ({"mode": "keys"}, "auth.keys: mode keys needs at least one key"),
        (
            {"mode": "keys", "keys": [{"id": "a", "hash": "sk-plain"}]},
            "auth.keys[0].hash: expected",
        ),
        ({"mode": "keys", "keys": [{"hash": "0" * 64}]}, "auth.keys[0].id: required"),
        (
            {"mode": "keys", "keys": [{"id": "a b", "hash": "0" * 64}]},
            "auth.keys[0].id: expected letters",
        ),
        (
            {"mode": "keys", "keys": [{"id": "a", "hash": "0" * 64, "models": ["nope"]}]},
            'auth.keys[0].models: no model group named "nope"',
        ),
        (
            {"mode": "keys", "keys": [{"id": "a", "hash": "0" * 64, "policy": "strict"}]},
            'auth.keys[0].policy: no guardrails policy named "strict"',
        ),
        (
            {"mode": "keys", "keys": [{"id": "a", "hash": "0" * 64, "limits": {"rpm": 0}}]},
            "auth.keys[0].limits.rpm: expected an integer >= 1",
        ),
        (
            {
                "mode": "keys",
                "keys": [{"id": "a", "hash": "0" * 64}, {"id": "a", "hash": "1" * 64}],
            },
            'auth.keys[1].id: "a" is used by another key',
        ),
        (
            {
                "mode": "keys",
                "keys": [{"id": "a", "hash": "0" * 64}, {"id": "b", "hash": "0" * 64}],
            },
            "auth.keys[1].hash: the same key is configured twice",
        ),
        ({"keys": [{"id": "a", "hash": "0" * 64}]}, "auth.mode: keys are configured"),
        ({"mode": "keys", "redis_keys": True}, "auth.redis_keys: needs redis.url"),
        ({"mode": "sometimes"}, "auth.mode: expected one of none, keys"),
    ],
)
def test_auth_configuration_errors_name_the_field(auth: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(config_with(auth), {})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_a_key_defaults_to_every_model_and_its_team_as_tenant() -> None:
    config = parse(config_with({"mode": "keys", "keys": [{"id": "a", "hash": "0" * 64}]}), {})
    (key,) = config.security.auth.keys
    assert key.models is None
    assert key.tenant == "a"
    assert config.security.auth.mode == "keys"


def test_no_auth_section_means_a_trusted_loopback_sidecar() -> None:
    config = parse({"providers": {"mock": {"kind": "mock"}}}, {})
    assert config.security.auth.mode == "none"


# --- through the proxy, with the official SDKs -----------------------------------------------


@pytest.fixture
async def keyed(make_stack: StackFactory) -> Stack:
    stack = await make_stack(
        sections=keys_section(models=["gpt-4o", "claude-sonnet"]),
        cache={"enabled": True},
    )
    stack.fake.default["chat"] = Reply(text="Hello there!")
    stack.fake.default["messages"] = Reply(text="Hello there!")
    return stack


def openai_sdk(stack: Stack, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.openai_url, api_key=key, max_retries=0)


def anthropic_sdk(stack: Stack, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stack.anthropic_url, api_key=key, max_retries=0)


async def test_a_configured_key_is_served(keyed: Stack) -> None:
    async with openai_sdk(keyed, WEB_KEY) as sdk:
        reply = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "Hello there!"
    (request,) = keyed.fake.requests
    assert WEB_KEY not in str(request.headers)  # the provider gets the provider's key


async def test_an_unknown_key_is_refused_in_openai_dialect_without_echoing_it(
    keyed: Stack,
) -> None:
    async with openai_sdk(keyed, "sk-ep-guess-0123456789") as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert "sk-ep-guess" not in caught.value.response.text
    assert keyed.fake.calls == {}


async def test_an_unknown_key_is_refused_in_anthropic_dialect(keyed: Stack) -> None:
    async with anthropic_sdk(keyed, "sk-ep-guess-0123456789") as sdk:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await sdk.messages.create(model="claude-sonnet", max_tokens=16, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 401
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert "sk-ep-guess" not in caught.value.response.text
    assert keyed.fake.calls == {}


async def test_the_anthropic_sdk_key_header_is_accepted(keyed: Stack) -> None:
    async with anthropic_sdk(keyed, WEB_KEY) as sdk:
        reply = await sdk.messages.create(model="claude-sonnet", max_tokens=16, messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.content[0].text == "Hello there!"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "headers", "kind"),
    [
        ("/v1/chat/completions", {}, "authentication_error"),
        ("/v1/messages", {"anthropic-version": "2023-06-01"}, "authentication_error"),
    ],
)
async def test_a_missing_key_is_a_401_in_the_clients_dialect(
    keyed: Stack, path: str, headers: dict[str, str], kind: str
) -> None:
    body = {"model": "gpt-4o", "max_tokens": 8, "messages": MESSAGES}
    async with (
        aiohttp.ClientSession() as http,
        http.post(keyed.proxy.url + path, json=body, headers=headers) as answer,
    ):
        assert answer.status == 401
        error = (await answer.json())["error"]
    assert error["type"] == kind
    assert "x-api-key" in error["message"] or "Authorization" in error["message"]
    assert keyed.fake.calls == {}


async def test_a_model_the_key_may_not_use_is_a_403(keyed: Stack) -> None:
    async with openai_sdk(keyed, WEB_KEY) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await sdk.chat.completions.create(model="gemini-flash", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 403
    assert keyed.fake.calls == {}


async def test_auth_failures_do_no_cache_work(keyed: Stack) -> None:
    cache = keyed.proxy.state.cache
    assert cache is not None
    async with openai_sdk(keyed, "sk-ep-guess-0123456789") as sdk:
        for _ in range(3):
            with pytest.raises(openai.AuthenticationError):
                await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert sum(cache.outcomes.values()) == 0


async def test_keys_of_one_tenant_share_answers_and_other_tenants_do_not(keyed: Stack) -> None:
    for key, expected in ((WEB_KEY, "miss"), (BATCH_KEY, "hit-l1"), (OTHER_TEAM_KEY, "miss")):
        async with openai_sdk(keyed, key) as sdk:
            answer = await sdk.chat.completions.with_raw_response.create(
                model="gpt-4o",
                messages=MESSAGES,  # type: ignore[arg-type]
            )
        assert answer.headers["x-edgeproxy-cache"] == expected, key
        await background_done(keyed)  # the answer stored before the next asks
    assert keyed.fake.calls["chat"] == 2


# --- an auth failure costs no one anything --------------------------------------------------


def commands_run(url: str) -> dict[str, int]:
    """Calls per command since the server started (INFO commandstats)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _connection_command(name: str) -> bool:
    """Commands that set up or check a connection (the listeners', this test's INFO)."""
    return name in ("info", "ping", "hello", "select", "subscribe") or name.startswith("client")


@pytest.mark.parametrize("redis_keys", [False, True])
async def test_a_bad_key_touches_no_limit_budget_or_cache_state_in_redis(
    make_stack: StackFactory, redis_server: RedisServer, redis_keys: bool
) -> None:
    sections = keys_section(limits={"rpm": 100, "tpm": 100000}, budget={"daily_usd": 5})
    sections["auth"]["redis_keys"] = redis_keys
    sections["limits"] = {"groups": {"gpt-4o": {"rpm": 1000}}}
    sections["redis"] = {"url": redis_server.url, "timeout": "2s"}
    stack = await make_stack(
        sections=sections, cache={"enabled": True, "redis": {"url": redis_server.url}}
    )
    keys = stack.proxy.state.guards.keys
    if keys is not None:  # its subscription forgets what it cached: let it come first
        await eventually(lambda: keys.subscriptions >= 1, "the key store's subscription")
    before = commands_run(redis_server.url)
    async with openai_sdk(stack, "sk-ep-guess-0123456789") as sdk:
        for _ in range(20):
            with pytest.raises(openai.AuthenticationError):
                await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    after = commands_run(redis_server.url)
    ran = {name: after[name] - before.get(name, 0) for name in after}
    ran = {name: n for name, n in ran.items() if n and not _connection_command(name)}
    # Only the key's own lookup, once (then remembered as unknown), when keys live in Redis.
    assert ran == ({"get": 1} if redis_keys else {})
    assert stack.fake.calls == {}
