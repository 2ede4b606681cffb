"""A fake of the OpenAI and Anthropic HTTP APIs, faithful to their wire formats.

Tests script its behaviour per route (`script`, `default`) and read what it saw (`calls`,
`requests`, `disconnects`). Streams can be cut into TCP writes at odd byte offsets, stalled,
dropped or ended with the provider's own error event. Google Gemini (`fake.gemini`), AWS
Bedrock (`fake.bedrock`) and the endpoints beside the LLM calls (`fake.other`: moderations,
files, speech, message batches) are served by the same server as `Mode`s kept in their own
modules.
Also runnable on its own for benchmarks:
`python -m tests.support.fake_upstream --port 0 --chunks 20 --split whole` (`--split events`:
see `Reply.split`), and, with
`--flap-period 5 [--flap-mode error|reset] [--flap-offset 0]`, as a deployment that keeps
failing and recovering by itself (`Flap`). On SIGTERM it prints what it served (`CALLS ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import random
import signal
import struct
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson
from aiohttp import web
from multidict import CIMultiDict

if TYPE_CHECKING:
    from tests.support.fake_bedrock import FakeBedrock
    from tests.support.fake_gemini import FakeGemini
    from tests.support.fake_other_apis import FakeOtherApis

ROUTES = {
    ("POST", "/v1/chat/completions"): "chat",
    ("POST", "/v1/completions"): "completions",
    ("POST", "/v1/embeddings"): "embeddings",
    ("POST", "/v1/responses"): "responses",
    ("POST", "/v1/messages"): "messages",
    ("POST", "/v1/messages/count_tokens"): "count_tokens",
    ("GET", "/v1/models"): "models",
}
# The Responses API's calls on a stored response: method and what follows the id in the path.
STORED_ROUTES = {
    ("GET", ""): "responses.retrieve",
    ("DELETE", ""): "responses.delete",
    ("POST", "cancel"): "responses.cancel",
    ("GET", "input_items"): "responses.input_items",
}
STORED_PREFIX = "/v1/responses/"
ANTHROPIC_ROUTES = frozenset({"messages", "count_tokens"})
OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded."),
}
ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
OPENAI_STOP = {"stop": "stop", "tool": "tool_calls"}
ANTHROPIC_STOP = {"stop": "end_turn", "tool": "tool_use"}


@dataclass
class ToolCall:
    id: str
    name: str
    arguments_json: str


@dataclass
class Reply:
    """A successful answer; streaming when the request body says `"stream": true`."""

    text: str = "Hello from the fake upstream."
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 11
    completion_tokens: int | None = None
    chunks: int = 5
    # How a stream is cut into writes: "odd" (random small cuts), "bytes:N", "frames" (one
    # write per frame, back to back), and two for the benchmark's stream scenarios: "whole"
    # (the stream in one write: one read for a proxy) and "events" (one write per frame, with
    # a turn of the event loop between them, as a model's tokens are sent: the frames of
    # concurrent streams interleave, so a proxy reads each stream in many parts, each costing
    # it a wake-up, a read and a write).
    split: str = "odd"
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    stall_after: int | None = None
    drop_after: int | None = None
    error_event_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    embedding_dims: int = 8
    thinking: str | None = None  # reasoning text; rendered by the Gemini and Bedrock modes only
    cached_tokens: int = 0  # prompt tokens read from the provider's cache (Gemini, Bedrock)


@dataclass
class Fail:
    """An error answer in the route's provider format (`type`: the provider's error kind)."""

    status: int
    type: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None


@dataclass
class RecordedRequest:
    route: str
    method: str
    path: str
    query: str
    headers: CIMultiDict[str]
    body: bytes
    json: Any
    raw_path: str = ""  # as sent, percent-encoding kept (Bedrock model ids carry %3A)


@dataclass
class StoredResponse:
    """A response as OpenAI keeps it (`store` was not false): its final object, the events a
    streamed retrieval replays, its input items. A background one is `queued` until the first
    retrieval completes it, unless it was cancelled first."""

    response: dict[str, Any]
    frames: list[bytes]
    items: list[dict[str, Any]]
    background: bool
    status: str = "completed"


@dataclass
class Frames:
    """A streamed answer from a `Mode`: its frames and the provider's own mid-stream error."""

    frames: list[bytes]
    headers: dict[str, str]
    content_type: str
    error: bytes


