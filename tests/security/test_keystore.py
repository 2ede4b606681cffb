"""Virtual keys kept in Redis: created, listed, rotated and revoked through the admin API, found
by every sidecar, revoked everywhere within a second, and what happens when Redis is away."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import redis

from edgeproxy.background import Background
from edgeproxy.config import parse
from edgeproxy.config_reader import ConfigError
from edgeproxy.errors import ProxyError
from edgeproxy.security.auth import hash_key
from edgeproxy.security.key_records import InvalidKeyRequest, KeyRecord, KeyRules
from edgeproxy.security.keystore import (
    QUIET_AFTER_FAILURE,
    TRUST_UNHEARD,
    UNKNOWN_FOR,
    KeyConflict,
    KeyStoreUnavailable,
    RedisKeyStore,
)
from edgeproxy.security.settings import LimitSettings, SharedState
from edgeproxy.security.shared_redis import connect
from tests.conftest import StackFactory
from tests.support.clock import ManualClock
from tests.support.fake_upstream import Reply
from tests.support.poll import eventually
from tests.support.redis_servers import (
    SHARED_HOST,
    SHARED_PORT,
    Cluster,
    RedisServer,
    require_redis,
)
from tests.support.stack import Stack

TOKEN = "admin-token-0123456789"
CONFIGURED_KEY = "sk-ep-configured-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Say hello"}]
GROUPS = frozenset({"gpt-4o", "claude-sonnet"})
RULES = KeyRules(groups=GROUPS, policies={}, configured_ids=frozenset({"configured"}))


# --- Redis for these tests -------------------------------------------------------------------


@pytest.fixture
def prefix() -> Iterator[str]:
    """A prefix no other test uses; its keys are removed from the machine's Redis after."""
    name = f"edgeproxy-test-{uuid.uuid4().hex[:12]}"
    yield name
    if _shared_redis_up():
        with _shared_client() as client:
            names = list(client.scan_iter(match=f"{{{name}:keys}}*", count=1000))
            if names:
                client.unlink(*names)


def _shared_redis_up() -> bool:
    try:
        with _shared_client() as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _shared_client() -> redis.Redis:
    return redis.Redis(host=SHARED_HOST, port=SHARED_PORT, socket_timeout=5.0)


@pytest.fixture
def shared_url() -> str:
    require_redis(SHARED_HOST, SHARED_PORT)
    return f"redis://{SHARED_HOST}:{SHARED_PORT}/0"


def gets(server: RedisServer) -> int:
    """How many GETs the server has answered."""
    with server.client() as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


# --- the store on its own --------------------------------------------------------------------


class Stores:
    """Stores on one Redis, each with its own client, closed after the test."""

    def __init__(self, background: Background) -> None:
        self.background = background
        self.opened: list[tuple[RedisKeyStore, Any]] = []

    def open(
        self, settings: SharedState, clock: ManualClock | None = None, *, listen: bool = False
    ) -> RedisKeyStore:
        client = connect(settings, "test")
        store = RedisKeyStore(client, settings, RULES, clock=clock or ManualClock())
        if listen:
            store.listen(self.background)
        self.opened.append((store, client))
        return store


@pytest.fixture
async def stores() -> AsyncIterator[Stores]:
    made = Stores(Background())
    yield made
    for store, client in made.opened:
        await store.close()
        await client.aclose()


async def test_a_created_key_is_found_by_its_digest_only(
    stores: Stores, shared_url: str, prefix: str
) -> None:
    store = stores.open(SharedState(shared_url, prefix))
    key, record = await store.create(
        {"id": "web", "team": "shop", "models": ["gpt-4o"], "limits": {"rpm": 60}}
    )
    found = await store.find(hash_key(key))
    assert found == record.settings
    assert found is not None
    assert found.models == frozenset({"gpt-4o"})
    assert found.limits == LimitSettings(rpm=60)
    assert found.tenant == "shop"
    assert await store.find(hash_key(key + "x")) is None


async def test_unknown_keys_reach_redis_once_per_negative_period(
    stores: Stores, redis_server: RedisServer, prefix: str
) -> None:
    clock = ManualClock()
    store = stores.open(SharedState(redis_server.url, prefix), clock)
    guess = hash_key("sk-ep-made-up")
    before = gets(redis_server)
    for _ in range(20):
        assert await store.find(guess) is None
    assert gets(redis_server) == before + 1
    clock.advance(UNKNOWN_FOR)
    assert await store.find(guess) is None
    assert gets(redis_server) == before + 2


