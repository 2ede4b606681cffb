"""`python -m bench.wire_server`: what the wire server costs per request, next to aiohttp's
server, and next to minimal servers on the two llhttp parsers it could be built on.

Each server runs alone, pinned to CPU 0 (`taskset -c 0`). A raw-socket client pinned to CPU 1
sends small keep-alive POSTs one after another (a closed loop, one connection) and reads the
server's CPU time from /proc around the measured part, after a warm-up. Servers are measured
in turn, `--runs` times interleaved, and the medians are reported: requests/s and server CPU
µs per request. Every handler answers the same 200 JSON body; the echo servers answer with
the request's body.

  wire                 edgeproxy.wire.server.HttpServer
  aiohttp              aiohttp.web (the handler reads the body, as a proxy must)
  httptools-echo       a bare asyncio.Protocol on httptools: the parser alone
  aiohttp-parser-echo  the same on aiohttp's C HttpRequestParser

`--parse` compares the parsers in-process instead, on CPU 0: µs to take a ~1 KB JSON POST with
ten header fields apart into a target, a header dict and a body, on one keep-alive parser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httptools
import uvloop
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_parser import HttpRequestParser

from bench.procs import CLOCK_TICKS, free_port
from edgeproxy.wire.limits import Limits
from edgeproxy.wire.request import RequestReader
from edgeproxy.wire.server import HttpServer, Request, Response

SERVERS = ("wire", "aiohttp", "httptools-echo", "aiohttp-parser-echo")
ANSWER = b'{"id":"x","object":"chat.completion","choices":[]}'


def _chat_request(content: str) -> bytes:
    """A chat completion POST with the ten header fields the OpenAI SDK sends."""
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    ).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"User-Agent: OpenAI/Python 1.50.0\r\nAccept: application/json\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer sk-0123456789abcdef\r\n"
        b"X-Stainless-Lang: python\r\nX-Stainless-Package-Version: 1.50.0\r\n"
        b"X-Stainless-Os: Linux\r\nAccept-Encoding: gzip, deflate\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


REQUEST = _chat_request("Say hi")  # the loop's small POST
PARSED = _chat_request("x" * 900)  # the parse comparison's ~1 KB JSON POST


# servers


async def _answer(request: Request, response: Response) -> None:
    response.send(200, [("content-type", "application/json")], ANSWER)


async def _aiohttp_answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")


class _HttptoolsEcho(asyncio.Protocol):
    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self._body)
        self._body, self._headers = [], {}
        self._transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )


class _AiohttpParserEcho(BaseProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._parser = HttpRequestParser(self, loop, 2**16, auto_decompress=False)

    def data_received(self, data: bytes) -> None:
        messages, _, _ = self._parser.feed_data(data)
        for _, payload in messages:
            body = payload.read_nowait()
            answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            self.transport.write(answer)  # type: ignore[union-attr]


async def _serve(kind: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    if kind == "wire":
        await HttpServer(_answer, Limits()).start("127.0.0.1", port)
    elif kind == "aiohttp":
        app = web.Application()
        app.router.add_post("/v1/chat/completions", _aiohttp_answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    elif kind == "httptools-echo":
        await loop.create_server(_HttptoolsEcho, "127.0.0.1", port)
    else:
        await loop.create_server(lambda: _AiohttpParserEcho(loop), "127.0.0.1", port)
    await asyncio.Event().wait()


# the parse comparison: each parser takes PARSED apart into what the server needs


class _HttptoolsFields:
    """What a server on httptools collects: the target, a header dict, the body."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.request: tuple[bytes, dict[str, str], bytes] | None = None

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.request = (self.url, self.headers, b"".join(self.body))
        self.headers, self.body = {}, []


def _parse_costs(requests: int) -> dict[str, float]:
    """µs per request to parse PARSED repeatedly, on one keep-alive parser each."""
    loop = asyncio.new_event_loop()
    aiohttp_parser = HttpRequestParser(BaseProtocol(loop), loop, 2**16, auto_decompress=False)

    def aiohttp_parse() -> None:
        for message, payload in aiohttp_parser.feed_data(PARSED)[0]:
            payload.read_nowait()
            dict(message.headers)

    reader = RequestReader(Limits(), lambda _, __: None, lambda _: None)
    parses = {
        "httptools": httptools.HttpRequestParser(_HttptoolsFields()).feed_data,
        "aiohttp C parser": lambda _: aiohttp_parse(),
        "wire RequestReader": lambda data: reader.feed(data, 0.0),
    }
    costs = {}
    for name, parse in parses.items():
        started = time.perf_counter()
        for _ in range(requests):
            parse(PARSED)
        costs[name] = (time.perf_counter() - started) / requests * 1e6
    loop.close()
    return costs


# the client


def _server_cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _exchange(sock: socket.socket, pending: bytearray) -> None:
    sock.sendall(REQUEST)
    while (end := pending.find(b"\r\n\r\n")) < 0:
        pending += sock.recv(65536)
    head = bytes(pending[:end]).lower()
    length = int(head.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(pending) < end + 4 + length:
        pending += sock.recv(65536)
    del pending[: end + 4 + length]


def _client(port: int, requests: int, server_pid: int) -> dict[str, float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = bytearray()
        for _ in range(min(2000, requests)):
            _exchange(sock, pending)
        cpu, started = _server_cpu(server_pid), time.perf_counter()
        for _ in range(requests):
            _exchange(sock, pending)
        elapsed, cpu = time.perf_counter() - started, _server_cpu(server_pid) - cpu
    return {"rps": requests / elapsed, "cpu_us": cpu / requests * 1e6}


# the driver


def _measure(kind: str, requests: int) -> dict[str, float]:
    port = free_port()
    here = [sys.executable, "-m", "bench.wire_server"]
    server = subprocess.Popen(["taskset", "-c", "0", *here, "--serve", kind, "--port", str(port)])
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.01)
        argv = ["taskset", "-c", "1", *here, "--client", "--port", str(port)]
        argv += ["--requests", str(requests), "--pid", str(server.pid)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600)
        result: dict[str, float] = json.loads(out.stdout)
        return result
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wire_server", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--parse", action="store_true", help="compare the parsers in-process")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        uvloop.run(_serve(args.serve, args.port))
    elif args.client:
        print(json.dumps(_client(args.port, args.requests, args.pid)))
    elif args.parse:
        os.sched_setaffinity(0, {0})
        runs = [_parse_costs(args.requests * 10) for _ in range(args.runs)]
        print(f"parsing a {len(PARSED)}-byte POST, µs/request, median of {args.runs} (range)")
        for name in runs[0]:
            print(f"{name:<22}{_spread([run[name] for run in runs], 2):>24}")
    else:
        runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in args.servers}
        load_before = Path("/proc/loadavg").read_text().split()[0]
        for _ in range(args.runs):
            for kind in args.servers:
                runs[kind].append(_measure(kind, args.requests))
        load_after = Path("/proc/loadavg").read_text().split()[0]
        print(f"{args.requests} keep-alive POSTs of {len(REQUEST)} bytes; medians of {args.runs}")
        print(f"interleaved runs (range); 1-minute load average {load_before} -> {load_after}")
        print(f"{'server':<22}{'requests/s':>20}{'CPU µs/request':>24}")
        for kind, results in runs.items():
            print(f"{kind:<22}{_spread([r['rps'] for r in results], 0):>20}", end="")
            print(f"{_spread([r['cpu_us'] for r in results], 1):>24}")


def _spread(values: list[float], digits: int) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


if __name__ == "__main__":
    main()
