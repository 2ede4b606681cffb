"""A cheap OpenAI upstream for bench/workers.py: canned answers on a raw asyncio protocol.

    python -m bench.cheap_upstream PORT

`POST /v1/chat/completions` gets one chat completion, or, when the body asks for a stream,
`STREAM_CHUNKS` content chunks, a usage chunk and `[DONE]` in one chunked write; `GET
/v1/models` answers for the readiness check. Nothing is parsed beyond the framing, so it
spends a fraction of the CPU per request of tests.support.fake_upstream (aiohttp), leaving
the cores it shares to the proxy under test.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
import uvloop

from bench.canned_server import CannedServer

STREAM_CHUNKS = 20
_COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-upstream-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Cheap sidecars keep latency low."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 24, "completion_tokens": 8, "total_tokens": 32},
    }
)


def _chunk(delta: dict[str, str], finish: str | None = None, usage: bool = False) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-upstream-model",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = {"prompt_tokens": 24, "completion_tokens": 20, "total_tokens": 44}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _answer(content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
        % (content_type, len(body))
    ) + body


_STREAM_BODY = b"".join(
    [
        *(_chunk({"content": f"tok{n} "}) for n in range(STREAM_CHUNKS)),
        _chunk({}, finish="stop"),
        _chunk({}, usage=True),
        b"data: [DONE]\n\n",
    ]
)
JSON_ANSWER = _answer(b"application/json", _COMPLETION)
STREAM_ANSWER = _answer(b"text/event-stream", _STREAM_BODY)
MODELS_ANSWER = _answer(b"application/json", b'{"object":"list","data":[]}')


class Answering(CannedServer):
    """Answers each request of a keep-alive connection as soon as its body is in."""

    def answer(self, transport: asyncio.Transport, head: bytes, body: bytes) -> None:
        if head.startswith(b"get "):
            transport.write(MODELS_ANSWER)
        elif b'"stream":true' in body.replace(b" ", b""):
            transport.write(STREAM_ANSWER)
        else:
            transport.write(JSON_ANSWER)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Answering, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    uvloop.run(_serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
