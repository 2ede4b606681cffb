"""The drain of a real `edgeproxy serve` process, stopped by real signals: readiness first,
serving on through the drain delay, then refusing; every stream in flight completed, or
ended by an error event the official SDKs raise as an API error; the exit code 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest

from tests.support.poll import eventually

REPO = Path(__file__).resolve().parents[1]
MESSAGES = [{"role": "user", "content": "hi"}]
STREAMS = 50
SHUTTING_DOWN = "The proxy is shutting down"
# A mock provider that streams its reply a word at a time, one every 60 ms (6 s in all).
REPLY = " ".join(f"word{n}" for n in range(100))
SLOW = f"{{kind: mock, mock: {{stream_chunks: 100, chunk_interval: 60ms, reply: '{REPLY}'}}}}"


@dataclass
class Served:
    """A running proxy process, and what it has logged so far (read as it comes, so a full
    pipe never blocks it)."""

    process: asyncio.subprocess.Process
    url: str
    admin: str
    records: list[dict[str, Any]] = field(default_factory=list)

    def logged(self, message: str) -> bool:
        return any(record["msg"] == message for record in self.records)

    async def until_logged(self, message: str) -> None:
        await eventually(lambda: self.logged(message), f"the log line {message!r}", within=30)

    async def until_not_ready(self) -> None:
        async with aiohttp.ClientSession(self.admin) as admin:

            async def not_ready() -> bool:
                async with admin.get("/readyz") as answer:
                    return answer.status == 503

            await eventually(not_ready, "readiness to turn false")

    async def until_in_flight(self, pattern: re.Pattern[str]) -> None:
        """Until /metrics matches `pattern`: a request has reached the upstream."""
        async with aiohttp.ClientSession(self.admin) as admin:

            async def matched() -> bool:
                async with admin.get("/metrics") as answer:
                    return pattern.search(await answer.text()) is not None

            await eventually(matched, f"/metrics to match {pattern.pattern}")

    async def exit_code(self) -> int:
        async with asyncio.timeout(30):
            return await self.process.wait()

    def warnings(self) -> list[str]:
        """What was logged at warning level or above (but the mock model's missing price)."""
        return [
            r["msg"]
            for r in self.records
            if r["level"] in ("warning", "error", "critical") and r["logger"] != "edgeproxy.pricing"
        ]


async def _read_log(served: Served, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        served.records.append(orjson.loads(line))


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Any]:
    """`await serve(config_yaml)`: a proxy process on free ports, killed if a test leaves it
    (`SLOW` in the config stands for the slow provider)."""
    started: list[tuple[Served, asyncio.Task[None]]] = []

    async def start(config: str) -> Served:
        path = tmp_path / f"proxy{len(started)}.yaml"
        path.write_text(config.replace("SLOW", SLOW))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edgeproxy",
            "serve",
            "--config",
            str(path),
            env={**os.environ, "EDGEPROXY_LOG_LEVEL": "info"},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        assert process.stderr is not None
        first = orjson.loads(await asyncio.wait_for(process.stderr.readline(), 30))
        assert first["msg"] == "edgeproxy listening", first
        served = Served(process, first["url"], first["admin"], [first])
        started.append((served, asyncio.create_task(_read_log(served, process.stderr))))
        return served

    yield start
    for served, reading in started:
        if served.process.returncode is None:
            served.process.kill()
        await served.process.wait()
        await reading


def openai_client(served: Served) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)


async def test_sigterm_turns_readiness_off_serves_through_the_delay_then_completes_every_stream(
    serve: Any,
) -> None:
    served: Served = await serve(
        """
server: {port: 0, drain_delay: 3s, shutdown_grace: 20s}
admin: {host: 127.0.0.1, port: 0}
cache: {enabled: false}
providers:
  slow: SLOW
  quick: {kind: mock}
models:
  slow: {deployments: [{provider: slow}]}
  quick: {deployments: [{provider: quick}]}
"""
    )
    first_chunks = asyncio.Semaphore(0)

    async def stream(sdk: openai.AsyncOpenAI) -> str:
        chunks = await sdk.chat.completions.create(model="slow", messages=MESSAGES, stream=True)
        text = []
        async for chunk in chunks:
            if not text:
                first_chunks.release()
            text.extend(choice.delta.content or "" for choice in chunk.choices)
        return "".join(text)

    async with openai_client(served) as sdk:
        streams = [asyncio.create_task(stream(sdk)) for _ in range(STREAMS)]
        async with asyncio.timeout(30):
            for _ in range(STREAMS):
                await first_chunks.acquire()
        served.process.send_signal(signal.SIGTERM)

        await served.until_not_ready()
        assert not any(s.done() for s in streams), "readiness turned false after a stream ended"
        async with openai_client(served) as newcomer:  # a new connection, in the delay
            late = await newcomer.chat.completions.create(model="quick", messages=MESSAGES)
        assert late.choices[0].message.content
        assert not served.logged("drain: closing the listener"), "answered after the delay"

        await served.until_logged("drain: closing the listener")
        host, port = served.url.removeprefix("http://").split(":")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(host, int(port))
        texts = await asyncio.gather(*streams)
    assert texts == [REPLY] * STREAMS
    assert await served.exit_code() == 0
    assert served.warnings() == []


