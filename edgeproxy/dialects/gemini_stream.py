"""Gemini answers on cross-dialect routes: the `alt=sse` stream decoder, and what it shares with
the complete answer (reading parts, finish reasons, usage, blocked prompts and error objects).

`streamGenerateContent?alt=sse` sends one `GenerateContentResponse` per SSE event (`data: {...}`
ended by CRLF CRLF), each a complete JSON object: its `candidates[0].content.parts` are the new
parts, `usageMetadata` (on most events) the usage so far, and the last one has the
`finishReason`. A failure after the answer started is an event holding `{"error": {...}}`.

Neutral form of Gemini's parts:
- a `thought: true` part is a `Thinking` (its `thoughtSignature`, if any, on it);
- the `thoughtSignature` of any other part (a function call's, or the last text's) becomes a
  `Thinking("", signature)` just before that part, so a client that keeps reasoning blocks
  (Anthropic's) sends it back in the same place; `gemini.build_chat` puts it back on the part
  that follows it.
- a `functionCall` is a `ToolCall`: its `args` object as compact JSON text, its `id` when
  Gemini gives one, else `call_` + a hash of the response id, the call's ordinal and its name,
  so the same answer always gets the same ids and two answers never share one.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.dialects.neutral import (
    Finish,
    OutputPart,
    Start,
    Stop,
    StreamEvent,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)
from edgeproxy.dialects.sse_stream import SSEStreamDecoder
from edgeproxy.dialects.upstream import code_for_status, token_count
from edgeproxy.errors import ProxyError
from edgeproxy.sse import SSEEvent

# finishReason to neutral. Every filter (safety, recitation, blocklists, personal data, images)
# is a content_filter stop; LANGUAGE, OTHER, TOO_MANY_TOOL_CALLS, NO_IMAGE, IMAGE_OTHER and
# reasons this table does not know end the answer normally.
FINISH: dict[str, Finish] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
# The model tried to call a function and produced an invalid call: Gemini sends no usable
# content, so the answer is a (retryable) failure, not an empty success an agent would stop on.
_MALFORMED = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})

# google.rpc status names as the status and neutral code the client gets.
_STATUSES: dict[str, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "invalid_request"),
    "FAILED_PRECONDITION": (400, "invalid_request"),
    "OUT_OF_RANGE": (400, "invalid_request"),
    "UNIMPLEMENTED": (400, "invalid_request"),
    "UNAUTHENTICATED": (401, "authentication_error"),
    "PERMISSION_DENIED": (403, "permission_denied"),
    "NOT_FOUND": (404, "not_found"),
    "ABORTED": (409, "upstream_error"),
    "RESOURCE_EXHAUSTED": (429, "rate_limited"),
    "CANCELLED": (502, "upstream_error"),
    "UNKNOWN": (500, "upstream_error"),
    "INTERNAL": (500, "upstream_error"),
    "DATA_LOSS": (500, "upstream_error"),
    "UNAVAILABLE": (503, "overloaded"),
    "DEADLINE_EXCEEDED": (504, "upstream_timeout"),
}
# Google answers a bad key with 400 INVALID_ARGUMENT; the ErrorInfo reason tells it apart.
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
_CONTEXT_OVERFLOW = ("input token count", "exceeds the maximum number of tokens")
_TOO_LARGE = "payload size exceeds the limit"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
# A Google API key, should a message ever quote one: it is cut out before anything is kept.
_API_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{35}")


def new_id() -> str:
    """An id for an answer that came without a `responseId`."""
    return "gemini-" + os.urandom(12).hex()


def call_id(response_id: str, ordinal: int, name: str) -> str:
    """The id of a function call Gemini gave none: stable for one answer, distinct across."""
    digest = hashlib.blake2b(f"{response_id}/{ordinal}/{name}".encode(), digest_size=12)
    return "call_" + digest.hexdigest()


def model_of(answer: dict[str, Any]) -> str:
    """`modelVersion` ("gemini-2.5-flash", sometimes "models/…"), or "" when absent."""
    version = answer.get("modelVersion")
    return version.removeprefix("models/") if isinstance(version, str) else ""


def _tool_call(call: dict[str, Any], response_id: str, ordinal: int) -> ToolCall:
    name = str(call.get("name") or "")
    given = call.get("id")
    args = call.get("args")
    arguments = orjson.dumps(args).decode() if isinstance(args, dict) else "{}"
    ident = given if isinstance(given, str) and given else call_id(response_id, ordinal, name)
    return ToolCall(ident, name, arguments)


def output_parts(parts: object, response_id: str, calls: int = 0) -> list[OutputPart]:
    """A candidate's parts in neutral form (see the module docstring); `calls` is how many
    function calls came before them. Images and code-execution parts are left out."""
    out: list[OutputPart] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        text = text if isinstance(text, str) else ""
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        if part.get("thought") is True:
            if text or signature:
                out.append(Thinking(text, signature))
            continue
        if signature:
            out.append(Thinking("", signature))
        if text:
            out.append(Text(text))
        elif isinstance(call := part.get("functionCall"), dict):
            out.append(_tool_call(call, response_id, calls))
            calls += 1
    return out


def finish_of(reason: object, called_tools: bool, provider: str) -> Finish:
    """The neutral finish (`tool_calls` when the answer called functions); raises a 502 for a
    malformed function call."""
    if reason in _MALFORMED:
        raise errors.from_upstream(
            502,
            "upstream_error",
            f"Provider '{provider}' produced an invalid function call ({reason}); "
            "no answer was returned.",
            detail=f"{provider}: finishReason {reason}",
        )
    finish = FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if called_tools and finish == "stop" else finish


def usage_of(metadata: object) -> Usage | None:
    """`usageMetadata` in neutral terms. `promptTokenCount` already counts cached content;
    tokens of server-side tool results (`toolUsePromptTokenCount`) are prompt too; thoughts
    are output (`candidatesTokenCount` leaves them out), and are its reasoning part."""
    if not isinstance(metadata, dict):
        return None
    thoughts = token_count(metadata, "thoughtsTokenCount")
    return Usage(
        input_tokens=token_count(metadata, "promptTokenCount")
        + token_count(metadata, "toolUsePromptTokenCount"),
        output_tokens=token_count(metadata, "candidatesTokenCount") + thoughts,
        cached_tokens=token_count(metadata, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def first_candidate(answer: dict[str, Any], provider: str) -> dict[str, Any] | None:
    """`candidates[0]`; raises when the prompt was blocked (then there is no candidate)."""
    candidates = answer.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    feedback = answer.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if reason:
        raise errors.from_upstream(
            400,
            "invalid_request",
            f"Provider '{provider}' blocked the prompt (blockReason {reason}); "
            "no answer was generated.",
            detail=f"{provider}: promptFeedback.blockReason {reason}",
        )
    return None


# --- errors -----------------------------------------------------------------------------------


def scrub(text: str) -> str:
    """`text` with anything shaped like a Google API key cut out."""
    return _API_KEY.sub("[redacted]", text) if "AIza" in text else text


def _details(error: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and d.get("@type") == kind]


def retry_delay(error: dict[str, Any]) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail: its `retryDelay` is a JSON Duration,
    "30s" or "1.5s"."""
    for info in _details(error, _RETRY_INFO):
        delay = info.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def _classify(status: int, error: dict[str, Any], message: str) -> tuple[int, str]:
    """The client status and neutral code for an error of HTTP `status` (0: in a stream)."""
    named = error.get("status")
    if isinstance(named, str) and named in _STATUSES:
        client_status, code = _STATUSES[named]
    else:
        code_given = error.get("code")
        status = status or (code_given if isinstance(code_given, int) else 0)
        code = code_for_status(status) if status else "upstream_error"
        client_status = status or 502
    if any(info.get("reason") in _KEY_REASONS for info in _details(error, _ERROR_INFO)):
        return 401, "authentication_error"
    if code == "invalid_request":
        lowered = message.lower()
        if any(sign in lowered for sign in _CONTEXT_OVERFLOW):
            return 400, "context_length_exceeded"
        if _TOO_LARGE in lowered:
            return 413, "request_too_large"
    return client_status, code