async def test_concurrent_lookups_of_one_digest_share_one_get(
    stores: Stores, redis_server: RedisServer, prefix: str
) -> None:
    store = stores.open(SharedState(redis_server.url, prefix))
    key, record = await store.create({"id": "web"})
    before = gets(redis_server)
    found = await asyncio.gather(*(store.find(hash_key(key)) for _ in range(50)))
    assert found == [record.settings] * 50
    assert gets(redis_server) == before + 1


async def test_a_found_key_is_asked_again_after_a_second_without_the_channel(
    stores: Stores, redis_server: RedisServer, prefix: str
) -> None:
    clock = ManualClock()
    store = stores.open(SharedState(redis_server.url, prefix), clock)  # not listening
    key, _ = await store.create({"id": "web"})
    digest = hash_key(key)
    before = gets(redis_server)
    for _ in range(5):
        assert await store.find(digest) is not None
    assert gets(redis_server) == before + 1
    clock.advance(TRUST_UNHEARD)
    assert await store.find(digest) is not None
    assert gets(redis_server) == before + 2


async def test_the_key_itself_is_stored_nowhere(
    stores: Stores, shared_url: str, prefix: str
) -> None:
    store = stores.open(SharedState(shared_url, prefix))
    key, record = await store.create({"id": "web", "metadata": {"owner": "web-team"}})
    rotated, _ = await store.rotate("web") or ("", record)
    with _shared_client() as client:
        names = list(client.scan_iter(match=f"{{{prefix}:keys}}*"))
        values = [client.dump(name) or b"" for name in names]
    assert len(names) == 2  # the id index and the live digest's record
    for secret in (key, rotated):
        assert not any(secret.encode() in value for value in values)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"id": "a b"}, "key.id: expected letters"),
        ({"team": "shop"}, "key.id: required"),
        ({"id": "web", "models": ["nope"]}, 'key.models: no model group named "nope"'),
        ({"id": "web", "policy": "strict"}, 'key.policy: no guardrails policy named "strict"'),
        ({"id": "web", "limits": {"rpm": 0}}, "key.limits.rpm: expected an integer >= 1"),
        ({"id": "web", "budget": {"daily_usd": -1}}, "key.budget.daily_usd: expected a number"),
        ({"id": "web", "metadata": {"n": 1}}, "key.metadata.n: expected a string"),
        ({"id": "web", "colour": "blue"}, "key.colour: unknown field"),
        ({"id": "web", "hash": "0" * 64}, "key.hash: not accepted"),
        ({"id": "configured"}, "key.id: 'configured' is the id of a key in the configuration"),
        (["web"], "key: expected a JSON object"),
    ],
)
def test_a_new_key_is_checked_like_a_configured_one(fields: Any, problem: str) -> None:
    with pytest.raises(InvalidKeyRequest) as caught:
        RULES.template(fields, "0" * 64)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_environment_references_in_a_request_are_taken_literally() -> None:
    settings = RULES.template({"id": "web", "metadata": {"note": "${HOME}"}}, "0" * 64)
    assert settings.metadata == {"note": "${HOME}"}


def test_a_record_round_trips_through_json() -> None:
    settings = RULES.template(
        {
            "id": "web",
            "team": "shop",
            "models": ["gpt-4o"],
            "limits": {"rpm": 60, "tpm": 1000, "parallel": 4},
            "budget": {"daily_usd": 5, "monthly_usd": 100},
            "cache_namespace": "shop-web",
            "metadata": {"owner": "web-team"},
        },
        "ab" * 32,
    )
    record = KeyRecord(settings, created_at=1_700_000_000.0, revoked_at=1_700_000_100.0)
    assert KeyRecord.decode(record.encode()) == record


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b'{"id": "web"}',
        b'{"id": "web", "digest": "00", "created_at": "yesterday"}',
        b'{"id": "web", "digest": "00", "created_at": 1, "models": "gpt-4o"}',
        b'{"id": "web", "digest": "00", "created_at": 1, "limits": {"rpm": 0}}',
        b'{"id": "web", "digest": "00", "created_at": 1, "metadata": {"n": 1}}',
    ],
)
def test_a_record_not_written_by_the_store_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        KeyRecord.decode(data)


async def test_an_unreadable_record_is_an_unknown_key(
    stores: Stores, shared_url: str, prefix: str
) -> None:
    store = stores.open(SharedState(shared_url, prefix))
    digest = hash_key("sk-ep-planted")
    with _shared_client() as client:
        client.set(store.record_name(digest), b"not json")
    assert await store.find(digest) is None


