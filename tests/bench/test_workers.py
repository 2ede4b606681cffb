"""The workers scenarios' parts: the cheap upstream and raw load they use (both checked against
the real proxy, so what is measured is real relaying), and how a run's samples become the
report's row. The runs themselves are `python -m bench --scenario workers`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import yaml

from bench import cheap_upstream, workers
from bench.load import Limits
from bench.raw_load import RawLoad, RawResult, post
from bench.runner import Settings, proxy_config
from edgeproxy.app import ProxyServer
from edgeproxy.config import parse

SETTINGS = Settings(2, Limits(100, 1.0), Limits(10, 0.5))


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    server = await asyncio.get_running_loop().create_server(
        cheap_upstream.Answering, "127.0.0.1", 0
    )
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.fixture
async def proxy(upstream: int) -> AsyncIterator[int]:
    text = proxy_config(0, f"http://127.0.0.1:{upstream}")
    server = ProxyServer(parse(yaml.safe_load(text), {}))
    await server.start()
    try:
        yield server.data_address[1]
    finally:
        await server.stop()


@pytest.mark.parametrize("case", workers.CASES, ids=lambda case: case.name)
async def test_the_raw_load_gets_every_answer_through_the_proxy_from_the_cheap_upstream(
    proxy: int, case: workers.Case
) -> None:
    load = RawLoad(
        "127.0.0.1", proxy, post("127.0.0.1", proxy, "/v1/chat/completions", case.body()), 4
    )
    await load.open()
    try:
        result = await load.run(Limits(requests=200, seconds=30.0))
    finally:
        load.close()
    assert (result.completed, result.errors) == (200, 0)


async def test_the_proxy_relays_the_cheap_upstream_s_stream_whole(proxy: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy)
    writer.write(post("127.0.0.1", proxy, "/v1/chat/completions", workers.CASES[1].body()))
    answer = await reader.readuntil(b"data: [DONE]\n\n")
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.count(b'"content":"tok') == cheap_upstream.STREAM_CHUNKS


def sample(side: workers.Side, rps: float, proxy_cpu: float) -> workers.Sample:
    return workers.Sample(side, RawResult(int(rps), 0, 1.0), proxy_cpu, 0.1, 0.2, 1.0)


def test_a_row_sets_the_pod_against_one_process_with_cpu_per_request() -> None:
    samples = [
        *(sample("direct", 10_000, 0.3) for _ in range(2)),
        *(sample("single", 4_000, 0.8) for _ in range(2)),
        *(sample("pod", 6_000, 1.2) for _ in range(2)),
    ]
    row = workers.summarize(workers.CASES[0], SETTINGS, samples)
    assert row["rps_ratio"] == pytest.approx(1.5)
    assert row["cpu_ms_per_request_single"] == pytest.approx(0.2)
    assert row["cpu_ms_per_request_pod"] == pytest.approx(0.2)
    assert row["per_core_ratio"] == pytest.approx(1.0)
    assert row["other_cores_pod"] == 0.0
    line = "| workers-c32 | 10,000 | 4,000 | 6,000 | 1.50 | 1.00 | 0.80 / 1.20 |"
    assert line in workers.markdown([row], SETTINGS)
