"""OpenAI's wire format: error bodies, replies and stream chunks, and usage extraction."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from edgeproxy.dialects.neutral import ChatResponse, Usage, split_text
from edgeproxy.dialects.usage_body import body_usage
from edgeproxy.errors import ProxyError
from edgeproxy.sse import SSEEvent

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
# Neutral codes that OpenAI words differently: (type, code) as OpenAI's own API sends them, so
# code written against OpenAI (retry on `rate_limit_exceeded`, alert on `invalid_api_key`,
# stop on `insufficient_quota`) works unchanged behind the proxy. Other codes keep the
# status's type. A spent budget is OpenAI's exhausted quota.
_UPSTREAM_ERRORS = {
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "rate_limited": ("requests", "rate_limit_exceeded"),
    "overloaded": ("server_error", "overloaded"),
    "upstream_error": ("server_error", "upstream_error"),
    "budget_exceeded": ("insufficient_quota", "insufficient_quota"),
}
DONE = b"data: [DONE]\n\n"


def status_for(err: ProxyError) -> int:
    """The HTTP status an OpenAI client gets: Anthropic's 529 (overloaded) is not an HTTP
    status OpenAI uses, so it becomes 503, which the SDK retries the same way."""
    return 503 if err.status == 529 else err.status


def error_object(err: ProxyError) -> dict[str, Any]:
    kind, code = _UPSTREAM_ERRORS.get(err.code) or (
        _ERROR_TYPES.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error"),
        err.code,
    )
    return {"message": err.message, "type": kind, "param": err.param, "code": code}


def render_error(err: ProxyError) -> bytes:
    return orjson.dumps({"error": error_object(err)})


def error_event(err: ProxyError) -> bytes:
    """The final frame of a stream that failed after it started: the SDKs raise on it."""
    return b"data: " + orjson.dumps({"error": error_object(err)}) + b"\n\n"


def usage_object(usage: Usage) -> dict[str, Any]:
    """The `usage` object of a chat completion (or its final stream chunk)."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def read_usage(obj: dict[str, Any]) -> Usage | None:
    """Usage from a chat/completions/embeddings body or chunk, if it carries one."""
    raw = obj.get("usage")
    if not isinstance(raw, dict):
        return None
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def answer_id_of_body(body: bytes) -> str | None:
    """None: no later request names an answer of this API (the Responses API's are)."""
    return None


def usage_of_body(body: bytes) -> Usage | None:
    """Usage from a complete non-streaming response body; None if it has none or is not JSON.
    Its usage object is decoded alone when it can be found (dialects/usage_body.py)."""
    return body_usage(body, read_usage)


# What an event must contain for StreamUsage to learn anything from it: a usage object (not
# null), or an error. A relay decodes only the events it finds these in.
NAME = "openai"  # the dialect, as headers and logs name it
USAGE_MARKERS = (b'"usage":{', b'"usage": {', b'"error"')


class StreamUsage:
    """Watches relayed OpenAI SSE events for the usage chunk without re-encoding anything,
    and for an error the provider sent in place of a chunk."""

    __slots__ = ("failed", "usage")
    answer_id: str | None = None  # only the Responses API's answers are named in later requests

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.failed = False

    def observe(self, event: SSEEvent) -> None:
        data = event.data
        if data.startswith(b'{"error"'):
            self.failed = True
            return
        if b'"usage"' in data and b'"usage":null' not in data and data != b"[DONE]":
            try:
                self.usage = read_usage(orjson.loads(data)) or self.usage
            except orjson.JSONDecodeError:
                return


def text_completion(reply: ChatResponse) -> bytes:
    """A legacy `/v1/completions` answer (what the mock gives that endpoint)."""
    return orjson.dumps(
        {
            "id": reply.id,
            "object": "text_completion",
            "created": reply.created,
            "model": reply.model,
            "choices": [
                {"text": reply.text, "index": 0, "logprobs": None, "finish_reason": reply.finish}
            ],
            "usage": usage_object(reply.usage),
        }
    )


def completion_stream(reply: ChatResponse, pieces: int, include_usage: bool) -> Iterator[bytes]:
    def frame(text: str, finish: str | None, usage: Usage | None = None) -> bytes:
        body: dict[str, Any] = {
            "id": reply.id,
            "object": "text_completion",
            "created": reply.created,
            "model": reply.model,
            "choices": []
            if usage
            else [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }
        if usage:
            body["usage"] = usage_object(usage)
        return b"data: " + orjson.dumps(body) + b"\n\n"

    for part in split_text(reply.text, pieces):
        yield frame(part, None)
    yield frame("", reply.finish)
    if include_usage:
        yield frame("", None, reply.usage)
    yield DONE


def embeddings(
    model: str, vectors: Sequence[Sequence[float]], encoding: str, usage: Usage
) -> bytes:
    """An embeddings list; `base64` packs little-endian float32 as the SDK requests by default."""

    def encode(vector: Sequence[float]) -> Any:
        if encoding != "base64":
            return list(vector)
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(v)}
                for i, v in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
        }
    )


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "edgeproxy"}


def model_list(names: Sequence[str]) -> bytes:
    return orjson.dumps({"object": "list", "data": [_model(n) for n in names]})


def model_entry(name: str) -> bytes:
    """One model, as `GET /v1/models/{model}` answers."""
    return orjson.dumps(_model(name))
