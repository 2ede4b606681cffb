"""CPU per request of the upstream client: edgeproxy.wire.client against aiohttp's ClientSession.

    python -m bench.wire_client [--requests 20000] [--runs 3]

A raw asyncio server in a child process, pinned to one core, answers 1 KB POSTs: with a 1 KB
JSON body (one write), or with a 20-event SSE stream, chunked, each event written on its own.
This process, pinned to the other core on uvloop, sends sequential keep-alive requests through
one client, reads JSON whole and SSE chunk by chunk, and reports its own CPU time per request:
the median of interleaved runs. Both clients are used as the provider uses them: every wait
under a deadline (aiohttp through asyncio.timeout_at).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import uvloop

from bench.canned_server import CannedServer
from edgeproxy.wire.client import UpstreamPool

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"x" * 940 + b'"}]}'
HEADERS = [
    ("content-type", "application/json"),
    ("authorization", "Bearer sk-bench"),
    ("x-request-id", "0123456789abcdef"),
]
JSON_BODY = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"' + b"y" * 960 + b'"}}]}'
JSON_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    % len(JSON_BODY)
) + JSON_BODY
EVENT = b'data: {"choices":[{"delta":{"content":"token"}}]}\n\n'
SSE_PARTS = [
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    *[b"%x\r\n%s\r\n" % (len(EVENT), EVENT) for _ in range(20)],
    b"0\r\n\r\n",
]
DEADLINE = 30.0

Exchange = Callable[[str], Awaitable[int]]  # one request to a path; returns chunks read


class Answering(CannedServer):
    """The bench's upstream: answers /json and /sse requests on keep-alive connections."""

    def answer(self, transport: asyncio.Transport, head: bytes, body: bytes) -> None:
        if head.split(b" ", 2)[1] == b"/sse":
            for part in SSE_PARTS:
                transport.write(part)
        else:
            transport.write(JSON_ANSWER)


async def serve() -> None:
    server = await asyncio.get_running_loop().create_server(Answering, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def with_pool(origin: str, count: int, path: str) -> tuple[float, float]:
    pool = UpstreamPool(origin)
    loop = asyncio.get_running_loop()

    async def exchange(target: str) -> int:
        deadline = loop.time() + DEADLINE
        answer = await pool.request("POST", target, HEADERS, BODY, deadline=deadline)
        chunks = 0
        while await answer.next_chunk(deadline):
            chunks += 1
        return chunks

    try:
        return await measure(exchange, count, path)
    finally:
        await pool.close()


async def with_aiohttp(origin: str, count: int, path: str) -> tuple[float, float]:
    """ClientSession set up as edgeproxy's providers had it."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, limit_per_host=0, keepalive_timeout=15),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
        raise_for_status=False,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    headers = dict(HEADERS)

    async def exchange(target: str) -> int:
        deadline = asyncio.get_running_loop().time() + DEADLINE
        async with asyncio.timeout_at(deadline):
            response = await session.post(origin + target, data=BODY, headers=headers)
        chunks = 0
        try:
            while True:
                async with asyncio.timeout_at(deadline):
                    chunk = await response.content.readany()
                if not chunk:
                    return chunks
                chunks += 1
        finally:
            response.release()

    try:
        return await measure(exchange, count, path)
    finally:
        await session.close()


async def measure(exchange: Exchange, count: int, path: str) -> tuple[float, float]:
    """(CPU µs per request, chunks per response) over `count` requests, after a warm-up."""
    for _ in range(500):
        await exchange(path)
    chunks = 0
    started = time.process_time()
    for _ in range(count):
        chunks += await exchange(path)
    return (time.process_time() - started) / count * 1e6, chunks / count


CLIENTS: dict[str, Callable[[str, int, str], Coroutine[Any, Any, tuple[float, float]]]] = {
    "edgeproxy.wire": with_pool,
    "aiohttp": with_aiohttp,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        uvloop.run(serve())
        return
    cores = sorted(os.sched_getaffinity(0))
    server_cores = ["taskset", "-c", str(cores[-1])] if len(cores) > 1 else []
    os.sched_setaffinity(0, {cores[0]})
    server = subprocess.Popen(
        [*server_cores, sys.executable, "-m", "bench.wire_client", "--serve"],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        origin = f"http://127.0.0.1:{int(server.stdout.readline())}"
        for path, label in (("/json", "1 KB JSON"), ("/sse", "20-event SSE")):
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
            for _ in range(args.runs):
                for name, client in CLIENTS.items():
                    results[name].append(uvloop.run(client(origin, args.requests, path)))
            for name, runs in results.items():
                cpu = statistics.median(run[0] for run in runs)
                chunks = statistics.median(run[1] for run in runs)
                print(
                    f"{label:14} {name:15} {cpu:7.1f} µs CPU/request "
                    f"({', '.join(f'{run[0]:.1f}' for run in runs)}), {chunks:.1f} chunks/response"
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