async def test_ids_are_never_reused_and_revoked_keys_cannot_be_rotated(
    stores: Stores, shared_url: str, prefix: str
) -> None:
    store = stores.open(SharedState(shared_url, prefix))
    await store.create({"id": "web"})
    with pytest.raises(KeyConflict):
        await store.create({"id": "web"})
    revoked = await store.revoke("web")
    assert revoked is not None
    assert revoked.revoked_at is not None
    assert await store.revoke("web") == revoked  # revoking again changes nothing
    with pytest.raises(KeyConflict):
        await store.rotate("web")
    with pytest.raises(KeyConflict):
        await store.create({"id": "web"})
    assert await store.revoke("nobody") is None
    assert await store.rotate("nobody") is None
    assert await store.get("nobody") is None


# --- Redis away ------------------------------------------------------------------------------


async def test_redis_down_keeps_recent_keys_and_answers_others_503(
    stores: Stores, redis_server: RedisServer, prefix: str
) -> None:
    clock = ManualClock()
    store = stores.open(SharedState(redis_server.url, prefix), clock)
    key, record = await store.create({"id": "web"})
    assert await store.find(hash_key(key)) == record.settings
    redis_server.kill()
    clock.advance(TRUST_UNHEARD)  # the cached answer must be asked again
    assert await store.find(hash_key(key)) == record.settings
    with pytest.raises(ProxyError) as caught:
        await store.find(hash_key("sk-ep-unknown"))
    assert (caught.value.status, caught.value.code) == (503, "key_store_unavailable")
    assert caught.value.retryable
    with pytest.raises(KeyStoreUnavailable):
        await store.create({"id": "batch"})
    redis_server.restart()
    clock.advance(QUIET_AFTER_FAILURE)
    assert await store.find(hash_key("sk-ep-unknown")) is None  # Redis asked again


async def test_a_key_seen_revoked_is_not_revived_by_an_outage(
    stores: Stores, redis_server: RedisServer, prefix: str
) -> None:
    clock = ManualClock()
    settings = SharedState(redis_server.url, prefix)
    admin, store = stores.open(settings), stores.open(settings, clock)  # neither listens
    key, record = await admin.create({"id": "web"})
    assert await store.find(hash_key(key)) == record.settings
    await admin.revoke("web")
    clock.advance(TRUST_UNHEARD)
    assert await store.find(hash_key(key)) is None
    redis_server.kill()
    clock.advance(UNKNOWN_FOR)
    with pytest.raises(ProxyError):
        await store.find(hash_key(key))


async def test_a_hung_redis_answers_within_the_timeout(
    stores: Stores, redis_server: RedisServer, prefix: str
) -> None:
    store = stores.open(SharedState(redis_server.url, prefix, timeout=0.05))
    await store.find(hash_key("sk-ep-first"))  # connected before the server hangs
    redis_server.pause()
    try:
        with pytest.raises(ProxyError) as caught:
            await store.find(hash_key("sk-ep-second"))
        assert caught.value.status == 503
        assert store.failures == 1
    finally:
        redis_server.resume()


# --- the channel -----------------------------------------------------------------------------


async def test_a_resubscription_forgets_every_cached_key(
    stores: Stores, redis_server: RedisServer, prefix: str
) -> None:
    """Messages sent while the listener is away are lost: a key revoked then must not stay
    cached for a minute."""
    store = stores.open(SharedState(redis_server.url, prefix), listen=True)
    await eventually(lambda: store.listening, "the store to subscribe")
    key, record = await store.create({"id": "web"})
    assert await store.find(hash_key(key)) == record.settings
    with redis_server.client() as client:
        client.delete(store.record_name(hash_key(key)))  # a change whose message was lost
        client.client_kill_filter(_type="pubsub")
    await eventually(lambda: store.listening and store.subscriptions == 2, "a resubscription")
    assert await store.find(hash_key(key)) is None


async def test_cluster_keeps_the_store_in_one_slot_and_hears_changes(
    stores: Stores, redis_cluster: Cluster, prefix: str
) -> None:
    settings = SharedState(f"redis://{redis_cluster.nodes[1]}", prefix, timeout=1.0, cluster=True)
    admin = stores.open(settings)
    sidecar = stores.open(settings, listen=True)
    await eventually(lambda: sidecar.listening, "the sidecar to subscribe")
    key, record = await admin.create({"id": "web", "team": "shop"})
    await eventually(lambda: sidecar.heard == 1, "the creation to reach the sidecar")
    assert await sidecar.find(hash_key(key)) == record.settings
    new_key, rotated = await admin.rotate("web") or ("", record)
    await eventually(lambda: sidecar.heard == 2, "the rotation to reach the sidecar")
    assert await sidecar.find(hash_key(key)) is None
    assert await sidecar.find(hash_key(new_key)) == rotated.settings
    await admin.revoke("web")
    await eventually(lambda: sidecar.heard == 3, "the revocation to reach the sidecar")
    assert await sidecar.find(hash_key(new_key)) is None
    assert [r.id for r in await admin.records()] == ["web"]


