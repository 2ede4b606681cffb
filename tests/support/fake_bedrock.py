"""AWS Bedrock Runtime for the fake upstream: Converse, ConverseStream and embeddings by Invoke.

Routes, by the names tests script: `bedrock_converse` (POST /model/{modelId}/converse),
`bedrock_converse_stream` (.../converse-stream, an `application/vnd.amazon.eventstream` body)
and `bedrock_invoke` (.../invoke, Titan Text Embeddings and Cohere Embed bodies). Model ids
arrive percent-encoded (`%3A`), so routes are matched on the raw path. Set `credentials` to have
every request's SigV4 signature checked; `stream_exception` is what `error_event_after` sends.
JSON keys come sorted and stream events carry the random `"p"` padding, as Bedrock's do.
"""

from __future__ import annotations

import base64
import math
import random
import re
import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from tests.support.fake_aws import (
    CORAL,
    AwsKeys,
    aws_error,
    check_sigv4,
    event_message,
    request_id,
)
from tests.support.fake_upstream import Fail, Frames, Reply, embedding_vector, pieces

PATH = re.compile(r"/model/([^/]+)/(converse|converse-stream|invoke)")
ROUTES = {
    "converse": "bedrock_converse",
    "converse-stream": "bedrock_converse_stream",
    "invoke": "bedrock_invoke",
}
BEDROCK = "http://internal.amazon.com/coral/com.amazon.bedrock/"
KINDS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
MESSAGES = {
    "ValidationException": "Malformed input request, please reformat your input and try again.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ResourceNotFoundException": (
        "Could not resolve the foundation model from the provided model identifier."
    ),
    "ModelTimeoutException": (
        "Model has timed out in processing the request. Try your request again."
    ),
    "ModelErrorException": "The model returned an error. Try your request again.",
    "ModelNotReadyException": (
        "Model is not ready to serve inference requests. Try your request again."
    ),
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "InternalServerException": (
        "The system encountered an unexpected error during processing. Try your request again."
    ),
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
}
PADDING = string.ascii_lowercase + string.ascii_uppercase + string.digits
EVENT_STREAM = "application/vnd.amazon.eventstream"
LATENCY_MS = 212
SCHEMA = "Malformed input request: #{where}: {what}, please reformat your input and try again."
TITAN_V2_KEYS = {"inputText", "dimensions", "normalize", "embeddingTypes"}
COHERE_KEYS = {"texts", "images", "input_type", "truncate", "embedding_types"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FakeBedrock:
    """The Bedrock Runtime `Mode` of FakeUpstream (see the module docstring)."""

    routes = tuple(ROUTES.values())

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.credentials: AwsKeys | None = None
        self.stream_exception = ("internalServerException", MESSAGES["InternalServerException"])
        self.now: Callable[[], datetime] = _utc_now

    # --- the Mode contract -------------------------------------------------------------

    def owns(self, request: web.Request) -> bool:
        return request.raw_path.startswith("/model/")

    def route(self, request: web.Request) -> str | None:
        match = PATH.fullmatch(request.raw_path.partition("?")[0])
        return ROUTES[match[2]] if match and request.method == "POST" else None

    def admit(
        self, request: web.Request, route: str, body: bytes, payload: Any
    ) -> web.Response | None:
        if self.credentials is not None:
            refusal = check_sigv4(request, body, self.credentials, self.now())
            if refusal is not None:
                return aws_error(refusal.status, refusal.kind, refusal.message, CORAL, self._ids())
        problem = self._problem(route, _model(request), payload)
        if problem is None:
            return None
        return aws_error(400, "ValidationException", problem, BEDROCK, self._ids())

    def error(self, fail: Fail, request: web.Request) -> web.Response:
        kind = fail.type or KINDS.get(fail.status, "InternalServerException")
        message = fail.message or MESSAGES.get(kind, kind)
        return aws_error(fail.status, kind, message, BEDROCK, {**self._ids(), **fail.headers})

    def answer(
        self, request: web.Request, route: str, payload: dict[str, Any], reply: Reply
    ) -> web.Response | Frames:
        headers = {**self._ids(), **reply.headers}
        if route == "bedrock_invoke":
            return self._invoke(_model(request), payload, reply, headers)
        if route == "bedrock_converse":
            return _json(self._converse(reply), headers)
        kind, message = self.stream_exception
        exception = event_message(
            [
                (":exception-type", kind),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            orjson.dumps({"message": message}),
        )
        return Frames(self._events(reply), headers, EVENT_STREAM, exception)

    # --- requests ------------------------------------------------------------------------

    def _problem(self, route: str, model: str, payload: Any) -> str | None:
        """What Bedrock's validation would say about the body, or None when it is accepted."""
        if not isinstance(payload, dict):
            return MESSAGES["ValidationException"]
        if route == "bedrock_invoke":
            return _invoke_problem(model, payload)
        if isinstance(payload.get("messages"), list):
            return None
        return (
            "1 validation error detected: Value null at 'messages' failed to satisfy "
            "constraint: Member must not be null"
        )

    # --- answers -------------------------------------------------------------------------

    def _ids(self) -> dict[str, str]:
        return {"x-amzn-RequestId": request_id(self._rng)}

    def _signature(self) -> str:
        return base64.b64encode(self._rng.randbytes(48)).decode()

    def _usage(self, reply: Reply) -> dict[str, int]:
        out = reply.completion_tokens
        if out is None:
            out = max(1, len(pieces(reply.text, reply.chunks)) + len(reply.tool_calls))
            out += len(pieces(reply.thinking or "", reply.chunks))
        usage = {  # prompt_tokens counts cached ones too; Bedrock reports them apart
            "inputTokens": reply.prompt_tokens - reply.cached_tokens,
            "outputTokens": out,
            "totalTokens": reply.prompt_tokens + out,
        }
        if reply.cached_tokens:
            usage["cacheReadInputTokens"] = reply.cached_tokens
        return usage

    def _stop(self, reply: Reply) -> str:
        return reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")

    def _converse(self, reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.thinking:
            text = {"text": reply.thinking, "signature": self._signature()}
            content.append({"reasoningContent": {"reasoningText": text}})
        if reply.text:
            content.append({"text": reply.text})
        content += [
            {
                "toolUse": {
                    "toolUseId": call.id,
                    "name": call.name,
                    "input": orjson.loads(call.arguments_json),
                }
            }
            for call in reply.tool_calls
        ]
        return {
            "metrics": {"latencyMs": LATENCY_MS},
            "output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": self._stop(reply),
            "usage": self._usage(reply),
        }

    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        padding = PADDING[: self._rng.randint(1, len(PADDING))]
        return event_message(
            [
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            orjson.dumps({**body, "p": padding}, option=orjson.OPT_SORT_KEYS),
        )

    def _block(self, index: int, deltas: list[dict[str, Any]]) -> list[bytes]:
        events = [
            self._event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
            for delta in deltas
        ]
        return [*events, self._event("contentBlockStop", {"contentBlockIndex": index})]

    def _events(self, reply: Reply) -> list[bytes]:
        """messageStart, one block per reasoning/text/tool use, messageStop, metadata."""
        events = [self._event("messageStart", {"role": "assistant"})]
        index = 0
        if reply.thinking:
            deltas = [
                {"reasoningContent": {"text": part}}
                for part in pieces(reply.thinking, reply.chunks)
            ]
            deltas.append({"reasoningContent": {"signature": self._signature()}})
            events += self._block(index, deltas)
            index += 1
        if reply.text:
            events += self._block(index, [{"text": p} for p in pieces(reply.text, reply.chunks)])
            index += 1
        for call in reply.tool_calls:
            start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
            events.append(
                self._event("contentBlockStart", {"contentBlockIndex": index, "start": start})
            )
            parts = pieces(call.arguments_json, 3)
            events += self._block(index, [{"toolUse": {"input": part}} for part in parts])
            index += 1
        events.append(self._event("messageStop", {"stopReason": self._stop(reply)}))
        metadata = {"usage": self._usage(reply), "metrics": {"latencyMs": LATENCY_MS}}
        return [*events, self._event("metadata", metadata)]

    def _invoke(
        self, model: str, payload: dict[str, Any], reply: Reply, headers: dict[str, str]
    ) -> web.Response:
        headers = {"X-Amzn-Bedrock-Invocation-Latency": str(LATENCY_MS), **headers}
        if "cohere.embed" in model:
            return _json(self._cohere(payload, reply), headers)
        dims = payload.get("dimensions") or reply.embedding_dims
        vector = embedding_vector(payload["inputText"], dims)
        if payload.get("normalize", True):
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            vector = [x / norm for x in vector]
        body: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": reply.prompt_tokens}
        if "titan-embed-text-v2" in model:
            by_type = {"float": vector, "binary": [int(x > 0) for x in vector]}
            kinds = payload.get("embeddingTypes") or ["float"]
            body["embeddingsByType"] = {kind: by_type[kind] for kind in kinds if kind in by_type}
        headers["X-Amzn-Bedrock-Input-Token-Count"] = str(reply.prompt_tokens)
        return _json(body, headers, sort=False)

    def _cohere(self, payload: dict[str, Any], reply: Reply) -> dict[str, Any]:
        texts = payload["texts"]
        vectors = [embedding_vector(text, reply.embedding_dims) for text in texts]
        kinds = payload.get("embedding_types")
        embeddings: Any = vectors
        if kinds:
            embeddings = {kind: [_typed(kind, v) for v in vectors] for kind in kinds}
        return {
            "embeddings": embeddings,
            "id": request_id(self._rng),
            "response_type": "embeddings_by_type" if kinds else "embeddings_floats",
            "texts": texts,
        }


def _model(request: web.Request) -> str:
    match = PATH.fullmatch(request.raw_path.partition("?")[0])
    return unquote(match[1]) if match else ""


def _invoke_problem(model: str, payload: dict[str, Any]) -> str | None:
    if "cohere.embed" in model:
        return _schema(payload, {"texts", "input_type"}, COHERE_KEYS)
    if "titan-embed-text-v2" in model:
        problem = _schema(payload, {"inputText"}, TITAN_V2_KEYS)
        size = payload.get("dimensions", 1024)
        if problem is None and size not in (256, 512, 1024):
            problem = SCHEMA.format(where="/dimensions", what=f"{size} is not a valid enum value")
        return problem
    if "titan-embed-text" in model:
        return _schema(payload, {"inputText"}, {"inputText"})
    return f"The fake serves InvokeModel for Titan and Cohere embeddings only, not {model}."


def _schema(payload: dict[str, Any], required: set[str], allowed: set[str]) -> str | None:
    """The JSON-schema complaint a model's invoke body gets, in Bedrock's wording."""
    for key in sorted(required - payload.keys()):
        return SCHEMA.format(where="", what=f"required key [{key}] not found")
    for key in sorted(payload.keys() - allowed):
        return SCHEMA.format(where="", what=f"extraneous key [{key}] is not permitted")
    return None


def _typed(kind: str, vector: list[float]) -> list[Any]:
    """A vector in one of Cohere's embedding types: float, int8, uint8, binary, ubinary."""
    if kind == "float":
        return vector
    if kind in ("int8", "uint8"):
        shift = 0.0 if kind == "int8" else 0.5
        return [round((x + shift) * 254) for x in vector]
    bits = "".join("1" if x > 0 else "0" for x in vector)
    packed = [int(bits[i : i + 8].ljust(8, "0"), 2) for i in range(0, len(bits), 8)]
    return [b - 128 for b in packed] if kind == "binary" else packed


def _json(body: dict[str, Any], headers: dict[str, str], sort: bool = True) -> web.Response:
    option = orjson.OPT_SORT_KEYS if sort else 0
    return web.Response(
        body=orjson.dumps(body, option=option), content_type="application/json", headers=headers
    )
