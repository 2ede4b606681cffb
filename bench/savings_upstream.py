"""The savings report's upstream: an OpenAI-compatible chat endpoint on loopback that answers
with the usage the workload decided, and counts what it was asked.

A real model reports the tokens it read and wrote; this one is told them, in the request's
`metadata` (`question`, `prompt_tokens`, `completion_tokens`; a field the proxy's cache key
leaves out and forwards unchanged), so what the proxy charges can be checked against the
workload without trusting anything the proxy says. The answer's text starts with `[q<id>]`,
the question it was written for: a client given a cached answer can tell which question that
answer belonged to. Its length is about four characters a completion token, so the proxy
stores and replays answers of realistic size.

`python -m bench.savings_upstream --port P [--latency S]` serves it in a process of its own
(`GET /calls`: the calls by question id so far), as the bench runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import time
from collections import Counter
from typing import Any, Final

import orjson
from aiohttp import web

ANSWER_TAG: Final = re.compile(r"\[q(\d+)\]")
_FILLER: Final = "tok "  # about one token


def answer_text(question: int, completion_tokens: int) -> str:
    """The answer to `question`: its tag, then about `completion_tokens` tokens of text."""
    return f"[q{question}] " + _FILLER * max(0, completion_tokens - 1)


def answered_question(text: str) -> int | None:
    """Which question an answer was written for, from its tag; None without one."""
    found = ANSWER_TAG.match(text)
    return int(found.group(1)) if found else None


class PricedUpstream:
    """Answers POST /v1/chat/completions after `latency` seconds; `calls` counts them by
    question id (-1 for a request that named none)."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.calls: Counter[int] = Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/calls", self._calls)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def _calls(self, _: web.Request) -> web.Response:
        return web.json_response({"calls": {str(q): n for q, n in self.calls.items()}})

    async def _chat(self, request: web.Request) -> web.Response:
        payload = orjson.loads(await request.read())
        metadata: dict[str, Any] = payload.get("metadata") or {}
        question = int(metadata.get("question", -1))
        prompt = int(metadata.get("prompt_tokens", 1))
        completion = int(metadata.get("completion_tokens", 1))
        self.calls[question] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        body = {
            "id": f"chatcmpl-savings-{self.total_calls}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model", "unknown"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer_text(question, completion)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")


async def _serve(port: int, latency: float) -> None:
    upstream = PricedUpstream(latency)
    await upstream.start(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await upstream.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the savings report's loopback upstream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.latency))


if __name__ == "__main__":
    main()