# --- through the proxy and its admin API -----------------------------------------------------


def sections(url: str, prefix: str) -> dict[str, Any]:
    return {
        "auth": {
            "mode": "keys",
            "redis_keys": True,
            "keys": [{"id": "configured", "hash": hash_key(CONFIGURED_KEY)}],
        },
        "redis": {"url": url, "prefix": prefix},
    }


async def sidecar(
    make_stack: StackFactory, url: str, prefix: str, token: str | None = TOKEN
) -> Stack:
    admin = {"token": token} if token is not None else {}
    stack = await make_stack(sections=sections(url, prefix), admin=admin)
    stack.fake.default["chat"] = Reply(text="Hello there!")
    keys = stack.proxy.state.guards.keys
    assert keys is not None
    await eventually(lambda: keys.listening, "the key store to subscribe")
    return stack


async def call_admin(
    stack: Stack, method: str, path: str, body: Any = None, token: str | None = TOKEN
) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, stack.proxy.admin_url + path, json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


async def chat(stack: Stack, key: str, model: str = "gpt-4o") -> str | None:
    async with openai.AsyncOpenAI(base_url=stack.openai_url, api_key=key, max_retries=0) as sdk:
        reply = await sdk.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    return reply.choices[0].message.content


async def refused(stack: Stack, key: str) -> int:
    with pytest.raises(openai.APIStatusError) as caught:
        await chat(stack, key)
    return caught.value.status_code


@pytest.fixture
async def proxy(make_stack: StackFactory, shared_url: str, prefix: str) -> Stack:
    return await sidecar(make_stack, shared_url, prefix)


async def test_a_key_created_through_the_admin_api_works_with_the_openai_sdk(
    proxy: Stack,
) -> None:
    status, created = await call_admin(
        proxy,
        "POST",
        "/admin/keys",
        {"id": "web", "team": "shop", "models": ["gpt-4o"], "metadata": {"owner": "web"}},
    )
    assert status == 201
    key = created["key"]
    assert await chat(proxy, key) == "Hello there!"
    assert await refused_model(proxy, key) == 403
    assert await chat(proxy, CONFIGURED_KEY) == "Hello there!"  # configured keys still work


async def refused_model(stack: Stack, key: str) -> int:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await chat(stack, key, model="claude-sonnet")
    return caught.value.status_code


async def test_listings_show_settings_but_never_the_key_or_its_hash(proxy: Stack) -> None:
    _, created = await call_admin(proxy, "POST", "/admin/keys", {"id": "web", "team": "shop"})
    await call_admin(proxy, "POST", "/admin/keys", {"id": "batch"})
    digest = hash_key(created["key"])
    status, listing = await call_admin(proxy, "GET", "/admin/keys")
    assert status == 200
    assert [entry["id"] for entry in listing["keys"]] == ["batch", "web"]
    _, one = await call_admin(proxy, "GET", "/admin/keys/web")
    assert one == listing["keys"][1]
    assert one["hash_prefix"] == digest[:8]
    assert (one["team"], one["status"]) == ("shop", "active")
    shown = orjson.dumps([listing, one])
    assert created["key"].encode() not in shown
    assert digest.encode() not in shown


async def test_a_revocation_reaches_another_sidecar_within_a_second(
    make_stack: StackFactory, shared_url: str, prefix: str
) -> None:
    first = await sidecar(make_stack, shared_url, prefix)
    second = await sidecar(make_stack, shared_url, prefix)
    second_keys = second.proxy.state.guards.keys
    assert second_keys is not None
    _, created = await call_admin(first, "POST", "/admin/keys", {"id": "web"})
    key = created["key"]
    await eventually(lambda: second_keys.heard == 1, "the creation to arrive")
    assert await chat(second, key) == "Hello there!"  # now cached on the second sidecar
    status, revoked = await call_admin(first, "DELETE", "/admin/keys/web")
    assert (status, revoked["status"]) == (200, "revoked")
    await eventually(lambda: second_keys.heard == 2, "the revocation to arrive", within=1.0)
    assert await refused(second, key) == 401
    assert await refused(first, key) == 401


