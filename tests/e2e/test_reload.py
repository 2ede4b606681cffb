"""A configuration reload under load: no request fails, the new routing takes over, and what
did not change (provider pools, breaker state) is the same object after the swap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from edgeproxy.app import ProxyServer
from edgeproxy.config import load
from tests.conftest import _tasks_left
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.poll import eventually
from tests.support.stack import OPENAI_KEY

FIRST, SECOND = "from the first upstream", "from the second upstream"
CLIENTS, PER_CLIENT, SWAP_AFTER = 16, 24, 96
UPSTREAM = "up/gpt-4o-2024-08-06"  # the deployment on the fake upstream


def config_text(
    fake: FakeUpstream,
    chat: str,
    up_timeouts: dict[str, str] | None = None,
    grace: str = "5s",
    gpt_4o_also: str | None = None,
) -> str:
    """`chat` on one of two mock upstreams (streams in 4 chunks 2 ms apart, so some are in
    flight at the swap); `gpt-4o` on the fake upstream."""
    mock = {"stream_chunks": 4, "chunk_interval": "2ms"}
    raw: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": grace},
        "admin": {"host": "127.0.0.1", "port": 0},
        "reload": {"interval": "10ms"},
        "cache": {"enabled": False},
        "routing": {"retry": {"max_attempts": 1}},
        "providers": {
            "up": {
                "kind": "openai",
                "base_url": fake.url + "/v1",
                "api_key": OPENAI_KEY,
                "timeouts": up_timeouts or {"first_byte": "10s"},
            },
            "first": {"kind": "mock", "mock": {**mock, "reply": FIRST}},
            "second": {"kind": "mock", "mock": {**mock, "reply": SECOND}},
        },
        "models": {
            "chat": {"deployments": [{"provider": chat}]},
            "gpt-4o": {"deployments": [{"provider": "up", "model": "gpt-4o-2024-08-06"}]},
        },
    }
    if gpt_4o_also is not None:
        raw["models"]["gpt-4o"]["deployments"].insert(0, {"provider": "up", "model": gpt_4o_also})
    return yaml.safe_dump(raw)


@dataclass
class Served:
    proxy: ProxyServer
    fake: FakeUpstream
    path: Path
    session: aiohttp.ClientSession = field(default_factory=aiohttp.ClientSession)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    before = asyncio.all_tasks()
    fake = FakeUpstream(seed=0)
    await fake.start()
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text(fake, "first"))
    proxy = ProxyServer(load(path, {}), config_path=path, env={})
    await proxy.start()
    served = Served(proxy, fake, path)
    try:
        yield served
    finally:
        await served.session.close()
        await proxy.stop()
        await fake.close()
    leftover = await _tasks_left(before)
    assert not leftover, f"tasks left running after the test: {leftover}"


def streamed_text(body: bytes) -> str:
    parts = []
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            for choice in orjson.loads(line[6:])["choices"]:
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


async def ask(served: Served, model: str, prompt: str, *, stream: bool) -> tuple[int, str]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    url = served.proxy.url + "/v1/chat/completions"
    async with served.session.post(url, json=body) as response:
        raw = await response.read()
    if response.status != 200:
        return response.status, raw.decode()
    if stream:
        return 200, streamed_text(raw)
    return 200, orjson.loads(raw)["choices"][0]["message"]["content"]


async def test_a_reload_under_load_fails_no_request_and_keeps_what_did_not_change(
    served: Served,
) -> None:
    proxy = served.proxy
    assert (await ask(served, "gpt-4o", "warm the pool", stream=False))[0] == 200
    pools = dict(proxy.state.providers)
    health = proxy.state.table.health[UPSTREAM]
    health.breaker.trip(proxy.state.pipeline.clock(), 3600.0)  # open: it must stay open
    answers: list[list[tuple[int, str]]] = [[] for _ in range(CLIENTS)]
    done = 0

    async def client(number: int) -> None:
        nonlocal done
        for turn in range(PER_CLIENT * 8):  # bounded: the load outlasts the reload
            if turn >= PER_CLIENT and proxy.reloader.status.counts["success"]:
                return
            prompt = f"client {number} turn {turn}"
            answers[number].append(await ask(served, "chat", prompt, stream=number % 2 == 0))
            done += 1
            if done == SWAP_AFTER:
                served.path.write_text(config_text(served.fake, "second"))

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))

    failed = [(s, text) for turns in answers for s, text in turns if s != 200]
    assert failed == []
    assert proxy.reloader.status.counts == {"success": 1, "failure": 0, "unchanged": 0}
    for turns in answers:  # each client's requests run one after another: once the new
        texts = [text for _, text in turns]  # routing answered, the old one never does again
        assert set(texts) <= {FIRST, SECOND}
        assert FIRST not in texts[texts.index(SECOND) :] if SECOND in texts else True
    assert await ask(served, "chat", "after", stream=False) == (200, SECOND)
    assert all(proxy.state.providers[name] is pool for name, pool in pools.items())
    assert proxy.state.table.health[UPSTREAM] is health
    assert health.breaker.state.value == "open"


async def test_an_in_flight_stream_finishes_on_the_provider_a_reload_replaced(
    served: Served,
) -> None:
    proxy, fake = served.proxy, served.fake
    fake.script("chat", Reply(text="one two three four five six", chunks=6, chunk_delay=0.05))
    old = proxy.state.providers["up"]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    url = proxy.url + "/v1/chat/completions"
    async with served.session.post(url, json=body) as response:
        assert response.status == 200
        first = await response.content.readany()  # the stream is under way
        served.path.write_text(config_text(fake, "first", {"first_byte": "20s"}))
        await eventually(lambda: proxy.state.providers["up"] is not old, "the reload")
        assert old.in_use == 1, "the old provider is kept open for the stream in flight"
        rest = await response.read()
    assert streamed_text(first + rest) == "one two three four five six"
    await eventually(lambda: old.in_use == 0 and old._pool is None, "its close")
    assert await ask(served, "gpt-4o", "again", stream=False) == (
        200,
        "Hello from the fake upstream.",
    )


async def test_a_stream_longer_than_the_grace_outlives_the_reload_that_replaced_its_provider(
    served: Served,
) -> None:
    """The grace bounds a stop, not a reload: a reasoning model's long stream on a provider a
    reload replaced runs to its end, however long (its provider's own deadlines bound it)."""
    proxy, fake = served.proxy, served.fake
    words = " ".join(f"w{i}" for i in range(10))
    fake.script("chat", Reply(text=words, chunks=10, chunk_delay=0.1))
    served.path.write_text(config_text(fake, "first", grace="200ms"))  # keeps `up`
    await eventually(lambda: proxy.reloader.status.counts["success"] == 1, "the short grace")
    old = proxy.state.providers["up"]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with served.session.post(proxy.url + "/v1/chat/completions", json=body) as response:
        head = await response.content.readany()
        served.path.write_text(config_text(fake, "first", {"first_byte": "20s"}, grace="200ms"))
        await eventually(lambda: proxy.state.providers["up"] is not old, "the reload")
        rest = await response.read()  # a second of stream: five times the grace
    assert streamed_text(head + rest) == words
    await eventually(lambda: old.in_use == 0 and old._pool is None, "its close")


async def test_a_provider_handed_on_by_one_reload_and_replaced_by_the_next_outlives_its_streams(
    served: Served,
) -> None:
    """Streams started under three configurations: `up` is kept by the second and replaced by
    the third, and stays open until the last stream on it, the second's, has ended."""
    proxy, fake = served.proxy, served.fake
    words = " ".join(f"w{i}" for i in range(12))
    fake.script(
        "chat",
        Reply(text="one two three", chunks=3, chunk_delay=0.05),
        Reply(text=words, chunks=12, chunk_delay=0.05),
    )
    old = proxy.state.providers["up"]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    url = proxy.url + "/v1/chat/completions"
    async with served.session.post(url, json=body) as first:
        head = await first.content.readany()
        served.path.write_text(config_text(fake, "second"))  # keeps `up`
        await eventually(lambda: proxy.reloader.status.counts["success"] == 1, "the first")
        assert proxy.state.providers["up"] is old
        async with served.session.post(url, json=body) as second:
            second_head = await second.content.readany()
            served.path.write_text(config_text(fake, "second", {"first_byte": "20s"}))
            await eventually(lambda: proxy.state.providers["up"] is not old, "the second")
            assert streamed_text(head + await first.read()) == "one two three"
            assert old.in_use == 1, "the second configuration's stream still reads from it"
            assert streamed_text(second_head + await second.read()) == words
    await eventually(lambda: old.in_use == 0 and old._pool is None, "its close")


async def test_a_responses_follow_up_still_finds_its_deployment_after_a_reload(
    served: Served,
) -> None:
    """The answers remembered for follow-ups (routing/affinity.py) outlive a reload that adds a
    deployment beside the one that gave them."""
    proxy, fake = served.proxy, served.fake
    url = proxy.url + "/v1/responses"
    async with served.session.post(url, json={"model": "gpt-4o", "input": "Start"}) as first:
        answer_id = (await first.json())["id"]
    served.path.write_text(config_text(fake, "first", gpt_4o_also="gpt-4o-west"))
    await eventually(lambda: proxy.reloader.status.counts["success"] == 1, "the reload")
    follow_up = {"model": "gpt-4o", "input": "Go on", "previous_response_id": answer_id}
    for _ in range(12):
        async with served.session.post(url, json=follow_up) as response:
            assert response.status == 200
        assert fake.requests[-1].json["model"] == "gpt-4o-2024-08-06"
    models = set()
    for _ in range(16):
        async with served.session.post(url, json={"model": "gpt-4o", "input": "New"}) as response:
            assert response.status == 200
        models.add(fake.requests[-1].json["model"])
    assert models == {"gpt-4o-west", "gpt-4o-2024-08-06"}  # the reload did take effect
