"""A real provider kind that answers offline: deterministic replies, usage, latency, chunking.

It speaks every endpoint the proxy serves natively (the Responses API included), so a newcomer
can try the proxy with no key and no network, and load tests or an application's CI can use it
as a stand-in for a paid API.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import orjson

from edgeproxy.dialects import anthropic, openai, openai_responses
from edgeproxy.dialects.neutral import ChatRequest, ChatResponse, Text, Usage, events_of
from edgeproxy.operations import Operation
from edgeproxy.providers.base import CLIENT_CHAT, ForwardRequest, OutboundRequest, Provider
from edgeproxy.providers.settings import KindRules, ProviderConfig, fixed_url

_JSON = {"content-type": "application/json"}
# Answer ids as each API spells them (the Responses codec adds `resp_` and `msg_` itself).
_ID_PREFIXES = {Operation.MESSAGES: "msg_", Operation.RESPONSES: ""}
_SSE = {"content-type": "text/event-stream; charset=utf-8"}
# Responses API answers kept for the stored-response calls, the newest this many.
STORED_LIMIT = 1000


def estimate_tokens(text: str) -> int:
    """About four characters a token: the usual rule of thumb, good enough for a mock."""
    return max(1, math.ceil(len(text) / 4))


def _text_of(value: Any) -> str:
    """All the prompt text in a message list, prompt or input, whatever its shape."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_text_of(value[k]) for k in ("content", "text", "system") if k in value)
    return ""


