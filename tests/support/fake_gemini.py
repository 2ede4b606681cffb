"""Google's Gemini API (generativelanguage, v1beta) for the fake upstream, as Google sends it.

Routes, by the names tests script: `gemini_generate`, `gemini_stream`, `gemini_embed`,
`gemini_batch_embed` and `gemini_count_tokens`, at POST /v1beta/models/{model}:{method}.
`streamGenerateContent?alt=sse` sends `data: <GenerateContentResponse>` frames ended by CRLF
CRLF; without `alt=sse` Google streams one JSON array instead. A failure mid-stream is an
`{"error": ...}` object in a data frame. Bodies are laid out as Google lays them out (two-space
indents; `": "` inside one-line SSE frames). Set `api_key` to have the `x-goog-api-key` header
(or `?key=`, left visible in RecordedRequest.query) checked.
"""

from __future__ import annotations

import base64
import json
import random
import re
from typing import Any

import orjson
from aiohttp import web

from tests.support.fake_upstream import Fail, Frames, Reply, embedding_vector, pieces

PATH = re.compile(r"/v1beta/models/([^/:]+):(\w+)")
METHODS = {
    "generateContent": "gemini_generate",
    "streamGenerateContent": "gemini_stream",
    "embedContent": "gemini_embed",
    "batchEmbedContents": "gemini_batch_embed",
    "countTokens": "gemini_count_tokens",
}
STATUSES = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
INVALID_KEY = "API key not valid. Please pass a valid API key."
JSON_TYPE = "application/json; charset=UTF-8"
RPC = "type.googleapis.com/google.rpc."


def pretty(obj: Any) -> bytes:
    """Google's layout for JSON bodies: two-space indents."""
    return json.dumps(obj, indent=2, ensure_ascii=False).encode()


def whole(obj: Any) -> bytes:
    """A whole response body, which Google ends with a newline."""
    return pretty(obj) + b"\n"


def line(obj: Any) -> bytes:
    """Google's layout inside an SSE frame: one line, `": "` after keys, bare commas."""
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=False).encode()


def sse(obj: Any) -> bytes:
    return b"data: " + line(obj) + b"\r\n\r\n"


