"""Sidecars sharing one Redis (standalone and Cluster): what one caches the other answers from
L2, a purge on one reaches the other's L1, and a dead Redis costs no client a failed request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import StackFactory
from tests.support.poll import eventually
from tests.support.redis_servers import Cluster, RedisServer
from tests.support.stack import Stack, background_done

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20}
TOKEN = "admin-token-for-tests"


async def post(
    stack: Stack, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            stack.openai_url + "/chat/completions", json=body or CHAT, headers=headers or {}
        ) as response,
    ):
        await response.read()
        return response.status, dict(response.headers)


async def admin(stack: Stack, method: str, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            stack.proxy.admin_url + path,
            headers={"authorization": f"Bearer {TOKEN}"},
        ) as response,
    ):
        return response.status, await response.json()


def l1_entries(stack: Stack) -> int:
    cache = stack.proxy.state.cache
    assert cache is not None
    return cache.cache.memory.entries


Sidecars = Callable[[dict[str, Any]], Awaitable[tuple[Stack, Stack]]]


@pytest.fixture
def sidecars(make_stack: StackFactory) -> Sidecars:
    """Two proxies with the same cache settings (each with its own fake upstream)."""

    async def start(redis: dict[str, Any]) -> tuple[Stack, Stack]:
        cache = {"enabled": True, "redis": redis}
        admin_token = {"token": TOKEN}
        a = await make_stack(cache=cache, admin=admin_token)
        b = await make_stack(cache=cache, admin=admin_token)
        return a, b

    return start


def standalone(redis_url: str, redis_prefix: str) -> dict[str, Any]:
    return {"url": redis_url, "prefix": redis_prefix}


async def test_a_sidecar_answers_from_l2_what_another_cached(
    sidecars: Sidecars, redis_url: str, redis_prefix: str
) -> None:
    a, b = await sidecars(standalone(redis_url, redis_prefix))
    _, first = await post(a)
    await background_done(a)
    _, second = await post(b)
    _, third = await post(b)
    assert (first["x-edgeproxy-cache"], second["x-edgeproxy-cache"]) == ("miss", "hit-l2")
    assert third["x-edgeproxy-cache"] == "hit-l1", "an L2 hit fills L1"
    assert (a.fake.calls["chat"], b.fake.calls["chat"]) == (1, 0)


async def test_the_same_holds_on_a_redis_cluster(
    sidecars: Sidecars, redis_cluster: Cluster, redis_prefix: str
) -> None:
    a, b = await sidecars({"cluster_nodes": list(redis_cluster.nodes), "prefix": redis_prefix})
    for n in range(6):  # keys spread over the cluster's slots
        body = {**CHAT, "max_tokens": 20 + n}
        await post(a, body)
        await background_done(a)
        _, headers = await post(b, body)
        assert headers["x-edgeproxy-cache"] == "hit-l2"
    assert b.fake.calls["chat"] == 0


@pytest.mark.parametrize("purge", ["key", "tag", "namespace"])
async def test_a_purge_on_one_sidecar_reaches_the_other_sidecars_memory(
    sidecars: Sidecars, redis_url: str, redis_prefix: str, purge: str
) -> None:
    a, b = await sidecars(standalone(redis_url, redis_prefix))
    _, headers = await post(a, headers={"x-edgeproxy-cache-tags": "faq"})
    await background_done(a)
    await post(b)
    assert l1_entries(b) == 1
    path = {
        "key": f"/admin/cache/entries/{headers['x-edgeproxy-cache-key']}",
        "tag": "/admin/cache/tags/faq",
        "namespace": "/admin/cache/namespaces/default",
    }[purge]
    status, body = await admin(a, "DELETE", path)
    assert status == 200 and body["removed"] == {"l1": 1, "l2": 1}
    await eventually(lambda: l1_entries(b) == 0, "B's L1 purged through pub/sub")
    _, again = await post(b)
    assert again["x-edgeproxy-cache"] == "miss"


async def test_a_purge_by_key_or_tag_defaults_to_the_sidecars_own_namespace(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache={"enabled": True, "namespace": "team-a"}, admin={"token": TOKEN})
    _, headers = await post(stack, headers={"x-edgeproxy-cache-tags": "faq"})
    await background_done(stack)
    key = headers["x-edgeproxy-cache-key"]
    status, body = await admin(stack, "DELETE", f"/admin/cache/entries/{key}")
    assert status == 200 and body["removed"]["l1"] == 1
    await post(stack, headers={"x-edgeproxy-cache-tags": "faq"})
    await background_done(stack)
    status, body = await admin(stack, "DELETE", "/admin/cache/tags/faq")
    assert status == 200 and body["removed"]["l1"] == 1


async def test_purges_need_the_admin_token(
    make_stack: StackFactory, redis_url: str, redis_prefix: str
) -> None:
    open_admin = await make_stack(cache={"enabled": True})
    async with aiohttp.ClientSession() as session:
        async with session.delete(open_admin.proxy.admin_url + "/admin/cache/tags/x") as r:
            assert r.status == 403, "no token configured: purges are refused"
        guarded = await make_stack(cache={"enabled": True}, admin={"token": TOKEN})
        async with session.delete(guarded.proxy.admin_url + "/admin/cache/tags/x") as r:
            assert r.status == 401
    status, body = await admin(guarded, "GET", "/admin/cache")
    assert status == 200 and body["l1"]["entries"] == 0


async def test_redis_killed_mid_test_costs_no_client_a_failed_request(
    sidecars: Sidecars, redis_server: RedisServer
) -> None:
    a, _ = await sidecars({"url": redis_server.url, "timeout": "100ms", "reset_timeout": "60s"})
    await post(a)
    await background_done(a)
    redis_server.kill()
    statuses = []
    for n in range(10):
        status, headers = await post(a, {**CHAT, "max_tokens": 30 + n})
        statuses.append(status)
        await background_done(a)
        status, headers = await post(a)
        statuses.append(status)
        assert headers["x-edgeproxy-cache"] == "hit-l1", "L1 keeps serving"
    assert statuses == [200] * 20
    snapshot = a.proxy.state.cache.cache.snapshot()  # type: ignore[union-attr]
    l2 = snapshot["l2"]
    assert isinstance(l2, dict) and l2["breaker"]["state"] == "open"


async def test_a_tenant_never_gets_another_tenants_entry(
    make_stack: StackFactory, redis_url: str, redis_prefix: str
) -> None:
    redis = standalone(redis_url, redis_prefix)
    a = await make_stack(cache={"enabled": True, "namespace": "tenant-a", "redis": redis})
    b = await make_stack(cache={"enabled": True, "namespace": "tenant-b", "redis": redis})
    await post(a)
    await background_done(a)
    _, headers = await post(b)
    assert headers["x-edgeproxy-cache"] == "miss"
    assert b.fake.calls["chat"] == 1
    _, again = await post(a)
    assert again["x-edgeproxy-cache"] == "hit-l1"


async def test_a_sidecar_answers_a_paraphrase_of_what_another_cached(
    make_stack: StackFactory, redis_url: str, redis_prefix: str
) -> None:
    cache = {
        "enabled": True,
        "redis": standalone(redis_url, redis_prefix),
        "semantic": {"mode": "serve", "budget": "5s"},
    }
    opted_in = {"gpt-4o": {"cache": {"semantic": True}}}
    a = await make_stack(cache=cache, model_settings=opted_in)
    b = await make_stack(cache=cache, model_settings=opted_in)
    ask = {**CHAT, "messages": [{"role": "user", "content": "How do I reset my password?"}]}
    await post(a, ask)
    await background_done(a)  # stored in L2, its vector shared through Redis
    paraphrase = {**CHAT, "messages": [{"role": "user", "content": "How can I reset my password?"}]}
    _, headers = await post(b, paraphrase)
    assert headers["x-edgeproxy-cache"] == "hit-semantic"
    assert b.fake.calls["chat"] == 0
