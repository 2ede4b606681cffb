"""Anthropic Messages streams on cross-dialect routes: events to neutral and back.

`MessageStreamDecoder` reads Anthropic's event stream for a client of another dialect;
`MessageStreamEncoder` writes the events an Anthropic SDK expects from neutral events, so that
`client.messages.stream(...).get_final_message()` rebuilds the message `render_chat` gives.
Each SSE event is decoded once; the encoder precomputes the bytes a block's deltas share, so a
delta costs one small JSON dump of its text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import orjson

from edgeproxy import errors
from edgeproxy.dialects import anthropic
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
from edgeproxy.dialects.sse_stream import SSEStreamDecoder
from edgeproxy.errors import ProxyError
from edgeproxy.sse import SSEEvent

# Anthropic's stop_reason to neutral. `pause_turn` only follows server tools, which a
# translated request never declares; a reason no table knows ends the answer normally.
FINISH: dict[str, Finish] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

ReadError = Callable[[dict[str, Any]], ProxyError]


def finish_of(reason: object, called_tools: bool) -> Finish:
    """The neutral finish; an answer with tool calls that "just ended" (some compatible
    servers say end_turn) is a tool call, or an OpenAI client would never run them."""
    finish = FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if called_tools and finish == "stop" else finish


def stop_reason_of(finish: Finish, stop_sequence: str | None) -> str:
    """Anthropic's stop_reason; a stop that matched one of the client's strings says so."""
    if stop_sequence is not None and finish == "stop":
        return "stop_sequence"
    return anthropic.STOP_REASONS[finish]


class MessageStreamDecoder(SSEStreamDecoder):
    """Anthropic's Messages event stream, fed in chunks cut anywhere, to neutral events.

    Tool calls are numbered in order of appearance and their content block indexes mapped to
    those numbers. `event: error` (or a broken event) fails the stream, as `SSEStreamDecoder`
    says. Unknown events and blocks (citations, server tools, new kinds) are skipped, to stay
    forward compatible; redacted thinking has no stream event in neutral form and is skipped
    too.
    """

    __slots__ = ("_done", "_read_error", "_started", "_stopped", "_tools", "_usage")

    def __init__(self, provider: str, read_error: ReadError) -> None:
        super().__init__(provider)
        self._read_error = read_error
        self._tools: dict[int | None, int] = {}  # content block index -> tool call number
        self._usage: Usage | None = None
        self._started = False
        self._stopped = False
        self._done = False

    def _missing(self) -> str | None:
        return None if self._done else "message_stop"

    def _event(self, event: SSEEvent, events: list[StreamEvent]) -> None:
        if self._done or event.event == "ping":
            return
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise errors.upstream_broken(
                self._provider, f"event is not JSON: {event.data[:200]!r}"
            ) from None
        if not isinstance(payload, dict):
            raise errors.upstream_broken(
                self._provider, f"event is not an object: {event.data[:200]!r}"
            )
        kind = payload.get("type") or event.event
        handle = self._HANDLERS.get(kind) if isinstance(kind, str) else None
        if handle is None:
            return
        if not self._started and kind not in ("message_start", "error"):
            raise errors.upstream_broken(self._provider, f"{kind} before message_start")
        handle(self, payload, events)

    def _message_start(self, payload: dict[str, Any], events: list[StreamEvent]) -> None:
        if self._started:
            return  # Start comes once
        message = payload.get("message")
        if not isinstance(message, dict):
            raise errors.upstream_broken(self._provider, "message_start without a message")
        self._started = True
        self._usage = anthropic.read_usage(message)
        events.append(
            Start(str(message.get("id") or ""), str(message.get("model") or ""), self._usage)
        )

    def _block_start(self, payload: dict[str, Any], events: list[StreamEvent]) -> None:
        block = payload.get("content_block")
        if not isinstance(block, dict):
            return
        kind = block.get("type")
        if kind == "text":
            _text(block.get("text"), events)
        elif kind == "thinking":
            _thinking(block.get("thinking"), block.get("signature"), events)
        elif kind == "tool_use":
            number = len(self._tools)
            self._tools[_index(payload)] = number
            call_id = str(block.get("id") or f"toolu_{number}")
            events.append(ToolCallStart(number, call_id, str(block.get("name") or "")))
            arguments = block.get("input")
            if arguments and isinstance(arguments, dict):  # compatible servers send it whole
                events.append(ToolCallDelta(number, orjson.dumps(arguments).decode()))

    def _block_delta(self, payload: dict[str, Any], events: list[StreamEvent]) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            _text(delta.get("text"), events)
        elif kind == "input_json_delta":
            number = self._tools.get(_index(payload))
            partial = delta.get("partial_json")
            if number is not None and partial and isinstance(partial, str):
                events.append(ToolCallDelta(number, partial))
        elif kind == "thinking_delta":
            _thinking(delta.get("thinking"), None, events)
        elif kind == "signature_delta":
            _thinking(None, delta.get("signature"), events)

    def _message_delta(self, payload: dict[str, Any], events: list[StreamEvent]) -> None:
        delta = payload.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason") and not self._stopped:
            self._stopped = True
            sequence = delta.get("stop_sequence")
            finish = finish_of(delta["stop_reason"], bool(self._tools))
            events.append(Stop(finish, sequence if isinstance(sequence, str) else None))
        raw = payload.get("usage")
        if isinstance(raw, dict):
            self._usage = anthropic.usage_after_delta(self._usage, raw)
            events.append(UsageReport(self._usage))

    def _message_stop(self, payload: dict[str, Any], events: list[StreamEvent]) -> None:
        self._done = True
        if not self._stopped:
            self._stopped = True
            events.append(Stop(finish_of(None, bool(self._tools))))

    def _error(self, payload: dict[str, Any], events: list[StreamEvent]) -> None:
        raise self._read_error(payload)

    _HANDLERS: ClassVar[
        dict[str, Callable[[MessageStreamDecoder, dict[str, Any], list[StreamEvent]], None]]
    ] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
        "error": _error,
    }


def _index(payload: dict[str, Any]) -> int | None:
    index = payload.get("index")
    return index if isinstance(index, int) else None


def _text(text: object, events: list[StreamEvent]) -> None:
    if text and isinstance(text, str):
        events.append(TextDelta(text))


def _thinking(text: object, signature: object, events: list[StreamEvent]) -> None:
    shown = text if text and isinstance(text, str) else ""
    signed = signature if signature and isinstance(signature, str) else None
    if shown or signed:
        events.append(ThinkingDelta(shown, signed))


def _frame(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


class MessageStreamEncoder:
    """Neutral events to the Messages events an Anthropic SDK reassembles.

    Blocks open on demand and close when the next one opens (or at Stop), indexed from 0:
    text on text, thinking on reasoning (a signature ends a thinking block, so reasoning after
    one opens another), tool_use on each tool call. A delta for a tool call whose block is no
    longer the open one still goes to that call's block, where the SDK accumulates it. The
    final message_delta repeats the input counts, which the SDK takes over message_start's
    (a provider such as OpenAI reports them only at the end).
    """

    __slots__ = (
        "_finish",
        "_index",
        "_next",
        "_open",
        "_prefix",
        "_signed",
        "_started",
        "_stop_sequence",
        "_tools",
        "_usage",
    )

    def __init__(self) -> None:
        self._next = 0  # index of the next block to open
        self._index = 0  # index of the open block
        self._open: str | None = None  # the open block's type
        self._prefix = b""  # the bytes every delta of the open block starts with
        self._signed = False  # whether the open thinking block got its signature
        self._tools: dict[int, bytes] = {}  # tool call number -> its delta prefix
        self._usage = Usage()
        self._finish: Finish | None = None
        self._stop_sequence: str | None = None
        self._started = False

    def encode(self, event: StreamEvent) -> bytes:
        return self._ENCODE[type(event)](self, event)

    def finish(self) -> bytes:
        if not self._started:
            return b""
        finish = self._finish or ("tool_calls" if self._tools else "stop")
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason_of(finish, self._stop_sequence),
                "stop_sequence": self._stop_sequence,
                "stop_details": None,
            },
            "usage": anthropic.usage_object(self._usage),
        }
        return (
            self._close()
            + _frame(b"message_delta", orjson.dumps(delta))
            + _frame(b"message_stop", b'{"type":"message_stop"}')
        )

    def error(self, err: ProxyError) -> bytes:
        return anthropic.error_event(err)

    def _start(self, event: Start) -> bytes:
        self._started = True
        if event.usage is not None:
            self._usage = event.usage
        message: dict[str, Any] = {
            "id": event.id,
            "type": "message",
            "role": "assistant",
            "model": event.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "stop_details": None,
            "usage": anthropic.usage_object(self._usage),
        }
        return _frame(b"message_start", orjson.dumps({"type": "message_start", "message": message}))

    def _text(self, event: TextDelta) -> bytes:
        if not event.text:
            return b""
        head = (
            b""
            if self._open == "text"
            else self._open_block({"type": "text", "text": ""}, b"text_delta", b"text")
        )
        return head + self._prefix + orjson.dumps(event.text) + b"}}\n\n"

    def _thinking(self, event: ThinkingDelta) -> bytes:
        if not (event.text or event.signature):
            return b""
        out = b""
        if self._open != "thinking" or (self._signed and event.text):
            block = {"type": "thinking", "thinking": "", "signature": ""}
            out = self._open_block(block, b"thinking_delta", b"thinking")
            self._signed = False
        if event.text:
            out += self._prefix + orjson.dumps(event.text) + b"}}\n\n"
        if event.signature:
            self._signed = True
            out += self._delta_head(self._index, b"signature_delta", b"signature")
            out += orjson.dumps(event.signature) + b"}}\n\n"
        return out

    def _call_start(self, event: ToolCallStart) -> bytes:
        block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
        out = self._open_block(block, b"input_json_delta", b"partial_json")
        self._tools[event.index] = self._prefix
        return out

    def _call_delta(self, event: ToolCallDelta) -> bytes:
        prefix = self._tools.get(event.index)
        if prefix is None or not event.arguments:
            return b""
        return prefix + orjson.dumps(event.arguments) + b"}}\n\n"

    def _stop(self, event: Stop) -> bytes:
        self._finish = event.finish
        self._stop_sequence = event.stop_sequence
        return self._close()

    def _usage_report(self, event: UsageReport) -> bytes:
        self._usage = event.usage
        return b""

    def _open_block(self, block: dict[str, Any], delta: bytes, field: bytes) -> bytes:
        out = self._close()
        self._index = self._next
        self._next += 1
        self._open = block["type"]
        self._prefix = self._delta_head(self._index, delta, field)
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return out + _frame(b"content_block_start", orjson.dumps(start))

    @staticmethod
    def _delta_head(index: int, delta: bytes, field: bytes) -> bytes:
        return (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(index).encode()
            + b',"delta":{"type":"'
            + delta
            + b'","'
            + field
            + b'":'
        )

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        stop = b'{"type":"content_block_stop","index":' + str(self._index).encode() + b"}"
        return _frame(b"content_block_stop", stop)

    _ENCODE: ClassVar[dict[type, Callable[[MessageStreamEncoder, Any], bytes]]] = {
        Start: _start,
        TextDelta: _text,
        ThinkingDelta: _thinking,
        ToolCallStart: _call_start,
        ToolCallDelta: _call_delta,
        Stop: _stop,
        UsageReport: _usage_report,
    }