def read_error(
    status: int, error: dict[str, Any], provider: str, retry_after: float | None = None
) -> ProxyError:
    """Google's `{"error": {"code", "message", "status", "details"}}` (the inner object) in
    neutral terms; `status` is the HTTP status, 0 for an error object inside a stream."""
    raw = error.get("message")
    message = scrub(raw) if isinstance(raw, str) and raw else ""
    client_status, code = _classify(status, error, message)
    named = error.get("status")
    text = (
        message or f"Provider '{provider}' reported an error ({named or status or client_status})."
    )
    delay = retry_delay(error)
    return errors.from_upstream(
        client_status,
        code,
        text,
        retry_after=delay if delay is not None else retry_after,
        detail=f"{provider} HTTP {status or 'stream'}: {named or 'no status'}",
    )


# --- the stream -------------------------------------------------------------------------------


def _events(parts: list[OutputPart], first_call: int, out: list[StreamEvent]) -> int:
    """Append the events for `parts`; function calls arrive whole, so each is a start and one
    delta with all its arguments. Returns how many calls there were."""
    ordinal = first_call
    for part in parts:
        if isinstance(part, Text):
            out.append(TextDelta(part.text))
        elif isinstance(part, Thinking):
            out.append(ThinkingDelta(part.text, part.signature))
        else:
            out.append(ToolCallStart(ordinal, part.id, part.name))
            out.append(ToolCallDelta(ordinal, part.arguments))
            ordinal += 1
    return ordinal - first_call