class FakeGemini:
    """The Gemini `Mode` of FakeUpstream (see the module docstring)."""

    routes = tuple(METHODS.values())

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.api_key: str | None = None
        self.retry_delay = "23s"  # the RetryInfo of a 429
        self.stream_error = (
            503,
            "UNAVAILABLE",
            "This model is currently experiencing high demand. Spikes in demand are usually "
            "temporary. Please try again later.",
        )

    # --- the Mode contract -------------------------------------------------------------

    def owns(self, request: web.Request) -> bool:
        return request.path.startswith("/v1beta/")

    def route(self, request: web.Request) -> str | None:
        match = PATH.fullmatch(request.path)
        return METHODS.get(match[2]) if match and request.method == "POST" else None

    def admit(
        self, request: web.Request, route: str, body: bytes, payload: Any
    ) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if self.api_key is not None and not key:
            return self._error(403, "PERMISSION_DENIED", UNREGISTERED, [])
        if self.api_key is not None and key != self.api_key:
            details: list[dict[str, Any]] = [
                {
                    "@type": RPC + "ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {"@type": RPC + "LocalizedMessage", "locale": "en-US", "message": INVALID_KEY},
            ]
            return self._error(400, "INVALID_ARGUMENT", INVALID_KEY, details)
        problem = _problem(route, _model(request), payload)
        return None if problem is None else self._error(400, "INVALID_ARGUMENT", problem, [])

    def error(self, fail: Fail, request: web.Request) -> web.Response:
        status, message = STATUSES.get(fail.status, ("UNKNOWN", "Unknown error."))
        match = PATH.fullmatch(request.path)
        if fail.status == 404 and match:
            message = (
                f"models/{match[1]} is not found for API version v1beta, or is not supported "
                f"for {match[2]}. Call ListModels to see the list of available models and "
                "their supported methods."
            )
        details: list[dict[str, Any]] = []
        if fail.status == 429:
            message = f"{message} Please retry in {self.retry_delay}."
            details = self._quota_details(match[1] if match else "")
        response = self._error(fail.status, fail.type or status, fail.message or message, details)
        response.headers.update(fail.headers)
        return response

    def answer(
        self, request: web.Request, route: str, payload: dict[str, Any], reply: Reply
    ) -> web.Response | Frames:
        model = _model(request)
        if route == "gemini_stream":
            return self._stream(request, payload, model, reply)
        if route == "gemini_generate":
            parts = [part for chunk in self._chunks(payload, reply, 1) for part in chunk]
            usage = self._usage(reply, _output(reply))
            body = self._response(parts, self._finish(reply), usage, model, self._response_id())
        elif route == "gemini_count_tokens":
            body = {"totalTokens": reply.prompt_tokens, **self._prompt_usage(reply)}
        elif route == "gemini_embed":
            body = {"embedding": _embedding(payload, reply)}
        else:
            body = {"embeddings": [_embedding(item, reply) for item in payload["requests"]]}
        return web.Response(body=whole(body), headers={"content-type": JSON_TYPE, **reply.headers})

    # --- answers -------------------------------------------------------------------------

    def _error(
        self, code: int, status: str, message: str, details: list[dict[str, Any]]
    ) -> web.Response:
        error: dict[str, Any] = {"code": code, "message": message, "status": status}
        if details:
            error["details"] = details
        return web.Response(
            status=code, body=whole({"error": error}), headers={"content-type": JSON_TYPE}
        )

    def _quota_details(self, model: str) -> list[dict[str, Any]]:
        violation = {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": model},
            "quotaValue": "10",
        }
        help_link = {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
        return [
            {"@type": RPC + "Help", "links": [help_link]},
            {"@type": RPC + "QuotaFailure", "violations": [violation]},
            {"@type": RPC + "RetryInfo", "retryDelay": self.retry_delay},
        ]

    def _response_id(self) -> str:
        return base64.urlsafe_b64encode(self._rng.randbytes(17)).decode().rstrip("=")

    def _finish(self, reply: Reply) -> str:
        return reply.finish_reason or "STOP"  # function calls end with STOP too

    def _chunks(
        self, payload: dict[str, Any], reply: Reply, count: int
    ) -> list[list[dict[str, Any]]]:
        """The parts each streamed response carries; whole parts when count is 1.

        Thought summaries are sent only when the request asks for them; function calls come
        whole, all in one response, and a thinking model signs the first of them (or else its
        last text part) with a `thoughtSignature`.
        """
        config = payload.get("generationConfig") or {}
        chunks: list[list[dict[str, Any]]] = []
        if reply.thinking and (config.get("thinkingConfig") or {}).get("includeThoughts"):
            chunks += [[{"text": t, "thought": True}] for t in pieces(reply.thinking, count)]
        chunks += [[{"text": t}] for t in pieces(reply.text, count)]
        calls: list[dict[str, Any]] = [
            {"functionCall": {"name": call.name, "args": orjson.loads(call.arguments_json)}}
            for call in reply.tool_calls
        ]
        if calls:
            chunks.append(calls)
        answers = [part for chunk in chunks for part in chunk if not part.get("thought")]
        if reply.thinking and answers:
            signed = calls[0] if calls else answers[-1]
            signed["thoughtSignature"] = base64.b64encode(self._rng.randbytes(64)).decode()
        return chunks or [[]]

    def _prompt_usage(self, reply: Reply) -> dict[str, Any]:
        usage: dict[str, Any] = {}
        if reply.cached_tokens:
            usage["cachedContentTokenCount"] = reply.cached_tokens
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}]
        if reply.cached_tokens:
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.cached_tokens}]
        return usage

    def _usage(self, reply: Reply, candidates: int) -> dict[str, Any]:
        """usageMetadata; Google leaves out counts that are zero."""
        thoughts = len(pieces(reply.thinking or "", reply.chunks))
        usage: dict[str, Any] = {"promptTokenCount": reply.prompt_tokens}
        if candidates:
            usage["candidatesTokenCount"] = candidates
        usage["totalTokenCount"] = reply.prompt_tokens + candidates + thoughts
        usage.update(self._prompt_usage(reply))
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        usage["serviceTier"] = "standard"
        return usage

    def _response(
        self,
        parts: list[dict[str, Any]],
        finish: str | None,
        usage: dict[str, Any],
        model: str,
        response_id: str,
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
        if finish:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": response_id,
        }

    def _stream(
        self, request: web.Request, payload: dict[str, Any], model: str, reply: Reply
    ) -> Frames:
        """One GenerateContentResponse per chunk; usage grows, the last one says why it ended."""
        chunks = self._chunks(payload, reply, reply.chunks)
        response_id, out = self._response_id(), _output(reply)
        answers = [not any(part.get("thought") for part in parts) for parts in chunks]
        responses = []
        for index, parts in enumerate(chunks):
            done = round(out * sum(answers[: index + 1]) / (sum(answers) or 1))
            last = index == len(chunks) - 1
            usage = self._usage(reply, out if last else done)
            finish = self._finish(reply) if last else None
            responses.append(self._response(parts, finish, usage, model, response_id))
        code, status, message = self.stream_error
        error = {"error": {"code": code, "message": message, "status": status}}
        if request.query.get("alt") == "sse":
            frames = [sse(response) for response in responses]
            return Frames(frames, dict(reply.headers), "text/event-stream", sse(error))
        frames = [(b"[" if i == 0 else b"\n,\r\n") + pretty(r) for i, r in enumerate(responses)]
        error_frame = b"\n,\r\n" + pretty(error) + b"\n]"
        return Frames([*frames, b"\n]"], dict(reply.headers), JSON_TYPE, error_frame)


