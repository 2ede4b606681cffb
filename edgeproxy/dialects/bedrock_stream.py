"""Bedrock ConverseStream answers on cross-dialect routes: event-stream frames to neutral events.

ConverseStream answers in binary `application/vnd.amazon.eventstream` frames, not SSE. The
framing is `edgeproxy.eventstream`'s; this module reads what the frames say. Each frame is an
`event` (`:event-type` messageStart, contentBlockStart, contentBlockDelta, contentBlockStop,
messageStop, metadata, each a JSON object with a random `"p"` padding field), or an
`exception` (`:exception-type`, a JSON `{"message"}`), or a service-level `error`
(`:error-code` and `:error-message` headers). Each payload is decoded once.

Also here, because both the complete and the streamed answer need them: the stop-reason table,
the usage reader and the ids Bedrock does not give (Converse answers carry none).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import orjson

from edgeproxy import errors
from edgeproxy.dialects.neutral import (
    Finish,
    Start,
    Stop,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)
from edgeproxy.dialects.upstream import json_object, token_count
from edgeproxy.errors import ProxyError
from edgeproxy.eventstream import EventMessage, EventStreamDecoder, EventStreamError

# Converse's stopReason to neutral. `model_context_window_exceeded` (Claude 4.5 and later) cut
# the answer at the context window: a length stop. `malformed_model_output`,
# `malformed_tool_use` and reasons no table knows end the answer normally.
FINISH: dict[str, Finish] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

ReadError = Callable[[str, str], ProxyError]
"""The error a stream reports, from its exception type (or error code) and message."""


def new_id() -> str:
    """An id for an answer: Converse gives none, and clients expect one."""
    return "msg_bdrk_" + os.urandom(12).hex()


def finish_of(reason: object, called_tools: bool) -> Finish:
    """The neutral finish; an answer that called tools finishes with `tool_calls`."""
    finish = FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if called_tools and finish == "stop" else finish


def usage_of(usage: object) -> Usage | None:
    """Bedrock's TokenUsage in neutral terms. Its `inputTokens` leaves out the tokens read
    from and written to the prompt cache, which the neutral `input_tokens` includes."""
    if not isinstance(usage, dict):
        return None
    cached = token_count(usage, "cacheReadInputTokens")
    written = token_count(usage, "cacheWriteInputTokens")
    return Usage(
        input_tokens=token_count(usage, "inputTokens") + cached + written,
        output_tokens=token_count(usage, "outputTokens"),
        cached_tokens=cached,
        cache_write_tokens=written,
    )


def stop_sequence_of(fields: object) -> str | None:
    """The stop string that ended the answer, when the request asked for the model's
    `/stop_sequence` field (Converse's own stopReason does not say which one)."""
    value = fields.get("stop_sequence") if isinstance(fields, dict) else None
    return value if isinstance(value, str) else None


def _exception_message(payload: bytes) -> str:
    """The `message` of an exception frame's payload, or the raw text if it is not JSON."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:300].decode(errors="replace")
    message = (body.get("message") or body.get("Message")) if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


class ConverseStreamDecoder:
    """A ConverseStream body, fed in chunks cut anywhere, to neutral events.

    Tool calls are numbered in order of appearance; `contentBlockIndex` says which call an
    input fragment extends. An exception frame is raised once the events before it in the
    same feed have been returned, so the client sees the same answer however the bytes were
    cut. `metadata` (the usage) follows `messageStop`; the stream is complete without it.
    """

    __slots__ = (
        "_failure",
        "_frames",
        "_make_id",
        "_model",
        "_provider",
        "_read_error",
        "_started",
        "_stopped",
        "_tools",
        "_with_input",
    )

    def __init__(
        self,
        provider: str,
        read_error: ReadError,
        *,
        model: str = "",
        make_id: Callable[[], str] = new_id,
    ) -> None:
        self._provider = provider
        self._read_error = read_error
        self._model = model
        self._make_id = make_id
        self._frames = EventStreamDecoder()
        self._tools: dict[object, int] = {}  # contentBlockIndex → tool call ordinal
        self._with_input: set[int] = set()
        self._started = False
        self._stopped = False
        self._failure: ProxyError | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._failure is not None:
            raise self._failure
        try:
            messages = self._frames.feed(chunk)
        except EventStreamError as error:
            self._failure = errors.upstream_broken(self._provider, f"event stream: {error}")
            raise self._failure from None
        events: list[StreamEvent] = []
        for message in messages:
            try:
                self._message(message, events)
            except ProxyError as error:  # a malformed event: the stream cannot go on
                self._failure = error
            if self._failure is not None:
                break
        if self._failure is not None and not events:
            raise self._failure
        return events

    def close(self) -> list[StreamEvent]:
        if self._failure is not None:
            raise self._failure
        try:
            self._frames.finish()
        except EventStreamError as error:
            raise errors.upstream_broken(self._provider, f"event stream: {error}") from None
        if not self._stopped:
            raise errors.upstream_broken(self._provider, "stream ended before messageStop")
        return []

    def _message(self, message: EventMessage, events: list[StreamEvent]) -> None:
        kind = message.message_type
        if kind == "event":
            payload = json_object(message.payload, self._provider, "event")
            self.translate(message.event_type or "", payload, events)
        elif kind == "exception":
            exception = message.exception_type or ""
            self._failure = self._read_error(exception, _exception_message(message.payload))
        elif kind == "error":
            self._failure = self._read_error(message.error_code or "", message.error_message or "")

    def translate(self, event_type: str, payload: dict[str, Any], out: list[StreamEvent]) -> None:
        """Append the neutral events one ConverseStream event stands for; unknown events
        (Bedrock adds new ones) stand for none, and only the usage may follow messageStop."""
        if not self._started:
            self._started = True
            out.append(Start(self._make_id(), self._model))
        if self._stopped and event_type != "metadata":
            return
        handler = self._HANDLERS.get(event_type)
        if handler is not None:
            handler(self, payload, out)

    def _block_start(self, payload: dict[str, Any], out: list[StreamEvent]) -> None:
        start = payload.get("start")
        tool = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(tool, dict):
            return
        ordinal = len(self._tools)
        self._tools[payload.get("contentBlockIndex")] = ordinal
        out.append(ToolCallStart(ordinal, str(tool.get("toolUseId") or ""), str(tool.get("name"))))

    def _block_delta(self, payload: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return
        text = delta.get("text")
        if text and isinstance(text, str):
            out.append(TextDelta(text))
        elif isinstance(tool := delta.get("toolUse"), dict):
            self._tool_input(payload.get("contentBlockIndex"), tool.get("input"), out)
        elif isinstance(reasoning := delta.get("reasoningContent"), dict):
            _reasoning(reasoning, out)

    def _tool_input(self, index: object, fragment: object, out: list[StreamEvent]) -> None:
        ordinal = self._tools.get(index)
        if ordinal is None:
            raise errors.upstream_broken(
                self._provider, f"tool input for content block {index!r}, which never started"
            )
        if fragment and isinstance(fragment, str):
            self._with_input.add(ordinal)
            out.append(ToolCallDelta(ordinal, fragment))

    def _block_stop(self, payload: dict[str, Any], out: list[StreamEvent]) -> None:
        """A tool call that got no input at all had no arguments: "{}", as neutral has it."""
        ordinal = self._tools.get(payload.get("contentBlockIndex"))
        if ordinal is not None and ordinal not in self._with_input:
            self._with_input.add(ordinal)
            out.append(ToolCallDelta(ordinal, "{}"))

    def _message_stop(self, payload: dict[str, Any], out: list[StreamEvent]) -> None:
        self._stopped = True
        finish = finish_of(payload.get("stopReason"), bool(self._tools))
        out.append(Stop(finish, stop_sequence_of(payload.get("additionalModelResponseFields"))))

    def _metadata(self, payload: dict[str, Any], out: list[StreamEvent]) -> None:
        usage = usage_of(payload.get("usage"))
        if usage is not None:
            out.append(UsageReport(usage))

    def _nothing(self, payload: dict[str, Any], out: list[StreamEvent]) -> None:
        """messageStart: the Start event is sent before whichever event comes first."""

    _HANDLERS: ClassVar[
        dict[str, Callable[[ConverseStreamDecoder, dict[str, Any], list[StreamEvent]], None]]
    ] = {
        "messageStart": _nothing,
        "contentBlockStart": _block_start,
        "contentBlockDelta": _block_delta,
        "contentBlockStop": _block_stop,
        "messageStop": _message_stop,
        "metadata": _metadata,
    }


def _reasoning(delta: dict[str, Any], out: list[StreamEvent]) -> None:
    """Reasoning text or its signature. A `redactedContent` delta has no neutral stream form
    (ThinkingDelta carries no redacted payload) and is left out."""
    text = delta.get("text")
    if text and isinstance(text, str):
        out.append(ThinkingDelta(text))
    signature = delta.get("signature")
    if signature and isinstance(signature, str):
        out.append(ThinkingDelta("", signature))