class Mode(Protocol):
    """A provider served beside OpenAI and Anthropic; see fake_gemini.py and fake_bedrock.py."""

    routes: tuple[str, ...]

    def owns(self, request: web.Request) -> bool: ...

    def route(self, request: web.Request) -> str | None: ...

    def admit(
        self, request: web.Request, route: str, body: bytes, payload: Any
    ) -> web.Response | None: ...

    def error(self, fail: Fail, request: web.Request) -> web.Response: ...

    def answer(
        self, request: web.Request, route: str, payload: dict[str, Any], reply: Reply
    ) -> web.Response | Frames: ...


@dataclass(frozen=True)
class Flap:
    """An outage that comes and goes by itself: after `offset` seconds of normal service,
    down for `period` seconds, up for `period`, and so on, on the monotonic clock from
    `epoch`. No control channel: a benchmark can predict every phase from the epoch alone.

    While down, every request is answered with a 500 in the provider's format (`error`) or
    has its connection aborted without an answer (`reset`).
    """

    period: float
    mode: Literal["error", "reset"] = "error"
    offset: float = 0.0
    epoch: float = field(default_factory=time.monotonic)

    @property
    def first_outage(self) -> float:
        """When the first down phase begins, in `time.monotonic()` seconds."""
        return self.epoch + self.offset

    def down(self, now: float) -> bool:
        elapsed = now - self.first_outage
        return elapsed >= 0 and int(elapsed // self.period) % 2 == 0


def _route(request: web.Request) -> str | None:
    route = ROUTES.get((request.method, request.path))
    if route is None and request.path.startswith(STORED_PREFIX):
        _, _, suffix = request.path[len(STORED_PREFIX) :].partition("/")
        route = STORED_ROUTES.get((request.method, suffix))
    return route


def _listing(items: list[dict[str, Any]], order: str, limit: int) -> dict[str, Any]:
    """A page of a stored response's input items, newest first unless `order` is asc."""
    ordered = items if order == "asc" else items[::-1]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }


