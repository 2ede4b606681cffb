"""Hot reload of the configuration file: its triggers (the file, SIGHUP, the admin endpoint),
a refused file keeping the running configuration, and what the metrics and `/readyz` say."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from edgeproxy.app import ProxyServer
from edgeproxy.background import Background
from edgeproxy.config import load
from edgeproxy.config_watch import digest
from edgeproxy.reload import Reloader, ReloadResult, restart_only
from tests.support.configmap import ConfigMapVolume
from tests.support.poll import eventually
from tests.test_cli import run_proxy

TOKEN = "admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
FIRST, SECOND = "from the first upstream", "from the second upstream"


def config_text(
    provider: str = "first", *, reload: dict[str, Any] | None = None, **sections: Any
) -> str:
    """Two mock upstreams answering differently, and the model group `chat` on one of them
    (the cache off: every answer comes from the upstream the group names now)."""
    raw: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": "5s"},
        "admin": {"host": "127.0.0.1", "port": 0, "token": TOKEN},
        "reload": {"interval": "10ms", **(reload or {})},
        "cache": {"enabled": False},
        "providers": {
            "first": {"kind": "mock", "mock": {"reply": FIRST}},
            "second": {"kind": "mock", "mock": {"reply": SECOND}},
        },
        "models": {"chat": {"deployments": [{"provider": provider}]}},
    }
    raw.update(sections)
    return yaml.safe_dump(raw)


@asynccontextmanager
async def running(path: Path) -> AsyncIterator[ProxyServer]:
    proxy = ProxyServer(load(path, {}), config_path=path, env={})
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def answer(session: aiohttp.ClientSession, proxy: ProxyServer) -> str:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    async with session.post(proxy.url + "/v1/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        content: str = (await response.json())["choices"][0]["message"]["content"]
        return content


async def admin_reload(session: aiohttp.ClientSession, proxy: ProxyServer) -> dict[str, Any]:
    async with session.post(proxy.admin_url + "/admin/reload", headers=AUTH) as response:
        result: dict[str, Any] = await response.json()
        assert response.status == (200 if result["result"] in ("applied", "unchanged") else 422)
        return result


async def scrape(session: aiohttp.ClientSession, proxy: ProxyServer) -> str:
    async with session.get(proxy.admin_url + "/metrics") as response:
        return await response.text()


async def test_a_rewritten_file_is_applied_to_new_requests(tmp_path: Path) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first"))
    async with running(path) as proxy, aiohttp.ClientSession() as session:
        assert await answer(session, proxy) == FIRST
        path.write_text(config_text("second"))
        await eventually(lambda: proxy.reloader.status.counts["success"] == 1, "the reload")
        assert await answer(session, proxy) == SECOND


async def test_a_kubernetes_configmap_swap_is_applied(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "config")
    volume.update({"edgeproxy.yaml": config_text("first")})
    async with running(volume.path("edgeproxy.yaml")) as proxy, aiohttp.ClientSession() as s:
        assert await answer(s, proxy) == FIRST
        volume.update({"edgeproxy.yaml": config_text("second")})
        await eventually(lambda: proxy.reloader.status.counts["success"] == 1, "the reload")
        assert await answer(s, proxy) == SECOND


async def test_readiness_names_the_refused_fields_but_never_quotes_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first", reload={"enabled": False}))
    leaked = "hunter2-not-yet-a-known-secret"
    async with running(path) as proxy, aiohttp.ClientSession() as session:
        text = config_text("first", reload={"enabled": False})
        path.write_text(text + f"cache: {{redis: {{url: 'redis//:{leaked}@redis:6379'}}}}\n")
        assert (await admin_reload(session, proxy))["result"] == "invalid"
        async with session.get(proxy.admin_url + "/readyz") as response:
            body = await response.text()
    assert "cache.redis.url" in body
    assert leaked not in body


async def test_an_invalid_file_keeps_the_running_configuration_and_says_why(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first", reload={"enabled": False}))
    async with running(path) as proxy, aiohttp.ClientSession() as session:
        path.write_text(config_text("nowhere", reload={"enabled": False}))
        result = await admin_reload(session, proxy)
        assert result["result"] == "invalid"
        assert any("models.chat.deployments[0].provider" in p for p in result["problems"])
        assert await answer(session, proxy) == FIRST
        async with session.get(proxy.admin_url + "/readyz") as response:
            assert response.status == 200, "the running configuration still serves"
            fields = (await response.json())["reload"]["fields"]
            assert "models.chat.deployments[0].provider" in fields
        metrics = await scrape(session, proxy)
        assert "edgeproxy_config_reload_failed 1.0" in metrics
        assert 'edgeproxy_config_reloads_total{result="failure"} 1.0' in metrics

        path.write_text(config_text("second", reload={"enabled": False}))
        assert (await admin_reload(session, proxy))["result"] == "applied"
        assert await answer(session, proxy) == SECOND
        async with session.get(proxy.admin_url + "/readyz") as response:
            assert await response.json() == {"status": "ready"}
        metrics = await scrape(session, proxy)
        assert "edgeproxy_config_reload_failed 0.0" in metrics
        assert 'edgeproxy_config_reloads_total{result="success"} 1.0' in metrics


async def test_the_admin_routes_follow_the_reloaded_configuration(tmp_path: Path) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first", reload={"enabled": False}))
    async with running(path) as proxy, aiohttp.ClientSession(headers=AUTH) as session:
        async with session.get(proxy.admin_url + "/admin/cache") as response:
            assert response.status == 404, "the cache is off"
        cache_on = {"enabled": True, "namespace": "reloaded"}
        path.write_text(config_text("second", reload={"enabled": False}, cache=cache_on))
        assert (await admin_reload(session, proxy))["result"] == "applied"
        async with session.get(proxy.admin_url + "/admin/cache") as response:
            assert response.status == 200
        async with session.get(proxy.admin_url + "/admin/routing") as response:
            (group,) = (await response.json())["groups"]
            assert [d["provider"] for d in group["deployments"]] == ["second"]
        async with session.get(proxy.admin_url + "/admin/stats") as response:
            assert response.status == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"authorization": "Bearer wrong-token-0123456789"}, 401), (AUTH, 200)],
)
async def test_the_reload_endpoint_takes_the_admin_token(
    tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text())
    async with running(path) as proxy, aiohttp.ClientSession() as session:
        async with session.post(proxy.admin_url + "/admin/reload", headers=headers) as response:
            assert response.status == status
            if status == 200:
                assert (await response.json())["result"] == "unchanged"


async def test_settings_that_need_a_restart_are_reported_and_keep_their_values(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text(reload={"enabled": False}))
    async with running(path) as proxy, aiohttp.ClientSession() as session:
        moved = {"host": "127.0.0.1", "port": 0, "workers": 2, "shutdown_grace": "5s"}
        path.write_text(config_text("second", reload={"enabled": False}, server=moved))
        result = await admin_reload(session, proxy)
        assert result["result"] == "applied"
        assert result["needs_restart"] == ["server.workers"]
        assert proxy.config.server.workers == 1
        assert await answer(session, proxy) == SECOND


def test_restart_only_settings_alone_make_no_change(tmp_path: Path) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text())
    running_config = load(path, {})
    path.write_text(config_text(admin={"host": "127.0.0.1", "port": 9999, "token": TOKEN}))
    config, changed = restart_only(running_config, load(path, {}))
    assert config == running_config
    assert changed == ("admin.port",)


async def test_without_a_file_a_reload_reads_the_embedded_defaults_again() -> None:
    config = load(None, {})
    applied: list[object] = []

    async def apply(_: object) -> tuple[str, ...]:
        applied.append(_)
        return ()

    reloader = Reloader(None, {}, lambda: config, apply)
    assert await reloader.reload("signal") == ReloadResult("unchanged", "signal")
    assert applied == []


async def test_a_configuration_that_cannot_start_is_a_failure_and_the_old_one_stays(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first"))
    running_config = load(path, {})
    path.write_text(config_text("second"))

    async def apply(_: object) -> tuple[str, ...]:
        raise ConnectionRefusedError("redis at 127.0.0.1:1")

    reloader = Reloader(path, {}, lambda: running_config, apply)
    result = await reloader.reload("admin")
    assert result.result == "failed"
    assert "redis at 127.0.0.1:1" in result.problems[0]
    assert reloader.status.counts["failure"] == 1
    assert reloader.status.readiness()["reload"]["result"] == "failed"


async def test_the_watch_goes_on_after_a_reload_that_raised(tmp_path: Path) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first"))
    running_config = load(path, {})
    edits = [config_text("second"), config_text("first", cache={"enabled": True})]
    applied: list[object] = []

    async def apply(config: object) -> tuple[str, ...]:
        applied.append(config)
        return ()

    async def sleep(_: float) -> None:
        if not edits:
            raise asyncio.CancelledError
        path.write_text(edits.pop(0))

    def broken(_: object) -> None:
        raise RuntimeError("a listener's bug")

    reloader = Reloader(path, {}, lambda: running_config, apply, sleep=sleep)
    reloader.on_applied.append(broken)
    with pytest.raises(asyncio.CancelledError):
        await reloader.watch()
    assert len(applied) == 2


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`edgeproxy serve` as a process, its file watch off: only SIGHUP reloads it."""
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first", reload={"enabled": False}))
    process = run_proxy(path)
    try:
        assert process.stderr is not None
        started = orjson.loads(process.stderr.readline())
        assert started["msg"] == "edgeproxy listening"
        yield process, started["url"], path
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def ask(url: str) -> str:
    body = orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    request = urllib.request.Request(
        url + "/v1/chat/completions", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        content: str = orjson.loads(response.read())["choices"][0]["message"]["content"]
        return content


def test_sighup_reloads_the_file(served: tuple[subprocess.Popen[str], str, Path]) -> None:
    process, url, path = served
    assert ask(url) == FIRST
    path.write_text(config_text("second", reload={"enabled": False}))
    process.send_signal(signal.SIGHUP)
    assert process.stderr is not None
    for _ in range(50):  # log lines until the reload's
        line = orjson.loads(process.stderr.readline())
        if line["msg"] == "configuration reloaded":
            break
    assert line["result"] == "applied"
    assert line["trigger"] == "signal"
    assert ask(url) == SECOND
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


async def test_a_reload_while_the_proxy_stops_leaves_nothing_open(tmp_path: Path) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first"))
    proxy = ProxyServer(load(path, {}), config_path=path, env={})
    await proxy.start()
    stopped = proxy.state
    flushed = asyncio.Event()
    # Work the stop flushes after the listener has closed: the reload comes meanwhile.
    proxy.state.background.spawn("cache write", flushed.wait())
    stopping = asyncio.get_running_loop().create_task(proxy.stop())
    await eventually(lambda: not stopped.pools_open, "the stop to close the resources")
    path.write_text(config_text("second"))
    result = await proxy.reloader.reload("admin")
    flushed.set()
    await asyncio.wait_for(stopping, 10)
    assert result.result == "failed"
    assert not proxy.state.pools_open


async def test_a_burst_of_sighups_is_one_reload_and_one_during_a_reload_another(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first"))
    running_config = load(path, {})
    background = Background()
    applied: list[object] = []

    async def apply(config: object) -> tuple[str, ...]:
        applied.append(config)
        if len(applied) == 1:  # a signal while the first reload applies: read the file again
            reloader.on_signal(background)
        return ()

    reloader = Reloader(path, {}, lambda: running_config, apply)
    path.write_text(config_text("second"))
    for _ in range(50):
        reloader.on_signal(background)
    await eventually(lambda: background.pending == 0, "the reloads to end")
    assert reloader.status.counts == {"success": 2, "failure": 0, "unchanged": 0}


async def test_a_change_between_loading_and_watching_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(config_text("first"))
    seen = digest(path)  # what start-up read, before the configuration was built
    config = load(path, {})
    path.write_text(config_text("second"))  # the kubelet's swap while the proxy starts
    proxy = ProxyServer(config, config_path=path, env={}, seen=seen)
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as session:
            assert await answer(session, proxy) == FIRST
            await eventually(lambda: proxy.reloader.status.counts["success"] == 1, "the reload")
            assert await answer(session, proxy) == SECOND
    finally:
        await proxy.stop()