def _embedding(text: str, dims: int) -> list[float]:
    """A deterministic unit vector derived from the text."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [(seed[i % len(seed)] / 127.5 - 1.0) * (1 + i // len(seed)) for i in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


class MockUpstream:
    """A generated answer behind the same interface as an HTTP upstream."""

    __slots__ = ("_body", "_frames", "_interval", "_started", "headers", "status")

    def __init__(
        self, body: bytes, frames: Iterator[bytes] | None, interval: float, status: int = 200
    ) -> None:
        self.status = status
        self.headers = dict(_SSE if frames is not None else _JSON)
        self._body = body
        self._frames = frames
        self._interval = interval
        self._started = False

    @property
    def is_event_stream(self) -> bool:
        return self._frames is not None

    async def read(self) -> bytes:
        return self._body

    async def next_chunk(self) -> bytes:
        if self._frames is None:
            return b""
        if self._started and self._interval:
            await asyncio.sleep(self._interval)
        self._started = True
        return next(self._frames, b"")

    def close(self) -> None:
        self._frames = None


class MockProvider(Provider):
    rules = KindRules(
        fixed_url("http://mock.invalid"), frozenset({"mock"}), authenticated=lambda given: True
    )
    operations = frozenset(Operation)

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        # Stored Responses answers, as OpenAI keeps them: the answer and its input items.
        self._stored: OrderedDict[str, tuple[bytes, list[dict[str, Any]]]] = OrderedDict()

    async def send(self, request: OutboundRequest) -> MockUpstream:
        settings = self.config.mock
        if settings.latency:
            await asyncio.sleep(settings.latency)
        payload = request.payload
        model = request.model
        operation = request.operation
        prompt = _text_of(
            payload.get("messages") or payload.get("prompt") or payload.get("input") or ""
        ) + _text_of(payload.get("system") or payload.get("instructions") or "")
        prompt_tokens = settings.prompt_tokens or estimate_tokens(prompt)
        if operation is Operation.COUNT_TOKENS:
            return MockUpstream(anthropic.token_count(prompt_tokens), None, 0)
        if operation is Operation.EMBEDDINGS:
            return self._embeddings(payload, model, prompt_tokens)
        reply = ChatResponse(
            id=_ID_PREFIXES.get(operation, "chatcmpl-") + request.request_id[:24],
            model=model,
            parts=[Text(settings.reply)],
            finish="stop",
            usage=Usage(
                input_tokens=prompt_tokens,
                output_tokens=settings.completion_tokens or estimate_tokens(settings.reply),
            ),
            created=int(time.time()),
        )
        return self._reply(request, reply)

    def _reply(self, request: OutboundRequest, reply: ChatResponse) -> MockUpstream:
        """The answer rendered by the client dialect's own codec, as an upstream of that
        dialect would send it."""
        pieces = self.config.mock.stream_chunks
        options = request.payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        if request.operation is Operation.RESPONSES:
            payload = request.payload
            whole = openai_responses.render_response(reply, payload)
            if payload.get("store") is not False:
                self._store("resp_" + reply.id, whole, payload.get("input"))
            if not request.stream:
                return MockUpstream(whole, None, 0)
            frames = openai_responses.response_stream(reply, payload, pieces)
            return MockUpstream(b"", frames, self.config.mock.chunk_interval)
        if request.operation is Operation.COMPLETIONS:
            if not request.stream:
                return MockUpstream(openai.text_completion(reply), None, 0)
            frames = openai.completion_stream(reply, pieces, include_usage)
            return MockUpstream(b"", frames, self.config.mock.chunk_interval)
        codec = CLIENT_CHAT[request.operation]
        if not request.stream:
            return MockUpstream(codec.render_chat(reply), None, 0)
        shape = ChatRequest(reply.model, [], stream=True, include_usage=include_usage)
        encoder = codec.chat_stream_encoder(shape)
        encoded = [encoder.encode(event) for event in events_of(reply, pieces)]
        encoded.append(encoder.finish())
        frames = iter([frame for frame in encoded if frame])
        return MockUpstream(b"", frames, self.config.mock.chunk_interval)

    def _store(self, answer_id: str, answer: bytes, given: Any) -> None:
        if isinstance(given, str):
            items: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": given}]
        elif isinstance(given, list):
            items = [item for item in given if isinstance(item, dict)]
        else:
            items = []
        items = [{"id": f"msg_{answer_id}_{n}", **item} for n, item in enumerate(items)]
        stored = self._stored
        stored[answer_id] = (answer, items)
        if len(stored) > STORED_LIMIT:
            stored.popitem(last=False)

    async def forward(self, request: ForwardRequest, *, raw: bool) -> MockUpstream:
        """The calls on a stored Responses answer, as OpenAI answers them: retrieve, delete
        and input items; cancel refused, as OpenAI refuses it for an answer not made in the
        background (the mock makes none). It has no other path."""
        call = openai_responses.stored_call(request.path)
        if call is None:
            return _refusal(404, f"Unknown path {request.path}")
        answer_id, suffix = call
        kept = self._stored.get(answer_id)
        if kept is None:
            return _refusal(404, f"Response with id '{answer_id}' not found.")
        answer, items = kept
        if suffix == "/cancel":
            return _refusal(400, "Only responses created with background=true can be cancelled.")
        if suffix == "/input_items":
            ids = [item["id"] for item in items]
            listing = {
                "object": "list",
                "data": items,
                "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None,
                "has_more": False,
            }
            return MockUpstream(orjson.dumps(listing), None, 0)
        if request.method == "DELETE":
            del self._stored[answer_id]
            deleted = {"id": answer_id, "object": "response", "deleted": True}
            return MockUpstream(orjson.dumps(deleted), None, 0)
        return MockUpstream(answer, None, 0)

    def _embeddings(self, payload: dict[str, Any], model: str, tokens: int) -> MockUpstream:
        raw = payload.get("input")
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        dims = payload.get("dimensions")
        size = dims if isinstance(dims, int) and dims > 0 else self.config.mock.embedding_dims
        vectors = [_embedding(_text_of(item) or str(item), size) for item in inputs]
        encoding = payload.get("encoding_format") or "float"
        body = openai.embeddings(model, vectors, encoding, Usage(input_tokens=tokens))
        return MockUpstream(body, None, 0)


def _refusal(status: int, message: str) -> MockUpstream:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return MockUpstream(orjson.dumps({"error": error}), None, 0, status)