def pieces(text: str, count: int) -> list[str]:
    """Cut text into near-equal parts; kept apart from edgeproxy's own splitter on purpose."""
    if not text:
        return []
    count = max(1, min(count, len(text)))
    size, extra = divmod(len(text), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def embedding_vector(item: Any, dims: int) -> list[float]:
    """A deterministic vector in [-0.5, 0.5] per input, the same across providers."""
    digest = hashlib.sha256(str(item).encode()).digest()
    return [digest[i % 32] / 255.0 - 0.5 for i in range(dims)]


def sse(payload: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return head + b"data: " + data + b"\n\n"


class FakeUpstream:
    """The fake server. Every behaviour is scripted; nothing is random but the seeded ids."""

    def __init__(self, seed: int = 0, flap: Flap | None = None) -> None:
        self._rng = random.Random(seed)
        self._counter = 0
        self.flap = flap  # opt-in: None serves as scripted, whatever the time
        self.flapped = 0  # requests failed by `flap`
        routes = [*ROUTES.values(), *STORED_ROUTES.values()]
        self.default: dict[str, Reply] = {route: Reply() for route in routes}
        self.stored: dict[str, StoredResponse] = {}  # by response id
        self._scripts: dict[str, deque[Reply | Fail]] = defaultdict(deque)
        self.calls: dict[str, int] = defaultdict(int)
        self.requests: list[RecordedRequest] = []
        self.unrouted: list[str] = []  # requests for no path it serves, as sent (a 404)
        self.disconnects = 0
        # Opt-in: whole answers (JSON, errors) gzipped for requests that accept gzip, as
        # OpenAI's and Anthropic's servers do; `compress_streams`: event streams too.
        self.compress = False
        self.compress_streams = False
        self._disconnected = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        # Imported here: those modules import Reply, Fail and pieces from this one.
        from tests.support.fake_bedrock import FakeBedrock
        from tests.support.fake_gemini import FakeGemini
        from tests.support.fake_other_apis import FakeOtherApis

        self.gemini: FakeGemini = FakeGemini(self._rng)
        self.bedrock: FakeBedrock = FakeBedrock(self._rng)
        # Moderations, files, speech and message batches, their errors rendered as ours.
        self.other: FakeOtherApis = FakeOtherApis(self._error)
        self.modes: tuple[Mode, ...] = (self.gemini, self.bedrock, self.other)
        for mode in self.modes:
            self.default.update({route: Reply() for route in mode.routes})

    # --- control -----------------------------------------------------------------------

    def script(self, route: str, *steps: Reply | Fail) -> None:
        self._scripts[route].extend(steps)

    def reset(self) -> None:
        self._scripts.clear()
        self.calls.clear()
        self.requests.clear()
        self.unrouted.clear()
        self.disconnects = 0
        self.flapped = 0

    async def wait_for_disconnects(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.disconnects < n:
                self._disconnected.clear()
                await self._disconnected.wait()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- serving -------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._rng.getrandbits(64):016x}{self._counter:04d}"

    def _gone(self) -> None:
        self.disconnects += 1
        self._disconnected.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await self._answer(request)
        accepted = request.headers.get("accept-encoding", "")
        if self.compress and isinstance(response, web.Response) and "gzip" in accepted:
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        mode = next((m for m in self.modes if m.owns(request)), None)
        route = mode.route(request) if mode else _route(request)
        anthropic = request.path.startswith("/v1/messages")
        if route is None:
            self.unrouted.append(request.raw_path)
            unknown = Fail(404, message=f"Unknown path {request.path}")
            return mode.error(unknown, request) if mode else self._error(unknown, anthropic)
        body = await request.read()
        try:
            payload = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            payload = None
        self.calls[route] += 1
        self.requests.append(
            RecordedRequest(
                route,
                request.method,
                request.path,
                request.query_string,
                CIMultiDict(request.headers),
                body,
                payload,
                request.raw_path.partition("?")[0],
            )
        )
        flap, refused = self.flap, None
        if flap is not None and flap.down(time.monotonic()):
            refused = self._outage(flap, request, route, mode)
        elif mode is not None:
            refused = mode.admit(request, route, body, payload)
        if refused is not None:
            return refused
        step = self._scripts[route].popleft() if self._scripts[route] else self.default[route]
        if isinstance(step, Fail):
            if mode is not None:
                return mode.error(step, request)
            return self._error(step, route in ANTHROPIC_ROUTES)
        try:
            if mode is not None:
                return await self._mode_reply(mode, request, route, payload, step)
            return await self._reply(request, route, payload or {}, step)
        except asyncio.CancelledError:
            self._gone()
            raise
        except ConnectionResetError:
            self._gone()
            raise

    def _outage(
        self, flap: Flap, request: web.Request, route: str, mode: Mode | None
    ) -> web.Response:
        """A request during a down phase: a provider-shaped 500, or no answer at all."""
        self.flapped += 1
        if flap.mode == "reset":
            assert request.transport is not None
            request.transport.abort()
            # Never sent: aiohttp finds the transport closed and drops it without a word.
            return web.Response(status=500)
        fail = Fail(500)
        if mode is not None:
            return mode.error(fail, request)
        return self._error(fail, route in ANTHROPIC_ROUTES)

    def _headers(self, anthropic: bool, extra: dict[str, str]) -> dict[str, str]:
        name = "request-id" if anthropic else "x-request-id"
        return {name: self._next_id("req_"), **extra}

    def _error(self, fail: Fail, anthropic: bool) -> web.Response:
        if anthropic:
            kind = fail.type or ANTHROPIC_ERRORS.get(fail.status, "api_error")
            message = fail.message or {"overloaded_error": "Overloaded"}.get(kind, kind)
            body: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": self._next_id("req_"),
            }
        else:
            kind, code, message = OPENAI_ERRORS.get(fail.status, ("server_error", None, "Error"))
            body = {
                "error": {
                    "message": fail.message or message,
                    "type": fail.type or kind,
                    "param": None,
                    "code": fail.code or code,
                }
            }
        headers = self._headers(anthropic, fail.headers)
        if fail.status >= 500 or fail.status == 429:
            headers.setdefault("x-should-retry", "true")
        return web.Response(
            status=fail.status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers=headers,
        )

    async def _reply(
        self, request: web.Request, route: str, payload: dict[str, Any], reply: Reply
    ) -> web.StreamResponse:
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.stall_after == 0:
            await asyncio.Event().wait()
        anthropic = route in ANTHROPIC_ROUTES
        headers = self._headers(anthropic, reply.headers)
        if route in STORED_ROUTES.values():
            return await self._stored_call(request, route, headers, reply)
        model = payload.get("model", "unknown")
        usage_out = reply.completion_tokens
        if usage_out is None:
            usage_out = max(1, len(pieces(reply.text, reply.chunks)) + len(reply.tool_calls))
        streaming = ("chat", "completions", "messages", "responses")
        stream = payload.get("stream") is True and route in streaming
        if not stream and route == "responses":
            answer = self._response_object(model, reply, usage_out, self._next_id(""))
            self._store(payload, answer, self._response_events(reply, answer))
            if payload.get("background") is True:
                answer = {**answer, "status": "queued", "output": [], "usage": None}
            return web.json_response(
                answer, dumps=lambda v: orjson.dumps(v).decode(), headers=headers
            )
        if not stream:
            body = self._body(route, payload, model, reply, usage_out)
            return web.Response(body=body, content_type="application/json", headers=headers)
        frames = {
            "chat": self._chat_frames,
            "completions": self._completion_frames,
            "messages": self._message_frames,
            "responses": self._response_frames,
        }[route](payload, model, reply, usage_out)
        return await self._stream(request, frames, reply, headers, anthropic)

    async def _mode_reply(
        self, mode: Mode, request: web.Request, route: str, payload: Any, reply: Reply
    ) -> web.StreamResponse:
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.stall_after == 0:
            await asyncio.Event().wait()
        answer = mode.answer(request, route, payload, reply)
        if isinstance(answer, web.StreamResponse):
            return answer
        return await self._stream(
            request,
            answer.frames,
            reply,
            answer.headers,
            anthropic=False,
            error_frame=answer.error,
            content_type=answer.content_type,
        )

    async def _stream(
        self,
        request: web.Request,
        frames: list[bytes],
        reply: Reply,
        headers: dict[str, str],
        anthropic: bool,
        *,
        error_frame: bytes | None = None,
        content_type: str = "text/event-stream; charset=utf-8",
    ) -> web.StreamResponse:
        limit = min(
            (n for n in (reply.stall_after, reply.drop_after, reply.error_event_after) if n),
            default=len(frames),
        )
        response = web.StreamResponse(headers={**headers, "content-type": content_type})
        if self.compress_streams and "gzip" in request.headers.get("accept-encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
        await response.prepare(request)
        for piece in self._cut(frames[:limit], reply):
            await response.write(piece)
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            elif reply.split == "events":
                await asyncio.sleep(0)  # the next frame is written on the loop's next turn
        if reply.stall_after and limit == reply.stall_after:
            await asyncio.Event().wait()
        if reply.drop_after and limit == reply.drop_after:
            assert request.transport is not None
            request.transport.abort()
            return response
        if reply.error_event_after and limit == reply.error_event_after:
            if error_frame is not None:
                await response.write(error_frame)
            elif anthropic:
                error = {
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                }
                await response.write(sse(error, "error"))
            else:
                error = {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                await response.write(sse(error))
        await response.write_eof()
        return response

    def _cut(self, frames: list[bytes], reply: Reply) -> list[bytes]:
        if reply.split in ("frames", "events") or reply.chunk_delay:
            return frames
        data = b"".join(frames)
        if reply.split == "whole":
            return [data]
        if reply.split.startswith("bytes:"):
            size = int(reply.split.partition(":")[2])
            return [data[i : i + size] for i in range(0, len(data), size)]
        cuts, position = [], 0
        while position < len(data):
            step = self._rng.randint(1, 17)
            cuts.append(data[position : position + step])
            position += step
        return cuts

    # --- bodies ----------------------------------------------------------------------------

    def _openai_usage(self, reply: Reply, out: int) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": out,
            "total_tokens": reply.prompt_tokens + out,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _response_object(
        self, model: str, reply: Reply, out: int | None, suffix: str
    ) -> dict[str, Any]:
        """A Responses API `response`: complete with its message and usage, or (`out` None)
        just created."""
        message = {
            "id": "msg_" + suffix,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
        }
        usage = {
            "input_tokens": reply.prompt_tokens,
            "input_tokens_details": {"cached_tokens": reply.cached_tokens},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.prompt_tokens + (out or 0),
        }
        calls = [self._function_call(call, call.arguments_json) for call in reply.tool_calls]
        return {
            "id": "resp_" + suffix,
            "object": "response",
            "created_at": 1_700_000_000,
            "status": "in_progress" if out is None else "completed",
            "error": None,
            "incomplete_details": None,
            "model": model,
            "output": [] if out is None else [message, *calls],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": None if out is None else usage,
        }

    def _function_call(self, call: ToolCall, arguments: str) -> dict[str, Any]:
        """A Responses API function call item (`arguments` so far: "" while it streams)."""
        status = "completed" if arguments == call.arguments_json else "in_progress"
        return {
            "id": "fc_" + call.id,
            "type": "function_call",
            "status": status,
            "call_id": call.id,
            "name": call.name,
            "arguments": arguments,
        }

    def _function_call_events(self, reply: Reply) -> list[dict[str, Any]]:
        """Each function call after the message (output 1, 2...): added, its arguments in
        pieces, done."""
        events: list[dict[str, Any]] = []
        for index, call in enumerate(reply.tool_calls, start=1):
            at = {"item_id": "fc_" + call.id, "output_index": index}
            events += [
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": self._function_call(call, ""),
                },
                *(
                    {"type": "response.function_call_arguments.delta", **at, "delta": piece}
                    for piece in pieces(call.arguments_json, reply.chunks)
                ),
                {
                    "type": "response.function_call_arguments.done",
                    **at,
                    "arguments": call.arguments_json,
                },
                {
                    "type": "response.output_item.done",
                    "output_index": index,
                    "item": self._function_call(call, call.arguments_json),
                },
            ]
        return events

    def _response_frames(
        self, payload: dict[str, Any], model: str, reply: Reply, out: int
    ) -> list[bytes]:
        done = self._response_object(model, reply, out, self._next_id(""))
        frames = self._response_events(reply, done)
        self._store(payload, done, frames)
        return frames

    def _response_events(self, reply: Reply, done: dict[str, Any]) -> list[bytes]:
        """The events of a response streamed, ending with `done`."""
        item = done["output"][0]["id"]
        at = {"item_id": item, "output_index": 0, "content_index": 0}
        opened = {"id": item, "type": "message", "status": "in_progress", "role": "assistant"}
        created = {**done, "status": "in_progress", "output": [], "usage": None}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": created},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**opened, "content": []},
            },
            {
                "type": "response.content_part.added",
                **at,
                "part": {"type": "output_text", "text": "", "annotations": []},
            },
            *(
                {"type": "response.output_text.delta", **at, "delta": piece}
                for piece in pieces(reply.text, reply.chunks)
            ),
            {"type": "response.output_text.done", **at, "text": reply.text},
            {"type": "response.output_item.done", "output_index": 0, "item": done["output"][0]},
            *self._function_call_events(reply),
            {"type": "response.completed", "response": done},
        ]
        return [
            sse({**event, "sequence_number": n}, event["type"]) for n, event in enumerate(events)
        ]

    def _store(
        self, payload: dict[str, Any], response: dict[str, Any], frames: list[bytes]
    ) -> None:
        if payload.get("store") is False:
            return
        given = payload.get("input")
        if isinstance(given, str):
            given = [{"role": "user", "content": [{"type": "input_text", "text": given}]}]
        items = [
            {"id": f"msg_{self._next_id('')}", "type": "message", **item}
            for item in (given if isinstance(given, list) else [])
            if isinstance(item, dict)
        ]
        background = payload.get("background") is True
        self.stored[response["id"]] = StoredResponse(
            response, frames, items, background, "queued" if background else "completed"
        )

    async def _stored_call(
        self, request: web.Request, route: str, headers: dict[str, str], reply: Reply
    ) -> web.StreamResponse:
        """Retrieve (whole, or streamed from `starting_after` as `reply` scripts a stream),
        delete, cancel and input items, as OpenAI answers them."""
        answer_id = request.path[len(STORED_PREFIX) :].partition("/")[0]
        kept = self.stored.get(answer_id)
        if kept is None:
            missing = Fail(404, message=f"Response with id '{answer_id}' not found.")
            return self._error(missing, anthropic=False)
        query = request.query
        if route == "responses.delete":
            del self.stored[answer_id]
            answer: dict[str, Any] = {"id": answer_id, "object": "response", "deleted": True}
        elif route == "responses.input_items":
            answer = _listing(kept.items, query.get("order", "desc"), int(query.get("limit", 20)))
        elif route == "responses.cancel" and not kept.background:
            refused = "Only responses created with background=true can be cancelled."
            return self._error(Fail(400, message=refused), anthropic=False)
        else:
            if kept.status == "queued":  # a look completes it, a cancel stops it
                kept.status = "cancelled" if route == "responses.cancel" else "completed"
            answer = kept.response
            if kept.status == "cancelled":
                answer = {**answer, "status": "cancelled", "output": [], "usage": None}
            elif query.get("stream") == "true":
                after = int(query.get("starting_after", "-1"))
                return await self._stream(request, kept.frames[after + 1 :], reply, headers, False)
        return self._json(answer, headers)

    def _json(self, value: Any, headers: dict[str, str]) -> web.Response:
        return web.Response(
            body=orjson.dumps(value), content_type="application/json", headers=headers
        )

    def _anthropic_usage(self, reply: Reply, out: int) -> dict[str, Any]:
        return {
            "input_tokens": reply.prompt_tokens,
            "output_tokens": out,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }

    def _finish(self, reply: Reply, table: dict[str, str]) -> str:
        return reply.finish_reason or table["tool" if reply.tool_calls else "stop"]

    def _body(
        self, route: str, payload: dict[str, Any], model: str, reply: Reply, out: int
    ) -> bytes:
        if route == "models":
            return orjson.dumps(
                {
                    "object": "list",
                    "data": [
                        {"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "openai"}
                    ],
                }
            )
        if route == "count_tokens":
            return orjson.dumps({"input_tokens": reply.prompt_tokens})
        if route == "embeddings":
            return self._embeddings(payload, model, reply)
        if route == "messages":
            content: list[dict[str, Any]] = (
                [{"type": "text", "text": reply.text}] if reply.text else []
            )
            content += [
                {
                    "type": "tool_use",
                    "id": c.id,
                    "name": c.name,
                    "input": orjson.loads(c.arguments_json),
                }
                for c in reply.tool_calls
            ]
            return orjson.dumps(
                {
                    "id": self._next_id("msg_"),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": self._finish(reply, ANTHROPIC_STOP),
                    "stop_sequence": None,
                    "usage": self._anthropic_usage(reply, out),
                }
            )
        if route == "completions":
            return orjson.dumps(
                {
                    "id": self._next_id("cmpl-"),
                    "object": "text_completion",
                    "created": 1700000000,
                    "model": model,
                    "choices": [
                        {"text": reply.text, "index": 0, "logprobs": None, "finish_reason": "stop"}
                    ],
                    "usage": self._openai_usage(reply, out),
                }
            )
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text or None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_json},
                }
                for c in reply.tool_calls
            ]
        return orjson.dumps(
            {
                "id": self._next_id("chatcmpl-"),
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": self._finish(reply, OPENAI_STOP),
                    }
                ],
                "usage": self._openai_usage(reply, out),
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            }
        )

    def _embeddings(self, payload: dict[str, Any], model: str, reply: Reply) -> bytes:
        raw = payload.get("input", "")
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        data = []
        for index, item in enumerate(inputs):
            vector = embedding_vector(item, reply.embedding_dims)
            encoded: Any = vector
            if payload.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = reply.prompt_tokens
        return orjson.dumps(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _chat_frames(
        self, payload: dict[str, Any], model: str, reply: Reply, out: int
    ) -> list[bytes]:
        chunk_id = self._next_id("chatcmpl-")
        options = payload.get("stream_options") or {}
        with_usage = options.get("include_usage") is True

        def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if with_usage:
                chunk["usage"] = None
            return sse(chunk)

        frames = [frame({"role": "assistant", "content": "", "refusal": None})]
        frames += [frame({"content": part}) for part in pieces(reply.text, reply.chunks)]
        for index, call in enumerate(reply.tool_calls):
            frames.append(
                frame(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for part in pieces(call.arguments_json, 3):
                frames.append(
                    frame({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                )
        frames.append(frame({}, self._finish(reply, OPENAI_STOP)))
        if with_usage:
            frames.append(
                sse(
                    {
                        "id": chunk_id,
                        "object": "chat.completion.chunk",
                        "created": 1700000000,
                        "model": model,
                        "system_fingerprint": "fp_fake",
                        "choices": [],
                        "usage": self._openai_usage(reply, out),
                    }
                )
            )
        return [*frames, b"data: [DONE]\n\n"]

    def _completion_frames(
        self, payload: dict[str, Any], model: str, reply: Reply, out: int
    ) -> list[bytes]:
        completion_id = self._next_id("cmpl-")

        def frame(text: str, finish: str | None) -> bytes:
            return sse(
                {
                    "id": completion_id,
                    "object": "text_completion",
                    "created": 1700000000,
                    "model": model,
                    "choices": [
                        {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
                    ],
                }
            )

        frames = [frame(part, None) for part in pieces(reply.text, reply.chunks)]
        return [*frames, frame("", "stop"), b"data: [DONE]\n\n"]

    def _message_frames(
        self, payload: dict[str, Any], model: str, reply: Reply, out: int
    ) -> list[bytes]:
        start_usage = {**self._anthropic_usage(reply, 1)}
        frames = [
            sse(
                {
                    "type": "message_start",
                    "message": {
                        "id": self._next_id("msg_"),
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
                "message_start",
            )
        ]
        index = 0
        if reply.text:
            frames.append(
                sse(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                    "content_block_start",
                )
            )
        frames.append(sse({"type": "ping"}, "ping"))
        if reply.text:
            for part in pieces(reply.text, reply.chunks):
                frames.append(
                    sse(
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": part},
                        },
                        "content_block_delta",
                    )
                )
            frames.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
            index = 1
        for offset, call in enumerate(reply.tool_calls):
            block = index + offset
            frames.append(
                sse(
                    {
                        "type": "content_block_start",
                        "index": block,
                        "content_block": {
                            "type": "tool_use",
                            "id": call.id,
                            "name": call.name,
                            "input": {},
                        },
                    },
                    "content_block_start",
                )
            )
            for part in pieces(call.arguments_json, 3):
                frames.append(
                    sse(
                        {
                            "type": "content_block_delta",
                            "index": block,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        },
                        "content_block_delta",
                    )
                )
            frames.append(sse({"type": "content_block_stop", "index": block}, "content_block_stop"))
        frames.append(
            sse(
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": self._finish(reply, ANTHROPIC_STOP),
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": out},
                },
                "message_delta",
            )
        )
        frames.append(sse({"type": "message_stop"}, "message_stop"))
        return frames


async def _serve(args: argparse.Namespace) -> None:
    flap = None
    if args.flap_period is not None:
        flap = Flap(args.flap_period, args.flap_mode, args.flap_offset)
    fake = FakeUpstream(flap=flap)
    fake.requests = _Discard()  # a long benchmark would otherwise keep every body it saw
    chunks = args.chunks
    for route in ("chat", "completions", "messages", "gemini_stream", "bedrock_converse_stream"):
        fake.default[route] = Reply(
            text=" ".join(f"word{i}" for i in range(chunks)), chunks=chunks, split=args.split
        )
    await fake.start(port=args.port)
    if flap is not None:
        print(
            f"FLAP period={flap.period:g} mode={flap.mode} first_outage={flap.first_outage:.6f}",
            flush=True,
        )
    print(f"READY {fake.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await fake.close()
    counts = {"calls": dict(fake.calls), "flapped": fake.flapped}
    print("CALLS " + orjson.dumps(counts).decode(), flush=True)


class _Discard(list[RecordedRequest]):
    """A request log that keeps nothing: the CLI reports counts, not requests."""

    def append(self, item: RecordedRequest, /) -> None:
        pass


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    import uvloop

    parser = argparse.ArgumentParser(description="fake OpenAI/Anthropic/Gemini/Bedrock upstream")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--split", default="frames")
    parser.add_argument(
        "--flap-period",
        type=_positive,
        help="flap: down this many seconds, then up as long, and again (default: never down)",
    )
    parser.add_argument(
        "--flap-mode",
        choices=("error", "reset"),
        default="error",
        help="while down: answer 500 in the provider's format, or abort the connection",
    )
    parser.add_argument(
        "--flap-offset",
        type=float,
        default=0.0,
        help="seconds of normal service after start before the first down phase (default 0)",
    )
    args = parser.parse_args(argv)
    if args.flap_offset < 0:
        parser.error("--flap-offset must not be negative")
    uvloop.run(_serve(args))


if __name__ == "__main__":
    main()