STUCK_IN_FLIGHT = re.compile(r'edgeproxy_deployment_in_flight\{deployment="stuck[^"]*"\} 1\.0')


async def openai_stream(served: Served, first: asyncio.Event) -> None:
    async with openai_client(served) as sdk:
        stream = await sdk.chat.completions.create(model="slow", messages=MESSAGES, stream=True)
        async for _ in stream:
            first.set()


async def anthropic_stream(served: Served, first: asyncio.Event) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=served.url, api_key="unused", max_retries=0
    ) as sdk:
        stream = await sdk.messages.create(
            model="slow", max_tokens=64, messages=MESSAGES, stream=True
        )
        async for _ in stream:
            first.set()


async def openai_ask(served: Served) -> None:
    async with openai_client(served) as sdk:
        await sdk.chat.completions.create(model="stuck", messages=MESSAGES)


async def test_sigint_skips_the_delay_and_what_outlasts_the_grace_ends_in_its_dialect(
    serve: Any,
) -> None:
    served: Served = await serve(
        """
server: {port: 0, drain_delay: 10m, shutdown_grace: 1s}
admin: {host: 127.0.0.1, port: 0}
cache: {enabled: false}
providers:
  slow: SLOW
  stuck: {kind: mock, mock: {latency: 10m}}
models:
  slow: {deployments: [{provider: slow}]}
  stuck: {deployments: [{provider: stuck}]}
"""
    )
    firsts = [asyncio.Event(), asyncio.Event()]
    streams = [
        asyncio.create_task(openai_stream(served, firsts[0])),
        asyncio.create_task(anthropic_stream(served, firsts[1])),
    ]
    asking = asyncio.create_task(openai_ask(served))
    async with asyncio.timeout(30):
        for first in firsts:
            await first.wait()
    await served.until_in_flight(STUCK_IN_FLIGHT)
    served.process.send_signal(signal.SIGINT)

    with pytest.raises(openai.APIError, match=SHUTTING_DOWN) as openai_error:
        await streams[0]
    assert not isinstance(openai_error.value, openai.APIConnectionError)
    with pytest.raises(anthropic.APIStatusError, match=SHUTTING_DOWN):
        await streams[1]
    with pytest.raises(openai.InternalServerError, match=SHUTTING_DOWN) as refused:
        await asking
    assert refused.value.status_code == 503
    assert await served.exit_code() == 0
    assert sorted(served.warnings()) == sorted(
        [
            "shutdown: interrupting the requests still in flight",
            f"request failed: shutting_down {SHUTTING_DOWN}; retry the request.",
            f"stream cut short: {SHUTTING_DOWN}; retry the request.",
            f"stream cut short: {SHUTTING_DOWN}; retry the request.",
        ]
    )


async def test_a_second_signal_ends_the_drain_at_once(serve: Any) -> None:
    served: Served = await serve(
        """
server: {port: 0, drain_delay: 10m, shutdown_grace: 10m}
admin: {host: 127.0.0.1, port: 0}
cache: {enabled: false}
providers:
  slow: SLOW
models:
  slow: {deployments: [{provider: slow}]}
"""
    )
    first = asyncio.Event()
    streaming = asyncio.create_task(openai_stream(served, first))
    await asyncio.wait_for(first.wait(), 30)
    served.process.send_signal(signal.SIGTERM)
    await served.until_not_ready()
    served.process.send_signal(signal.SIGTERM)
    with pytest.raises(openai.APIError, match=SHUTTING_DOWN):
        await streaming
    assert await served.exit_code() == 0


async def test_a_drain_follows_the_reloaded_delay_and_grace(serve: Any, tmp_path: Path) -> None:
    config = """
server: {{port: 0, drain_delay: {delay}, shutdown_grace: {grace}}}
admin: {{host: 127.0.0.1, port: 0}}
reload: {{enabled: false}}
providers:
  mock: {{kind: mock}}
models:
  m: {{deployments: [{{provider: mock}}]}}
"""
    served: Served = await serve(config.format(delay="10m", grace="10m"))
    (tmp_path / "proxy0.yaml").write_text(config.format(delay="0s", grace="3s"))
    served.process.send_signal(signal.SIGHUP)
    await served.until_logged("configuration reloaded")
    served.process.send_signal(signal.SIGTERM)
    assert await served.exit_code() == 0
    [stop] = [record for record in served.records if record["msg"] == "shutting down"]
    assert (stop["drain_delay_s"], stop["grace_s"]) == (0.0, 3.0)