class GenerateStreamDecoder(SSEStreamDecoder):
    """A `streamGenerateContent?alt=sse` body, fed in chunks cut anywhere, to neutral events.

    Each event's JSON is decoded once. An error object, a blocked prompt, a malformed function
    call or an event that is not JSON fails the stream, as `SSEStreamDecoder` says.
    """

    __slots__ = ("_calls", "_make_id", "_response_id", "_started", "_stopped")

    def __init__(self, provider: str, *, make_id: Callable[[], str] = new_id) -> None:
        super().__init__(provider)
        self._make_id = make_id
        self._response_id = ""
        self._calls = 0
        self._started = False
        self._stopped = False

    def _missing(self) -> str | None:
        return None if self._stopped else "a finishReason"

    def _event(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise errors.upstream_broken(
                self._provider, f"event is not a JSON object: {scrub(repr(event.data[:200]))}"
            )
        self.translate(payload, out)

    def translate(self, answer: dict[str, Any], out: list[StreamEvent]) -> None:
        """Append the neutral events one `GenerateContentResponse` stands for; after the
        finishReason only the usage is read."""
        error = answer.get("error")
        if isinstance(error, dict):
            raise read_error(0, error, self._provider)
        candidate = first_candidate(answer, self._provider)
        if not self._started:
            self._started = True
            response_id = answer.get("responseId")
            self._response_id = response_id if isinstance(response_id, str) else self._make_id()
            out.append(Start(self._response_id, model_of(answer)))
        if candidate is not None and not self._stopped:
            self._candidate(candidate, out)
        usage = usage_of(answer.get("usageMetadata"))
        if usage is not None:
            out.append(UsageReport(usage))

    def _candidate(self, candidate: dict[str, Any], out: list[StreamEvent]) -> None:
        content = candidate.get("content")
        if isinstance(content, dict):
            parts = output_parts(content.get("parts"), self._response_id, self._calls)
            self._calls += _events(parts, self._calls, out)
        reason = candidate.get("finishReason")
        if reason:
            finish = finish_of(reason, self._calls > 0, self._provider)
            self._stopped = True
            out.append(Stop(finish))