async def test_a_rotation_retires_the_old_key_and_starts_the_new(proxy: Stack) -> None:
    _, created = await call_admin(proxy, "POST", "/admin/keys", {"id": "web"})
    assert await chat(proxy, created["key"]) == "Hello there!"
    status, rotated = await call_admin(proxy, "POST", "/admin/keys/web/rotate")
    assert status == 200
    assert rotated["key"] != created["key"]
    assert rotated["rotated_at"] is not None
    assert await refused(proxy, created["key"]) == 401
    assert await chat(proxy, rotated["key"]) == "Hello there!"


@pytest.mark.parametrize(
    ("request_", "status", "says"),
    [
        (("POST", "/admin/keys", {"id": "web", "models": ["nope"]}), 400, "key.models: no model"),
        (("POST", "/admin/keys", {"id": "configured"}), 400, "key.id: 'configured' is the id"),
        (("GET", "/admin/keys/nobody", None), 404, "no key with id 'nobody'"),
        (("DELETE", "/admin/keys/nobody", None), 404, "no key with id 'nobody'"),
        (("POST", "/admin/keys/nobody/rotate", None), 404, "no key with id 'nobody'"),
    ],
)
async def test_admin_errors_say_what_is_wrong(
    proxy: Stack, request_: tuple[str, str, Any], status: int, says: str
) -> None:
    answered, error = await call_admin(proxy, *request_)
    assert answered == status
    assert says in orjson.dumps(error).decode()


async def test_a_body_that_is_not_json_is_a_400(proxy: Stack) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            proxy.proxy.admin_url + "/admin/keys",
            data=b"{nope",
            headers={"authorization": f"Bearer {TOKEN}"},
        ) as answer,
    ):
        assert answer.status == 400
        assert "not valid JSON" in (await answer.json())["error"]


async def test_a_taken_id_is_a_409(proxy: Stack) -> None:
    await call_admin(proxy, "POST", "/admin/keys", {"id": "web"})
    status, error = await call_admin(proxy, "POST", "/admin/keys", {"id": "web"})
    assert status == 409
    assert "'web' exists" in error["error"]


ROUTES = [
    ("POST", "/admin/keys", {"id": "web"}),
    ("GET", "/admin/keys", None),
    ("GET", "/admin/keys/web", None),
    ("POST", "/admin/keys/web/rotate", None),
    ("DELETE", "/admin/keys/web", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN[:-1]])
async def test_a_missing_or_wrong_admin_token_is_a_401(
    proxy: Stack, method: str, path: str, body: Any, token: str | None
) -> None:
    status, error = await call_admin(proxy, method, path, body, token=token)
    assert status == 401
    assert "admin token required" in error["error"]


async def test_without_an_admin_token_configured_keys_cannot_be_managed(
    make_stack: StackFactory, shared_url: str, prefix: str
) -> None:
    stack = await sidecar(make_stack, shared_url, prefix, token=None)
    for method, path, body in ROUTES:
        status, error = await call_admin(stack, method, path, body, token="anything")
        assert status == 403, (method, path)
        assert "admin.token" in error["error"]


async def test_with_redis_down_a_sidecar_answers_unknown_keys_503(
    make_stack: StackFactory, redis_server: RedisServer, prefix: str
) -> None:
    stack = await sidecar(make_stack, redis_server.url, prefix)
    redis_server.kill()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            stack.openai_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": MESSAGES},
            headers={"authorization": "Bearer sk-ep-never-seen"},
        ) as answer,
    ):
        assert answer.status == 503
        assert answer.headers["retry-after"] == "1"
        error = (await answer.json())["error"]
    assert error["code"] == "key_store_unavailable"
    assert await chat(stack, CONFIGURED_KEY) == "Hello there!"  # no Redis needed
    status, _ = await call_admin(stack, "POST", "/admin/keys", {"id": "web"})
    assert status == 503
    assert stack.fake.calls == {"chat": 1}


# --- configuration ---------------------------------------------------------------------------


def test_the_shared_redis_may_be_a_cluster() -> None:
    config = parse(
        {
            "providers": {"mock": {"kind": "mock"}},
            "redis": {"url": "redis://10.0.0.1:7000", "cluster": True},
        },
        {},
    )
    assert config.security.redis.cluster


def test_a_cluster_is_not_reached_over_a_unix_socket() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(
            {
                "providers": {"mock": {"kind": "mock"}},
                "redis": {"url": "unix:///run/redis.sock", "cluster": True},
            },
            {},
        )
    assert any(p.startswith("redis.url: a Redis Cluster") for p in caught.value.problems)