def _model(request: web.Request) -> str:
    match = PATH.fullmatch(request.path)
    return match[1] if match else ""


def _output(reply: Reply) -> int:
    if reply.completion_tokens is not None:
        return reply.completion_tokens
    return max(1, len(pieces(reply.text, reply.chunks)) + len(reply.tool_calls))


def _embedding(request: dict[str, Any], reply: Reply) -> dict[str, list[float]]:
    parts = (request.get("content") or {}).get("parts") or []
    text = "".join(str(part.get("text", "")) for part in parts)
    return {
        "values": embedding_vector(
            text, request.get("outputDimensionality") or reply.embedding_dims
        )
    }


def _problem(route: str, model: str, payload: Any) -> str | None:
    """The INVALID_ARGUMENT message Google gives a body it cannot use, or None."""
    if not isinstance(payload, dict):
        return "Invalid JSON payload received."
    if route in ("gemini_generate", "gemini_stream") and not payload.get("contents"):
        return "* GenerateContentRequest.contents: contents is not specified\n"
    if route == "gemini_embed" and not isinstance(payload.get("content"), dict):
        return "* EmbedContentRequest.content: content is not specified\n"
    if route == "gemini_batch_embed":
        return _batch_problem(model, payload.get("requests"))
    return None


def _batch_problem(model: str, requests: Any) -> str | None:
    """Each request of a batch must be a whole EmbedContentRequest naming the URL's model."""
    if not isinstance(requests, list) or not requests:
        return "* BatchEmbedContentsRequest.requests: requests is not specified\n"
    for index, item in enumerate(requests):
        if not isinstance(item, dict) or item.get("model") != f"models/{model}":
            return (
                f"* BatchEmbedContentsRequest.requests[{index}].model: the model of each "
                f"request must be models/{model}\n"
            )
    return None
